#include "tools/volctl/output.h"

#include <algorithm>
#include <cstdio>

#include "core/base/units.h"

namespace blockhaus::tools {

std::string Table::Render(const OutputFlags& flags) const {
  std::string out;
  if (flags.scripted) {
    for (const auto& row : rows_) {
      for (size_t i = 0; i < row.size(); ++i) out += (i ? "\t" : "") + row[i];
      out += "\n";
    }
    return out;
  }
  std::vector<size_t> width(columns_.size());
  for (size_t i = 0; i < columns_.size(); ++i) width[i] = columns_[i].size();
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string l;
    for (size_t i = 0; i < cells.size(); ++i) {
      l += cells[i];
      if (i + 1 < cells.size()) l += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    out += l + "\n";
  };
  line(columns_);
  for (const auto& row : rows_) line(row);
  return out;
}

std::string Bytes(uint64_t bytes, const OutputFlags& flags) {
  return flags.parsable ? std::to_string(bytes) : FormatSize(bytes);
}

int StatusToExitCode(const Status& status) {
  switch (status.code()) {
    case Code::kOk:
      return 0;
    case Code::kInvalidArgument:
    case Code::kNotFound:
    case Code::kAlreadyExists:
    case Code::kFailedPrecondition:
    case Code::kResourceExhausted:
    case Code::kAborted:
    case Code::kUnavailable:
    case Code::kIOError:
    case Code::kCorruption:
    case Code::kNotSupported:
    case Code::kPermissionDenied:
    case Code::kInternal:
    case Code::kWouldBlock:
      return 1;
  }
  return 1;
}

int ReportError(const Status& status) {
  std::fprintf(stderr, "volctl: %s\n", status.message().c_str());
  return StatusToExitCode(status);
}

}  // namespace blockhaus::tools
