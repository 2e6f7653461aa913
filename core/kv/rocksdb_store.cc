// KvStore over RocksDB: the one adapter between pool metadata and rocksdb::DB.
//
// Overview
//   KvStore::Open opens (or creates) one rocksdb::DB with the column families
//   named in KvOptions; the index of a name in that list is the `cf` number
//   used by every call. Get/Write/NewIterator/Flush forward to RocksDB and
//   convert its Status to ours in exactly one place (FromRocks). KvBatch
//   records operations by cf number and is turned into a rocksdb::WriteBatch
//   at Write time, when the column family handles are known. When
//   KvOptions::fault_injector is set, all file I/O goes through its
//   FileSystem (rocksdb::NewCompositeEnv); see rocksdb_fault_fs.cc.
//   KvOptions::read_only opens with rocksdb::DB::OpenForReadOnly: the WAL
//   is replayed into memory only, no file in the directory is created,
//   renamed or written, and Write/Flush are refused before RocksDB sees them.
//
// Data structures & on-disk format
//   - DbCore (shared by the store and its iterators): the DB, the composite
//     Env (fault injection only; must outlive the DB), the handles of the
//     requested families (index = cf) and of families that exist on disk but
//     were not requested (RocksDB insists on opening them), the registry of
//     live iterators, and prefix_length.
//   - KvBatch::Rep: a vector of {kind, cf, key, value/end} ops.
//   - RocksKvIterator: a rocksdb::Iterator plus the upper-bound string that
//     ReadOptions::iterate_upper_bound points into (so it lives exactly as
//     long as the iterator), and the prefix of the last Seek.
//   On disk: a plain RocksDB directory (WAL, MANIFEST, SST, OPTIONS, LOG).
//   Every family uses a block-based table with one shared LRU block cache;
//   prefix families add a bloom filter, a fixed prefix extractor, a
//   memtable prefix bloom and, with insert_hint_length, memtable insert
//   hints (a skiplist splice kept per leading bytes).
//
// Invariants
//   - core->db is null iff the store is closed; then every call returns
//     Unavailable and every live iterator has been invalidated.
//   - handles.size() == KvOptions::column_families.size(); handles[0] is
//     "default".
//   - Keys written to a prefix family are at least prefix_length bytes long
//     (Write rejects shorter ones: the fixed prefix extractor reads that many
//     bytes of every key).
//   - An iterator never yields a key >= its upper bound or, with same_prefix,
//     outside the prefix of its Seek key (checked here, not only by RocksDB).
//
// Concurrency & lock order
//   DbCore::mu is a std::shared_mutex: Get/Write/Flush/NewIterator and every
//   iterator call hold it shared (RocksDB is thread-safe underneath); Close
//   holds it exclusively, so it waits for calls in flight and none can start
//   on a closed DB. DbCore::iter_mu guards the iterator registry. Order:
//   mu, then iter_mu. The fault injector's mutex is below both (taken only
//   inside RocksDB file calls). Close may run while another thread holds a
//   live iterator: Seek/Next/Valid/status stay safe (they see Unavailable),
//   but views from key()/value() die with the RocksDB iterator, so a caller
//   must not read them concurrently with Close.
//
// Crash consistency
//   The WAL is on and flushed to the OS on every write (manual_wal_flush =
//   false). Write(sync=true) sets WriteOptions::sync: one WAL fsync covers
//   the whole batch, and RocksDB fsyncs the directory of a new WAL before it
//   acknowledges. A batch is one WAL record, so after a crash recovery
//   (kPointInTimeRecovery) replays a prefix of the acknowledged batches and
//   never a part of one. Unsynced writes may survive or be lost; if one is
//   lost, all later ones are lost too.
//
// Failure handling
//   NotFound -> kNotFound; Incomplete (a memory_only iterator that needs
//   a file) -> kWouldBlock; Corruption -> kCorruption; IOError(NoSpace) ->
//   kResourceExhausted; IOError on the LOCK file -> kUnavailable ("metadata
//   store is locked by another process"); InvalidArgument "does not exist"
//   (no DB and !create_if_missing) -> kNotFound; other InvalidArgument ->
//   kInvalidArgument; anything else -> kIOError. After a write error RocksDB
//   may keep a background error and refuse further writes until reopened.
//   Close() cancels background work, closes the DB and reports its status;
//   the destructor calls Close() when the owner did not and ignores errors.
//
// Tunables (constants below)
//   kMaxOpenFiles (table cache), kKeepInfoLogs and kMaxInfoLogBytes (LOG
//   rotation), kBloomBitsPerKey, kMemtablePrefixBloomRatio, kMemtableBudget
//   (all memtables together); block cache size
//   comes from KvOptions::block_cache_bytes.

