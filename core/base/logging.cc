#include "core/base/logging.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>

namespace blockhaus {
namespace {
// Relaxed: the level is a hint; a racing reader may log one line more or less.
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
// Relaxed: set once at daemon start, before other threads log.
std::atomic<int> g_fd{2};
}  // namespace

void SetLogLevel(LogLevel level) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

bool LogEnabled(LogLevel level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void SetLogFd(int fd) { g_fd.store(fd, std::memory_order_relaxed); }

void LogLine(LogLevel level, std::string_view text) {
  static const char* kNames[] = {"debug", "info", "warning", "error"};
  // One write per line, so lines of different threads do not interleave.
  std::string line = fmt::format("blockhaus {}: {}\n", kNames[static_cast<int>(level)], text);
  ssize_t ignored = ::write(g_fd.load(std::memory_order_relaxed), line.data(), line.size());
  (void)ignored;  // nowhere left to report a failed log write
}

std::string LogEscape(std::string_view text, size_t max_len) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace blockhaus
