// Theory of operation: the metadata store (RocksDB adapter)
//
// Overview
//   All pool metadata lives in one RocksDB database in <pool>/meta with
//   named column families (core's block map families and a "client" family
//   for the layers above). This file is the only place that includes
//   RocksDB: it converts rocksdb::Status to ours, hides WriteBatch and
//   Iterator behind KvBatch and KvIterator, and wires in the fault injector
//   for tests.
//
// Data structures & on-disk format
//   RocksDB's own (WAL, SST files, MANIFEST). Column family index = position
//   in KvOptions::column_families; families named there but missing on disk
//   are created when create_if_missing is set. Families listed in
//   prefix_families get a fixed-length prefix extractor and a bloom filter,
//   so a block-map lookup (one Seek within lineage|blkno) skips SST files
//   that cannot hold the prefix.
//
// Invariants
//   * A KvBatch is applied atomically; Write(batch, sync=true) returns only
//     when the WAL holding it is fsynced. The pool issues one synced batch
//     per txg: that is the group commit.
//   * Iterators see a consistent snapshot taken at creation. An iterator
//     without same_prefix uses total order seek, so Next() runs across
//     prefixes correctly even on prefix-extractor families.
//
// Concurrency & lock order
//   rocksdb::DB is thread-safe; KvStore adds no lock of its own except the
//   closed flag (an atomic: Close may race a reader that then gets
//   Unavailable). Iterators and batches are thread-compatible.
//
// Crash consistency
//   WAL enabled, no manual WAL flush: a synced batch survives power loss;
//   an unsynced one may vanish whole but never half (RocksDB's default
//   point-in-time WAL recovery stops at the first torn record).
//
// Failure handling
//   rocksdb::Status maps to ours in one function (ToStatus): NotFound ->
//   NotFound, Corruption -> Corruption, NoSpace -> ResourceExhausted, a held
//   LOCK file -> Unavailable, everything else IOError. After a failed write
//   RocksDB may stop accepting writes (background error); the pool
//   suspends itself anyway and reopens to recover.
//
// Tunables
//   KvOptions::block_cache_bytes (64 MiB), prefix_length; max_open_files 256;
//   info log capped at 1 MiB x 2 files.

#include "core/kv/kv_store.h"

#include <algorithm>
#include <atomic>

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "core/kv/internal/rocksdb_fault_fs.h"

namespace blockhaus::core {
namespace {

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

Status ToStatus(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::Ok();
  std::string msg = std::string(what) + ": " + s.ToString();
  if (s.IsNotFound()) return BH_ERROR(kNotFound, "{}", msg);
  if (s.IsCorruption()) return BH_ERROR(kCorruption, "{}", msg);
  if (s.IsNoSpace()) return BH_ERROR(kResourceExhausted, "{}", msg);
  if (s.IsIOError() && s.ToString().find("lock") != std::string::npos) {
    return BH_ERROR(kUnavailable, "metadata store is locked by another process ({})", msg);
  }
  if (s.IsInvalidArgument()) {
    if (s.ToString().find("does not exist") != std::string::npos) {
      return BH_ERROR(kNotFound, "{}", msg);
    }
    return BH_ERROR(kInvalidArgument, "{}", msg);
  }
  return BH_ERROR(kIOError, "{}", msg);
}

class RocksIterator : public KvIterator {
 public:
  RocksIterator(std::unique_ptr<std::string> bound, std::unique_ptr<rocksdb::Slice> slice,
                rocksdb::Iterator* it)
      : bound_(std::move(bound)), slice_(std::move(slice)), it_(it) {}
  void Seek(std::string_view key) override { it_->Seek(ToSlice(key)); }
  void SeekToFirst() override { it_->SeekToFirst(); }
  bool Valid() const override { return it_->Valid(); }
  void Next() override { it_->Next(); }
  std::string_view key() const override { return ToView(it_->key()); }
  std::string_view value() const override { return ToView(it_->value()); }
  Status status() const override { return ToStatus(it_->status(), "iterator"); }

 private:
  // The bound must outlive the iterator that points at it.
  std::unique_ptr<std::string> bound_;
  std::unique_ptr<rocksdb::Slice> slice_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

}  // namespace

struct KvBatch::Rep {
  // Column family handles are bound at Write time: ops are recorded by index.
  struct Op {
    enum Kind { kPut, kDelete, kDeleteRange } kind;
    int cf;
    std::string a, b;
  };
  std::vector<Op> ops;
  size_t bytes = 0;
};

KvBatch::KvBatch() : rep_(std::make_unique<Rep>()) {}
KvBatch::~KvBatch() = default;
KvBatch::KvBatch(KvBatch&&) noexcept = default;
KvBatch& KvBatch::operator=(KvBatch&&) noexcept = default;

void KvBatch::Put(int cf, std::string_view key, std::string_view value) {
  rep_->ops.push_back({Rep::Op::kPut, cf, std::string(key), std::string(value)});
  rep_->bytes += key.size() + value.size();
}
void KvBatch::Delete(int cf, std::string_view key) {
  rep_->ops.push_back({Rep::Op::kDelete, cf, std::string(key), {}});
  rep_->bytes += key.size();
}
void KvBatch::DeleteRange(int cf, std::string_view begin, std::string_view end) {
  rep_->ops.push_back({Rep::Op::kDeleteRange, cf, std::string(begin), std::string(end)});
  rep_->bytes += begin.size() + end.size();
}
size_t KvBatch::count() const { return rep_->ops.size(); }
size_t KvBatch::byte_size() const { return rep_->bytes; }
void KvBatch::Clear() {
  rep_->ops.clear();
  rep_->bytes = 0;
}

struct KvStore::Rep {
  std::unique_ptr<rocksdb::Env> env;  // composite env over the fault FS, if any
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  std::unique_ptr<rocksdb::DB> db;
  std::atomic<bool> closed{false};

