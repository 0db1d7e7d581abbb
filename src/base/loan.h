// Loan: memory the caller owns, lent to Buffers that may outlive the call
// that took them (a socket's send queue holds its messages until they are
// written; a retry or a failover sends them again). The loan knows when the
// last Buffer of it is gone, so the lender can reuse or free the memory only
// then, never while a socket might still read it.
// Thread-safe: Buffers of a loan may be released on any thread.
//
//   Loan loan(grads.data(), grads.size_bytes());
//   msg.values = loan.buffer();
//   transport->Send(peer, std::move(msg));
//   loan.Close();                      // drop the lender's own Buffer
//   if (!loan.WaitReturned(deadline)) { /* a queue still holds it */ }
#ifndef DISTOPT_BASE_LOAN_H_
#define DISTOPT_BASE_LOAN_H_

#include <cstddef>
#include <memory>

#include "base/buffer.h"
#include "base/mutex.h"
#include "base/time.h"

namespace distopt {

class Loan {
 public:
  Loan(const void* data, size_t size);
  Loan(const Loan&) = delete;
  Loan& operator=(const Loan&) = delete;

  // The lent bytes; every copy and slice of it belongs to the loan. Empty
  // after Close.
  const Buffer& buffer() const { return buffer_; }
  // Drops the loan's own Buffer: from now on only copies handed out hold it.
  void Close() { buffer_ = Buffer(); }
  // True once Close was called and no Buffer of the loan is left.
  bool returned() const;
  // Blocks until returned() or the deadline; returns returned().
  bool WaitReturned(Deadline deadline) const;

 private:
  struct State {
    mutable Mutex mu;
    mutable CondVar cv;
    bool returned GUARDED_BY(mu) = false;
  };
  std::shared_ptr<State> state_;
  Buffer buffer_;
};

}  // namespace distopt

#endif  // DISTOPT_BASE_LOAN_H_
