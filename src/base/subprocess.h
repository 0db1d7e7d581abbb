// Subprocess: a child process started by argv, with stdout/stderr sent to a
// log file (or inherited), that dies with its parent (PR_SET_PDEATHSIG), and
// can be waited on with a deadline or killed by pid. The local launcher,
// distopt-bench-kv (bench/kv) and the multi-process tests use it. One owner
// thread per object; distinct objects are independent.
//
//   ASSIGN_OR_RETURN(auto child, Subprocess::Spawn({"/proc/self/exe", "run", ...}, {.log =
//   "w0.log"})); ASSIGN_OR_RETURN(int code, child.Wait(Deadline::After(60s)));
#ifndef DISTOPT_BASE_SUBPROCESS_H_
#define DISTOPT_BASE_SUBPROCESS_H_

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/time.h"
#include "distopt/status.h"

namespace distopt {

struct SpawnOptions {
  std::string log;                         // append stdout+stderr here; empty: inherit
  std::map<std::string, std::string> env;  // added to (or replacing in) the parent's
};

class Subprocess {
 public:
  Subprocess() = default;
  Subprocess(Subprocess&& o) noexcept : pid_(o.pid_), exited_(o.exited_), code_(o.code_) {
    o.pid_ = -1;
  }
  Subprocess& operator=(Subprocess&& o) noexcept;
  ~Subprocess();  // kills a still-running child (SIGKILL) and reaps it

  static Result<Subprocess> Spawn(const std::vector<std::string>& argv, const SpawnOptions& o);

  pid_t pid() const { return pid_; }
  // Non-blocking: true once the child has exited (then code() is valid).
  bool Poll();
  // Waits up to the deadline; the exit code, or 128+signal if killed.
  Result<int> Wait(Deadline deadline);
  int code() const { return code_; }
  bool exited() const { return exited_; }
  void Signal(int sig);

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int code_ = -1;
};

// The path of the running executable (for re-executing oneself as a node).
std::string SelfExecutable();

}  // namespace distopt

#endif  // DISTOPT_BASE_SUBPROCESS_H_
