// Minimal leveled logging to stderr. Peer-controlled strings are arguments,
// never formats; LogEscape() strips control characters so a log line cannot
// be forged.
#pragma once

#include <string>
#include <string_view>

#include "core/base/format.h"

namespace blockhaus {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

void SetLogLevel(LogLevel level);
// Where log lines go: stderr (fd 2) by default. The daemon points it at its
// own copy of stderr, because it lends fds 1 and 2 to commands it runs.
void SetLogFd(int fd);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view text);
std::string LogEscape(std::string_view text, size_t max_len = 256);

}  // namespace blockhaus

#define BH_LOG(level, ...)                                                        \
  do {                                                                            \
    if (::blockhaus::LogEnabled(::blockhaus::LogLevel::level))                    \
      ::blockhaus::LogLine(::blockhaus::LogLevel::level,                          \
                           ::blockhaus::FormatMessage(__VA_ARGS__));              \
  } while (0)
