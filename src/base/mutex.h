// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable with
// clang's thread-safety annotations (base/thread_annotations.h), so the `tsa`
// build checks that every GUARDED_BY(mu_) member is touched with mu_ held and
// every REQUIRES(mu_) function is called with it held. They cost what the std
// types cost. A Mutex is not recursive; all three are thread-safe.
//
//   Mutex mu_;
//   CondVar changed_;
//   int done_ GUARDED_BY(mu_) = 0;
//
//   void Finish() { MutexLock lock(&mu_); ++done_; changed_.SignalAll(); }
//   bool WaitAllDone(int n, Deadline d) {
//     MutexLock lock(&mu_);
//     while (done_ < n) {
//       if (!changed_.WaitUntil(&mu_, d)) return done_ >= n;  // timed out
//     }
//     return true;
//   }
//
// Waits have no predicate overload on purpose: a predicate is a lambda, and
// the analysis checks a lambda's body as a function of its own that holds no
// lock. Callers write the loop, where the analysis sees the lock.
#ifndef DISTOPT_BASE_MUTEX_H_
#define DISTOPT_BASE_MUTEX_H_

#include <condition_variable>
#include <mutex>

#include "base/thread_annotations.h"
#include "base/time.h"

namespace distopt {

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds `mu` from construction to destruction. Unlock()/Lock() let go of it
// for a stretch in the middle (a send that must not hold it), as
// std::unique_lock does; the destructor releases only if held.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() {
    if (held_) mu_->Unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void Unlock() RELEASE() {
    mu_->Unlock();
    held_ = false;
  }
  void Lock() ACQUIRE() {
    mu_->Lock();
    held_ = true;
  }

 private:
  Mutex* const mu_;
  bool held_ = true;
};

// A condition variable bound to a Mutex at each wait. Wakes may be spurious:
// every wait sits in a loop that re-checks its condition.
class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // Releases `mu` while it sleeps, holds it again on return.
  void Wait(Mutex* mu) REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();  // still locked: the caller's MutexLock owns it
  }
  // As Wait, but gives up at `deadline`: false once it has passed (a
  // Deadline::Never() wait returns only when woken, with true).
  bool WaitUntil(Mutex* mu, Deadline deadline) REQUIRES(mu) {
    if (deadline.is_never()) {
      Wait(mu);
      return true;
    }
    std::unique_lock<std::mutex> lock(mu->mu_, std::adopt_lock);
    const bool woken = cv_.wait_until(lock, deadline.when()) == std::cv_status::no_timeout;
    lock.release();
    return woken;
  }

  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace distopt

#endif  // DISTOPT_BASE_MUTEX_H_
