// Status and Result<T>: how every layer below tools/ reports failure.
//
// A Status is a value: Ok, or a canonical Code plus a message and the place
// where the error was created (BH_ERROR records __FILE__:__LINE__, the way
// ZFS SET_ERROR does). Codes carry abseil's retry meaning:
//   InvalidArgument, NotFound, AlreadyExists, FailedPrecondition,
//   PermissionDenied, NotSupported: the caller must change something.
//   ResourceExhausted, Unavailable, Aborted: retrying later may succeed.
//   IOError, Corruption: the device or the metadata failed; data_loss() tells
//   whether acknowledged data may be gone. Internal: a bug.
// Status and Result are [[nodiscard]]: drop one only with IgnoreError().
//
// Thread safety: values; thread-compatible.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "core/base/check.h"

namespace blockhaus {

enum class Code : uint8_t {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,
  kResourceExhausted,
  kAborted,
  kUnavailable,
  kIOError,
  kCorruption,
  kNotSupported,
  kPermissionDenied,
  kInternal,
  // Only from calls that asked not to wait: finishing would have to wait for
  // the device (data or metadata not in memory). Retry with the waiting call.
  kWouldBlock,
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // Ok.
  Status(Code code, std::string message, const char* file = "", int line = 0);

  static Status Ok() { return Status(); }

  bool ok() const { return rep_ == nullptr; }
  Code code() const { return rep_ ? rep_->code : Code::kOk; }
  const std::string& message() const;
  // "file.cc:123", where BH_ERROR created the error; empty for Ok.
  std::string origin() const;
  // True for codes where a later retry may succeed.
  bool retryable() const;
  // True when acknowledged data may have been lost (Corruption, or an IOError
  // marked so with MarkDataLoss()).
  bool data_loss() const;
  Status& MarkDataLoss();
  // Prepends context: "opening pool tank: <message>".
  Status& Annotate(std::string_view context);

  // "Corruption: block 7 of lineage 3: checksum mismatch"
  std::string ToString() const;

  void IgnoreError() const {}

 private:
  struct Rep {
    Code code;
    bool data_loss;
    int line;
    const char* file;
    std::string message;
  };
  std::shared_ptr<Rep> rep_;  // null means Ok; shared so copies are cheap.
};

// Result<T> holds a T or a non-Ok Status (abseil StatusOr).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design.
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    BH_CHECK(!std::get<Status>(v_).ok());
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status() : std::get<Status>(v_); }

  T& value() & {
    BH_CHECK(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    BH_CHECK(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    BH_CHECK(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  void IgnoreError() const {}

 private:
  std::variant<T, Status> v_;
};

}  // namespace blockhaus

// Creates an error Status that remembers where it was made.
//   return BH_ERROR(kNotFound, "pool '{}' does not exist", name);
#define BH_ERROR(code, ...)                                                   \
  ::blockhaus::Status(::blockhaus::Code::code, ::blockhaus::FormatMessage(__VA_ARGS__), \
                      __FILE__, __LINE__)

#define BH_CONCAT_INNER_(a, b) a##b
#define BH_CONCAT_(a, b) BH_CONCAT_INNER_(a, b)

#define BH_RETURN_IF_ERROR(expr)                  \
  do {                                            \
    ::blockhaus::Status bh_status_ = (expr);      \
    if (!bh_status_.ok()) return bh_status_;      \
  } while (0)

#define BH_ASSIGN_OR_RETURN(lhs, expr) \
  BH_ASSIGN_OR_RETURN_IMPL_(BH_CONCAT_(bh_result_, __LINE__), lhs, expr)
#define BH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#include "core/base/format.h"
