#include "cluster/coordinator.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>

#include "base/crc32c.h"
#include "base/file_util.h"
#include "cluster/role_policy.h"
#include "transport/net_address.h"

namespace distopt {
namespace {

// Member::host: the node's label, else the host of its advertised address
// (in-process addresses, which have none, name themselves).
std::string HostOf(const RegisterRequest& req) {
  if (!req.host_label.empty()) return req.host_label;
  auto hp = ParseHostPort(SplitCurveAddress(req.address).first);
  return hp.ok() ? hp->host : req.address;
}

bool InGroup(const Member& m, uint8_t group) {
  if (group == 1) return m.role == Role::kServer;
  if (group == 2) return m.role == Role::kWorker;
  return m.role != Role::kCoordinator;
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, Transport* transport, Logger log)
    : options_(std::move(options)),
      transport_(transport),
      log_(std::move(log)),
      start_time_(options_.env->Now()),
      last_startup_log_(start_time_) {
  view_.num_servers = options_.num_servers;
  view_.num_workers = options_.num_workers;
  ShareView();
}

ClusterView Coordinator::view() const {
  MutexLock lock(&mu_);
  return shared_view_;
}

void Coordinator::ShareView() {
  MutexLock lock(&mu_);
  shared_view_ = view_;
}

Status Coordinator::Run() {
  log_.Info("listening on ", transport_->address(), "; expecting ", options_.num_servers,
            " server(s) and ", options_.num_workers, " worker(s)");
  // Paced by the real clock: it bounds a real wait on the transport.
  SteadyTime next_tick = std::chrono::steady_clock::now();
  while (!finished_) {
    if (stop_.load()) {
      Finish(AbortedError("coordinator stopped"));
      break;
    }
    auto m = transport_->Recv(Deadline::At(next_tick));
    if (m.ok()) {
      Handle(std::move(*m));
    } else if (m.status().code() == StatusCode::kAborted) {
      return AbortedError("coordinator transport shut down");
    }
    if (std::chrono::steady_clock::now() >= next_tick) {
      Tick();
      next_tick = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
    }
  }
  // Linger: a node whose shutdown order was lost asks again (done,
  // heartbeat) and is answered, so nobody waits for a coordinator that left.
  Deadline grace = Deadline::After(options_.shutdown_grace);
  while (!grace.expired() && !stop_.load()) {
    auto m = transport_->Recv(grace);
    if (!m.ok()) break;
    if (m->sender == kUnassignedId || MemberOf(m->sender) == nullptr) continue;
    Message bye;
    bye.type = MsgType::kShutdown;
    bye.sender = kCoordinatorId;
    bye.status = static_cast<uint32_t>(result_.code());
    bye.body = Buffer::FromString(result_.ok() ? "job complete" : result_.message());
    transport_->Send(m->sender, std::move(bye)).IgnoreError();
  }
  return result_;
}

const Member* Coordinator::MemberOf(NodeId id) const { return view_.Find(id); }

std::string Coordinator::Describe(const Member& m) const {
  return std::string(RoleName(m.role)) + "/" + std::to_string(m.rank) + " (node " +
         std::to_string(m.id) + " at " + SplitCurveAddress(m.address).first + ")";
}

void Coordinator::Handle(Message&& m) {
  if (m.sender != kUnassignedId) last_seen_[m.sender] = options_.env->Now();
  switch (m.type) {
    case MsgType::kRegister:
      return HandleRegister(std::move(m));
    case MsgType::kHeartbeat: {
      const Member* mem = MemberOf(m.sender);
      if (mem == nullptr) return;
      if (!mem->alive) {
        // A node we declared dead is still talking: tell it to go away
        // rather than let it act on a stale view.
        Message bye;
        bye.type = MsgType::kShutdown;
        bye.sender = kCoordinatorId;
        bye.status = static_cast<uint32_t>(StatusCode::kUnavailable);
        bye.body = Buffer::FromString("you were declared dead; re-register to rejoin");
        transport_->Send(m.sender, std::move(bye)).IgnoreError();
        return;
      }
      Message ack;
      ack.type = MsgType::kHeartbeat;
      ack.sender = kCoordinatorId;
      ack.epoch = view_.epoch;
      if (started_ && m.epoch < view_.epoch) {
        // The node missed a membership change (a lost message): resend it.
        ack.type = MsgType::kMembership;
        ack.body = EncodeView(view_);
      }
      transport_->Send(m.sender, std::move(ack)).IgnoreError();
      return;
    }
    case MsgType::kBarrier:
      return HandleBarrier(m);
    case MsgType::kDone:
      return HandleDone(m);
    case MsgType::kAbort:
      return HandleAbort(m);
    case MsgType::kResultFile:
      return HandleResultFile(m);
    case MsgType::kCheckpoint:
    case MsgType::kReplicaSynced:
      if (options_.policy != nullptr && MemberOf(m.sender) != nullptr) {
        Carry(options_.policy->OnReport(m, view_));
      }
      return;
    default:
      log_.Warn("ignored a ", MsgTypeName(m.type), " message from node ", m.sender);
  }
}

// A registration passes the checks of ScreenRegistration, may be a retry
// (AnswerRetry), must ask for a rank in range, then gets a rank (PickRank)
// or is refused (RefuseFullRole), and is admitted (Admit).
void Coordinator::HandleRegister(Message&& m) {
  std::optional<RegisterRequest> req = ScreenRegistration(m);
  if (!req.has_value() || AnswerRetry(*req) || !RankInRange(*req)) return;
  const int64_t rank = PickRank(*req);
  if (rank < 0) {
    RefuseFullRole(*req);
    return;
  }
  Admit(*req, m.peer_host, static_cast<uint32_t>(rank));
}

std::optional<RegisterRequest> Coordinator::ScreenRegistration(const Message& m) {
  auto req = DecodeRegister(m.body);
  if (!req.ok()) {
    log_.Warn("ignored a bad registration: ", req.status().message());
    return std::nullopt;
  }
  if (req->role == Role::kCoordinator) {
    log_.Warn("ignored a registration from ", req->address, " claiming the coordinator role");
    return std::nullopt;
  }
  const std::string claimed =
      std::string(RoleName(req->role)) + "/" + (req->rank >= 0 ? std::to_string(req->rank) : "?");
  // Under CURVE the transport names the holder of the sender's key: a node
  // registers as who its key says it is, and takes that rank.
  if (!m.peer.empty()) {
    auto who = ParseNodeName(m.peer);
    if (!who.has_value() || who->role != req->role || (req->rank >= 0 && req->rank != who->rank)) {
      log_.Warn("refused a registration as ", claimed, " from ", m.peer_host, ": its key is ",
                m.peer, "'s");
      return std::nullopt;
    }
    req->rank = who->rank;
  }
  // An address the coordinator cannot dial would hang the job after "all
  // nodes registered"; say so now, naming both addresses.
  auto adv = ParseHostPort(SplitCurveAddress(req->address).first);
  if (adv.ok() && IsLoopbackHost(adv->host) && !m.peer_host.empty() &&
      !IsLoopbackHost(m.peer_host)) {
    if (warned_unreachable_.insert(req->address).second) {
      log_.Error(claimed, " registered from ", m.peer_host, " but advertised ", adv->host,
                 ": unreachable from here; not admitted (start it with --advertise-host or "
                 "--interface, or let it find the route to the coordinator by itself)");
    }
    return std::nullopt;
  }
  return std::move(*req);
}

bool Coordinator::AnswerRetry(const RegisterRequest& req) {
  // A retried registration from the same address gets the same answer.
  for (auto& mem : view_.members) {
    if (mem.address == req.address && mem.alive) {
      last_seen_[mem.id] = options_.env->Now();
      if (started_) SendRegisterReply(mem.id);
      return true;
    }
  }
  return false;
}

Member* Coordinator::RankHolder(Role role, uint32_t rank) {
  Member* found = nullptr;
  for (auto& mem : view_.members) {
    if (mem.role == role && mem.rank == rank) found = &mem;
  }
  return found;
}

uint32_t Coordinator::RankLimit(Role role) const {
  return role == Role::kServer ? options_.num_servers : options_.num_workers;
}

bool Coordinator::RankInRange(const RegisterRequest& req) const {
  const uint32_t limit = RankLimit(req.role);
  if (req.rank < 0 || static_cast<uint32_t>(req.rank) < limit) return true;
  log_.Warn("refused ", RoleName(req.role), " at ", req.address, ": rank ", req.rank,
            " is outside 0..", limit - 1);
  return false;
}

int64_t Coordinator::PickRank(const RegisterRequest& req) {
  // The requested rank, else the lowest that is free (never registered) or
  // held by a dead member (a restart takes its place).
  if (req.rank < 0) {
    for (uint32_t r = 0; r < RankLimit(req.role); ++r) {
      Member* h = RankHolder(req.role, r);
      if (h == nullptr || !h->alive) return r;
    }
    return -1;
  }
  Member* h = RankHolder(req.role, static_cast<uint32_t>(req.rank));
  if (h != nullptr && h->alive && started_) {
    // A node restarted with its rank before its old incarnation was
    // declared dead (a crash faster than the heartbeat timeout): the
    // newcomer replaces it.
    log_.Warn(Describe(*h), " is replaced by a new ", RoleName(req.role), " at ", req.address,
              " claiming the same rank (presumed restarted after a crash)");
    h->alive = false;
    ++view_.epoch;
  }
  return h == nullptr || !h->alive ? req.rank : -1;
}

void Coordinator::RefuseFullRole(const RegisterRequest& req) {
  log_.Warn("refused ", RoleName(req.role), " at ", req.address, " (pid ", req.pid, "): every ",
            RoleName(req.role), " rank is taken by a live node");
  Message no;
  no.type = MsgType::kShutdown;
  no.sender = kCoordinatorId;
  no.status = static_cast<uint32_t>(StatusCode::kAlreadyExists);
  no.body = Buffer::FromString("every " + std::string(RoleName(req.role)) +
                               " rank is taken by a live node");
  NodeId tmp = next_id_++;
  transport_->Connect(tmp, req.address).IgnoreError();
  transport_->Send(tmp, std::move(no)).IgnoreError();
}

void Coordinator::Admit(const RegisterRequest& req, const std::string& peer_host, uint32_t rank) {
  Member mem;
  mem.id = next_id_++;
  mem.role = req.role;
  mem.rank = rank;
  mem.address = req.address;
  mem.host = HostOf(req);
  mem.capacity = req.capacity;
  mem.alive = true;
  if (Member* old = RankHolder(mem.role, mem.rank)) {
    mem.incarnation = old->incarnation + 1;
    view_.members.erase(view_.members.begin() + (old - view_.members.data()));
  }
  view_.members.push_back(mem);
  origins_[mem.id] = Origin{req.host, peer_host, req.pid};
  last_seen_[mem.id] = options_.env->Now();
  if (Status s = transport_->Connect(mem.id, mem.address); !s.ok()) {
    log_.Error("cannot reach ", Describe(mem), ": ", s.message());
  }
  log_.Info("registered ", Describe(mem), ", pid ", req.pid, " on ", req.host, " (host ", mem.host,
            ", capacity ", mem.capacity, ")",
            mem.incarnation > 0
                ? " (a restart: incarnation " + std::to_string(mem.incarnation) + ")"
                : std::string());
  if (started_) {
    // A node rejoining a running job: new epoch, everybody learns of it.
    ++view_.epoch;
    Publish(MsgType::kMembership);
    // The policy may react (a rollback changes the layout) before the
    // newcomer is answered, so it starts from the final word.
    ConsultPolicy();
    SendRegisterReply(mem.id);
    return;
  }
  ShareView();
  CheckStartup();
}

void Coordinator::SendRegisterReply(NodeId id) {
  Message reply;
  reply.type = MsgType::kRegisterReply;
  reply.sender = kCoordinatorId;
  reply.epoch = view_.epoch;
  reply.request_id = id;
  reply.body = EncodeView(view_);
  transport_->Send(id, std::move(reply)).IgnoreError();
}

void Coordinator::CheckStartup() {
  if (started_) return;
  if (view_.Live(Role::kServer).size() < options_.num_servers ||
      view_.Live(Role::kWorker).size() < options_.num_workers) {
    return;
  }
  started_ = true;
  view_.epoch = 1;
  // Heartbeats start once a node is admitted; until now the early ones only
  // retried their registration. Everyone's silence is counted from here.
  for (const auto& mem : view_.members) last_seen_[mem.id] = options_.env->Now();
  std::sort(view_.members.begin(), view_.members.end(), [](const Member& a, const Member& b) {
    return std::tie(a.role, a.rank) < std::tie(b.role, b.rank);
  });
  if (options_.policy != nullptr) view_.layout = options_.policy->FirstLayout(view_);
  ShareView();
  WriteNodesFile();
  log_.Info("all ", options_.num_servers + options_.num_workers, " nodes registered after ",
            ToMillis(options_.env->Now() - start_time_), " ms; job starts (epoch 1)");
  for (const auto& mem : view_.members) {
    Message reply;
    reply.type = MsgType::kRegisterReply;
    reply.sender = kCoordinatorId;
    reply.epoch = view_.epoch;
    reply.request_id = mem.id;
    reply.body = EncodeView(view_);
    transport_->Send(mem.id, std::move(reply)).IgnoreError();
  }
  ConsultPolicy();
}

std::string Coordinator::Missing() const {
  std::ostringstream os;
  bool any = false;
  for (Role role : {Role::kServer, Role::kWorker}) {
    uint32_t n = role == Role::kServer ? options_.num_servers : options_.num_workers;
    std::vector<uint32_t> missing;
    for (uint32_t r = 0; r < n; ++r) {
      if (view_.FindRank(role, r) == nullptr) missing.push_back(r);
    }
    if (missing.empty()) continue;
    if (any) os << "; ";
    any = true;
    os << RoleName(role) << " rank" << (missing.size() > 1 ? "s " : " ");
    for (size_t i = 0; i < missing.size(); ++i) os << (i ? "," : "") << missing[i];
  }
  return os.str();
}

void Coordinator::Tick() {
  auto now = options_.env->Now();
  if (!started_) {
    if (now - start_time_ >= options_.startup_timeout) {
      std::string missing = Missing();
      log_.Error("start-up timed out after ", ToSeconds(options_.startup_timeout),
                 " s; never registered: ", missing);
      Finish(DeadlineExceededError("start-up timed out after " +
                                   std::to_string(ToMillis(options_.startup_timeout) / 1000) +
                                   " s waiting for " + missing + " to register at " +
                                   SplitCurveAddress(transport_->address()).first));
      return;
    }
    if (now - last_startup_log_ >= options_.startup_log_interval) {
      last_startup_log_ = now;
      log_.Info("waiting for ", Missing(), " to register at ",
                SplitCurveAddress(transport_->address()).first, " (",
                ToMillis(options_.startup_timeout - (now - start_time_)) / 1000,
                " s left before giving up)");
    }
  }
  CheckHeartbeats();
  for (auto it = dead_servers_.begin(); it != dead_servers_.end();) {
    if (view_.FindRank(Role::kServer, it->first) != nullptr) {
      it = dead_servers_.erase(it);  // it is back
      continue;
    }
    if (now - it->second > options_.server_rejoin_timeout) {
      Finish(UnavailableError("server/" + std::to_string(it->first) +
                              " died and was not restarted "
                              "within " +
                              std::to_string(ToMillis(options_.server_rejoin_timeout) / 1000) +
                              " s; no replica holds its parameters"));
      return;
    }
    ++it;
  }
}

void Coordinator::CheckHeartbeats() {
  auto now = options_.env->Now();
  std::vector<Member*> dead;
  for (auto& mem : view_.members) {
    if (!mem.alive) continue;
    auto it = last_seen_.find(mem.id);
    if (it == last_seen_.end()) continue;
    Duration silent = now - it->second;
    if (silent > options_.heartbeat_timeout) {
      log_.Warn("declared ", Describe(mem), " dead: no heartbeat for ", ToMillis(silent),
                " ms (timeout ", ToMillis(options_.heartbeat_timeout), " ms)");
      mem.alive = false;
      dead.push_back(&mem);
    }
  }
  if (dead.empty()) return;
  ShareView();
  for (Member* d : dead) {
    if (started_ && d->role == Role::kServer) {
      if (options_.tolerate_server_loss && !options_.server_rejoin_required) {
        log_.Warn(Describe(*d), " is gone; its partitions fail over to their backups");
        continue;
      }
      if (options_.tolerate_server_loss) {
        log_.Warn("waiting up to ", ToMillis(options_.server_rejoin_timeout) / 1000, " s for ",
                  Describe(*d),
                  " to be restarted (the job then rolls back to its last checkpoint)");
        dead_servers_[d->rank] = now;
        continue;
      }
      // Without a replica or a checkpoint its parameters are gone:
      // carrying on would train a model with a hole in it.
      Finish(UnavailableError(Describe(*d) + " died and no replica or checkpoint holds its "
                                             "parameters; the job stops"));
      return;
    }
  }
  if (started_) {
    ++view_.epoch;
    log_.Info("membership epoch ", view_.epoch, ": ", view_.Live(Role::kServer).size(),
              " server(s), ", view_.Live(Role::kWorker).size(), " worker(s) alive");
    Publish(MsgType::kMembership);
  }
  if (started_) ConsultPolicy();
  CheckBarriers();
  CheckDone();
}

void Coordinator::ConsultPolicy() {
  if (options_.policy != nullptr) Carry(options_.policy->OnViewChange(view_));
}

void Coordinator::Carry(JobAction action) {
  if (!action.failure.ok()) return Finish(std::move(action.failure));
  if (action.layout) SetLayout(std::move(*action.layout));
}

void Coordinator::SetLayout(std::string layout) {
  view_.layout = std::move(layout);
  ++view_.epoch;
  Publish(MsgType::kMembership);
}

void Coordinator::Publish(MsgType type) {
  ShareView();
  Buffer body = EncodeView(view_);
  for (const auto& mem : view_.members) {
    if (!mem.alive) continue;
    Message m;
    m.type = type;
    m.sender = kCoordinatorId;
    m.epoch = view_.epoch;
    m.body = body;
    transport_->Send(mem.id, std::move(m)).IgnoreError();
  }
}

void Coordinator::Broadcast(MsgType type, const Buffer& body, uint32_t status) {
  for (const auto& mem : view_.members) {
    if (!mem.alive) continue;
    Message m;
    m.type = type;
    m.sender = kCoordinatorId;
    m.epoch = view_.epoch;
    m.status = status;
    m.body = body;
    transport_->Send(mem.id, std::move(m)).IgnoreError();
  }
}

void Coordinator::HandleBarrier(const Message& m) {
  auto b = DecodeBarrier(m.body);
  const Member* mem = MemberOf(m.sender);
  if (!b.ok() || mem == nullptr) {
    log_.Warn("ignored a barrier from node ", m.sender, ": ",
              b.ok() ? "not a member" : b.status().message());
    return;
  }
  if (b->gather) {
    if (b->group == 0 || !InGroup(*mem, b->group)) {
      log_.Warn("ignored gather '", b->name, "' from node ", m.sender,
                ": a gather spans one role, and the node's");
      return;
    }
    gathered_[b->name][mem->rank] = b->value;
    if (gather_released_.count(b->name) > 0) {
      // Released before this node (re)started: the values are kept for it.
      SendRelease(m.sender, b->name, b->group);
      return;
    }
  }
  barriers_[b->name].insert(m.sender);
  barrier_groups_[b->name] = b->group;
  CheckBarriers();
}

void Coordinator::SendRelease(NodeId to, const std::string& name, uint8_t group) {
  BarrierRequest rel{name, group};
  if (auto g = gathered_.find(name); g != gathered_.end()) {
    rel.gather = true;
    rel.values = g->second;
  }
  Message out;
  out.type = MsgType::kBarrierRelease;
  out.sender = kCoordinatorId;
  out.epoch = view_.epoch;
  out.body = EncodeBarrier(rel);
  transport_->Send(to, std::move(out)).IgnoreError();
}

void Coordinator::CheckBarriers() {
  for (auto it = barriers_.begin(); it != barriers_.end();) {
    uint8_t group = barrier_groups_[it->first];
    bool complete = true;
    for (const auto& mem : view_.members) {
      if (mem.alive && InGroup(mem, group) && it->second.count(mem.id) == 0) complete = false;
    }
    if (!complete || !started_) {
      ++it;
      continue;
    }
    if (gathered_.count(it->first) > 0) gather_released_.insert(it->first);
    for (NodeId id : it->second) SendRelease(id, it->first, group);
    barrier_groups_.erase(it->first);
    it = barriers_.erase(it);
  }
}

void Coordinator::HandleDone(const Message& m) {
  const Member* mem = MemberOf(m.sender);
  if (mem == nullptr || mem->role != Role::kWorker) return;
  done_ranks_.insert(mem->rank);
  std::string why = m.body.ToString();
  if (!why.empty()) {
    // A worker may end the whole job (a target metric was reached).
    log_.Info(Describe(*mem), " ends the job: ", why);
    Finish(Status::Ok());
    return;
  }
  log_.Info(Describe(*mem), " finished training (", done_ranks_.size(), " of ",
            options_.num_workers, " workers done)");
  CheckDone();
}

void Coordinator::CheckDone() {
  if (!started_ || finished_) return;
  auto live = view_.Live(Role::kWorker);
  if (live.empty()) {
    if (!done_ranks_.empty()) {
      Finish(Status::Ok());
    } else {
      Finish(UnavailableError("every worker died before finishing"));
    }
    return;
  }
  for (const Member* w : live) {
    if (done_ranks_.count(w->rank) == 0) return;
  }
  Finish(Status::Ok());
}

void Coordinator::HandleAbort(const Message& m) {
  const Member* mem = MemberOf(m.sender);
  std::string who = mem ? Describe(*mem) : "node " + std::to_string(m.sender);
  std::string reason = m.body.ToString();
  log_.Error(who, " aborted the job: ", reason);
  Finish(AbortedError(who + " aborted the job: " + reason));
}

void Coordinator::Finish(Status result) {
  if (finished_) return;
  finished_ = true;
  result_ = result;
  std::string reason = result.ok() ? "job complete" : result.message();
  log_.Info("shutting the job down: ", reason);
  Broadcast(MsgType::kShutdown, Buffer::FromString(reason), static_cast<uint32_t>(result.code()));
}

// Where every node of the job runs, for finding their logs (a launcher
// collects each node's stderr on its host).
void Coordinator::WriteNodesFile() {
  if (options_.result_dir.empty()) return;
  std::string text = "[\n";
  for (size_t i = 0; i < view_.members.size(); ++i) {
    const Member& mem = view_.members[i];
    const Origin& o = origins_[mem.id];
    auto quote = [](const std::string& v) {
      std::string q = "\"";
      for (char c : v) {
        if (c == '"' || c == '\\') q += '\\';
        if (static_cast<unsigned char>(c) >= 0x20) q += c;
      }
      return q + "\"";
    };
    text += "  {\"role\": " + quote(RoleName(mem.role)) +
            ", \"rank\": " + std::to_string(mem.rank) + ", \"host\": " + quote(o.host) +
            ", \"registered_from\": " + quote(o.peer_host) + ", \"pid\": " + std::to_string(o.pid) +
            ", \"address\": " + quote(SplitCurveAddress(mem.address).first) + "}" +
            (i + 1 < view_.members.size() ? ",\n" : "\n");
  }
  text += "]\n";
  Status s = WriteFileAtomically(
      options_.result_dir + "/nodes.json",
      {std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size())});
  if (!s.ok()) log_.Warn("could not write nodes.json: ", s.message());
}

// A piece of the lead worker's results. The files are small (metrics, the
// model) and come once per job, so they are written on this thread.
void Coordinator::HandleResultFile(const Message& m) {
  Message ack;
  ack.type = MsgType::kResultFileAck;
  ack.sender = kCoordinatorId;
  ack.request_id = m.request_id;
  const Member* mem = MemberOf(m.sender);
  auto chunk = DecodeFileChunk(m.body);
  Status s;
  if (mem == nullptr || mem->role != Role::kWorker) {
    log_.Warn("ignored a result file from node ", m.sender, " at ", m.peer_host,
              ": not a worker of this job");
    return;
  } else if (!chunk.ok()) {
    s = chunk.status();
  } else if (options_.result_dir.empty()) {
    s = FailedPreconditionError("this coordinator has no run folder");
  } else {
    s = StoreResultChunk(*chunk);
  }
  if (!s.ok())
    log_.Warn("refused a piece of a result file from ", Describe(*mem), ": ", s.message());
  ack.status = static_cast<uint32_t>(s.code());
  transport_->Send(m.sender, std::move(ack)).IgnoreError();
}

Status Coordinator::StoreResultChunk(const FileChunk& c) {
  const std::string path = options_.result_dir + "/" + c.name;
  const std::string part = path + ".part";
  auto done = results_done_.find(c.name);
  if (done != results_done_.end() && done->second == c.crc) return Status::Ok();  // a resend
  if (c.offset == 0) {
    // The same file already here (the run folder is shared with the worker).
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::vector<uint8_t> have((std::istreambuf_iterator<char>(in)), {});
      if (have.size() == c.total && Crc32c(have.data(), have.size()) == c.crc) {
        results_done_[c.name] = c.crc;
        log_.Info(c.name, " is already in ", options_.result_dir);
        return Status::Ok();
      }
    }
  }
  int fd = open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError(part + ": " + std::strerror(errno));
  const bool wrote = pwrite(fd, c.data.data(), c.data.size(), static_cast<off_t>(c.offset)) ==
                     static_cast<ssize_t>(c.data.size());
  const bool last = c.offset + c.data.size() == c.total;
  const bool synced = !last || (ftruncate(fd, static_cast<off_t>(c.total)) == 0 && fsync(fd) == 0);
  close(fd);
  if (!wrote || !synced) return UnavailableError(part + ": write failed: " + std::strerror(errno));
  if (!last) return Status::Ok();
  std::ifstream in(part, std::ios::binary);
  std::vector<uint8_t> all((std::istreambuf_iterator<char>(in)), {});
  if (all.size() != c.total || Crc32c(all.data(), all.size()) != c.crc) {
    std::remove(part.c_str());
    return DataLossError(c.name + ": the assembled file does not match its checksum");
  }
  if (std::rename(part.c_str(), path.c_str()) != 0) {
    return UnavailableError(path + ": " + std::strerror(errno));
  }
  results_done_[c.name] = c.crc;
  log_.Info("stored ", c.name, " (", c.total, " bytes) in ", options_.result_dir);
  return Status::Ok();
}

}  // namespace distopt
