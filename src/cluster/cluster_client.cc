#include "cluster/cluster_client.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "base/crc32c.h"
#include "transport/net_address.h"

namespace distopt {

ClusterClient::ClusterClient(ClusterClientOptions options, Transport* transport,
                             Dispatcher* dispatcher, Logger log)
    : options_(std::move(options)), transport_(transport), log_(std::move(log)) {
  dispatcher->Handle(MsgType::kRegisterReply,
                     [this](Message&& m) { OnRegisterReply(std::move(m)); });
  dispatcher->Handle(MsgType::kMembership, [this](Message&& m) { OnMembership(std::move(m)); });
  dispatcher->Handle(MsgType::kBarrierRelease,
                     [this](Message&& m) { OnBarrierRelease(std::move(m)); });
  dispatcher->Handle(MsgType::kShutdown, [this](Message&& m) { OnShutdown(std::move(m)); });
  dispatcher->Handle(MsgType::kHeartbeat, [this](Message&& m) { OnHeartbeatAck(std::move(m)); });
  dispatcher->Handle(MsgType::kResultFileAck, [this](Message&& m) { OnFileAck(std::move(m)); });
}

ClusterClient::~ClusterClient() { Stop(); }

void ClusterClient::Stop() {
  {
    MutexLock lock(&mu_);
    stop_ = true;
  }
  cv_.SignalAll();
  MutexLock lock(&join_mu_);
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
}

Status ClusterClient::Register(Deadline deadline) {
  RETURN_IF_ERROR(transport_->Connect(kCoordinatorId, options_.coordinator_address));
  RegisterRequest req;
  req.role = options_.role;
  req.rank = options_.rank;
  req.address = transport_->address();
  req.pid = static_cast<uint32_t>(getpid());
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  req.host = host;
  req.host_label = options_.host_label;
  req.capacity = options_.capacity;
  Buffer body = EncodeRegister(req);
  SteadyTime started = std::chrono::steady_clock::now();
  SteadyTime next_log = started + std::chrono::seconds(5);
  MutexLock lock(&mu_);
  while (!registered_) {
    if (shutdown_.has_value()) return *shutdown_;
    if (deadline.expired()) {
      return DeadlineExceededError(
          "no answer from the coordinator at " +
          SplitCurveAddress(options_.coordinator_address).first + " after " +
          std::to_string(ToMillis(std::chrono::steady_clock::now() - started) / 1000) +
          " s (is it running, and are the other nodes of the job started?)");
    }
    lock.Unlock();
    SendToCoordinator(MsgType::kRegister, body);
    lock.Lock();
    if (std::chrono::steady_clock::now() >= next_log) {
      log_.Info("waiting for the coordinator at ",
                SplitCurveAddress(options_.coordinator_address).first, " to admit this ",
                RoleName(options_.role), " advertised at ",
                SplitCurveAddress(transport_->address()).first,
                " (it answers once every node of the job has registered)");
      next_log = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    }
    const Deadline retry = Deadline::After(options_.register_retry).Earlier(deadline);
    while (!registered_ && !shutdown_.has_value() && cv_.WaitUntil(&mu_, retry)) {
    }
  }
  last_heard_ = options_.env->Now();
  log_.Info("admitted as ", RoleName(options_.role), "/", rank_, " (node ", id_, "), epoch ",
            view_.epoch, ": ", view_.num_servers, " server(s), ", view_.num_workers, " worker(s)");
  lock.Unlock();
  // Under join_mu_: a Stop() on another thread (a kill) may be joining. If
  // it already ran, the loop sees stop_ and ends at once; ~ClusterClient joins it.
  MutexLock join(&join_mu_);
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
  return Status::Ok();
}

NodeId ClusterClient::id() const {
  MutexLock lock(&mu_);
  return id_;
}

uint32_t ClusterClient::rank() const {
  MutexLock lock(&mu_);
  return rank_;
}

ClusterView ClusterClient::view() const {
  MutexLock lock(&mu_);
  return view_;
}

uint32_t ClusterClient::epoch() const {
  MutexLock lock(&mu_);
  return view_.epoch;
}

void ClusterClient::OnViewChange(std::function<void(const ClusterView&)> cb) {
  MutexLock lock(&mu_);
  on_view_ = std::move(cb);
}

void ClusterClient::OnRegisterReply(Message&& m) {
  auto view = DecodeView(m.body);
  if (!view.ok()) {
    log_.Warn("ignored a bad registration reply: ", view.status().message());
    return;
  }
  MutexLock lock(&mu_);
  if (registered_) return;  // a duplicate answer to a retried registration
  const Member* me = view->Find(static_cast<NodeId>(m.request_id));
  if (me == nullptr || me->address != transport_->address()) {
    log_.Warn("ignored a registration reply that does not name this node");
    return;
  }
  id_ = me->id;
  rank_ = me->rank;
  view_ = std::move(*view);
  registered_ = true;
  cv_.SignalAll();
}

void ClusterClient::OnMembership(Message&& m) {
  auto view = DecodeView(m.body);
  if (!view.ok()) {
    log_.Warn("ignored a bad membership message: ", view.status().message());
    return;
  }
  std::function<void(const ClusterView&)> cb;
  {
    MutexLock lock(&mu_);
    last_heard_ = options_.env->Now();
    if (!registered_ || view->epoch <= view_.epoch) return;
    // Log who left and who joined, by comparing with the previous view.
    for (const auto& mem : view->members) {
      const Member* old = view_.Find(mem.id);
      if (old == nullptr && mem.alive) {
        log_.Info("epoch ", view->epoch, ": ", RoleName(mem.role), "/", mem.rank, " joined (node ",
                  mem.id, " at ", SplitCurveAddress(mem.address).first, ")");
      } else if (old != nullptr && old->alive && !mem.alive) {
        log_.Warn("epoch ", view->epoch, ": ", RoleName(mem.role), "/", mem.rank, " left (node ",
                  mem.id, " declared dead by the coordinator)");
      }
    }
    // A copy: the callback below runs without mu_, on the new view as it was.
    view_ = *view;
    cb = on_view_;
  }
  if (cb) cb(*view);
}

void ClusterClient::OnBarrierRelease(Message&& m) {
  auto b = DecodeBarrier(m.body);
  if (!b.ok()) return;
  MutexLock lock(&mu_);
  last_heard_ = options_.env->Now();
  released_[b->name] = std::move(b->values);
  cv_.SignalAll();
}

void ClusterClient::OnShutdown(Message&& m) {
  Status s =
      m.status == 0 ? Status::Ok() : Status(static_cast<StatusCode>(m.status), m.body.ToString());
  // The coordinator repeats the order to a node that keeps sending: said once.
  if (SetShutdown(s)) log_.Info("the coordinator ordered shutdown: ", m.body.ToString());
}

void ClusterClient::OnHeartbeatAck(Message&& m) {
  MutexLock lock(&mu_);
  last_heard_ = options_.env->Now();
}

void ClusterClient::OnFileAck(Message&& m) {
  MutexLock lock(&mu_);
  file_acks_[m.request_id] = m.status;
  cv_.SignalAll();
}

Status ClusterClient::SendFile(const std::string& name, const std::string& path,
                               Deadline deadline) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFoundError(path + ": cannot open");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  const uint32_t crc = Crc32c(bytes.data(), bytes.size());
  // Well under the wire's body limit; one chunk in flight at a time.
  constexpr size_t kChunk = 4u << 20;
  size_t offset = 0;
  do {
    FileChunk c;
    c.name = name;
    c.offset = offset;
    c.total = bytes.size();
    c.crc = crc;
    const size_t n = std::min(kChunk, bytes.size() - offset);
    c.data = Buffer::Borrow(bytes.data() + offset, n);
    const Buffer body = EncodeFileChunk(c);
    MutexLock lock(&mu_);
    const uint64_t id = next_file_request_++;
    while (file_acks_.count(id) == 0) {
      if (shutdown_.has_value()) return AbortedError("sending " + name + ": the job ended");
      if (deadline.expired()) {
        return DeadlineExceededError("the coordinator did not take " + name + " in time");
      }
      Message m;
      m.type = MsgType::kResultFile;
      m.request_id = id;
      m.body = body;
      m.sender = id_;
      m.epoch = view_.epoch;
      lock.Unlock();
      transport_->Send(kCoordinatorId, std::move(m)).IgnoreError();
      lock.Lock();
      const Deadline retry = Deadline::After(options_.register_retry).Earlier(deadline);
      while (file_acks_.count(id) == 0 && !shutdown_.has_value() && cv_.WaitUntil(&mu_, retry)) {
      }
    }
    const uint32_t status = file_acks_[id];
    file_acks_.erase(id);
    if (status != 0) {
      return Status(static_cast<StatusCode>(status),
                    "the coordinator refused " + name + " (see its log)");
    }
    offset += n;
  } while (offset < bytes.size());
  return Status::Ok();
}

