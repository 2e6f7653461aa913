// Output for people and for scripts: tables (aligned, or -H tab-separated),
// JSON (-j), and the one mapping from Status to exit code.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"

namespace blockhaus::tools {

struct OutputFlags {
  bool scripted = false;  // -H: no header, tab-separated
  bool parsable = false;  // -p: exact numbers
  bool json = false;      // -j
};

class Table {
 public:
  explicit Table(std::vector<std::string> columns) : columns_(std::move(columns)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render(const OutputFlags& flags) const;

 private:
  std::vector<std::string> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// Bytes as "1.50G", or exact with -p.
std::string Bytes(uint64_t bytes, const OutputFlags& flags);

// The only place a Status becomes an exit code: 0 ok, 1 failed. Usage
// errors (exit 2) come from the argument parser.
int StatusToExitCode(const Status& status);

// Prints "volctl: <message>" to stderr and returns the exit code.
int ReportError(const Status& status);

}  // namespace blockhaus::tools
