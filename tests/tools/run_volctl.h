// Runs the real volctl binary (tests of the command line, end to end).
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
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
  char buf[1 << 16];
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

// Every file under dir with its size and a hash of its bytes, one line
// each, to prove that a refused command changed nothing. The pid written
// into a pool's lock file, RocksDB's info LOG files and volctl's own
// capture files are left out.
inline std::string TreeState(const std::string& dir) {
  std::map<std::string, std::string> files;
  if (!std::filesystem::exists(dir)) return "";
  std::string bytes;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    std::string rel = e.path().string().substr(dir.size());
    std::string name = e.path().filename().string();
    if (name == "lock" || name.rfind("LOG", 0) == 0 || name == ".out" || name == ".err") continue;
    if (!e.is_regular_file()) {
      files[rel] = "dir";
      continue;
    }
    int fd = ::open(e.path().c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    bytes = Slurp(fd);
    ::close(fd);
    files[rel] = std::to_string(bytes.size()) + ":" + std::to_string(std::hash<std::string>()(bytes));
  }
  std::string state;
  for (const auto& [rel, what] : files) state += rel + " " + what + "\n";
  return state;
}

// The state a run of refusals must leave, read once after each change and
// carried from one refusal to the next: a refusal that changed it fails its
// check, so the next starts from the same state. Reading it is the costly
// part of a refusal check (volctl runs and a pool open), so this halves a
// bad-input test. A command that succeeds may change it: Forget().
class UnchangedState {
 public:
  explicit UnchangedState(std::function<std::string()> read) : read_(std::move(read)) {}

  void Forget() { known_.reset(); }

  // Runs a command that must be refused, `times` times in a row (a refusal
  // must not depend on an earlier attempt): each a non-zero exit with
  // `says` in its error message. Then the state must be as it was; read
  // once, after the last attempt, since a change an attempt made would
  // still be there.
  void ExpectRefused(const std::string& home, const std::vector<std::string>& args,
                     const std::string& says, int times = 1) {
    if (!known_) known_ = read_();
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    CAPTURE(cmd);
    for (int i = 0; i < times; ++i) {
      CommandResult r = RunVolctl(home, args);
      CAPTURE(r.err);
      CHECK(r.exit_code != 0);
      CHECK(r.err.find(says) != std::string::npos);
    }
    CHECK(read_() == *known_);
  }

 private:
  std::function<std::string()> read_;
  std::optional<std::string> known_;
};

}  // namespace blockhaus::testing
