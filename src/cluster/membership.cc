#include "cluster/membership.h"

#include <cctype>

#include "base/bytes.h"

namespace distopt {
namespace {

constexpr uint32_t kMaxMembers = 1 << 16;
constexpr size_t kMaxLayoutBytes = 64 << 20;

Status ReadRole(ByteReader& r, Role* role) {
  uint8_t v = 0;
  RETURN_IF_ERROR(r.U8(&v));
  if (v > static_cast<uint8_t>(Role::kWorker)) {
    return InvalidArgumentError("unknown role " + std::to_string(v));
  }
  *role = static_cast<Role>(v);
  return Status::Ok();
}

}  // namespace

const char* RoleName(Role r) {
  switch (r) {
    case Role::kCoordinator:
      return "coordinator";
    case Role::kServer:
      return "server";
    case Role::kWorker:
      return "worker";
  }
  return "?";
}

Result<Role> ParseRole(const std::string& s) {
  if (s == "coordinator" || s == "scheduler") return Role::kCoordinator;
  if (s == "server") return Role::kServer;
  if (s == "worker") return Role::kWorker;
  return InvalidArgumentError("unknown role '" + s + "' (expected coordinator, server or worker)");
}

const Member* ClusterView::Find(NodeId id) const {
  for (const auto& m : members) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

const Member* ClusterView::FindRank(Role role, uint32_t rank) const {
  for (const auto& m : members) {
    if (m.alive && m.role == role && m.rank == rank) return &m;
  }
  return nullptr;
}

std::vector<const Member*> ClusterView::Live(Role role) const {
  std::vector<const Member*> out;
  for (const auto& m : members) {
    if (m.alive && m.role == role) out.push_back(&m);
  }
  return out;
}

Buffer EncodeView(const ClusterView& view) {
  ByteWriter w;
  w.U32(view.epoch);
  w.U32(view.num_servers);
  w.U32(view.num_workers);
  w.U32(static_cast<uint32_t>(view.members.size()));
  for (const auto& m : view.members) {
    w.U32(m.id);
    w.U8(static_cast<uint8_t>(m.role));
    w.U32(m.rank);
    w.Str(m.address);
    w.U8(m.alive ? 1 : 0);
    w.U32(m.incarnation);
    w.Str(m.host);
    w.U32(m.capacity);
  }
  w.U32(static_cast<uint32_t>(view.layout.size()));
  w.Raw(view.layout.data(), view.layout.size());
  return Buffer::FromVector(w.Take());
}

Result<ClusterView> DecodeView(const Buffer& body) {
  ByteReader r(body.data(), body.size());
  ClusterView v;
  uint32_t n = 0;
  RETURN_IF_ERROR(r.U32(&v.epoch));
  RETURN_IF_ERROR(r.U32(&v.num_servers));
  RETURN_IF_ERROR(r.U32(&v.num_workers));
  // Each member takes at least 26 bytes.
  RETURN_IF_ERROR(r.Count(&n, 26, kMaxMembers, "members"));
  v.members.resize(n);
  for (auto& m : v.members) {
    uint8_t alive = 0;
    RETURN_IF_ERROR(r.U32(&m.id));
    RETURN_IF_ERROR(ReadRole(r, &m.role));
    RETURN_IF_ERROR(r.U32(&m.rank));
    RETURN_IF_ERROR(r.Str(&m.address, 1024));
    RETURN_IF_ERROR(r.U8(&alive));
    RETURN_IF_ERROR(r.U32(&m.incarnation));
    RETURN_IF_ERROR(r.Str(&m.host, 256));
    RETURN_IF_ERROR(r.U32(&m.capacity));
    m.alive = alive != 0;
  }
  RETURN_IF_ERROR(r.Str(&v.layout, kMaxLayoutBytes));
  RETURN_IF_ERROR(r.ExpectEnd("cluster view"));
  return v;
}

Buffer EncodeRegister(const RegisterRequest& q) {
  ByteWriter w;
  w.U8(static_cast<uint8_t>(q.role));
  w.U32(static_cast<uint32_t>(q.rank));
  w.Str(q.address);
  w.U32(q.pid);
  w.Str(q.host);
  w.Str(q.host_label);
  w.U32(q.capacity);
  return Buffer::FromVector(w.Take());
}

Result<RegisterRequest> DecodeRegister(const Buffer& body) {
  ByteReader r(body.data(), body.size());
  RegisterRequest q;
  uint32_t rank = 0;
  RETURN_IF_ERROR(ReadRole(r, &q.role));
  RETURN_IF_ERROR(r.U32(&rank));
  q.rank = static_cast<int32_t>(rank);
  RETURN_IF_ERROR(r.Str(&q.address, 1024));
  RETURN_IF_ERROR(r.U32(&q.pid));
  RETURN_IF_ERROR(r.Str(&q.host, 256));
  RETURN_IF_ERROR(r.Str(&q.host_label, 256));
  RETURN_IF_ERROR(r.U32(&q.capacity));
  RETURN_IF_ERROR(r.ExpectEnd("registration"));
  if (q.address.empty()) return InvalidArgumentError("registration without an address");
  return q;
}

Buffer EncodeBarrier(const BarrierRequest& b) {
  ByteWriter w;
  w.Str(b.name);
  w.U8(b.group);
  w.U8(b.gather ? 1 : 0);
  w.Str(b.value);
  w.U32(static_cast<uint32_t>(b.values.size()));
  for (const auto& [rank, value] : b.values) {
    w.U32(rank);
    w.Str(value);
  }
  return Buffer::FromVector(w.Take());
}

Result<BarrierRequest> DecodeBarrier(const Buffer& body) {
  ByteReader r(body.data(), body.size());
  BarrierRequest b;
  RETURN_IF_ERROR(r.Str(&b.name, 256));
  RETURN_IF_ERROR(r.U8(&b.group));
  uint8_t gather = 0;
  RETURN_IF_ERROR(r.U8(&gather));
  b.gather = gather != 0;
  RETURN_IF_ERROR(r.Str(&b.value, kMaxGatherValueBytes));
  uint32_t n = 0;
  RETURN_IF_ERROR(r.U32(&n));
  // Each value takes at least its rank and length: a count beyond the bytes
  // left is a lie, refused before anything is allocated for it.
  if (n > r.remaining() / 8) return InvalidArgumentError("barrier: too many values");
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t rank = 0;
    std::string value;
    RETURN_IF_ERROR(r.U32(&rank));
    RETURN_IF_ERROR(r.Str(&value, kMaxGatherValueBytes));
    b.values[rank] = std::move(value);
  }
  RETURN_IF_ERROR(r.ExpectEnd("barrier"));
  if (b.group > 2) return InvalidArgumentError("unknown barrier group " + std::to_string(b.group));
  return b;
}

Buffer EncodeFileChunk(const FileChunk& c) {
  ByteWriter w;
  w.Str(c.name);
  w.U64(c.offset);
  w.U64(c.total);
  w.U32(c.crc);
  w.Raw(c.data.data(), c.data.size());
  return Buffer::FromVector(w.Take());
}

Result<FileChunk> DecodeFileChunk(const Buffer& body) {
  ByteReader r(body.data(), body.size());
  FileChunk c;
  RETURN_IF_ERROR(r.Str(&c.name, 64));
  RETURN_IF_ERROR(r.U64(&c.offset));
  RETURN_IF_ERROR(r.U64(&c.total));
  RETURN_IF_ERROR(r.U32(&c.crc));
  const size_t n = r.remaining();
  if (c.name.empty() || c.name[0] == '.') {
    return InvalidArgumentError("result file name '" + c.name + "' is empty or hidden");
  }
  for (char ch : c.name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '_' && ch != '-') {
      return InvalidArgumentError("result file name '" + c.name + "' is not a plain file name");
    }
  }
  if (c.total > kMaxResultFileBytes || c.offset > c.total || n > c.total - c.offset) {
    return InvalidArgumentError("result file chunk outside the file (offset " +
                                std::to_string(c.offset) + ", " + std::to_string(n) +
                                " bytes, file " + std::to_string(c.total) + ")");
  }
  c.data = body.Slice(body.size() - n, n);
  return c;
}

}  // namespace distopt
