// Starts the real `volctl serve` for end-to-end tests: a private
// VOLCTL_HOME, a portal on 127.0.0.1 at a port picked at run time, the
// daemon's pid recorded and the daemon stopped by that pid.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/tools/run_volctl.h"

namespace blockhaus::testing {

// A TCP port nobody listens on right now (bind to 0, read it back).
inline int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

inline bool CanConnectUnix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
  ::close(fd);
  return ok;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// How the daemon's memory is paged. A test that bounds the growth of its
// VmRSS needs base pages: where transparent huge pages are on for every
// process (CI turns them on to build faster, .ci/run), one touch of a new
// heap region adds 2 MiB to the RSS whether or not anything leaked.
enum class Pages { kSystemDefault, kBaseOnly };

class DaemonProcess {
 public:
  // Starts `volctl serve --listen 127.0.0.1:<free port>` and waits (at most
  // 20 s) until its control socket answers.
  explicit DaemonProcess(std::string home, std::vector<std::string> extra = {},
                         Pages pages = Pages::kSystemDefault)
      : home_(std::move(home)), port_(FreePort()), log_(home_ + "/serve.log") {
    pid_ = ::fork();
    if (pid_ == 0) {
      // Inherited across execve (prctl(2)).
      if (pages == Pages::kBaseOnly) ::prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
      ::setenv("VOLCTL_HOME", home_.c_str(), 1);
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<std::string> args = {"volctl", "serve", "--listen",
                                       "127.0.0.1:" + std::to_string(port_)};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(BH_VOLCTL, argv.data());
      ::_exit(127);
    }
    REQUIRE(pid_ > 0);
    for (int i = 0; i < 400; ++i) {
      if (ReadFile(log_).find("ready;") != std::string::npos &&
          CanConnectUnix(home_ + "/volctl.sock")) {
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL("volctl serve exited during startup: " << ReadFile(log_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL("volctl serve did not become ready in 20 s: " << ReadFile(log_));
  }

  ~DaemonProcess() {
    if (pid_ > 0) Stop();
  }

  // SIGTERM, then SIGKILL after 20 s. Returns the exit status.
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 400; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    FAIL("volctl serve ignored SIGTERM for 20 s");
    return -1;
  }

  // kill -9, as a crash.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  bool Alive() const { return pid_ > 0 && ::kill(pid_, 0) == 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string portal() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return ReadFile(log_); }

 private:
  std::string home_;
  int port_;
  std::string log_;
  pid_t pid_ = -1;
};

}  // namespace blockhaus::testing
