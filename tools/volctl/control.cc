#include "tools/volctl/control.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/base/logging.h"
#include "core/base/thread_name.h"
#include "core/pool/pool_dir.h"

namespace blockhaus::tools {
namespace {

constexpr uint32_t kMagic = 0x4c544356;        // "VCTL"
constexpr uint32_t kMaxArgs = 256;
constexpr uint32_t kMaxRequestField = 64 * 1024;
constexpr uint32_t kMaxResponseField = 256u << 20;
constexpr int kIoTimeoutMs = 30 * 1000;        // a stuck peer cannot hold the daemon

bool WriteAll(int fd, const void* data, size_t n) {
  auto p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool ReadAll(int fd, void* data, size_t n, int timeout_ms) {
  auto p = static_cast<char*>(data);
  while (n > 0) {
    if (timeout_ms >= 0) {
      pollfd pfd{fd, POLLIN, 0};
      int r = ::poll(&pfd, 1, timeout_ms);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
    }
    ssize_t got = ::recv(fd, p, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool WriteU32(int fd, uint32_t v) { return WriteAll(fd, &v, sizeof(v)); }

bool WriteField(int fd, const std::string& s) {
  return WriteU32(fd, static_cast<uint32_t>(s.size())) && WriteAll(fd, s.data(), s.size());
}

bool ReadU32(int fd, uint32_t* v, int timeout_ms) { return ReadAll(fd, v, sizeof(*v), timeout_ms); }

bool ReadField(int fd, std::string* s, uint32_t max, int timeout_ms) {
  uint32_t n = 0;
  if (!ReadU32(fd, &n, timeout_ms) || n > max) return false;
  s->resize(n);
  return ReadAll(fd, s->data(), n, timeout_ms);
}

int ConnectUnix(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) return -1;
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

}  // namespace

std::string ControlSocketPath() { return core::DefaultHome() + "/volctl.sock"; }

std::optional<int> ForwardToDaemon(int argc, char** argv) {
  int fd = ConnectUnix(ControlSocketPath());
  if (fd < 0 && (errno == EACCES || errno == EPERM)) {
    // A daemon runs but this user may not command it: say so rather than
    // fall back to opening pools the daemon holds.
    std::fprintf(stderr, "volctl: cannot reach the daemon at %s: permission denied\n",
                 ControlSocketPath().c_str());
    return 1;
  }
  if (fd < 0) return std::nullopt;
  char cwd[4096];
  std::string dir = ::getcwd(cwd, sizeof(cwd)) ? cwd : "/";
  bool ok = WriteU32(fd, kMagic) && WriteU32(fd, static_cast<uint32_t>(argc - 1));
  for (int i = 1; ok && i < argc; ++i) ok = WriteField(fd, argv[i]);
  ok = ok && WriteField(fd, dir);
  uint32_t magic = 0;
  uint32_t code = 0;
  std::string out, err;
  // No timeout on the answer: a long `volctl write` is legitimately slow.
  ok = ok && ReadU32(fd, &magic, -1) && magic == kMagic && ReadU32(fd, &code, -1) &&
       ReadField(fd, &out, kMaxResponseField, -1) && ReadField(fd, &err, kMaxResponseField, -1);
  ::close(fd);
  if (!ok) {
    std::fprintf(stderr, "volctl: lost the connection to the daemon at %s\n",
                 ControlSocketPath().c_str());
    return 1;
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fwrite(err.data(), 1, err.size(), stderr);
  return static_cast<int>(code);
}

Result<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& path,
                                                            CommandRunner runner) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return BH_ERROR(kInvalidArgument, "control socket path too long: {}", path);
  }
  if (int probe = ConnectUnix(path); probe >= 0) {
    ::close(probe);
    return BH_ERROR(kAlreadyExists, "a daemon already serves {}", path);
  }
  ::unlink(path.c_str());  // stale: nobody accepts on it
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return BH_ERROR(kIOError, "socket: {}", std::strerror(errno));
  mode_t old = ::umask(0177);  // the socket is 0600: root (or the daemon's user) only
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::umask(old);
  if (rc != 0 || ::listen(fd, 16) != 0) {
    int e = errno;
    ::close(fd);
    return BH_ERROR(kIOError, "cannot listen on {}: {}", path, std::strerror(e));
  }
  return std::unique_ptr<ControlServer>(new ControlServer(path, fd, std::move(runner)));
}

ControlServer::ControlServer(std::string path, int fd, CommandRunner runner)
    : path_(std::move(path)),
      fd_(fd),
      stop_fd_(::eventfd(0, EFD_CLOEXEC)),
      runner_(std::move(runner)),
      thread_([this] {
        NameThisThread("bh-control");
        AcceptLoop();
      }) {}

ControlServer::~ControlServer() {
  uint64_t one = 1;
  if (::write(stop_fd_, &one, sizeof(one)) < 0) BH_LOG(kWarning, "control: cannot wake the accept loop");
  thread_.join();
  ::close(fd_);
  ::close(stop_fd_);
  ::unlink(path_.c_str());
}

void ControlServer::AcceptLoop() {
  for (;;) {
    pollfd pfds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (::poll(pfds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      BH_LOG(kError, "control: poll: {}", std::strerror(errno));
      return;
    }
    if (pfds[1].revents) return;
    int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    Serve(conn);
    ::close(conn);
  }
}

void ControlServer::Serve(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      (cred.uid != 0 && cred.uid != ::geteuid())) {
    BH_LOG(kWarning, "control: refused a command from uid {}", cred.uid);
    CommandOutput denied{1, "", "volctl: permission denied: the daemon serves only root\n"};
    if (!(WriteU32(fd, kMagic) && WriteU32(fd, static_cast<uint32_t>(denied.exit_code)) &&
          WriteField(fd, denied.out) && WriteField(fd, denied.err))) {
      BH_LOG(kWarning, "control: the refused client left early");
    }
    return;
  }
  uint32_t magic = 0, argc = 0;
  if (!ReadU32(fd, &magic, kIoTimeoutMs) || magic != kMagic ||
      !ReadU32(fd, &argc, kIoTimeoutMs) || argc > kMaxArgs) {
    return;
  }
  std::vector<std::string> args(argc);
  for (std::string& a : args) {
    if (!ReadField(fd, &a, kMaxRequestField, kIoTimeoutMs)) return;
  }
  std::string cwd;
  if (!ReadField(fd, &cwd, kMaxRequestField, kIoTimeoutMs)) return;
  CommandOutput r = runner_(args, cwd);
  if (!(WriteU32(fd, kMagic) && WriteU32(fd, static_cast<uint32_t>(r.exit_code)) &&
        WriteField(fd, r.out) && WriteField(fd, r.err))) {
    BH_LOG(kWarning, "control: the client left before its answer");
  }
}

}  // namespace blockhaus::tools
