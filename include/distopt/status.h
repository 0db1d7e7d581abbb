// Status and Result<T>: how every fallible boundary in distopt reports errors.
// A Status is a code plus a human-readable message that names what was wrong
// (file:line, config key, peer). Both types are cheap to move and are not
// thread-safe to mutate concurrently (like any value type).
//
//   distopt::Result<int> ParsePort(std::string_view s);
//   ASSIGN_OR_RETURN(int port, ParsePort(text));
//   RETURN_IF_ERROR(transport->Send(peer, std::move(msg)));
#ifndef DISTOPT_STATUS_H_
#define DISTOPT_STATUS_H_

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace distopt {

enum class StatusCode : int {
  kOk = 0,
  kInvalidArgument = 1,  // bad input from outside: config, data, message
  kNotFound = 2,
  kAlreadyExists = 3,
  kOutOfRange = 4,
  kFailedPrecondition = 5,
  kDeadlineExceeded = 6,  // a wait ran out of time
  kUnavailable = 7,       // a peer or resource cannot be reached (retryable)
  kDataLoss = 8,          // checksum mismatch, truncated file
  kResourceExhausted = 9,
  kAborted = 10,  // the operation was cancelled (shutdown)
  kInternal = 11,
  kUnimplemented = 12,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Prefixes context ("while loading checkpoint: ...") keeping the code.
  Status WithContext(const std::string& context) const;

  // Explicitly drops a status when ignoring it is the right thing to do.
  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgumentError(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFoundError(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExistsError(std::string m) {
  return {StatusCode::kAlreadyExists, std::move(m)};
}
inline Status OutOfRangeError(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status FailedPreconditionError(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status DeadlineExceededError(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status UnavailableError(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DataLossError(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status ResourceExhaustedError(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status AbortedError(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status UnimplementedError(std::string m) {
  return {StatusCode::kUnimplemented, std::move(m)};
}

// Result<T> holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result built from an OK Status");
    if (std::get<Status>(v_).ok())
      v_ = Status(StatusCode::kInternal, "Result built from an OK Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  // A reference, so `const std::string& m = r.status().message();` is safe.
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }

  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace distopt

#define DISTOPT_CONCAT_INNER(a, b) a##b
#define DISTOPT_CONCAT(a, b) DISTOPT_CONCAT_INNER(a, b)

#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::distopt::Status _distopt_status = (expr);        \
    if (!_distopt_status.ok()) return _distopt_status; \
  } while (0)

#define DISTOPT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  DISTOPT_ASSIGN_OR_RETURN_IMPL(DISTOPT_CONCAT(_distopt_result_, __LINE__), lhs, expr)

#endif  // DISTOPT_STATUS_H_
