// FormatMessage: the one place error and log text is formatted (libfmt).
// Peer-controlled strings are passed as arguments, never as the format.
#pragma once

#include <string>
#include <utility>

#include <fmt/format.h>

namespace blockhaus {

inline std::string FormatMessage(std::string_view text) { return std::string(text); }

template <typename... Args>
std::string FormatMessage(fmt::format_string<Args...> format, Args&&... args) {
  return fmt::format(format, std::forward<Args>(args)...);
}

}  // namespace blockhaus