#include <algorithm>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include "core/base/thread_annotations.h"
#include "core/kv/internal/rocksdb_fault_fs.h"
#include "core/kv/kv_store.h"

namespace blockhaus::core {

namespace {

constexpr int kMaxOpenFiles = 512;
constexpr size_t kKeepInfoLogs = 3;
constexpr size_t kMaxInfoLogBytes = 1 << 20;
constexpr double kBloomBitsPerKey = 10;
constexpr double kMemtablePrefixBloomRatio = 0.05;
// Memtables of all families together; past it RocksDB flushes the largest.
// Its default (64 MiB per family, two each) let a daemon writing 4K blocks
// hold ~250 MiB of memtables.
constexpr size_t kMemtableBudget = 64 << 20;

rocksdb::Slice ToSlice(std::string_view s) { return rocksdb::Slice(s.data(), s.size()); }
std::string_view ToView(const rocksdb::Slice& s) { return std::string_view(s.data(), s.size()); }

bool IsLockError(const std::string& text) {
  return text.find("/LOCK") != std::string::npos ||
         text.find("lock hold") != std::string::npos ||
         text.find("lock file") != std::string::npos;
}

// The one conversion from rocksdb::Status to ours.
Status FromRocks(const rocksdb::Status& s, std::string_view context) {
  if (s.ok()) return Status::Ok();
  const std::string text = s.ToString();
  if (s.IsNotFound()) return BH_ERROR(kNotFound, "{}: {}", context, text);
  if (s.IsIncomplete()) return BH_ERROR(kWouldBlock, "{}: not in memory: {}", context, text);
  if (s.IsCorruption()) return BH_ERROR(kCorruption, "{}: {}", context, text);
  if (s.IsNoSpace()) return BH_ERROR(kResourceExhausted, "{}: out of space: {}", context, text);
  if (s.IsIOError() && IsLockError(text)) {
    return BH_ERROR(kUnavailable, "{}: metadata store is locked by another process ({})",
                    context, text);
  }
  if (s.IsInvalidArgument()) {
    if (text.find("does not exist") != std::string::npos) {
      return BH_ERROR(kNotFound, "{}: metadata store does not exist ({})", context, text);
    }
    return BH_ERROR(kInvalidArgument, "{}: {}", context, text);
  }
  return BH_ERROR(kIOError, "{}: {}", context, text);
}

Status ClosedError() { return BH_ERROR(kUnavailable, "metadata store is closed"); }

class RocksKvIterator;

}  // namespace

// Shared by a KvStore and its iterators (an iterator may outlive Close).
struct DbCore {
  std::shared_mutex mu;  // Shared: any use of db; exclusive: Close.
  std::unique_ptr<rocksdb::Env> env;  // Fault injection only; outlives db.
  std::unique_ptr<rocksdb::DB> db;    // Null once closed.
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // Index = cf.
  std::vector<rocksdb::ColumnFamilyHandle*> extra_handles;
  std::vector<bool> is_prefix_family;  // Index = cf.
  size_t prefix_length = 0;
  size_t insert_hint_length = 0;  // On the prefix families; 0: none.
  bool read_only = false;
  Mutex iter_mu;  // After mu.
  std::set<RocksKvIterator*> iterators BH_GUARDED_BY(iter_mu);

  // Require mu (shared or exclusive).
  Result<rocksdb::ColumnFamilyHandle*> Handle(int cf) const;
  Status CloseLocked();
};

namespace {

class RocksKvIterator final : public KvIterator {
 public:
  // An iterator that is invalid from the start with `error`.
  explicit RocksKvIterator(Status error) : status_(std::move(error)) {}
  RocksKvIterator(std::shared_ptr<DbCore> core, int cf, const KvIteratorOptions& options);
  ~RocksKvIterator() override;

