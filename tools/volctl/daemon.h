// The daemon (`volctl serve`): owns the pools of $VOLCTL_HOME, serves their
// exports over iSCSI and runs the commands other volctl processes forward.
//
// Startup: open every pool (or those named), start each pool's coalescing
// worker, build the LUNs of every stored export, start the iSCSI portals,
// then accept commands on the control socket. A pool that does not open is
// left FAULTED (its error logged, listed, returned to commands) and the
// others are served; `pool clear [-F]` opens it again. Shutdown (SIGTERM/SIGINT)
// runs the other way round: stop commands, close sessions, drop LUNs,
// close pools (a final txg commit).
//
// Concurrency: forwarded commands run one at a time on the control thread;
// iSCSI I/O runs on the export service's threads. mu_ guards the pool map
// only; a command holds no daemon lock while it works on a pool.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tools/volctl/control.h"
#include "tools/volctl/export_service.h"
#include "tools/volctl/pool_access.h"

namespace blockhaus::tools {

struct DaemonOptions {
  std::vector<std::string> listen;   // portals; default 127.0.0.1:3260
  std::vector<std::string> pools;    // empty: every pool in $VOLCTL_HOME
  int login_timeout_s = 15;          // accept -> full feature phase, 5..30 (SR-L1)
};

class Daemon : public LivePools, public LiveEvents {
 public:
  static Result<std::unique_ptr<Daemon>> Start(const DaemonOptions& options);
  ~Daemon() override;

  // Blocks until SIGTERM or SIGINT.
  void WaitForSignal();
  std::vector<std::string> Portals() const;

  // LivePools
  Result<std::unique_ptr<PoolRef>> Borrow(const std::string& name) override;
  // LiveEvents
  Status PoolCreated(const std::string& pool) override;
  Status ReleasePool(const std::string& pool) override;
  Result<std::optional<core::PoolStats>> ClearPool(const std::string& pool,
                                                   bool recover) override;
  std::vector<SessionRow> Sessions() override;
  Status ExportsChanged(const std::string& pool) override;
  void VolumeChanged(const std::string& pool, const std::string& volume,
                     bool size_changed) override;

 private:
  struct OwnedPool {
    std::unique_ptr<core::Pool> pool;
    std::unique_ptr<volume::VolumeManager> vm;
  };

  Daemon() = default;
  Status OpenPool(const std::string& name, const core::PoolOptions& options = {});
  // Why a pool that is neither served nor FAULTED is not: NotFound, or
  // Unavailable when it exists (not named at start).
  static Status NotServed(const std::string& name);
  CommandOutput RunForwarded(const std::vector<std::string>& args, const std::string& cwd);

  std::mutex mu_;
  std::map<std::string, OwnedPool> pools_;   // guarded by mu_
  std::map<std::string, Status> faulted_;    // why each did not open; guarded by mu_
  std::unique_ptr<ExportService> exports_;
  std::unique_ptr<ControlServer> control_;
  int log_fd_ = -1;
};

}  // namespace blockhaus::tools
