// What a node of a kv job may send: the cluster's role policy
// (cluster/role_policy.h: which role sends which message type) and kv's
// rule on its own header, which the cluster layer below cannot read: only
// worker 0 may mark a push as the clock to checkpoint at (time-based
// checkpoints are its decision). The predicate a CURVE transport authorizes
// every received message with. Pure; thread-safe.
//
//   ZmqOptions o;
//   o.security.authorize = KvMaySend;
#ifndef DISTOPT_KV_KV_ROLE_POLICY_H_
#define DISTOPT_KV_KV_ROLE_POLICY_H_

#include <string>

#include "wire/message.h"

namespace distopt {

// May the node called `peer` ("worker/3") send `m`? A push whose kv header
// does not decode is refused: it cannot show it asks for no checkpoint.
bool KvMaySend(const std::string& peer, const Message& m);

}  // namespace distopt

#endif  // DISTOPT_KV_KV_ROLE_POLICY_H_