  void Seek(std::string_view key) override;
  void SeekToFirst() override;
  bool Valid() const override;
  void Next() override;
  std::string_view key() const override { return ToView(it_->key()); }
  std::string_view value() const override { return ToView(it_->value()); }
  Status status() const override;

  // Drops the RocksDB iterator; requires core mu held exclusively.
  void Invalidate();

 private:
  void Settle();
  bool Fail(Status error);

  std::shared_ptr<DbCore> core_;
  std::string upper_bound_;  // iterate_upper_bound points into this.
  rocksdb::Slice upper_slice_;
  bool same_prefix_ = false;
  bool rocks_prefix_mode_ = false;  // RocksDB prefix seek (prefix families).
  std::string prefix_;
  bool in_range_ = false;
  std::unique_ptr<rocksdb::Iterator> it_;
  Status status_;
};

RocksKvIterator::RocksKvIterator(std::shared_ptr<DbCore> core, int cf,
                                 const KvIteratorOptions& options)
    : core_(std::move(core)), upper_bound_(options.upper_bound),
      same_prefix_(options.same_prefix && core_->prefix_length > 0),
      rocks_prefix_mode_(same_prefix_ && core_->is_prefix_family[cf]) {
  rocksdb::ReadOptions ro;
  if (!upper_bound_.empty()) {
    upper_slice_ = ToSlice(upper_bound_);
    ro.iterate_upper_bound = &upper_slice_;
  }
  ro.total_order_seek = !rocks_prefix_mode_;
  ro.prefix_same_as_start = rocks_prefix_mode_;
  if (options.memory_only) ro.read_tier = rocksdb::kBlockCacheTier;
  it_.reset(core_->db->NewIterator(ro, core_->handles[cf]));
  MutexLock lock(&core_->iter_mu);
  core_->iterators.insert(this);
}

RocksKvIterator::~RocksKvIterator() {
  if (core_ == nullptr) return;
  std::shared_lock lock(core_->mu);
  {
    MutexLock iter_lock(&core_->iter_mu);
    core_->iterators.erase(this);
  }
  it_.reset();
}

void RocksKvIterator::Invalidate() {
  it_.reset();
  if (status_.ok()) status_ = ClosedError();
}

bool RocksKvIterator::Fail(Status error) {
  if (status_.ok()) status_ = std::move(error);
  in_range_ = false;
  return false;
}

void RocksKvIterator::Settle() {
  in_range_ = it_->Valid();
  if (!in_range_) return;
  std::string_view k = ToView(it_->key());
  if (!upper_bound_.empty() && k >= upper_bound_) in_range_ = false;
  if (same_prefix_ && !k.starts_with(prefix_)) in_range_ = false;
}

void RocksKvIterator::Seek(std::string_view key) {
  if (core_ == nullptr) return;
  std::shared_lock lock(core_->mu);
  if (it_ == nullptr) return;
  if (rocks_prefix_mode_ && key.size() < core_->prefix_length) {
    Fail(BH_ERROR(kInvalidArgument, "same_prefix seek key of {} bytes is shorter than "
                  "the prefix length {}", key.size(), core_->prefix_length));
    return;
  }
  prefix_ = std::string(key.substr(0, std::min(key.size(), core_->prefix_length)));
  it_->Seek(ToSlice(key));
  Settle();
}

void RocksKvIterator::SeekToFirst() {
  if (core_ == nullptr) return;
  std::shared_lock lock(core_->mu);
  if (it_ == nullptr) return;
  if (rocks_prefix_mode_) {
    Fail(BH_ERROR(kInvalidArgument, "SeekToFirst on a same_prefix iterator of a prefix "
                  "family; use Seek"));
    return;
  }
  it_->SeekToFirst();
  if (same_prefix_ && it_->Valid()) {
    std::string_view k = ToView(it_->key());
    prefix_ = std::string(k.substr(0, std::min(k.size(), core_->prefix_length)));
  }
  Settle();
}

bool RocksKvIterator::Valid() const {
  if (core_ == nullptr) return false;
  std::shared_lock lock(core_->mu);
  return it_ != nullptr && status_.ok() && in_range_ && it_->Valid();
}

void RocksKvIterator::Next() {
  if (core_ == nullptr) return;
  std::shared_lock lock(core_->mu);
  if (it_ == nullptr || !in_range_ || !it_->Valid()) return;
  it_->Next();
  Settle();
}

Status RocksKvIterator::status() const {
  if (core_ == nullptr) return status_;
  std::shared_lock lock(core_->mu);  // Close may set status_.
  if (!status_.ok()) return status_;
  if (it_ == nullptr) return ClosedError();
  return FromRocks(it_->status(), "iterating metadata");
}

}  // namespace

Result<rocksdb::ColumnFamilyHandle*> DbCore::Handle(int cf) const {
  if (db == nullptr) return ClosedError();
  if (cf < 0 || static_cast<size_t>(cf) >= handles.size()) {
    return BH_ERROR(kInvalidArgument, "column family {} out of range (have {})", cf,
                    handles.size());
  }
  return handles[cf];
}

Status DbCore::CloseLocked() {
  if (db == nullptr) return ClosedError();
  {
    MutexLock lock(&iter_mu);
    for (RocksKvIterator* it : iterators) it->Invalidate();
    iterators.clear();
  }
  rocksdb::CancelAllBackgroundWork(db.get(), /*wait=*/true);
  for (auto* list : {&handles, &extra_handles}) {
    for (rocksdb::ColumnFamilyHandle* h : *list) {
      db->DestroyColumnFamilyHandle(h).PermitUncheckedError();  // Fails only for null.
    }
    list->clear();
  }
  rocksdb::Status s = db->Close();
  db.reset();
  env.reset();
  return FromRocks(s, "closing metadata store");
}

// ---------------------------------------------------------------- KvBatch

namespace {

enum class OpKind : uint8_t { kPut, kDelete, kDeleteRange };

// One operation; its key and argument live in the batch's byte buffer, so a
// commit of hundreds of thousands of operations allocates no string each.
struct BatchOp {
  OpKind kind;
  int cf;
  uint32_t key_len, arg_len;
  size_t key_at;  // into Rep::bytes; the argument follows the key
};

}  // namespace

struct KvBatch::Rep {
  std::vector<BatchOp> ops;
  std::string bytes;  // every op's key and argument, back to back
  size_t size = 0;    // byte_size()