bool ClusterClient::SetShutdown(Status s) {
  MutexLock lock(&mu_);
  const bool first = !shutdown_.has_value();
  if (first) shutdown_ = std::move(s);
  cv_.SignalAll();
  return first;
}

Status ClusterClient::Barrier(const std::string& name, BarrierGroup group, Deadline deadline) {
  return AwaitRelease({name, static_cast<uint8_t>(group)}, deadline).status();
}

Result<std::map<uint32_t, std::string>> ClusterClient::Gather(const std::string& name,
                                                              BarrierGroup group,
                                                              const std::string& value,
                                                              Deadline deadline) {
  if (group == BarrierGroup::kAll) {
    return InvalidArgumentError("gather '" + name + "': expected one role, found all nodes");
  }
  if (value.size() > kMaxGatherValueBytes) {
    return InvalidArgumentError("gather '" + name + "': a value of " +
                                std::to_string(value.size()) + " bytes (at most " +
                                std::to_string(kMaxGatherValueBytes) + ")");
  }
  BarrierRequest request{name, static_cast<uint8_t>(group)};
  request.gather = true;
  request.value = value;
  return AwaitRelease(request, deadline);
}

Result<std::map<uint32_t, std::string>> ClusterClient::AwaitRelease(const BarrierRequest& request,
                                                                    Deadline deadline) {
  const std::string& name = request.name;
  Buffer body = EncodeBarrier(request);
  SendToCoordinator(MsgType::kBarrier, body);
  MutexLock lock(&mu_);
  SteadyTime next_log = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  SteadyTime next_send = std::chrono::steady_clock::now() + options_.register_retry;
  while (released_.count(name) == 0) {
    if (std::chrono::steady_clock::now() >= next_send) {
      // Arrivals are idempotent at the coordinator: resending covers a lost message.
      lock.Unlock();
      SendToCoordinator(MsgType::kBarrier, body);
      lock.Lock();
      next_send = std::chrono::steady_clock::now() + options_.register_retry;
    }
    if (shutdown_.has_value()) {
      return AbortedError("barrier '" + name +
                          "' interrupted by shutdown: " + shutdown_->message());
    }
    if (deadline.expired()) {
      return DeadlineExceededError("barrier '" + name +
                                   "' was not released by the coordinator in time");
    }
    cv_.WaitUntil(&mu_, Deadline::At(next_log).Earlier(deadline).Earlier(Deadline::At(next_send)));
    if (std::chrono::steady_clock::now() >= next_log) {
      log_.Info("waiting at barrier '", name, "' for the other nodes");
      next_log = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    }
  }
  auto values = std::move(released_[name]);
  released_.erase(name);
  return values;
}

