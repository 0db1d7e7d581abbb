#include "cluster/role_policy.h"

#include <charconv>

namespace distopt {

std::string FormatNodeName(Role role, int32_t rank) {
  if (role == Role::kCoordinator) return "coordinator";
  return std::string(RoleName(role)) + "/" + std::to_string(rank);
}

std::optional<NodeName> ParseNodeName(const std::string& name) {
  if (name == "coordinator") return NodeName{Role::kCoordinator, -1};
  size_t slash = name.find('/');
  if (slash == std::string::npos) return std::nullopt;
  auto role = ParseRole(name.substr(0, slash));
  if (!role.ok() || *role == Role::kCoordinator) return std::nullopt;
  int32_t rank = -1;
  const char* b = name.data() + slash + 1;
  const char* e = name.data() + name.size();
  auto [p, ec] = std::from_chars(b, e, rank);
  if (ec != std::errc() || p != e || b == e || rank < 0) return std::nullopt;
  return NodeName{*role, rank};
}

bool MaySend(const std::string& peer, const Message& m) {
  auto who = ParseNodeName(peer);
  if (!who.has_value()) return false;
  switch (m.type) {
    case MsgType::kRegisterReply:
    case MsgType::kBarrierRelease:
    case MsgType::kMembership:
    case MsgType::kShutdown:
    case MsgType::kResultFileAck:
    case MsgType::kManifest:
      return who->role == Role::kCoordinator;
    case MsgType::kHeartbeat:  // nodes beat, the coordinator answers
      return true;
    case MsgType::kRegister:
    case MsgType::kBarrier:
    case MsgType::kAbort:  // a fatal error report: the coordinator ends the job
      return who->role != Role::kCoordinator;
    case MsgType::kDone:
      return who->role == Role::kWorker;
    case MsgType::kPush:
    case MsgType::kPushPull:
    case MsgType::kPull:
    case MsgType::kClock:
      return who->role == Role::kWorker;
    case MsgType::kHostPush:  // between the workers of one host
    case MsgType::kHostParams:
      return who->role == Role::kWorker;
    case MsgType::kResultFile:  // the job's results come from its lead worker
      return who->role == Role::kWorker && who->rank == 0;
    case MsgType::kCheckpoint:
    case MsgType::kReplicaSynced:
    case MsgType::kPushAck:
    case MsgType::kPullReply:
    case MsgType::kKvError:
    case MsgType::kReplicate:
    case MsgType::kReplicateAck:
      return who->role == Role::kServer;
    default:
      return false;
  }
}

}  // namespace distopt