  void Add(OpKind kind, int cf, std::string_view key, std::string_view arg) {
    ops.push_back({kind, cf, static_cast<uint32_t>(key.size()), static_cast<uint32_t>(arg.size()),
                   bytes.size()});
    bytes.append(key);
    bytes.append(arg);
  }
  std::string_view key(const BatchOp& op) const {
    return std::string_view(bytes).substr(op.key_at, op.key_len);
  }
  // Value (Put) or range end (DeleteRange).
  std::string_view arg(const BatchOp& op) const {
    return std::string_view(bytes).substr(op.key_at + op.key_len, op.arg_len);
  }
};

namespace {
constexpr size_t kOpOverhead = 8;  // Approximate tag + length bytes per op.
// What Reserve assumes one op takes in the byte buffer (a block map key
// and pointer are 24 + 48 bytes).
constexpr size_t kReservedBytesPerOp = 64;
}  // namespace

KvBatch::KvBatch() : rep_(std::make_unique<Rep>()) {}
KvBatch::~KvBatch() = default;
KvBatch::KvBatch(KvBatch&&) noexcept = default;
KvBatch& KvBatch::operator=(KvBatch&&) noexcept = default;

void KvBatch::Put(int cf, std::string_view key, std::string_view value) {
  rep_->size += key.size() + value.size() + kOpOverhead;
  rep_->Add(OpKind::kPut, cf, key, value);
}

void KvBatch::Delete(int cf, std::string_view key) {
  rep_->size += key.size() + kOpOverhead;
  rep_->Add(OpKind::kDelete, cf, key, {});
}

void KvBatch::DeleteRange(int cf, std::string_view begin, std::string_view end) {
  if (begin >= end) return;  // Empty range: nothing to delete.
  rep_->size += begin.size() + end.size() + kOpOverhead;
  rep_->Add(OpKind::kDeleteRange, cf, begin, end);
}

size_t KvBatch::count() const { return rep_->ops.size(); }
size_t KvBatch::byte_size() const { return rep_->size; }

void KvBatch::Reserve(size_t ops) {
  if (rep_->ops.empty() && rep_->ops.capacity() > 4 * ops + 1024) {
    *rep_ = Rep();  // kept from a much larger batch: give it back
  }
  rep_->ops.reserve(ops);
  rep_->bytes.reserve(ops * kReservedBytesPerOp);
}

void KvBatch::Clear() {
  rep_->ops.clear();
  rep_->bytes.clear();
  rep_->size = 0;
}

// ---------------------------------------------------------------- Open

namespace {

Status ValidateOptions(const KvOptions& o) {
  const auto& names = o.column_families;
  if (names.empty() || names[0] != rocksdb::kDefaultColumnFamilyName) {
    return BH_ERROR(kInvalidArgument, "column_families must start with \"default\"");
  }
  std::set<std::string> unique(names.begin(), names.end());
  if (unique.size() != names.size()) {
    return BH_ERROR(kInvalidArgument, "column_families has duplicate names");
  }
  if (o.read_only && o.create_if_missing) {
    return BH_ERROR(kInvalidArgument, "read_only excludes create_if_missing");
  }
  if (o.insert_hint_length > o.prefix_length) {
    return BH_ERROR(kInvalidArgument, "insert hint length {} exceeds the prefix length {}",
                    o.insert_hint_length, o.prefix_length);
  }
  for (int cf : o.prefix_families) {
    if (cf < 0 || static_cast<size_t>(cf) >= names.size()) {
      return BH_ERROR(kInvalidArgument, "prefix family {} out of range", cf);
    }
  }
  return Status::Ok();
}

rocksdb::DBOptions MakeDbOptions(const KvOptions& o, rocksdb::Env* env) {
  rocksdb::DBOptions d;
  d.create_if_missing = o.create_if_missing;
  d.create_missing_column_families = o.create_if_missing;
  d.manual_wal_flush = false;
  d.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  d.paranoid_checks = true;
  d.max_open_files = kMaxOpenFiles;
  // Table handlers load one family at a time; RocksDB's default of 16
  // threads per family started ~110 threads on every open of a pool.
  d.max_file_opening_threads = 1;
  d.db_write_buffer_size = kMemtableBudget;
  d.keep_log_file_num = kKeepInfoLogs;
  d.max_log_file_size = kMaxInfoLogBytes;
  d.recycle_log_file_num = 0;
  if (env != nullptr) d.env = env;
  return d;
}

rocksdb::ColumnFamilyOptions MakeCfOptions(const KvOptions& o, bool prefix,
                                           const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions c;
  rocksdb::BlockBasedTableOptions t;
  t.block_cache = cache;
  if (prefix && o.prefix_length > 0) {
    t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(kBloomBitsPerKey));
    t.whole_key_filtering = true;
    c.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(o.prefix_length));
    c.memtable_prefix_bloom_size_ratio = kMemtablePrefixBloomRatio;
    if (o.insert_hint_length > 0) {
      c.memtable_insert_with_hint_prefix_extractor.reset(
          rocksdb::NewFixedPrefixTransform(o.insert_hint_length));
    }
  }
  c.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  return c;
}

