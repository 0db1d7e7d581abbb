#include "base/mutex.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace distopt {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A flag behind a mutex, as the classes of the tree hold their state.
struct Flag {
  Mutex mu;
  CondVar changed;
  int value GUARDED_BY(mu) = 0;
};

TEST(MutexLockTest, HoldsOthersOutUntilUnlockAndTakesTheLockBackOnLock) {
  Flag f;
  std::atomic<bool> other_started{false};
  MutexLock lock(&f.mu);
  std::thread other([&] {
    other_started = true;
    MutexLock l(&f.mu);
    f.value = 1;
  });
  while (!other_started) std::this_thread::yield();
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(f.value, 0);  // the other thread waits for the lock
  lock.Unlock();
  other.join();  // it got in while this thread let go
  lock.Lock();
  EXPECT_EQ(f.value, 1);
}

TEST(CondVarTest, WaitUntilReturnsFalseOnlyOnceTheDeadlineHasPassed) {
  Flag f;
  const Deadline deadline = Deadline::After(milliseconds(30));
  MutexLock lock(&f.mu);
  int wakes = 0;
  while (f.changed.WaitUntil(&f.mu, deadline)) ++wakes;  // spurious wakes return true
  EXPECT_TRUE(deadline.expired());
  EXPECT_LT(wakes, 1000);
}

TEST(CondVarTest, SignalAllWakesEveryWaiterAndWaitsGiveTheMutexBack) {
  Flag f;
  constexpr int kWaiters = 4;
  std::atomic<int> waiting{0};
  std::atomic<int> saw_it{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      const Deadline give_up = Deadline::After(seconds(10));
      MutexLock lock(&f.mu);
      ++waiting;
      while (f.value == 0) {
        if (!f.changed.WaitUntil(&f.mu, give_up)) return;
      }
      ++saw_it;
    });
  }
  while (waiting < kWaiters) std::this_thread::yield();
  {
    // Taking the mutex here at all shows the waiters released it.
    MutexLock lock(&f.mu);
    f.value = 1;
  }
  f.changed.SignalAll();
  for (auto& t : waiters) t.join();
  EXPECT_EQ(saw_it, kWaiters);
}

TEST(CondVarTest, ANeverDeadlineWaitsUntilSignalled) {
  Flag f;
  std::thread setter([&] {
    std::this_thread::sleep_for(milliseconds(20));
    MutexLock lock(&f.mu);
    f.value = 7;
    f.changed.Signal();
  });
  MutexLock lock(&f.mu);
  while (f.value == 0) EXPECT_TRUE(f.changed.WaitUntil(&f.mu, Deadline::Never()));
  EXPECT_EQ(f.value, 7);
  lock.Unlock();
  setter.join();
}

}  // namespace
}  // namespace distopt
