// How a command reaches a pool: opened for the length of the command when
// no daemon runs, or borrowed from the daemon (`volctl serve`) that owns it.
//
// Both paths run the same command code: the daemon executes a forwarded
// command line with LivePools installed, so AcquirePool hands out its open
// pool and VolumeManager instead of opening the pool (which RocksDB's
// single-writer lock would refuse anyway).
//
// Thread safety: AcquirePool may be called from any thread; the daemon
// runs commands one at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/pool/pool.h"
#include "volume/volume_manager.h"

namespace blockhaus::tools {

class LiveEvents;

// A pool for one command. Owned (and closed on destruction) when opened by
// the command; borrowed when the daemon owns the pool.
struct PoolRef {
  std::string name;
  core::Pool* pool = nullptr;
  volume::VolumeManager* vm = nullptr;
  LiveEvents* live = nullptr;        // non-null inside the daemon

  PoolRef() = default;
  PoolRef(const PoolRef&) = delete;
  PoolRef& operator=(const PoolRef&) = delete;
  ~PoolRef();

  std::unique_ptr<volume::VolumeManager> owned_vm;
  std::unique_ptr<core::Pool> owned_pool;
};

// One iSCSI session, as `volctl sessions` shows it.
struct SessionRow {
  std::string initiator;
  std::string isid;
  std::string address;
  std::string target;
  std::vector<uint64_t> luns;
  uint64_t since = 0;          // seconds since the epoch
  uint64_t commands = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
};

// What the daemon wants to hear about from commands it runs, so live
// exports follow the volumes under them. Every method is called after the
// change committed.
class LiveEvents {
 public:
  virtual ~LiveEvents() = default;
  // A pool was created under the daemon's home: it opens and owns it.
  virtual Status PoolCreated(const std::string& pool) = 0;
  // Closes a pool the daemon owns (before `pool destroy`), or forgets one
  // it could not open (FAULTED) once `pool destroy -f` removed it.
  virtual Status ReleasePool(const std::string& pool) = 0;
  // `pool clear`: a pool the daemon could not open (FAULTED) is opened
  // again, with `recover` dropping a damaged intent log (core::PoolOptions::
  // discard_damaged_intent_log), and served. Its counters after the open;
  // nullopt when the pool is served already (nothing to clear).
  virtual Result<std::optional<core::PoolStats>> ClearPool(const std::string& pool,
                                                           bool recover) = 0;
  virtual std::vector<SessionRow> Sessions() = 0;
  // Exports changed in the pool (export/unexport): reload them.
  virtual Status ExportsChanged(const std::string& pool) = 0;
  // A volume was rolled back or resized: its LUNs get a UNIT ATTENTION.
  virtual void VolumeChanged(const std::string& pool, const std::string& volume,
                             bool size_changed) = 0;
};

// The daemon's side: pools it owns, lent to commands.
class LivePools {
 public:
  virtual ~LivePools() = default;
  // NotFound when the daemon does not own a pool of that name.
  virtual Result<std::unique_ptr<PoolRef>> Borrow(const std::string& name) = 0;
};

// Installed by the daemon for its lifetime (nulls to uninstall); null in a
// plain volctl.
void InstallLivePools(LivePools* pools, LiveEvents* events);
bool RunningInDaemon();
LiveEvents* CurrentLiveEvents();

// What a command does to its pool. A command that only looks (list, get,
// read, holds, diff, status, exports, destroy -n) opens the pool read-only
// when no daemon runs: it writes nothing under the pool directory and
// costs no fsync.
enum class Access { kReadWrite, kReadOnly };

// The pool named `name`: borrowed from the daemon, or opened here (with the
// coalescing worker off; Finish drains a bounded number of steps).
// Errors: InvalidArgument (bad name), NotFound, Unavailable (in use).
Result<std::unique_ptr<PoolRef>> AcquirePool(const std::string& name,
                                             Access access = Access::kReadWrite);

}  // namespace blockhaus::tools
