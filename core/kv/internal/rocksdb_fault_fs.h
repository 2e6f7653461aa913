// Private to core/kv: the RocksDB FileSystem behind a KvFaultInjector.
#pragma once

#include <memory>

#include <rocksdb/file_system.h>

#include "core/kv/kv_store.h"

namespace blockhaus::core {

// The fault-injecting file system of `injector` (created on first use and
// shared by every store opened with it).
std::shared_ptr<rocksdb::FileSystem> FaultFileSystem(KvFaultInjector& injector);

}  // namespace blockhaus::core
