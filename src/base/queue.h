// BlockingQueue<T>: the hand-off between threads (I/O thread -> node thread,
// callers -> I/O thread). Many producers, many consumers; Pop waits up to a
// deadline; Close() wakes every waiter and makes later Pops return nothing
// once drained. Thread-safe.
#ifndef DISTOPT_BASE_QUEUE_H_
#define DISTOPT_BASE_QUEUE_H_

#include <deque>
#include <optional>

#include "base/mutex.h"
#include "base/time.h"

namespace distopt {

template <typename T>
class BlockingQueue {
 public:
  // Returns false if the queue is closed (the item is dropped).
  bool Push(T item) {
    {
      MutexLock lock(&mu_);
      if (closed_) return false;
      items_.push_back(std::move(item));
    }
    cv_.Signal();
    return true;
  }

  std::optional<T> Pop(Deadline deadline = Deadline::Never()) {
    MutexLock lock(&mu_);
    while (items_.empty() && !closed_) {
      if (!cv_.WaitUntil(&mu_, deadline)) break;
    }
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

  std::optional<T> TryPop() {
    MutexLock lock(&mu_);
    if (items_.empty()) return std::nullopt;
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

  void Close() {
    {
      MutexLock lock(&mu_);
      closed_ = true;
    }
    cv_.SignalAll();
  }

  bool closed() const {
    MutexLock lock(&mu_);
    return closed_;
  }

  size_t size() const {
    MutexLock lock(&mu_);
    return items_.size();
  }

 private:
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<T> items_ GUARDED_BY(mu_);
  bool closed_ GUARDED_BY(mu_) = false;
};

}  // namespace distopt

#endif  // DISTOPT_BASE_QUEUE_H_