// Names of the families on disk; empty when the database must be created.
Result<std::vector<std::string>> ExistingFamilies(const std::string& path,
                                                  const rocksdb::DBOptions& d) {
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(d, path, &names);
  if (s.ok()) return names;
  if (s.IsPathNotFound() || s.IsNotFound()) {
    if (d.create_if_missing) return std::vector<std::string>();
    return BH_ERROR(kNotFound, "metadata store '{}' does not exist", path);
  }
  return FromRocks(s, FormatMessage("listing column families of '{}'", path));
}

struct OpenPlan {
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  size_t requested = 0;  // The first `requested` descriptors are KvOptions'.
  std::vector<bool> is_prefix_family;
};

Result<OpenPlan> PlanFamilies(const std::string& path, const KvOptions& o,
                              const std::vector<std::string>& existing) {
  auto cache = rocksdb::NewLRUCache(o.block_cache_bytes);
  OpenPlan plan;
  plan.requested = o.column_families.size();
  plan.is_prefix_family.assign(plan.requested, false);
  for (int cf : o.prefix_families) plan.is_prefix_family[cf] = o.prefix_length > 0;
  for (size_t i = 0; i < plan.requested; ++i) {
    const std::string& name = o.column_families[i];
    bool on_disk = std::find(existing.begin(), existing.end(), name) != existing.end();
    if (!on_disk && !existing.empty() && !o.create_if_missing) {
      return BH_ERROR(kNotFound, "column family '{}' does not exist in '{}'", name, path);
    }
    plan.descriptors.emplace_back(name, MakeCfOptions(o, plan.is_prefix_family[i], cache));
  }
  for (const std::string& name : existing) {
    auto& req = o.column_families;
    if (std::find(req.begin(), req.end(), name) != req.end()) continue;
    plan.descriptors.emplace_back(name, MakeCfOptions(o, false, cache));
  }
  return plan;
}

}  // namespace