  Status CheckOpen() const {
    if (closed.load(std::memory_order_acquire)) {
      return BH_ERROR(kUnavailable, "metadata store is closed");
    }
    return Status::Ok();
  }
};

namespace {

rocksdb::ColumnFamilyOptions FamilyOptions(const KvOptions& o, int index,
                                           const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cf;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  bool prefixed = o.prefix_length > 0 &&
                  std::find(o.prefix_families.begin(), o.prefix_families.end(), index) !=
                      o.prefix_families.end();
  if (prefixed) {
    cf.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(o.prefix_length));
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    table.whole_key_filtering = false;
  }
  cf.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf.compression = rocksdb::kLZ4Compression;
  return cf;
}

rocksdb::DBOptions StoreOptions(const KvOptions& o, rocksdb::Env* env) {
  rocksdb::DBOptions db;
  db.create_if_missing = o.create_if_missing;
  db.create_missing_column_families = o.create_if_missing;
  db.max_open_files = 256;
  db.keep_log_file_num = 2;
  db.max_log_file_size = 1 << 20;
  db.max_background_jobs = 2;
  db.manual_wal_flush = false;
  if (env != nullptr) db.env = env;
  return db;
}

}  // namespace

KvStore::KvStore(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

KvStore::~KvStore() { Close().IgnoreError(); }

Result<std::unique_ptr<KvStore>> KvStore::Open(const std::string& path,
                                               const KvOptions& options) {
  if (options.column_families.empty() || options.column_families[0] != "default") {
    return BH_ERROR(kInvalidArgument, "column family 0 must be \"default\"");
  }
  auto rep = std::make_unique<Rep>();
  if (options.fault_injector != nullptr) {
    rep->env = rocksdb::NewCompositeEnv(FaultFileSystem(*options.fault_injector));
  }
  auto cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (size_t i = 0; i < options.column_families.size(); ++i) {
    families.emplace_back(options.column_families[i],
                          FamilyOptions(options, static_cast<int>(i), cache));
  }
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(StoreOptions(options, rep->env.get()), path, families,
                                        &rep->handles, &db);
  if (!s.ok()) return ToStatus(s, "opening metadata store " + path);
  rep->db.reset(db);
  return std::unique_ptr<KvStore>(new KvStore(std::move(rep)));
}

Result<std::optional<std::string>> KvStore::Get(int cf, std::string_view key) {
  BH_RETURN_IF_ERROR(rep_->CheckOpen());
  std::string value;
  rocksdb::Status s = rep_->db->Get(rocksdb::ReadOptions(), rep_->handles.at(static_cast<size_t>(cf)),
                                    ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return ToStatus(s, "metadata read");
  return std::optional<std::string>(std::move(value));
}

Status KvStore::Write(KvBatch& batch, bool sync) {
  BH_RETURN_IF_ERROR(rep_->CheckOpen());
  rocksdb::WriteBatch wb;
  for (const auto& op : batch.rep_->ops) {
    rocksdb::ColumnFamilyHandle* h = rep_->handles.at(static_cast<size_t>(op.cf));
    rocksdb::Status s;
    switch (op.kind) {
      case KvBatch::Rep::Op::kPut: s = wb.Put(h, op.a, op.b); break;
      case KvBatch::Rep::Op::kDelete: s = wb.Delete(h, op.a); break;
      case KvBatch::Rep::Op::kDeleteRange: s = wb.DeleteRange(h, op.a, op.b); break;
    }
    if (!s.ok()) return ToStatus(s, "building metadata batch");
  }
  rocksdb::WriteOptions wo;
  wo.sync = sync;
  return ToStatus(rep_->db->Write(wo, &wb), "metadata write");
}

std::unique_ptr<KvIterator> KvStore::NewIterator(int cf, const KvIteratorOptions& options) {
  rocksdb::ReadOptions ro;
  auto bound = std::make_unique<std::string>(options.upper_bound);
  std::unique_ptr<rocksdb::Slice> slice;
  if (!bound->empty()) {
    slice = std::make_unique<rocksdb::Slice>(*bound);
    ro.iterate_upper_bound = slice.get();
  }
  ro.prefix_same_as_start = options.same_prefix;
  ro.total_order_seek = !options.same_prefix;
  rocksdb::Iterator* it = rep_->db->NewIterator(ro, rep_->handles.at(static_cast<size_t>(cf)));
  return std::make_unique<RocksIterator>(std::move(bound), std::move(slice), it);
}

Status KvStore::Flush() {
  BH_RETURN_IF_ERROR(rep_->CheckOpen());
  return ToStatus(rep_->db->Flush(rocksdb::FlushOptions(), rep_->handles), "metadata flush");
}

Status KvStore::Close() {
  if (rep_->closed.exchange(true, std::memory_order_acq_rel)) return Status::Ok();
  if (!rep_->db) return Status::Ok();
  rocksdb::CancelAllBackgroundWork(rep_->db.get(), /*wait=*/true);
  Status result;
  for (auto* h : rep_->handles) {
    Status s = ToStatus(rep_->db->DestroyColumnFamilyHandle(h), "closing column family");
    if (result.ok()) result = s;
  }
  rep_->handles.clear();
  Status s = ToStatus(rep_->db->Close(), "closing metadata store");
  rep_->db.reset();
  return result.ok() ? s : result;
}

}  // namespace blockhaus::core
