#include "transport/dispatcher.h"

namespace distopt {

void Dispatcher::Start() {
  MutexLock lock(&join_mu_);
  thread_ = std::thread([this] { Loop(); });
}

void Dispatcher::Stop() {
  transport_->Shutdown();
  MutexLock lock(&join_mu_);
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Dispatcher::Loop() {
  SteadyTime next_tick = std::chrono::steady_clock::now() + tick_;
  while (true) {
    auto m = transport_->Recv(tick_handler_ ? Deadline::At(next_tick) : Deadline::Never());
    if (m.ok()) {
      const Handler& h = handlers_[static_cast<size_t>(m->type)];
      if (h) {
        h(std::move(*m));
      } else {
        log_.Warn("ignored a ", MsgTypeName(m->type), " message from node ", m->sender,
                  ": this node does not handle that type");
      }
    } else if (m.status().code() == StatusCode::kAborted) {
      return;
    }
    if (tick_handler_ && std::chrono::steady_clock::now() >= next_tick) {
      tick_handler_();
      next_tick = std::chrono::steady_clock::now() + tick_;
    }
  }
}

}  // namespace distopt
