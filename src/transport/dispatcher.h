// Dispatcher: the receive loop of a node. One thread pulls messages off the
// node's transport and hands each to the handler registered for its type, in
// arrival order. Handlers run on that thread and must not block for long
// (park requests instead of waiting). Register handlers before Start().
// Start/Stop are called by the node's owner thread; Stop also from any other
// (a kill), even while Start runs.
#ifndef DISTOPT_TRANSPORT_DISPATCHER_H_
#define DISTOPT_TRANSPORT_DISPATCHER_H_

#include <array>
#include <functional>
#include <thread>

#include "base/logging.h"
#include "base/mutex.h"
#include "transport/transport.h"

namespace distopt {

class Dispatcher {
 public:
  using Handler = std::function<void(Message&&)>;
  // Called about every `tick` on the dispatcher thread (timeouts, retries).
  using TickHandler = std::function<void()>;

  Dispatcher(Transport* transport, Logger log) : transport_(transport), log_(std::move(log)) {}
  ~Dispatcher() { Stop(); }

  void Handle(MsgType type, Handler h) { handlers_[static_cast<size_t>(type)] = std::move(h); }
  void OnTick(Duration tick, TickHandler h) {
    tick_ = tick;
    tick_handler_ = std::move(h);
  }

  void Start();
  // Returns after the loop thread has exited (the transport is shut down
  // first, which wakes it).
  void Stop();

 private:
  void Loop();

  Transport* const transport_;
  const Logger log_;
  std::array<Handler, static_cast<size_t>(MsgType::kMaxType)> handlers_;
  Duration tick_ = std::chrono::milliseconds(100);
  TickHandler tick_handler_;
  Mutex join_mu_;  // Stop() may run on two threads at once, and during Start()
  std::thread thread_ GUARDED_BY(join_mu_);
};

}  // namespace distopt

#endif  // DISTOPT_TRANSPORT_DISPATCHER_H_
