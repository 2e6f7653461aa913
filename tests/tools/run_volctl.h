// Runs the real volctl binary (tests of the command line, end to end).
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace blockhaus::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

inline std::string Slurp(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<size_t>(n));
  return s;
}

// Runs volctl with VOLCTL_HOME=home; stdout and stderr go to temp files.
inline CommandResult RunVolctl(const std::string& home, const std::vector<std::string>& args) {
  std::string out_path = home + "/.out", err_path = home + "/.err";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("VOLCTL_HOME", home.c_str(), 1);
    int o = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>("volctl"));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(BH_VOLCTL, argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  int o = ::open(out_path.c_str(), O_RDONLY), e = ::open(err_path.c_str(), O_RDONLY);
  r.out = Slurp(o);
  r.err = Slurp(e);
  ::close(o);
  ::close(e);
  std::filesystem::remove(out_path);
  std::filesystem::remove(err_path);
  return r;
}

// Every file under dir with its size and a hash of its bytes, to prove that a
// refused command changed nothing. The pid written into a pool's lock file,
// RocksDB's info LOG files and volctl's own capture files are left out.
inline std::map<std::string, std::string> TreeState(const std::string& dir) {
  std::map<std::string, std::string> state;
  if (!std::filesystem::exists(dir)) return state;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    std::string rel = e.path().string().substr(dir.size());
    std::string name = e.path().filename().string();
    if (name == "lock" || name.rfind("LOG", 0) == 0 || name == ".out" || name == ".err") continue;
    if (!e.is_regular_file()) {
      state[rel] = "dir";
      continue;
    }
    std::ifstream f(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    state[rel] = std::to_string(e.file_size()) + ":" + std::to_string(std::hash<std::string>()(ss.str()));
  }
  return state;
}

// Runs a command that must be refused, `times` times in a row (a refusal
// must not depend on an earlier attempt): each a non-zero exit with `says`
// in its error message, and `state()` (what must not change) equal to
// `before` after each.
template <typename State, typename StateFn>
void ExpectRefusedFrom(const std::string& home, const std::vector<std::string>& args,
                       const std::string& says, const State& before, StateFn state,
                       int times = 1) {
  std::string cmd;
  for (const auto& a : args) cmd += a + " ";
  CAPTURE(cmd);
  for (int i = 0; i < times; ++i) {
    CommandResult r = RunVolctl(home, args);
    CAPTURE(r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.err.find(says) != std::string::npos);
    CHECK(state() == before);
  }
}

// The same, with `before` read from `state()` first.
template <typename StateFn>
void ExpectRefusedWith(const std::string& home, const std::vector<std::string>& args,
                       const std::string& says, StateFn state, int times = 1) {
  ExpectRefusedFrom(home, args, says, state(), state, times);
}

}  // namespace blockhaus::testing
