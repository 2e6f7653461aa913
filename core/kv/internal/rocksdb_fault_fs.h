// Private to core/kv: the RocksDB side of KvFaultInjector. KvStore::Open reads
// Rep::fs to build a composite Env when KvOptions::fault_injector is set.
#pragma once

#include <memory>

#include <rocksdb/file_system.h>

#include "core/kv/kv_store.h"

namespace blockhaus::core {

class FaultState;

struct KvFaultInjector::Rep {
  // Bookkeeping shared with every wrapped file and directory.
  std::shared_ptr<FaultState> state;
  // A rocksdb::FileSystemWrapper over FileSystem::Default() that consults
  // `state` on every mutating call.
  std::shared_ptr<rocksdb::FileSystem> fs;
};

}  // namespace blockhaus::core
