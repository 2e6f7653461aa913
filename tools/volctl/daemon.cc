#include "tools/volctl/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "core/base/logging.h"
#include "core/pool/pool_dir.h"
#include "tools/volctl/commands.h"

namespace blockhaus::tools {
namespace {

std::string ReadBack(int fd) {
  std::string out;
  if (::lseek(fd, 0, SEEK_SET) < 0) return out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void FlushStdio() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(stdout);
  std::fflush(stderr);
}

}  // namespace

Result<std::unique_ptr<Daemon>> Daemon::Start(const DaemonOptions& options) {
  std::unique_ptr<Daemon> d(new Daemon());
  // Log lines keep going to the daemon's own stderr while commands borrow fd 2.
  d->log_fd_ = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
  if (d->log_fd_ >= 0) SetLogFd(d->log_fd_);
  std::string home = core::DefaultHome();
  std::error_code ec;
  std::filesystem::create_directories(home, ec);
  std::vector<std::string> names = options.pools;
  if (names.empty()) {
    BH_ASSIGN_OR_RETURN(names, core::ListPoolNames(home));
  }
  ExportServiceOptions eo;
  eo.listen = options.listen.empty() ? std::vector<std::string>{"127.0.0.1:3260"} : options.listen;
  eo.login_timeout = std::chrono::seconds(options.login_timeout_s);
  BH_ASSIGN_OR_RETURN(d->exports_, ExportService::Start(eo));
  for (const std::string& name : names) {
    // One pool that does not open must not keep the others from serving.
    if (Status s = d->OpenPool(name); !s.ok()) {
      BH_LOG(kError, "{}; not served (volctl pool clear {} opens it again)", s.ToString(), name);
      d->faulted_[name] = s;
    }
  }
  Daemon* self = d.get();
  InstallLivePools(self, self);  // before the first command can arrive
  BH_ASSIGN_OR_RETURN(d->control_,
                      ControlServer::Start(ControlSocketPath(),
                                           [self](const std::vector<std::string>& args,
                                                  const std::string& cwd) {
                                             return self->RunForwarded(args, cwd);
                                           }));
  return d;
}

Daemon::~Daemon() {
  control_.reset();  // no more commands
  InstallLivePools(nullptr, nullptr);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [name, p] : pools_) {
    if (exports_) exports_->DropPool(name);
  }
  exports_.reset();  // closes sessions and portals
  for (auto& [name, p] : pools_) {
    p.vm.reset();
    if (Status s = p.pool->Close(); !s.ok()) {
      BH_LOG(kError, "closing pool {}: {}", name, s.ToString());
    }
  }
  pools_.clear();
  SetLogFd(2);
  if (log_fd_ >= 0) ::close(log_fd_);
}

Status Daemon::OpenPool(const std::string& name, const core::PoolOptions& options) {
  BH_RETURN_IF_ERROR(core::ValidatePoolName(name));
  std::string dir = core::PoolDir(core::DefaultHome(), name);
  Result<std::unique_ptr<core::Pool>> pool = core::Pool::Open(dir, options);
  if (!pool.ok()) return pool.status().Annotate(fmt::format("cannot open pool '{}'", name));
  OwnedPool p;
  p.pool = std::move(pool).value();
  BH_ASSIGN_OR_RETURN(p.vm, volume::VolumeManager::Open(p.pool.get()));
  BH_RETURN_IF_ERROR(exports_->LoadPool(name, p.pool.get(), p.vm.get()));
  std::lock_guard<std::mutex> lock(mu_);
  pools_[name] = std::move(p);
  BH_LOG(kInfo, "serving pool {}", name);
  return Status::Ok();
}

void Daemon::WaitForSignal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  BH_LOG(kInfo, "signal {}: shutting down", sig);
}

std::vector<std::string> Daemon::Portals() const { return exports_->Portals(); }

Result<std::unique_ptr<PoolRef>> Daemon::Borrow(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pools_.find(name);
  if (auto f = faulted_.find(name); it == pools_.end() && f != faulted_.end()) {
    return Status(f->second).Annotate(fmt::format("pool '{}' is FAULTED", name));
  }
  if (it == pools_.end()) return NotServed(name);
  auto ref = std::make_unique<PoolRef>();
  ref->name = name;
  ref->pool = it->second.pool.get();
  ref->vm = it->second.vm.get();
  ref->live = this;
  return ref;
}

