// Membership: who is in the job. A ClusterView is the coordinator's word on
// the members of one epoch (id, role, rank, address, host, alive) plus an opaque
// layout blob the coordinator's owner supplies (the KV layer's key-range
// layout), so this layer never learns about tables. Views are values; the
// encoders are pure functions.
#ifndef DISTOPT_CLUSTER_MEMBERSHIP_H_
#define DISTOPT_CLUSTER_MEMBERSHIP_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/buffer.h"
#include "distopt/status.h"
#include "wire/message.h"

namespace distopt {

enum class Role : uint8_t { kCoordinator = 0, kServer = 1, kWorker = 2 };

const char* RoleName(Role r);
Result<Role> ParseRole(const std::string& s);

struct Member {
  NodeId id = kUnassignedId;
  Role role = Role::kWorker;
  uint32_t rank = 0;
  std::string address;
  bool alive = true;
  uint32_t incarnation = 0;  // bumps each time a rank re-registers
  // The host it runs on, as the coordinator named it at registration: the
  // node's host label if it gave one, else the host of the address it
  // advertised. Members with equal hosts share a machine (per-host
  // aggregation, backups placed on another host).
  std::string host;
  // What its host can serve relative to the others (cluster.capacity; by
  // default the CPUs the node may run on). 0: not said.
  uint32_t capacity = 0;
};

struct ClusterView {
  uint32_t epoch = 0;
  uint32_t num_servers = 0;
  uint32_t num_workers = 0;
  std::vector<Member> members;
  std::string layout;  // opaque to this layer

  const Member* Find(NodeId id) const;
  // The live member holding `rank` of `role`, or nullptr.
  const Member* FindRank(Role role, uint32_t rank) const;
  std::vector<const Member*> Live(Role role) const;
};

Buffer EncodeView(const ClusterView& view);
Result<ClusterView> DecodeView(const Buffer& body);

// Registration request body.
struct RegisterRequest {
  Role role = Role::kWorker;
  int32_t rank = -1;  // -1: any free rank
  std::string address;
  uint32_t pid = 0;
  std::string host;        // its hostname (for the log and nodes.json)
  std::string host_label;  // empty: the coordinator takes the advertised address's host
  uint32_t capacity = 0;   // Member::capacity
};
Buffer EncodeRegister(const RegisterRequest& r);
Result<RegisterRequest> DecodeRegister(const Buffer& body);

// Barrier bodies: a name and the role group it spans. A gather is a barrier
// whose arrivals each carry a value: the release hands every value to every
// member, by rank (so a gather spans one role), and a member arriving after
// the release (a restarted one) is answered at once with the values kept.
struct BarrierRequest {
  std::string name;
  uint8_t group = 0;  // 0: all servers and workers, 1: servers, 2: workers
  bool gather = false;
  std::string value{};                       // the arrival's (gather)
  std::map<uint32_t, std::string> values{};  // the release's: by rank
};
inline constexpr size_t kMaxGatherValueBytes = 4096;
Buffer EncodeBarrier(const BarrierRequest& b);
Result<BarrierRequest> DecodeBarrier(const Buffer& body);

// A piece of a result file for the coordinator's run folder: `name` (a plain
// file name), where the piece goes, the whole file's size and CRC32C.
struct FileChunk {
  std::string name;
  uint64_t offset = 0;
  uint64_t total = 0;
  uint32_t crc = 0;
  Buffer data;
};
inline constexpr uint64_t kMaxResultFileBytes = 64ull << 30;
Buffer EncodeFileChunk(const FileChunk& c);
// Checks the name (letters, digits, '.', '_', '-'; no leading '.') and that
// the piece lies inside the file.
Result<FileChunk> DecodeFileChunk(const Buffer& body);

}  // namespace distopt

#endif  // DISTOPT_CLUSTER_MEMBERSHIP_H_
