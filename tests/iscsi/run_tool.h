// Runs an external client (iscsi-ls, iscsi-inq, iscsi-test-cu, qemu-img,
// qemu-io) with a time limit; the child is killed by its pid when it runs
// over. A missing tool fails the test loudly.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "tests/tools/run_volctl.h"

namespace blockhaus::testing {

inline std::string FindTool(const std::string& name) {
  for (const char* dir : {"/usr/bin/", "/usr/local/bin/", "/bin/", "/usr/sbin/"}) {
    std::string p = std::string(dir) + name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  FAIL("required tool '" << name << "' is not installed (run .ci/install-deps)");
  return "";
}

// env: extra "KEY=VALUE" entries. Output goes to files in `scratch`.
// stdin_path: a file fed to the tool's standard input ("" for /dev/null).
inline CommandResult RunTool(const std::string& scratch, const std::vector<std::string>& args,
                             int timeout_s, const std::vector<std::string>& env = {},
                             const std::string& stdin_path = "") {
  std::string tool = FindTool(args.front());
  std::string out_path = scratch + "/.tool.out", err_path = scratch + "/.tool.err";
  pid_t pid = ::fork();
  if (pid == 0) {
    for (const auto& kv : env) ::putenv(const_cast<char*>(kv.c_str()));
    int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int in = ::open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY);
    ::dup2(in, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(tool.c_str()));
    for (size_t i = 1; i < args.size(); ++i) argv.push_back(const_cast<char*>(args[i].c_str()));
    argv.push_back(nullptr);
    ::execv(tool.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  bool done = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      done = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CommandResult r;
  if (!done) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    r.exit_code = -1;
  } else {
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  int o = ::open(out_path.c_str(), O_RDONLY), e = ::open(err_path.c_str(), O_RDONLY);
  r.out = Slurp(o);
  r.err = Slurp(e);
  ::close(o);
  ::close(e);
  if (!done) r.err += "\n[killed after " + std::to_string(timeout_s) + " s]";
  return r;
}

}  // namespace blockhaus::testing