struct KvStore::Rep {
  std::shared_ptr<DbCore> core;
};

KvStore::KvStore(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}

KvStore::~KvStore() {
  std::unique_lock lock(rep_->core->mu);
  if (rep_->core->db != nullptr) rep_->core->CloseLocked().IgnoreError();
}

Result<std::unique_ptr<KvStore>> KvStore::Open(const std::string& path,
                                               const KvOptions& options) {
  BH_RETURN_IF_ERROR(ValidateOptions(options));
  auto core = std::make_shared<DbCore>();
  core->prefix_length = options.prefix_length;
  core->insert_hint_length = options.insert_hint_length;
  core->read_only = options.read_only;
  if (options.fault_injector != nullptr) {
    core->env = rocksdb::NewCompositeEnv(options.fault_injector->rep()->fs);
  }
  rocksdb::DBOptions db_options = MakeDbOptions(options, core->env.get());
  BH_ASSIGN_OR_RETURN(std::vector<std::string> existing, ExistingFamilies(path, db_options));
  BH_ASSIGN_OR_RETURN(OpenPlan plan, PlanFamilies(path, options, existing));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s =
      options.read_only
          ? rocksdb::DB::OpenForReadOnly(db_options, path, plan.descriptors, &handles, &db)
          : rocksdb::DB::Open(db_options, path, plan.descriptors, &handles, &db);
  if (!s.ok()) return FromRocks(s, FormatMessage("opening metadata store '{}'", path));
  core->db.reset(db);
  core->handles.assign(handles.begin(), handles.begin() + plan.requested);
  core->extra_handles.assign(handles.begin() + plan.requested, handles.end());
  core->is_prefix_family = std::move(plan.is_prefix_family);
  auto rep = std::make_unique<Rep>();
  rep->core = std::move(core);
  return std::unique_ptr<KvStore>(new KvStore(std::move(rep)));
}

// ---------------------------------------------------------------- Operations

namespace {
Status ReadOnlyError() {
  return BH_ERROR(kFailedPrecondition, "metadata store is open read-only");
}
}  // namespace