void ClusterClient::SendDone(const std::string& end_job_reason) {
  SendToCoordinator(MsgType::kDone, Buffer::FromString(end_job_reason));
}

void ClusterClient::SendAbort(const std::string& reason) {
  SendToCoordinator(MsgType::kAbort, Buffer::FromString(reason));
}

Status ClusterClient::FinishAndWait(const std::string& end_job_reason, Deadline deadline) {
  // Done is resent until the coordinator answers with shutdown: a lost
  // message must not leave this worker waiting forever.
  while (true) {
    SendDone(end_job_reason);
    Deadline slice = Deadline::After(options_.register_retry).Earlier(deadline);
    Status s = WaitShutdown(slice);
    if (s.code() != StatusCode::kDeadlineExceeded || deadline.expired()) return s;
  }
}

Status ClusterClient::WaitShutdown(Deadline deadline) {
  MutexLock lock(&mu_);
  // Stop() (the node is killed) ends the wait too.
  while (!shutdown_.has_value() && !stop_) {
    if (!cv_.WaitUntil(&mu_, deadline)) break;
  }
  if (!shutdown_.has_value() && !stop_) {
    return DeadlineExceededError("the coordinator did not end the job in time");
  }
  if (!shutdown_.has_value()) return AbortedError("this node was stopped before the job ended");
  return *shutdown_;
}

bool ClusterClient::shutting_down() const {
  MutexLock lock(&mu_);
  return shutdown_.has_value();
}

std::optional<Status> ClusterClient::shutdown_status() const {
  MutexLock lock(&mu_);
  return shutdown_;
}

void ClusterClient::SendToCoordinator(MsgType type, Buffer body) {
  Message m;
  m.type = type;
  {
    MutexLock lock(&mu_);
    m.sender = id_;
    m.epoch = view_.epoch;
  }
  m.body = std::move(body);
  transport_->Send(kCoordinatorId, std::move(m)).IgnoreError();
}

void ClusterClient::HeartbeatLoop() {
  MutexLock lock(&mu_);
  while (!stop_) {
    lock.Unlock();
    SendToCoordinator(MsgType::kHeartbeat, Buffer());
    lock.Lock();
    Duration silent = options_.env->Now() - last_heard_;
    if (silent > options_.coordinator_timeout && !shutdown_.has_value()) {
      log_.Error("the coordinator at ", SplitCurveAddress(options_.coordinator_address).first,
                 " has been silent for ", ToMillis(silent), " ms (timeout ",
                 ToMillis(options_.coordinator_timeout), " ms); stopping this node");
      shutdown_ = UnavailableError("lost the coordinator at " +
                                   SplitCurveAddress(options_.coordinator_address).first);
      cv_.SignalAll();
    }
    const Deadline next = Deadline::After(options_.heartbeat_interval);
    while (!stop_ && cv_.WaitUntil(&mu_, next)) {
    }
  }
}

}  // namespace distopt
