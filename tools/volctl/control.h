// The control socket: how volctl reaches a running daemon.
//
// `volctl serve` listens on $VOLCTL_HOME/volctl.sock (mode 0600). Any other
// volctl first tries that socket; when a daemon answers, the command line
// runs inside the daemon (on its open pools) and the client prints what it
// printed and exits with its code. With no daemon, the command runs in the
// client process and opens the pool itself. Either way the same command
// code runs, so the two paths cannot drift apart.
//
// Wire format (native byte order: both ends are this host's volctl):
//   request   u32 magic 'VCTL', u32 argc, argc x (u32 len, bytes), (u32 len, cwd)
//   response  u32 magic, i32 exit code, (u32 len, stdout), (u32 len, stderr)
// Only a peer with the daemon's uid or uid 0 is served (SO_PEERCRED).
//
// Thread safety: ControlServer runs one accept thread and executes
// commands one at a time.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/base/status.h"

namespace blockhaus::tools {

std::string ControlSocketPath();

// Runs argv[1..] in the daemon if one listens; nullopt when none does (no
// socket, or a stale one nobody accepts on).
std::optional<int> ForwardToDaemon(int argc, char** argv);

struct CommandOutput {
  int exit_code = 0;
  std::string out;
  std::string err;
};

// Runs one forwarded command line (args without the program name) in
// `cwd` and captures what it prints.
using CommandRunner =
    std::function<CommandOutput(const std::vector<std::string>& args, const std::string& cwd)>;

class ControlServer {
 public:
  // Binds the socket (replacing a stale one) and starts accepting.
  // Errors: AlreadyExists when another daemon answers on it; IOError.
  static Result<std::unique_ptr<ControlServer>> Start(const std::string& path,
                                                      CommandRunner runner);
  ~ControlServer();  // stops accepting and removes the socket

 private:
  ControlServer(std::string path, int fd, CommandRunner runner);
  void AcceptLoop();
  void Serve(int fd);

  std::string path_;
  int fd_;
  int stop_fd_;
  CommandRunner runner_;
  std::thread thread_;
};

}  // namespace blockhaus::tools