Result<std::optional<std::string>> KvStore::Get(int cf, std::string_view key) {
  DbCore& core = *rep_->core;
  std::shared_lock lock(core.mu);
  BH_ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * handle, core.Handle(cf));
  std::string value;
  rocksdb::Status s = core.db->Get(rocksdb::ReadOptions(), handle, ToSlice(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return FromRocks(s, "reading metadata");
  return std::optional<std::string>(std::move(value));
}

namespace {

// Builds the RocksDB batch; requires core.mu held.
// The order in which BuildBatch adds ops: by (cf, key), stably, between
// range deletes (which stay where they are, so every op keeps its order
// relative to them). Distinct keys commute inside a batch, ops on one key keep
// their order, so the result is the same; but a memtable insert right after
// its neighbour reuses the skiplist's cached splice instead of searching from
// the top. A txg interleaves families and key ranges (a block's old and new
// birth keys, say), and sorting halved the cost of inserting its batch.
void ApplyOrder(const KvBatch::Rep& rep, std::vector<uint32_t>& order) {
  const std::vector<BatchOp>& ops = rep.ops;
  order.resize(ops.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  auto by_key = [&](uint32_t a, uint32_t b) {
    if (ops[a].cf != ops[b].cf) return ops[a].cf < ops[b].cf;
    return rep.key(ops[a]) < rep.key(ops[b]);
  };
  size_t begin = 0;
  for (size_t i = 0; i <= ops.size(); ++i) {
    if (i == ops.size() || ops[i].kind == OpKind::kDeleteRange) {
      std::stable_sort(order.begin() + begin, order.begin() + i, by_key);
      begin = i + 1;
    }
  }
}

Status BuildBatch(const DbCore& core, const KvBatch::Rep& rep, rocksdb::WriteBatch* wb) {
  using Kind = OpKind;
  thread_local std::vector<uint32_t> order;
  ApplyOrder(rep, order);
  for (uint32_t index : order) {
    const BatchOp& op = rep.ops[index];
    BH_ASSIGN_OR_RETURN(rocksdb::ColumnFamilyHandle * h, core.Handle(op.cf));
    std::string_view key = rep.key(op), arg = rep.arg(op);
    if (op.kind != Kind::kDeleteRange && core.is_prefix_family[op.cf] &&
        key.size() < core.prefix_length) {
      return BH_ERROR(kInvalidArgument, "key of {} bytes is shorter than the prefix length {} "
                      "of column family {}", key.size(), core.prefix_length, op.cf);
    }
    if (op.kind == Kind::kDeleteRange && core.is_prefix_family[op.cf] &&
        core.insert_hint_length > 0 && key.size() >= core.insert_hint_length) {
      // RocksDB before 9.2 (its PR 12558) files a range deletion's memtable
      // insert under the same hints as the point keys of its prefix, and a
      // point insert then starts from the other table's nodes: a corrupt
      // memtable. A begin key shorter than the hint is inserted without one.
      return BH_ERROR(kInvalidArgument, "range delete from a key of {} bytes in column family {}, "
                      "which keeps memtable insert hints of {} bytes: the begin key must be "
                      "shorter", key.size(), op.cf, core.insert_hint_length);
    }
    rocksdb::Status s;
    if (op.kind == Kind::kPut) s = wb->Put(h, ToSlice(key), ToSlice(arg));
    if (op.kind == Kind::kDelete) s = wb->Delete(h, ToSlice(key));
    if (op.kind == Kind::kDeleteRange) s = wb->DeleteRange(h, ToSlice(key), ToSlice(arg));
    BH_RETURN_IF_ERROR(FromRocks(s, "building metadata batch"));
  }
  return Status::Ok();
}

}  // namespace

Status KvStore::Write(KvBatch& batch, bool sync) {
  DbCore& core = *rep_->core;
  std::shared_lock lock(core.mu);
  if (core.db == nullptr) return ClosedError();
  if (core.read_only) return ReadOnlyError();
  // Kept per thread with its memory, as the commit keeps its KvBatch: a
  // txg's batch is megabytes, and new pages for it every commit cost page
  // faults. Given back when far larger than this batch.
  thread_local rocksdb::WriteBatch wb;
  // RocksDB's encoding adds a tag, a family and two lengths per operation.
  const size_t need = batch.byte_size() + 8 * batch.count() + 16;
  if (wb.Data().capacity() < need || wb.Data().capacity() > 4 * need + (64 << 10)) {
    wb = rocksdb::WriteBatch(need);
  }
  wb.Clear();
  Status s = BuildBatch(core, *batch.rep_, &wb);
  if (s.ok()) {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    s = FromRocks(core.db->Write(wo, &wb), "writing metadata batch");
  }
  wb.Clear();
  return s;
}

std::unique_ptr<KvIterator> KvStore::NewIterator(int cf, const KvIteratorOptions& options) {
  std::shared_ptr<DbCore> core = rep_->core;
  std::shared_lock lock(core->mu);
  Result<rocksdb::ColumnFamilyHandle*> handle = core->Handle(cf);
  if (!handle.ok()) return std::make_unique<RocksKvIterator>(handle.status());
  return std::make_unique<RocksKvIterator>(std::move(core), cf, options);
}

Status KvStore::Flush() {
  DbCore& core = *rep_->core;
  std::shared_lock lock(core.mu);
  if (core.db == nullptr) return ClosedError();
  if (core.read_only) return ReadOnlyError();
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return FromRocks(core.db->Flush(fo, core.handles), "flushing metadata store");
}

Status KvStore::Close() {
  std::unique_lock lock(rep_->core->mu);
  return rep_->core->CloseLocked();
}

}  // namespace blockhaus::core
