// Status and Result<T>: expected failures as values (LevelDB / Abseil style).
//
// The code tells the caller what to do:
//   kInvalidArgument    the input is wrong: do not retry
//   kNotFound           the named thing does not exist
//   kUnavailable        try again later (peer down, queue empty)
//   kResourceExhausted  back off (out of KV pages, queue full)
//   kFailedPrecondition fix state first (wrong order of calls, stale version)
//   kDataLoss           a file or frame is corrupt
//   kInternal           an invariant broke in a dependency
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace treepo {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kOutOfRange,
  kUnavailable,
  kResourceExhausted,
  kFailedPrecondition,
  kDeadlineExceeded,
  kCancelled,
  kDataLoss,
  kUnimplemented,
  kInternal,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message", or "OK".
  std::string ToString() const;

  // Prefixes the message with context ("loading x.bin: ...").
  Status WithContext(std::string_view context) const;

  void IgnoreError() const {}

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status ResourceExhausted(std::string m) {
  return {StatusCode::kResourceExhausted, std::move(m)};
}
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status DeadlineExceeded(std::string m) {
  return {StatusCode::kDeadlineExceeded, std::move(m)};
}
inline Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "Result from OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace treepo

#define TREEPO_CONCAT_INNER(a, b) a##b
#define TREEPO_CONCAT(a, b) TREEPO_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` is not OK.
#define TREEPO_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::treepo::Status treepo_status_ = (expr);        \
    if (!treepo_status_.ok()) return treepo_status_; \
  } while (0)

// `TREEPO_ASSIGN_OR_RETURN(auto x, MakeX());` binds the value or returns the Status.
#define TREEPO_ASSIGN_OR_RETURN(lhs, expr) \
  TREEPO_ASSIGN_OR_RETURN_IMPL(TREEPO_CONCAT(treepo_result_, __LINE__), lhs, expr)
#define TREEPO_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()
