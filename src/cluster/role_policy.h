// What each role may send, for a transport that knows who its peers are
// (CURVE: the allowlist name of the sender's key, "worker/3"). A worker may
// not order a shutdown, publish a membership (a rollback is one) or report a
// checkpoint; only worker 0 may hand in the job's result files. The rules
// are by message type: what a layer above says inside its body is for that
// layer to add (kv/kv_role_policy.h: only worker 0 asks for a checkpoint).
// Pure functions.
#ifndef DISTOPT_CLUSTER_ROLE_POLICY_H_
#define DISTOPT_CLUSTER_ROLE_POLICY_H_

#include <optional>
#include <string>

#include "cluster/membership.h"
#include "wire/message.h"

namespace distopt {

struct NodeName {
  Role role = Role::kWorker;
  int32_t rank = -1;  // -1 for the coordinator
};

// "coordinator", "server/0", "worker/3" <-> NodeName.
std::string FormatNodeName(Role role, int32_t rank);
std::optional<NodeName> ParseNodeName(const std::string& name);

// May the node called `peer` send a message of `m.type`? Unknown names may send nothing.
bool MaySend(const std::string& peer, const Message& m);

}  // namespace distopt

#endif  // DISTOPT_CLUSTER_ROLE_POLICY_H_