Status Daemon::NotServed(const std::string& name) {
  if (std::filesystem::exists(core::PoolDir(core::DefaultHome(), name) + "/label")) {
    return BH_ERROR(kUnavailable, "pool '{}' exists but this daemon does not serve it", name);
  }
  return BH_ERROR(kNotFound, "pool '{}' does not exist", name);
}

Status Daemon::PoolCreated(const std::string& pool) { return OpenPool(pool); }

Result<std::optional<core::PoolStats>> Daemon::ClearPool(const std::string& pool,
                                                         bool recover) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pools_.count(pool) != 0) return std::optional<core::PoolStats>();
    if (faulted_.count(pool) == 0) return NotServed(pool);
  }
  // Commands run one at a time, so nothing else opens it meanwhile.
  core::PoolOptions options;
  options.discard_damaged_intent_log = recover;
  Status s = OpenPool(pool, options);
  std::lock_guard<std::mutex> lock(mu_);
  if (!s.ok()) {
    faulted_[pool] = s;
    return s;
  }
  faulted_.erase(pool);
  return std::optional<core::PoolStats>(pools_.at(pool).pool->stats());
}

Status Daemon::ReleasePool(const std::string& pool) {
  OwnedPool p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pools_.find(pool);
    if (it == pools_.end()) {
      if (faulted_.erase(pool) != 0) return Status::Ok();  // its files are gone
      return BH_ERROR(kNotFound, "pool '{}' is not served", pool);
    }
    p = std::move(it->second);
    pools_.erase(it);
  }
  exports_->DropPool(pool);
  p.vm.reset();
  return p.pool->Close();
}

std::vector<SessionRow> Daemon::Sessions() { return exports_->Sessions(); }

Status Daemon::ExportsChanged(const std::string& pool) {
  auto ref = Borrow(pool);
  if (!ref.ok()) return ref.status();
  return exports_->LoadPool(pool, (*ref)->pool, (*ref)->vm);
}

void Daemon::VolumeChanged(const std::string& pool, const std::string& volume,
                           bool size_changed) {
  auto ref = Borrow(pool);
  if (ref.ok()) exports_->VolumeChanged(pool, (*ref)->vm, volume, size_changed);
}

CommandOutput Daemon::RunForwarded(const std::vector<std::string>& args,
                                   const std::string& cwd) {
  CommandOutput r;
  if (!args.empty() && args.front() == "serve") {
    r.exit_code = 1;
    r.err = "volctl: a daemon is already serving " + core::DefaultHome() + "\n";
    return r;
  }
  int out = ::memfd_create("volctl-stdout", MFD_CLOEXEC);
  int err = ::memfd_create("volctl-stderr", MFD_CLOEXEC);
  int here = ::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (out < 0 || err < 0 || here < 0 || ::chdir(cwd.c_str()) != 0) {
    r.exit_code = 1;
    r.err = "volctl: the daemon cannot run the command in " + cwd + "\n";
    for (int fd : {out, err, here}) {
      if (fd >= 0) ::close(fd);
    }
    return r;
  }
  FlushStdio();
  int saved_out = ::fcntl(1, F_DUPFD_CLOEXEC, 3);
  int saved_err = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
  ::dup2(out, 1);
  ::dup2(err, 2);
  try {
    r.exit_code = RunCommandLine(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "volctl: internal error: %s\n", e.what());
    r.exit_code = 1;
  }
  FlushStdio();
  ::dup2(saved_out, 1);
  ::dup2(saved_err, 2);
  ::close(saved_out);
  ::close(saved_err);
  if (::fchdir(here) != 0) BH_LOG(kWarning, "cannot return to the daemon's directory");
  ::close(here);
  r.out = ReadBack(out);
  r.err = ReadBack(err);
  ::close(out);
  ::close(err);
  return r;
}

}  // namespace blockhaus::tools
