#include "base/loan.h"

namespace distopt {

Loan::Loan(const void* data, size_t size) : state_(std::make_shared<State>()) {
  // The owner is a token whose deleter runs when the last Buffer sharing it
  // goes, on whatever thread drops it (a socket's I/O thread, typically).
  std::shared_ptr<const void> token(data, [state = state_](const void*) {
    MutexLock lock(&state->mu);
    state->returned = true;
    state->cv.SignalAll();
  });
  buffer_ = Buffer(std::move(token), data, size);
  buffer_.lent_ = true;
}

bool Loan::returned() const {
  MutexLock lock(&state_->mu);
  return state_->returned;
}

bool Loan::WaitReturned(Deadline deadline) const {
  MutexLock lock(&state_->mu);
  while (!state_->returned) {
    if (!state_->cv.WaitUntil(&state_->mu, deadline)) return state_->returned;
  }
  return true;
}

}  // namespace distopt
