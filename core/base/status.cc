#include "core/base/status.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace blockhaus {

namespace internal {
void CheckFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "blockhaus: check failed: %s at %s:%d\n", condition, file, line);
  std::abort();
}
}  // namespace internal

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kNotFound: return "NotFound";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kFailedPrecondition: return "FailedPrecondition";
    case Code::kResourceExhausted: return "ResourceExhausted";
    case Code::kAborted: return "Aborted";
    case Code::kUnavailable: return "Unavailable";
    case Code::kIOError: return "IOError";
    case Code::kCorruption: return "Corruption";
    case Code::kNotSupported: return "NotSupported";
    case Code::kPermissionDenied: return "PermissionDenied";
    case Code::kInternal: return "Internal";
    case Code::kWouldBlock: return "WouldBlock";
  }
  return "Unknown";
}

Status::Status(Code code, std::string message, const char* file, int line) {
  BH_CHECK(code != Code::kOk);
  rep_ = std::make_shared<Rep>(
      Rep{code, code == Code::kCorruption, line, file, std::move(message)});
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return rep_ ? rep_->message : kEmpty;
}

std::string Status::origin() const {
  if (!rep_ || rep_->file == nullptr || rep_->file[0] == '\0') return "";
  const char* base = std::strrchr(rep_->file, '/');
  return std::string(base ? base + 1 : rep_->file) + ":" + std::to_string(rep_->line);
}

bool Status::retryable() const {
  switch (code()) {
    case Code::kResourceExhausted:
    case Code::kAborted:
    case Code::kUnavailable:
    case Code::kWouldBlock:
      return true;
    case Code::kOk:
    case Code::kInvalidArgument:
    case Code::kNotFound:
    case Code::kAlreadyExists:
    case Code::kFailedPrecondition:
    case Code::kIOError:
    case Code::kCorruption:
    case Code::kNotSupported:
    case Code::kPermissionDenied:
    case Code::kInternal:
      return false;
  }
  return false;
}

bool Status::data_loss() const { return rep_ && rep_->data_loss; }

Status& Status::MarkDataLoss() {
  if (rep_) {
    rep_ = std::make_shared<Rep>(*rep_);
    rep_->data_loss = true;
  }
  return *this;
}

Status& Status::Annotate(std::string_view context) {
  if (rep_) {
    auto copy = std::make_shared<Rep>(*rep_);
    copy->message = std::string(context) + ": " + copy->message;
    rep_ = std::move(copy);
  }
  return *this;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code())) + ": " + rep_->message;
}

}  // namespace blockhaus
