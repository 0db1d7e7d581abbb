// BlockingQueue<T>: the hand-off between threads (I/O thread -> node thread,
// callers -> I/O thread). Many producers, many consumers; Pop waits up to a
// deadline; Close() wakes every waiter and makes later Pops return nothing
// once drained. Thread-safe.
#ifndef DISTOPT_BASE_QUEUE_H_
#define DISTOPT_BASE_QUEUE_H_

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>

#include "base/time.h"

namespace distopt {

template <typename T>
class BlockingQueue {
 public:
  // Returns false if the queue is closed (the item is dropped).
  bool Push(T item) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return false;
      items_.push_back(std::move(item));
    }
    cv_.notify_one();
    return true;
  }

  std::optional<T> Pop(Deadline deadline = Deadline::Never()) {
    std::unique_lock<std::mutex> lock(mu_);
    auto ready = [&] { return !items_.empty() || closed_; };
    if (deadline.is_never()) {
      cv_.wait(lock, ready);
    } else if (!cv_.wait_until(lock, deadline.when(), ready)) {
      return std::nullopt;
    }
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

  std::optional<T> TryPop() {
    std::lock_guard<std::mutex> lock(mu_);
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }

  bool closed() const {
    std::lock_guard<std::mutex> lock(mu_);
    return closed_;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return items_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;  // guarded by mu_
  bool closed_ = false;  // guarded by mu_
};

}  // namespace distopt

#endif  // DISTOPT_BASE_QUEUE_H_
