// Names of our threads, as `top -H`, `ps -L`, perf and gdb show them:
// bh-sync-<pool> (a pool's commits), bh-release-<pool> (its release of
// rewritten blocks' space), bh-prepare (compression helpers),
// bh-coalesce (the volume worker), bh-loop-<n> and bh-io-<n> (the iSCSI
// event loops and I/O threads), bh-control (the daemon's control socket).
// RocksDB names its own (rocksdb:low, rocksdb:high).
// Thread safety: each call names or reads the calling thread only.
#pragma once

#include <string>
#include <string_view>

namespace blockhaus {

// Linux keeps 15 bytes of a thread's name; a longer one is cut there.
void NameThisThread(std::string_view name);
std::string ThisThreadName();

}  // namespace blockhaus
