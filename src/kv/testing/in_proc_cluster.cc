#include "kv/testing/in_proc_cluster.h"

#include <future>
#include <thread>

namespace distopt {

InProcCluster::InProcCluster(InProcClusterOptions options)
    : options_(std::move(options)), hub_(std::make_shared<InProcHub>()) {}

InProcCluster::~InProcCluster() = default;

Logger InProcCluster::Log(const std::string& name) const {
  if (options_.log_sink) return Logger(options_.log_sink, name, LogLevel::kDebug);
  return Logger(StderrSink(), name, LogLevel::kWarning);
}

Status InProcCluster::Run(const std::function<Status(WorkerNode&)>& work) {
  const std::string coord_addr = "inproc://coordinator";
  ASSIGN_OR_RETURN(auto coord_transport, hub_->Create(coord_addr, Log("coordinator")));
  if (options_.wrap_transport) {
    coord_transport = options_.wrap_transport("coordinator", std::move(coord_transport));
  }
  CoordinatorOptions co;
  co.num_servers = options_.servers;
  co.num_workers = options_.workers;
  co.heartbeat_timeout = options_.heartbeat_timeout;
  co.startup_timeout = std::chrono::seconds(60);
  co.shutdown_grace = options_.shutdown_grace;
  auto coord = std::async(std::launch::async, [&] {
    return RunCoordinator(co, options_.tables, coord_transport.get(), Log("coordinator"), {},
                          options_.replication, options_.partitions);
  });

  NodeOptions node;
  node.coordinator_address = coord_addr;
  node.heartbeat_interval = options_.heartbeat_interval;
  node.register_timeout = std::chrono::seconds(60);

  KvServerOptions kv;
  kv.tables = options_.tables;
  kv.consistency = options_.consistency;
  kv.on_pull = options_.on_pull;
  kv.run_dir = options_.run_dir;
  kv.checkpoint_every_steps = options_.checkpoint_every_steps;
  servers_.clear();
  std::vector<std::future<Status>> server_runs;
  for (uint32_t s = 0; s < options_.servers; ++s) {
    std::string name = "server/" + std::to_string(s);
    ASSIGN_OR_RETURN(auto t, hub_->Create("inproc://" + name, Log(name)));
    if (options_.wrap_transport) t = options_.wrap_transport(name, std::move(t));
    NodeOptions n = node;
    n.rank = static_cast<int32_t>(s);
    if (options_.host_of) n.host_label = options_.host_of(name);
    servers_.push_back(std::make_unique<ServerNode>(n, kv, std::move(t), Log(name)));
    ServerNode* sn = servers_.back().get();
    server_runs.push_back(std::async(std::launch::async, [sn] { return sn->Run(); }));
  }

  std::vector<std::future<Status>> worker_runs;
  for (uint32_t w = 0; w < options_.workers; ++w) {
    worker_runs.push_back(std::async(std::launch::async, [&, w]() -> Status {
      std::string name = "worker/" + std::to_string(w);
      ASSIGN_OR_RETURN(auto t, hub_->Create("inproc://" + name, Log(name)));
      if (options_.wrap_transport) t = options_.wrap_transport(name, std::move(t));
      NodeOptions n = node;
      n.rank = static_cast<int32_t>(w);
      if (options_.host_of) n.host_label = options_.host_of(name);
      WorkerNode wn(n, options_.tables, options_.client, std::move(t), Log(name));
      RETURN_IF_ERROR(wn.Start(Deadline::After(std::chrono::seconds(60))));
      Status s = work(wn);
      if (!s.ok()) {
        wn.Abort(name + ": " + s.message());
        return s;
      }
      return wn.Finish(Deadline::After(std::chrono::seconds(120)));
    }));
  }
  Status first;
  for (auto& f : worker_runs) {
    Status s = f.get();
    if (!s.ok() && first.ok()) first = s;
  }
  Status cs = coord.get();
  for (size_t i = 0; i < server_runs.size(); ++i) {
    Status s = server_runs[i].get();
    if (!s.ok() && first.ok() && !servers_[i]->killed()) first = s;  // a test killed it
  }
  if (!first.ok()) return first;
  return cs;
}

std::vector<float> InProcCluster::DenseTable(uint32_t table) const {
  std::vector<float> out(options_.tables[table].size, 0.0f);
  for (const auto& s : servers_) {
    if (s->server() == nullptr) continue;
    for (const auto& [begin, values] : s->server()->DenseValues(table)) {
      std::copy(values.begin(), values.end(), out.begin() + static_cast<ptrdiff_t>(begin));
    }
  }
  return out;
}

std::vector<float> InProcCluster::SparseRow(uint32_t table, uint64_t key) const {
  for (const auto& s : servers_) {
    if (s->server() == nullptr) continue;
    auto row = s->server()->SparseRow(table, key);
    if (!row.empty()) return row;
  }
  return {};
}

}  // namespace distopt
