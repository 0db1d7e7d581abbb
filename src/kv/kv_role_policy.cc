#include "kv/kv_role_policy.h"

#include "cluster/role_policy.h"
#include "kv/kv_message.h"

namespace distopt {

bool KvMaySend(const std::string& peer, const Message& m) {
  if (!MaySend(peer, m)) return false;
  if (m.type != MsgType::kPush && m.type != MsgType::kPushPull) return true;
  auto h = DecodeKvHeader(m);
  if (!h.ok()) return false;
  if (!h->checkpoint) return true;
  auto who = ParseNodeName(peer);  // a worker's name: MaySend checked it
  return who.has_value() && who->rank == 0;
}

}  // namespace distopt
