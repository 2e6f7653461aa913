// Pool lifecycle and the I/O path. The commit protocol is in core/txg/txg.cc,
// block versions in core/blockmap/blockmap.cc; this file opens and closes the
// parts and admits reads and writes.

#include "core/pool/pool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/base/background_cpu.h"
#include "core/base/logging.h"
#include "core/base/sync_point.h"
#include "core/base/thread_name.h"
#include "core/pool/internal/pool_impl.h"
#include "core/txg/intent_format.h"

namespace blockhaus::core {
namespace {

constexpr uint64_t kMinDataSize = 8ull << 20;
// Retired space (blocks rewritten within their txg) goes back to the
// allocator once this much has piled up (the sync thread releases it), or
// when a reservation fails (the writer does).
constexpr uint64_t kReleaseRetiredBytes = 16ull << 20;

std::string EncodeU64(uint64_t v) {
  std::string s;
  PutLE64(&s, v);
  return s;
}

Result<uint64_t> DecodeU64(const std::optional<std::string>& v, std::string_view what) {
  if (!v || v->size() != 8) {
    return BH_ERROR(kCorruption, "metadata key '{}' is missing or malformed", what);
  }
  return DecodeLE64(AsBytes(*v));
}

uint64_t PickSlabSize(uint64_t capacity, uint32_t ashift) {
  uint64_t slab = 64ull << 20;
  while (slab > (1ull << 20) && slab * 64 > capacity) slab >>= 1;
  return std::max<uint64_t>(slab, uint64_t{1} << ashift);
}

uint64_t RandomGuid() {
  std::random_device rd;
  uint64_t g = 0;
  while (g == 0) g = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return g;
}

KvOptions MetaOptions(bool create, KvFaultInjector* injector, bool read_only = false) {
  KvOptions o;
  o.column_families = ColumnFamilyNames();
  o.create_if_missing = create;
  o.read_only = read_only;
  o.prefix_length = kBlockKeyPrefix;
  o.prefix_families = {kCfBlocks};
  // A commit inserts its blocks in key order, each beside the previous one
  // of its lineage (D39). The hint is the lineage and the top byte of the
  // block number (the same for every block of a volume below 2^56 blocks):
  // one byte longer than the lineage prefixes that lineage-wide range
  // deletes begin with, which keeps them out of the hints (KvOptions).
  o.insert_hint_length = sizeof(LineageId) + 1;
  o.fault_injector = injector;
  return o;
}

Status CheckCreateOptions(const PoolCreateOptions& o) {
  BH_RETURN_IF_ERROR(ValidatePoolName(o.name));
  if (o.ashift < 9 || o.ashift > 16) {
    return BH_ERROR(kInvalidArgument, "ashift {} is outside 9..16", o.ashift);
  }
  return Status::Ok();
}

// Opens (creating if needed) the data vdev of a new pool.
Result<std::unique_ptr<Vdev>> CreateDataVdev(const std::string& path, uint64_t size) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISBLK(st.st_mode)) {
      return BH_ERROR(kAlreadyExists, "data file {} already exists; remove it or name "
                      "another with --data", path);
    }
    return OpenFileVdev(path, FileVdevOptions{});
  }
  if (size == 0) {
    return BH_ERROR(kInvalidArgument, "a new data file needs a size (--size)");
  }
  return OpenFileVdev(path, FileVdevOptions{.create = true, .size = size});
}

}  // namespace

// Keys of the "alloc" family: a slab's map at its id, its log records at
// id + txg (allocator_format.h), so a slab's records follow its map.
void PutSlabRecords(KvBatch& batch, const std::vector<Allocator::SlabRecord>& records) {
  for (const Allocator::SlabRecord& r : records) {
    std::string key;
    PutBE64(&key, r.slab);
    if (r.txg == 0) {
      // A full map replaces the slab's log: every key id + txg.
      std::string logs_begin = key, logs_end;
      PutBE64(&logs_begin, 0);
      PutBE64(&logs_end, r.slab + 1);
      batch.DeleteRange(kCfAlloc, logs_begin, logs_end);
    } else {
      PutBE64(&key, r.txg);
    }
    batch.Put(kCfAlloc, key, r.value);
  }
}

namespace {

// Writes the first txg: every slab free, synced_txg = 1.
Status WriteInitialMetadata(KvStore& kv, const PoolLabel& label) {
  AllocatorGeometry g{label.data_start, label.data_size & ~((uint64_t{1} << label.ashift) - 1),
                      label.ashift, label.slab_size};
  Allocator alloc(g);
  KvBatch batch;
  PutSlabRecords(batch, alloc.TakeDirtySlabs(1));
  batch.Put(kCfDefault, kMetaKeyGuid, EncodeU64(label.guid));
  batch.Put(kCfDefault, kMetaKeyFormat, EncodeU64(kMetaFormatVersion));
  batch.Put(kCfDefault, kMetaKeySyncedTxg, EncodeU64(1));
  batch.Put(kCfDefault, kMetaKeyNextLineage, EncodeU64(1));
  return kv.Write(batch, /*sync=*/true);
}

// Removes what a create that died half-way left behind (no label yet).
void RemoveLeftovers(const std::string& dir, const std::string& data_path) {
  std::error_code ec;
  std::filesystem::remove_all(dir + "/meta", ec);
  std::filesystem::remove(dir + "/intent", ec);
  if (data_path == dir + "/data") std::filesystem::remove(data_path, ec);
}

}  // namespace

std::vector<std::string> ColumnFamilyNames() {
  return {"default", "blocks", "deadlist", "births", "lineages", "alloc", "client", "space"};
}

namespace {

Status CreateInDir(const std::string& dir, const PoolCreateOptions& options) {
  BH_ASSIGN_OR_RETURN(auto lock, PoolLock::Acquire(dir));
  PoolLabel label;
  label.name = options.name;
  label.data_path = options.data_path.empty() ? dir + "/data" : options.data_path;
  RemoveLeftovers(dir, label.data_path);
  BH_ASSIGN_OR_RETURN(auto vdev, CreateDataVdev(label.data_path, options.data_size));
  if (vdev->size() < kMinDataSize) {
    return BH_ERROR(kInvalidArgument, "data device of {} bytes is below the minimum of 8M",
                    vdev->size());
  }
  label.guid = RandomGuid();
  label.create_time = static_cast<uint64_t>(::time(nullptr));
  label.ashift = options.ashift;
  label.data_size = vdev->size();
  label.data_start = kDataReserved;
  label.slab_size = options.slab_size ? options.slab_size
                                      : PickSlabSize(label.data_size, label.ashift);
  if (label.slab_size % (uint64_t{1} << label.ashift) != 0) {
    return BH_ERROR(kInvalidArgument, "slab size must be a multiple of the sector size");
  }
  BH_ASSIGN_OR_RETURN(std::string encoded, EncodeLabel(label));
  BH_RETURN_IF_ERROR(vdev->Write(0, ConstByteSpan(AsBytes(encoded), encoded.size())));
  BH_RETURN_IF_ERROR(vdev->Sync());
  BH_RETURN_IF_ERROR(Pool::Impl::CreateIntentFile(dir, label.data_size, options.intent_log_bytes,
                                                  options.intent_log_prefill));
  {
    BH_ASSIGN_OR_RETURN(auto kv, KvStore::Open(dir + "/meta", MetaOptions(true, nullptr)));
    BH_RETURN_IF_ERROR(WriteInitialMetadata(*kv, label));
    BH_RETURN_IF_ERROR(kv->Close());
  }
  // The label file goes last: its presence is what makes the pool exist.
  return WriteFileAtomic(dir + "/label", encoded);
}

}  // namespace

Status Pool::Create(const std::string& dir, const PoolCreateOptions& options) {
  BH_RETURN_IF_ERROR(CheckCreateOptions(options));
  if (options.data_size != 0 && options.data_size < kMinDataSize) {
    return BH_ERROR(kInvalidArgument, "pool size {} is below the minimum of 8M",
                    options.data_size);
  }
  if (std::filesystem::exists(dir + "/label")) {
    return BH_ERROR(kAlreadyExists, "a pool already exists in {}", dir);
  }
  bool fresh_dir = !std::filesystem::exists(dir);
  std::string data_path = options.data_path.empty() ? dir + "/data" : options.data_path;
  bool data_existed = std::filesystem::exists(data_path);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return BH_ERROR(kIOError, "cannot create {}: {}", dir, ec.message());
  Status s = CreateInDir(dir, options);
  if (!s.ok() && fresh_dir) {
    // Leave nothing behind: a failed create must not change the host.
    std::filesystem::remove_all(dir, ec);
  }
  if (!s.ok() && !data_existed && std::filesystem::is_regular_file(data_path, ec)) {
    std::filesystem::remove(data_path, ec);
  }
  return s;
}

Pool::Pool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  MutexLock lock(&impl_->stage_anchor->mu);
  impl_->stage_anchor->pool = impl_.get();
}

Pool::~Pool() {
  Status s = Close();
  if (!s.ok()) BH_LOG(kError, "closing pool {}: {}", impl_->label.name, s.ToString());
  MutexLock lock(&impl_->stage_anchor->mu);
  impl_->stage_anchor->pool = nullptr;
}

namespace {

Status OpenVdev(Pool::Impl& p) {
  if (p.options.vdev != nullptr) {
    p.vdev = p.options.vdev;
  } else {
    FileVdevOptions vo;
    vo.read_only = p.options.read_only;
    vo.direct_writes = p.options.direct_run_bytes > 0;
    BH_ASSIGN_OR_RETURN(p.owned_vdev, OpenFileVdev(p.label.data_path, vo));
    p.vdev = p.owned_vdev.get();
  }
  if (p.vdev->size() < p.label.data_size) {
    return BH_ERROR(kCorruption, "data device {} has {} bytes, the label says {}",
                    p.label.data_path, p.vdev->size(), p.label.data_size);
  }
  std::string raw(kLabelSize, '\0');
  BH_RETURN_IF_ERROR(p.vdev->Read(0, ByteSpan(reinterpret_cast<uint8_t*>(raw.data()), raw.size())));
  Result<PoolLabel> on_vdev = DecodeLabel(raw);
  if (!on_vdev.ok() || on_vdev->guid != p.label.guid) {
    return BH_ERROR(kCorruption, "data device {} does not belong to pool {} (guid {:#x})",
                    p.label.data_path, p.label.name, p.label.guid);
  }
  return Status::Ok();
}

Status LoadMetadata(Pool::Impl& p) {
  BH_ASSIGN_OR_RETURN(auto guid_v, p.kv->Get(kCfDefault, kMetaKeyGuid));
  BH_ASSIGN_OR_RETURN(uint64_t guid, DecodeU64(guid_v, kMetaKeyGuid));
  if (guid != p.label.guid) {
    return BH_ERROR(kCorruption, "metadata store belongs to pool guid {:#x}, label says {:#x}",
                    guid, p.label.guid);
  }
  BH_ASSIGN_OR_RETURN(auto format_v, p.kv->Get(kCfDefault, kMetaKeyFormat));
  BH_ASSIGN_OR_RETURN(uint64_t format, DecodeU64(format_v, kMetaKeyFormat));
  if (format < kMetaFormatOldest || format > kMetaFormatVersion) {
    return BH_ERROR(kFailedPrecondition,
                    "pool {} has metadata format {}, this build reads formats {} to {}; "
                    "recreate the pool", p.label.name, format, kMetaFormatOldest,
                    kMetaFormatVersion);
  }
  if (format < kMetaFormatVersion && !p.options.read_only) {
    // From here on the pool may hold intent log records, which a build of
    // the older format would not replay: it must refuse the pool.
    KvBatch upgrade;
    upgrade.Put(kCfDefault, kMetaKeyFormat, EncodeU64(kMetaFormatVersion));
    BH_RETURN_IF_ERROR(p.kv->Write(upgrade, /*sync=*/true));
  }
  BH_ASSIGN_OR_RETURN(auto txg_v, p.kv->Get(kCfDefault, kMetaKeySyncedTxg));
  BH_ASSIGN_OR_RETURN(uint64_t synced, DecodeU64(txg_v, kMetaKeySyncedTxg));
  BH_ASSIGN_OR_RETURN(auto next_v, p.kv->Get(kCfDefault, kMetaKeyNextLineage));
  BH_ASSIGN_OR_RETURN(uint64_t next, DecodeU64(next_v, kMetaKeyNextLineage));
  MutexLock lock(&p.mu);
  p.synced_txg = synced;
  p.open_txg = synced + 1;
  p.next_lineage = next;
  auto it = p.kv->NewIterator(kCfLineages);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != 8) return BH_ERROR(kCorruption, "lineage key of bad size");
    BH_ASSIGN_OR_RETURN(LineageInfo info, DecodeLineage(it->value()));
    p.lineages[DecodeBE64(reinterpret_cast<const uint8_t*>(it->key().data()))] = info;
  }
  return it->status();
}

Status LoadAllocator(Pool::Impl& p) {
  const PoolLabel& l = p.label;
  AllocatorGeometry g{l.data_start, l.data_size & ~((uint64_t{1} << l.ashift) - 1), l.ashift,
                      l.slab_size};
  p.alloc = std::make_unique<Allocator>(g);
  uint64_t loaded = 0;
  auto it = p.kv->NewIterator(kCfAlloc);
  uint64_t last_map = UINT64_MAX;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto* key = reinterpret_cast<const uint8_t*>(it->key().data());
    if (it->key().size() != 8 && it->key().size() != 16) {
      return BH_ERROR(kCorruption, "slab key of bad size");
    }
    uint64_t id = DecodeBE64(key);
    if (it->key().size() == 8) {
      BH_RETURN_IF_ERROR(p.alloc->LoadSlab(id, it->value()).Annotate(fmt::format("slab {}", id)));
      last_map = id;
      ++loaded;
      continue;
    }
    uint64_t txg = DecodeBE64(key + 8);
    if (id != last_map) return BH_ERROR(kCorruption, "slab {} has a log but no map", id);
    BH_RETURN_IF_ERROR(
        p.alloc->LoadSlabLog(id, it->value()).Annotate(fmt::format("slab {} txg {}", id, txg)));
  }
  BH_RETURN_IF_ERROR(it->status());
  if (loaded != p.alloc->slab_count()) {
    return BH_ERROR(kCorruption, "metadata holds {} slab maps, the pool has {} slabs", loaded,
                    p.alloc->slab_count());
  }
  p.slop = std::max<uint64_t>(p.alloc->capacity() / 32, 4 * kMaxBlockSize);
  return Status::Ok();
}

// ZFS's zfs_dirty_data_max: a tenth of the memory, 64 MiB to 4 GiB. The
// dirty data sits in the page cache (D29), which the kernel can write back
// and reclaim; the daemon holds only a pointer per block.
uint64_t DefaultDirtyLimit() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page_size = sysconf(_SC_PAGE_SIZE);
  uint64_t ram = pages > 0 && page_size > 0 ? uint64_t(pages) * uint64_t(page_size) : 0;
  return std::clamp<uint64_t>(ram / 10, 64ull << 20, 4ull << 30);
}

}  // namespace

Result<std::unique_ptr<Pool>> Pool::Open(const std::string& dir, const PoolOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->options = options;
  if (impl->options.dirty_limit_bytes == 0) {
    impl->options.dirty_limit_bytes = DefaultDirtyLimit();
  }
  impl->buffers.SetLimit(std::min<uint64_t>(impl->options.dirty_limit_bytes, 32ull << 20));
  if (!impl->options.read_only) {
    uint64_t raw = impl->options.raw_dirty_bytes.value_or(impl->options.dirty_limit_bytes);
    if (raw >= kMaxBlockSize) {
      BH_ASSIGN_OR_RETURN(impl->dirty_scratch, DirtyScratch::Create(raw));
    }
  }
  if (!std::filesystem::exists(dir + "/label")) {
    return BH_ERROR(kNotFound, "no pool in {} (no label)", dir);
  }
  BH_ASSIGN_OR_RETURN(impl->pool_lock, PoolLock::Acquire(dir));
  BH_ASSIGN_OR_RETURN(std::string raw, ReadSmallFile(dir + "/label", kLabelSize));
  BH_ASSIGN_OR_RETURN(impl->label, DecodeLabel(raw));
  BH_RETURN_IF_ERROR(OpenVdev(*impl));
  if (!std::filesystem::exists(dir + "/meta/CURRENT")) {
    return BH_ERROR(kCorruption, "metadata store {}/meta is missing", dir);
  }
  Result<std::unique_ptr<KvStore>> kv =
      KvStore::Open(dir + "/meta",
                    MetaOptions(false, options.kv_fault_injector, options.read_only));
  if (!kv.ok() && kv.status().code() == Code::kNotFound) {
    // Format 1 pools lack the "space" column family.
    return BH_ERROR(kFailedPrecondition,
                    "pool {} has an older metadata format ({}); this build reads only "
                    "format {}; recreate the pool", impl->label.name, kv.status().message(),
                    kMetaFormatVersion);
  }
  BH_RETURN_IF_ERROR(kv.status());
  impl->kv = std::move(kv).value();
  BH_RETURN_IF_ERROR(LoadMetadata(*impl));
  BH_RETURN_IF_ERROR(SpaceLoad(*impl));
  BH_RETURN_IF_ERROR(LoadAllocator(*impl));
  BH_RETURN_IF_ERROR(impl->OpenIntentFile());
  {
    MutexLock lock(&impl->mu);
    impl->RefreshCounters();
  }
  if (!options.read_only) {
    int helpers = options.prepare_threads;
    if (helpers < 0) {
      helpers = std::clamp(static_cast<int>(std::thread::hardware_concurrency()) - 1, 0, 3);
    }
    if (helpers > 0) impl->prepare_pool = std::make_unique<WorkPool>(helpers, "bh-prepare");
  }
  Impl* raw_impl = impl.get();
  if (!options.read_only) {
    impl->sync_thread = std::thread([raw_impl, name = "bh-sync-" + impl->label.name] {
      NameThisThread(name);
      raw_impl->SyncLoop();
    });
    impl->release_thread = std::thread([raw_impl, name = "bh-release-" + impl->label.name] {
      NameThisThread(name);
      raw_impl->ReleaseLoop();
    });
  }
  std::unique_ptr<Pool> pool(new Pool(std::move(impl)));
  BH_RETURN_IF_ERROR(raw_impl->ReplayIntentLog());
  return pool;
}

Status Pool::Close() {
  Impl& p = *impl_;
  {
    MutexLock lock(&p.mu);
    if (p.closed) return p.failure;
    p.closing = true;
    p.commit_waiters++;  // the last commit: Close waits for it
    p.work_cv.notify_all();
  }
  // An intent log record being written finishes before the last commit
  // (which deletes it) and before the store closes; later ones see
  // `closing` and commit instead.
  { MutexLock order(&p.intent_mu); }
  if (p.sync_thread.joinable()) p.sync_thread.join();
  if (p.release_thread.joinable()) p.release_thread.join();
  Status result;
  {
    MutexLock lock(&p.mu);
    p.closed = true;
    result = p.failure;
  }
  if (p.kv) {
    Status s = p.kv->Close();
    if (result.ok()) result = s;
  }
  return result;
}

const PoolLabel& Pool::label() const { return impl_->label; }

void Pool::Impl::RefreshCounters() {
  // Reserved space is free as far as committed state goes: admission counts
  // the dirty data it holds on its own (open_bytes, syncing_bytes).
  MutexLock lock(&alloc_mu);
  counters.capacity = alloc->capacity();
  counters.free = alloc->free_bytes() + alloc->reserved_bytes();
  counters.deferred = alloc->deferred_bytes();
  counters.allocated = alloc->allocated_bytes();
  counters.slop = slop;
}

uint64_t Pool::unreserved_free() const {
  MutexLock lock(&impl_->mu);
  return impl_->UnreservedFree(0);
}

uint64_t Pool::reservation_room(LineageId lineage) const {
  MutexLock lock(&impl_->mu);
  return impl_->ReservationRoom(lineage);
}

Pool::Room Pool::room(LineageId lineage) const {
  MutexLock lock(&impl_->mu);
  return {impl_->counters.capacity, impl_->UnreservedFree(0) + impl_->ReservationRoom(lineage)};
}

PoolStats Pool::stats() const {
  MutexLock lock(&impl_->mu);
  PoolStats s = impl_->counters;
  s.dirty = impl_->open_bytes + impl_->syncing_bytes;
  if (impl_->alloc) {
    MutexLock alloc_lock(&impl_->alloc_mu);  // mu, then alloc_mu (RefreshCounters)
    s.reserved = impl_->alloc->reserved_bytes();
  }
  s.open_txg = impl_->open_txg;
  s.synced_txg = impl_->synced_txg;
  if (const DirtyScratch* raw = impl_->dirty_scratch.get()) {
    s.raw_dirty_capacity = raw->capacity();
    s.raw_dirty_bytes = raw->used();
    s.raw_dirty_peak = raw->peak();
    s.raw_dirty_full = raw->misses();
    s.raw_copied_ahead = impl_->raw_copied_ahead.load(std::memory_order_relaxed);
    s.direct_bytes = impl_->direct_bytes.load(std::memory_order_relaxed);
  }
  return s;
}

Status Pool::health() const {
  MutexLock lock(&impl_->mu);
  return impl_->failure;
}

uint64_t Pool::Impl::ReservationRoom(LineageId lineage) const {
  uint64_t dirty = 0;
  if (auto it = open_by_lineage.find(lineage); it != open_by_lineage.end()) dirty += it->second;
  if (auto it = syncing_by_lineage.find(lineage); it != syncing_by_lineage.end()) {
    dirty += it->second;
  }
  MutexLock lock(&space_mu);
  auto it = space.find(lineage);
  if (it == space.end()) return 0;
  uint64_t used = it->second.head_new.phys + dirty;
  return it->second.reservation > used ? it->second.reservation - used : 0;
}

uint64_t Pool::Impl::UnreservedFree(LineageId except) const {
  std::vector<LineageId> reserved;
  {
    MutexLock lock(&space_mu);
    for (const auto& [id, s] : space) {
      if (s.reservation > 0 && id != except) reserved.push_back(id);
    }
  }
  uint64_t held = open_bytes + syncing_bytes + slop;
  for (LineageId id : reserved) held += ReservationRoom(id);
  return counters.free > held ? counters.free - held : 0;
}

// D4 and D14: new data must leave room for the slop, for all dirty data and
// for every other lineage's unused reservation. A lineage with a
// reservation writes into it first (and may then use the slop, which its
// reservation already covers), and an overwrite of a version only the head
// sees may use the slop too: its commit frees what it allocates, so a full
// thick volume can always overwrite itself.
Status Pool::Impl::CheckWritable(LineageId lineage, uint64_t bytes, bool overwrite_own) {
  if (!failure.ok()) {
    return BH_ERROR(kUnavailable, "pool {} is suspended: {}", label.name, failure.ToString());
  }
  if (closing) return BH_ERROR(kUnavailable, "pool {} is closing", label.name);
  if (options.read_only) return ReadOnlyError();
  auto it = lineages.find(lineage);
  if (it == lineages.end()) return BH_ERROR(kNotFound, "lineage {} does not exist", lineage);
  if (it->second.destroying) {
    return BH_ERROR(kFailedPrecondition, "lineage {} is being destroyed", lineage);
  }
  if (bytes == 0) return Status::Ok();
  uint64_t free = counters.free;
  uint64_t dirty = open_bytes + syncing_bytes;
  uint64_t own = ReservationRoom(lineage);
  uint64_t others = 0;
  std::vector<LineageId> reserved;
  {
    MutexLock lock(&space_mu);
    for (const auto& [id, s] : space) {
      if (s.reservation > 0 && id != lineage) reserved.push_back(id);
    }
  }
  for (LineageId id : reserved) others += ReservationRoom(id);
  uint64_t own_left = own > bytes ? own - bytes : 0;
  uint64_t need = dirty + bytes + others + own_left;
  if (need + slop <= free) return Status::Ok();
  if (bytes <= own && need <= free) return Status::Ok();
  if (overwrite_own && dirty + bytes + others <= free) return Status::Ok();
  uint64_t room = free > dirty + others + slop ? free - dirty - others - slop : 0;
  return BH_ERROR(kResourceExhausted,
                  "pool {} is out of space: {} bytes free for this volume ({} reserved by "
                  "others, {} kept back so frees always work)",
                  label.name, room + own, others, slop);
}

bool Pool::Impl::OverwritesHeadOnly(LineageId lineage, uint64_t blkno) {
  uint64_t fence = 0;
  {
    MutexLock lock(&mu);
    DirtyKey key{lineage, blkno};
    auto it = open.find(key);
    if (it != open.end() && !it->second.ptr.hole) return true;  // replaces dirty data
    if (syncing && syncing->contains(key)) return true;     // head-only once committed
    auto li = lineages.find(lineage);
    if (li == lineages.end()) return false;
    fence = li->second.fence_txg;
  }
  auto head = HeadVersion(lineage, blkno);
  return head.ok() && head->has_value() && (*head)->first > fence && !(*head)->second.hole;
}

Status Pool::Impl::PutDirty(LineageId lineage, uint64_t blkno, DirtyBlock block,
                            uint64_t bytes) {
  bool overwrite_own = false;
  bool looked = false;
  for (int waits = 0;;) {
    std::unique_lock<Mutex> guard(mu);
    // Throttle: past the dirty limit, wait for the syncing txg to finish.
    while (OpenTxgFull() && failure.ok() && !closing) {
      WaitingForCommit waiting(*this);
      work_cv.notify_all();
      done_cv.wait(guard);
    }
    Status s = CheckWritable(lineage, bytes, overwrite_own);
    if (s.code() == Code::kResourceExhausted && !looked) {
      // Near full: an overwrite of head-only data frees what it takes.
      guard.unlock();
      looked = true;
      overwrite_own = OverwritesHeadOnly(lineage, blkno);
      continue;
    }
    if (s.code() == Code::kResourceExhausted && waits < 2 && CommitInFlight(guard)) {
      ++waits;  // dirty data and its frees were in flight: look again
      continue;
    }
    BH_RETURN_IF_ERROR(s);
    DirtyBlock replaced = InsertDirty(lineage, blkno, std::move(block), bytes);
    if (OpenTxgDue()) work_cv.notify_all();
    guard.unlock();
    if (!replaced.ptr.hole) Retire(std::span<const DirtyBlock>(&replaced, 1));
    return Status::Ok();
  }
}

DirtyBlock Pool::Impl::InsertDirty(LineageId lineage, uint64_t blkno, DirtyBlock block,
                                   uint64_t bytes) {
  auto [it, inserted] = open.try_emplace(DirtyKey{lineage, blkno});
  DirtyBlock replaced;
  replaced.ptr.hole = true;
  if (!inserted && !it->second.ptr.hole) {
    open_bytes -= it->second.ptr.lsize;
    open_by_lineage[lineage] -= it->second.ptr.lsize;
    replaced = it->second;
  }
  if (options.intent_log_max_bytes > 0) {
    open_unlogged.push_back(it->first);
    open_unlogged_bytes += kIntentEntryOverhead + (block.ptr.hole ? 0 : block.ptr.psize);
  }
  it->second = std::move(block);
  open_bytes += bytes;
  open_by_lineage[lineage] += bytes;
  return replaced;
}

void Pool::Impl::UnreservePlaced(std::span<const PreparedBlock> blocks) {
  MutexLock lock(&alloc_mu);
  for (const PreparedBlock& b : blocks) {
    alloc->Unreserve(Extent{b.ptr.offset, alloc->RoundUp(b.ptr.psize)});
  }
}

Status Pool::Impl::PutDirtyNoWait(LineageId lineage, uint64_t first,
                                  const std::vector<PreparedBlock>& blocks, uint32_t block_size,
                                  uint64_t raw) {
  thread_local std::vector<DirtyBlock> replaced;
  replaced.clear();
  {
    std::unique_lock<Mutex> guard(mu);
    // The throttle was checked before the blocks were prepared; a writer
    // that got past it then goes in even if the txg filled meanwhile (an
    // overshoot of one write per event loop). The space check is exact.
    if (!failure.ok() || closing ||
        !CheckWritable(lineage, blocks.size() * uint64_t{block_size}, false).ok()) {
      guard.unlock();
      UnreservePlaced(blocks);
      return BH_ERROR(kWouldBlock, "the write would wait for a commit");
    }
    for (size_t k = 0; k < blocks.size(); ++k) {
      DirtyBlock block{blocks[k].ptr};
      if (raw != DirtyBlock::kNotRaw) block.raw = raw + k * block_size;
      DirtyBlock old = InsertDirty(lineage, first + k, block, block_size);
      if (!old.ptr.hole) replaced.push_back(old);
    }
    if (OpenTxgDue()) work_cv.notify_all();
  }
  if (!replaced.empty()) Retire(replaced);
  return Status::Ok();
}

bool Pool::Impl::CommitInFlight(std::unique_lock<Mutex>& guard) {
  if (open.empty() && !syncing) return false;
  uint64_t target = open.empty() ? open_txg - 1 : open_txg;
  flush_target = std::max(flush_target, target);
  work_cv.notify_all();
  WaitingForCommit waiting(*this);
  while (synced_txg < target && failure.ok() && !closing) done_cv.wait(guard);
  return true;
}

Status Pool::Impl::Suspend(const Status& cause) {
  MutexLock lock(&mu);
  if (failure.ok()) {
    failure = cause;
    BH_LOG(kError, "pool {} suspended: {}", label.name, cause.ToString());
    work_cv.notify_all();
    done_cv.notify_all();
  }
  return BH_ERROR(kUnavailable, "pool {} is suspended: {}", label.name, failure.ToString());
}

void Pool::Impl::Retire(std::span<const DirtyBlock> replaced) {
  bool due;
  {
    MutexLock lock(&alloc_mu);
    for (const DirtyBlock& block : replaced) {
      uint64_t len = alloc->RoundUp(block.ptr.psize);
      retired.push_back(Extent{block.ptr.offset, len});
      retired_bytes += len;
      if (block.is_raw()) {
        retired_raw.push_back(Extent{block.raw, block.ptr.lsize});
        retired_raw_bytes += block.ptr.lsize;
      }
    }
    // An eighth of a small scratch area, so that its writers do not find
    // it full of copies they replaced.
    due = retired_bytes >= kReleaseRetiredBytes ||
          (retired_raw_bytes > 0 && retired_raw_bytes >= dirty_scratch->capacity() / 8);
  }
  // A txg that rewrites the same blocks would otherwise hold the space of
  // every copy until its commit, and its commit would write every copy out
  // (they are dirty pages of the data file). Released, the space is the
  // lowest free again and the next copies land on the same pages.
  if (due) {
    MutexLock lock(&mu);
    if (!release_wanted) {
      release_wanted = true;
      work_cv.notify_all();
    }
  }
}

void Pool::Impl::ReleaseRetired() {
  std::unique_lock<std::shared_mutex> gate(read_gate);
  MutexLock lock(&alloc_mu);
  for (const Extent& e : retired) alloc->Unreserve(e);
  for (const Extent& e : retired_raw) dirty_scratch->Free(e.offset, e.length);
  retired.clear();
  retired_raw.clear();
  retired_bytes = 0;
  retired_raw_bytes = 0;
}

void Pool::Impl::ReleaseLoop() {
  std::unique_lock<Mutex> guard(mu);
  while (!closing) {
    if (!release_wanted) {
      work_cv.wait(guard);
      continue;
    }
    release_wanted = false;
    guard.unlock();
    ReleaseRetired();
    guard.lock();
  }
}

Status Pool::Impl::WriteAt(std::span<const PreparedBlock> blocks, bool direct) {
  static const std::vector<uint8_t> kZeros(kMaxBlockSize, 0);
  // Direct only where a sector holds whole pages: below a page, a block
  // written buffered could share a cache page with one written direct,
  // and the kernel cannot drop a page dirtied while it writes beside it.
  static const uint64_t kPage = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t align = direct ? vdev->direct_alignment() : 0;
  if (align != 0 && alloc->RoundUp(1) % std::max(align, kPage) == 0) {
    return WriteDirectAt(blocks, align);
  }
  thread_local std::vector<ConstByteSpan> iov;
  for (size_t j = 0; j < blocks.size();) {
    const uint64_t start = blocks[j].ptr.offset;
    uint64_t end = start;
    iov.clear();
    for (; j < blocks.size() && blocks[j].ptr.offset == end && iov.size() < kWriteIov; ++j) {
      const PreparedBlock& b = blocks[j];
      uint64_t len = alloc->RoundUp(b.ptr.psize);
      iov.emplace_back(b.payload->data(), b.ptr.psize);
      if (len > b.ptr.psize) iov.emplace_back(kZeros.data(), len - b.ptr.psize);
      end += len;
    }
    BH_RETURN_IF_ERROR(vdev->WriteV(start, iov).Annotate("writing data blocks"));
  }
  return Status::Ok();
}

// The blocks' payloads are copied, each padded with zeros to its sector,
// into a staging buffer aligned as the device asks, a run of back-to-back
// blocks at a time (at most kDirectStage bytes), and each run goes out
// with one direct write. The copy is of compressed bytes the helpers just
// wrote; what it saves is the buffered write's copy into the page cache,
// onto cache pages the kernel must first find or allocate (D55).
Status Pool::Impl::WriteDirectAt(std::span<const PreparedBlock> blocks, uint64_t align) {
  struct AlignedFree {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<uint8_t, AlignedFree> stage;
  thread_local uint64_t stage_align = 0;
  if (!stage || stage_align < align) {
    stage.reset(static_cast<uint8_t*>(std::aligned_alloc(std::max<uint64_t>(align, 4096),
                                                         kDirectStage)));
    if (!stage) return BH_ERROR(kResourceExhausted, "no memory for a direct write's staging buffer");
    stage_align = std::max<uint64_t>(align, 4096);
  }
  for (size_t j = 0; j < blocks.size();) {
    const uint64_t start = blocks[j].ptr.offset;
    uint64_t used = 0;
    for (; j < blocks.size() && blocks[j].ptr.offset == start + used; ++j) {
      const PreparedBlock& b = blocks[j];
      const uint64_t len = alloc->RoundUp(b.ptr.psize);
      if (used + len > kDirectStage) break;
      std::memcpy(stage.get() + used, b.payload->data(), b.ptr.psize);
      std::memset(stage.get() + used + b.ptr.psize, 0, len - b.ptr.psize);
      used += len;
    }
    BH_RETURN_IF_ERROR(vdev->WriteDirect(start, ConstByteSpan(stage.get(), used))
                           .Annotate("writing data blocks"));
    direct_bytes.fetch_add(used, std::memory_order_relaxed);
  }
  return Status::Ok();
}

Status Pool::Impl::Place(std::span<PreparedBlock> blocks, bool nowait, bool write) {
  std::vector<Extent> runs;
  uint64_t remaining = 0;
  for (const PreparedBlock& b : blocks) remaining += alloc->RoundUp(b.ptr.psize);
  auto unreserve_all = [&] {
    MutexLock lock(&alloc_mu);
    for (const Extent& e : runs) alloc->Unreserve(e);
  };
  for (size_t i = 0; i < blocks.size();) {
    Result<Extent> run = BH_ERROR(kResourceExhausted, "not tried");
    for (int waits = 0, releases = 0;;) {
      bool have_retired;
      {
        MutexLock lock(&alloc_mu);
        // Room held for blocks written later (raw ones, D50) comes off the
        // top, so that the low space stays with the blocks written now.
        run = write ? alloc->Reserve(alloc->RoundUp(blocks[i].ptr.psize), remaining)
                    : alloc->ReserveHigh(alloc->RoundUp(blocks[i].ptr.psize), remaining);
        have_retired = !retired.empty();
      }
      if (run.ok() || nowait) break;
      if (have_retired && releases < 4) {
        ++releases;
        ReleaseRetired();  // the space of blocks rewritten in this txg
        continue;
      }
      // Near full, the frees of the txgs in flight (an overwrite frees what
      // it replaces once committed) may make the room: as PutDirty does.
      std::unique_lock<Mutex> guard(mu);
      if (waits < 2 && CommitInFlight(guard)) {
        ++waits;
        continue;
      }
      break;
    }
    if (!run.ok()) {
      unreserve_all();
      if (nowait) return BH_ERROR(kWouldBlock, "no room without waiting for a commit");
      return BH_ERROR(kResourceExhausted, "pool {} is out of space: {}", label.name,
                      run.status().message());
    }
    runs.push_back(*run);
    uint64_t pos = run->offset;
    for (; i < blocks.size(); ++i) {
      PreparedBlock& b = blocks[i];
      uint64_t len = alloc->RoundUp(b.ptr.psize);
      if (pos + len > run->end()) break;
      b.ptr.offset = pos;
      pos += len;
      remaining -= len;
    }
    if (pos < run->end()) {
      MutexLock lock(&alloc_mu);
      alloc->Unreserve(Extent{pos, run->end() - pos});
      runs.back().length = pos - run->offset;
    }
  }
  Status written = write ? WriteAt(blocks) : Status::Ok();
  if (!written.ok()) {
    // As a failed write in a commit always did: the device is not to be
    // trusted, and nothing more commits until the pool is reopened.
    unreserve_all();
    return Suspend(written);
  }
  return Status::Ok();
}

PreparedBlock Pool::Impl::Prepare(ConstByteSpan data, const BlockOptions& block_options) {
  BH_SYNC_POINT("pool:prepare-block");
  PreparedBlock b;
  b.ptr.lsize = static_cast<uint32_t>(data.size());
  b.ptr.psize = b.ptr.lsize;
  b.ptr.checksum_type = block_options.checksum;
  const uint64_t sector = uint64_t{1} << label.ashift;
  auto sectors = [sector](uint64_t n) { return (n + sector - 1) / sector; };
  std::shared_ptr<Buffer> payload;
  // A compressed block is kept only when it takes fewer sectors, so the
  // codec gets room for one sector less than the block and gives up as soon
  // as its output passes that; a block of one sector is not compressed at
  // all (4K blocks on 4K sectors: the result could never be kept).
  const uint64_t room = (sectors(data.size()) - 1) * sector;
  if (block_options.compression.algo != CompressionAlgo::kOff && room > 0) {
    payload = buffers.Get(std::min<uint64_t>(
        room, CompressBound(block_options.compression, data.size())));
    size_t n = Compress(block_options.compression, data, *payload);
    if (n > 0 && sectors(n) < sectors(data.size())) {
      payload->resize(n);
      b.ptr.psize = static_cast<uint32_t>(n);
      b.ptr.compression = block_options.compression;
    } else {
      payload.reset();
    }
  }
  if (!payload) {
    payload = buffers.Get(data.size());
    std::memcpy(payload->data(), data.data(), data.size());
  }
  b.ptr.checksum = ComputeChecksum(b.ptr.checksum_type, *payload);
  b.payload = std::move(payload);
  return b;
}

Status Pool::Write(LineageId lineage, uint64_t blkno, ConstByteSpan data,
                   const BlockOptions& options) {
  return WriteBlocks(lineage, blkno, static_cast<uint32_t>(data.size()), data, options);
}

Status Pool::WriteBlocks(LineageId lineage, uint64_t first, uint32_t block_size,
                         ConstByteSpan data, const BlockOptions& options) {
  return impl_->WriteBlocks(lineage, first, block_size, data, options, /*nowait=*/false);
}

Status Pool::TryWriteBlocks(LineageId lineage, uint64_t first, uint32_t block_size,
                            ConstByteSpan data, const BlockOptions& options) {
  return impl_->WriteBlocks(lineage, first, block_size, data, options, /*nowait=*/true);
}

Status Pool::TryWriteBlocks(LineageId lineage, uint64_t first, uint32_t block_size,
                            ConstByteSpan data, const BlockOptions& options,
                            StagedWrite* staged) {
  return impl_->WriteBlocks(lineage, first, block_size, data, options, /*nowait=*/true, staged);
}

void Pool::PrepareAhead(StagedWrite* staged, uint32_t block_size, uint64_t length,
                        ConstByteSpan arrived, const BlockOptions& options) {
  impl_->PrepareAhead(staged, block_size, length, arrived, options);
}

StagedWrite::StagedWrite() : rep_(std::make_unique<Rep>()) {}
StagedWrite::~StagedWrite() { Reset(); }

void StagedWrite::Reset() {
  Rep& r = *rep_;
  if (r.placed > 0 || r.raw_length > 0) {
    MutexLock lock(&r.anchor->mu);
    if (Pool::Impl* pool = r.anchor->pool; pool != nullptr) {
      pool->UnreservePlaced(std::span<const PreparedBlock>(r.blocks).first(r.placed));
      if (r.raw_length > 0) pool->dirty_scratch->Free(r.raw_offset, r.raw_length);
    }
  }
  r.placed = 0;
  r.raw_length = r.raw_copied = 0;
  r.anchor.reset();
  r.start = nullptr;
  r.blocks.clear();  // the buffers go back to their pool's cache
}

size_t StagedWrite::blocks() const { return rep_->blocks.size(); }

void Pool::Impl::PrepareAhead(StagedWrite* staged, uint32_t block_size, uint64_t length,
                              ConstByteSpan arrived, const BlockOptions& block_options) {
  if (options.read_only || block_size < kMinBlockSize || block_size > kMaxBlockSize ||
      block_size % 512 != 0) {
    return;
  }
  StagedWrite::Rep& r = *staged->rep_;
  if (r.anchor != stage_anchor || r.start != arrived.data() || r.block_size != block_size ||
      !(r.options == block_options)) {
    staged->Reset();
    r.anchor = stage_anchor;
    r.start = arrived.data();
    r.block_size = block_size;
    r.options = block_options;
  }
  if (TakesRaw(block_size, block_options)) {
    // A raw write only copies its blocks (D49): copy what is in now, while
    // the rest is on its way (D52). The run is claimed for the whole write
    // at once, since its blocks must sit side by side.
    const uint64_t whole = std::min<uint64_t>(arrived.size(), length) / block_size * block_size;
    if (r.raw_length == 0) {
      const uint64_t claim = length / block_size * block_size;
      std::optional<uint64_t> at =
          claim > 0 ? dirty_scratch->Allocate(claim, /*count_miss=*/false) : std::nullopt;
      if (!at) return;  // the write finds out, and counts the miss
      r.raw_offset = *at;
      r.raw_length = claim;
    }
    if (whole <= r.raw_copied) return;
    if (!dirty_scratch->Write(r.raw_offset + r.raw_copied,
                              arrived.subspan(r.raw_copied, whole - r.raw_copied))
             .ok()) {
      staged->Reset();  // the write copies it all and reports the failure
      return;
    }
    raw_copied_ahead.fetch_add(whole - r.raw_copied, std::memory_order_relaxed);
    r.raw_copied = whole;
    return;
  }
  for (size_t k = r.blocks.size(); (k + 1) * block_size <= arrived.size(); ++k) {
    r.blocks.push_back(Prepare(arrived.subspan(k * block_size, block_size), block_options));
  }
  // Into the data file too, where there is room without waiting (else the
  // write places them). The space stays reserved until the write maps the
  // blocks or the stage is reset.
  bool healthy;
  {
    MutexLock lock(&mu);
    healthy = failure.ok() && !closing;
  }
  if (healthy && r.placed < r.blocks.size() &&
      Place(std::span<PreparedBlock>(r.blocks).subspan(r.placed), /*nowait=*/true).ok()) {
    for (size_t k = r.placed; k < r.blocks.size(); ++k) r.blocks[k].payload.reset();
    r.placed = r.blocks.size();
  }
}

Status Pool::Impl::WriteBlocks(LineageId lineage, uint64_t first, uint32_t block_size,
                               ConstByteSpan data, const BlockOptions& block_options,
                               bool nowait, StagedWrite* staged) {
  // Whatever happens, staged blocks serve this one write at most.
  struct ResetStaged {
    StagedWrite* staged;
    ~ResetStaged() {
      if (staged != nullptr) staged->Reset();
    }
  } reset_staged{staged};
  StagedWrite::Rep* ahead = nullptr;
  if (staged != nullptr) {
    StagedWrite::Rep& r = *staged->rep_;
    if (r.anchor == stage_anchor && r.start == data.data() && r.block_size == block_size &&
        r.options == block_options) {
      ahead = &r;
    }
  }
  if (block_size < kMinBlockSize || block_size > kMaxBlockSize || block_size % 512 != 0) {
    return BH_ERROR(kInvalidArgument, "block size {} is not a multiple of 512 in 512..128K",
                    block_size);
  }
  if (data.size() % block_size != 0) {
    return BH_ERROR(kInvalidArgument, "{} bytes are not a whole number of {}-byte blocks",
                    data.size(), block_size);
  }
  if (options.read_only) return ReadOnlyError();
  const size_t n = data.size() / block_size;
  if (nowait) {
    // What would make a writer wait: the throttle, or a space check that
    // passes only once the txgs in flight commit. Errors are left for the
    // waiting path to report.
    MutexLock lock(&mu);
    if (!failure.ok() || closing || OpenTxgFull() || !CheckWritable(lineage, data.size(), false).ok()) {
      return BH_ERROR(kWouldBlock, "the write would wait for a commit");
    }
  }
  if (TakesRaw(block_size, block_options) && (ahead == nullptr || ahead->blocks.empty())) {
    Result<bool> raw = WriteRaw(lineage, first, block_size, data, block_options, nowait, ahead);
    if (!raw.ok() || *raw) return raw.status();
    // No room in the scratch: compressed now, as before D49.
  }
  // This thread's vector, named by reference: the helpers filling it have
  // thread_locals of their own.
  thread_local std::vector<PreparedBlock> reused;
  std::vector<PreparedBlock>& blocks = reused;
  blocks.resize(n);
  // Blocks [0, done_ahead) were prepared ahead, the first placed_ahead of
  // them placed too; their reservations are this write's from here on.
  const size_t done_ahead = ahead == nullptr ? 0 : std::min(ahead->blocks.size(), n);
  const size_t placed_ahead = ahead == nullptr ? 0 : std::min(ahead->placed, done_ahead);
  for (size_t k = 0; k < done_ahead; ++k) blocks[k] = std::move(ahead->blocks[k]);
  if (ahead != nullptr) {
    if (ahead->placed > placed_ahead) {  // placed, but past this write's data
      UnreservePlaced(std::span<const PreparedBlock>(ahead->blocks)
                          .subspan(placed_ahead, ahead->placed - placed_ahead));
    }
    ahead->placed = 0;
    ahead->blocks.clear();
  }
  auto fill = [&](size_t k) {
    SetThisThreadBackground(false);  // a helper a commit left in the background
    k += done_ahead;
    blocks[k] = Prepare(data.subspan(k * block_size, block_size), block_options);
  };
  const size_t to_prepare = n - done_ahead;
  // An event loop (nowait) compresses alone: waking a helper and waiting
  // for it cost more than the helper saved, and the woken helper took the
  // loop's CPU (D33).
  if (prepare_pool && to_prepare > 1 && !nowait) {
    prepare_pool->ParallelFor(to_prepare, fill);
  } else {
    for (size_t k = 0; k < to_prepare; ++k) fill(k);
  }
  Status s = Place(std::span<PreparedBlock>(blocks).subspan(placed_ahead), nowait);
  for (PreparedBlock& b : blocks) b.payload.reset();  // in the data file now
  if (!s.ok()) {
    UnreservePlaced(std::span<const PreparedBlock>(blocks).first(placed_ahead));
    return s;
  }
  if (nowait) return PutDirtyNoWait(lineage, first, blocks, block_size);
  for (size_t k = 0; k < n; ++k) {
    s = PutDirty(lineage, first + k, DirtyBlock{blocks[k].ptr}, block_size);
    if (!s.ok()) {
      // Not in the map, so no reader has seen them.
      UnreservePlaced(std::span<const PreparedBlock>(blocks).subspan(k));
      return s;
    }
  }
  return Status::Ok();
}

bool Pool::Impl::TakesRaw(uint32_t block_size, const BlockOptions& block_options) const {
  return dirty_scratch != nullptr && block_options.compression.algo != CompressionAlgo::kOff &&
         alloc->RoundUp(block_size) > alloc->RoundUp(1);
}

Result<bool> Pool::Impl::WriteRaw(LineageId lineage, uint64_t first, uint32_t block_size,
                                  ConstByteSpan data, const BlockOptions& block_options,
                                  bool nowait, StagedWrite::Rep* ahead) {
  const size_t n = data.size() / block_size;
  std::optional<uint64_t> at;
  uint64_t copied = 0;  // bytes of data in the scratch already
  if (ahead != nullptr && ahead->raw_length >= data.size()) {
    // The run PrepareAhead claimed is this write's from here on.
    at = ahead->raw_offset;
    copied = std::min<uint64_t>(ahead->raw_copied, data.size());
    if (ahead->raw_length > data.size()) {
      dirty_scratch->Free(*at + data.size(), ahead->raw_length - data.size());
    }
    ahead->raw_length = ahead->raw_copied = 0;
  } else {
    at = dirty_scratch->Allocate(data.size());
  }
  if (!at) return false;
  auto free_from = [&](size_t k) {
    dirty_scratch->Free(*at + k * block_size, (n - k) * block_size);
  };
  thread_local std::vector<PreparedBlock> blocks;
  blocks.assign(n, PreparedBlock{});
  for (PreparedBlock& b : blocks) {
    b.ptr.lsize = block_size;
    b.ptr.psize = block_size;
    b.ptr.compression = block_options.compression;
    b.ptr.checksum_type = block_options.checksum;
  }
  // The space the block would take uncompressed, so that the commit never
  // runs out of room for it: it gives that back once it knows the size.
  Status s = Place(std::span<PreparedBlock>(blocks), nowait, /*write=*/false);
  if (!s.ok()) {
    free_from(0);
    return s;
  }
  s = dirty_scratch->Write(*at + copied, data.subspan(copied));
  if (!s.ok()) {
    UnreservePlaced(blocks);
    free_from(0);
    return Suspend(s);
  }
  if (nowait) {
    s = PutDirtyNoWait(lineage, first, blocks, block_size, *at);
    if (!s.ok()) {
      free_from(0);  // the reservations went back already
      return s;
    }
    return true;
  }
  for (size_t k = 0; k < n; ++k) {
    s = PutDirty(lineage, first + k, DirtyBlock{blocks[k].ptr, *at + k * block_size}, block_size);
    if (!s.ok()) {
      UnreservePlaced(std::span<const PreparedBlock>(blocks).subspan(k));
      free_from(k);
      return s;
    }
  }
  return true;
}

Status Pool::Unmap(LineageId lineage, uint64_t blkno) {
  DirtyBlock hole;
  hole.ptr.hole = true;
  return impl_->PutDirty(lineage, blkno, hole, 0);
}

Status Pool::Read(LineageId lineage, uint64_t blkno, uint64_t view, ByteSpan out) {
  return impl_->ReadRun(lineage, blkno, view, static_cast<uint32_t>(out.size()), out,
                        /*nowait=*/false);
}

Status Pool::ReadBlocks(LineageId lineage, uint64_t first, uint64_t view, uint32_t block_size,
                        ByteSpan out) {
  return impl_->ReadRun(lineage, first, view, block_size, out, /*nowait=*/false);
}

Status Pool::TryReadBlocks(LineageId lineage, uint64_t first, uint64_t view,
                           uint32_t block_size, ByteSpan out) {
  return impl_->ReadRun(lineage, first, view, block_size, out, /*nowait=*/true);
}

Status Pool::Impl::ReadRun(LineageId lineage, uint64_t first, uint64_t view,
                           uint32_t block_size, ByteSpan out, bool nowait) {
  Impl& p = *this;
  if (block_size == 0 || out.size() % block_size != 0) {
    return BH_ERROR(kInvalidArgument, "{} bytes are not a whole number of {}-byte blocks",
                    out.size(), block_size);
  }
  const size_t n = out.size() / block_size;
  thread_local std::vector<bool> skip;
  thread_local std::vector<bool> dirty;
  thread_local std::vector<std::optional<BlockPtr>> ptrs;
  thread_local std::vector<std::pair<size_t, uint64_t>> raws;  // block, scratch offset
  raws.clear();
  skip.assign(n, false);
  dirty.assign(n, false);
  ptrs.assign(n, std::nullopt);
  // The gate is held from the lookups to the end of the device reads: the
  // space of a pointer found here (dirty or committed) is not reused before.
  std::shared_lock<std::shared_mutex> gate(p.read_gate, std::defer_lock);
  if (!nowait) {
    gate.lock();
  } else if (!gate.try_lock()) {
    return BH_ERROR(kWouldBlock, "a commit is releasing space");
  }
  size_t found = 0;
  {
    MutexLock lock(&p.mu);
    if (p.closed) return BH_ERROR(kUnavailable, "pool {} is closed", p.label.name);
    if (!p.lineages.contains(lineage)) {
      return BH_ERROR(kNotFound, "lineage {} does not exist", lineage);
    }
    if (view == kHeadView && (!p.open.empty() || p.syncing)) {
      for (size_t k = 0; k < n; ++k) {
        const DirtyKey key{lineage, first + k};
        const DirtyBlock* hit = nullptr;
        auto it = p.open.find(key);
        if (it != p.open.end()) {
          hit = &it->second;
        } else if (p.syncing) {
          auto sit = p.syncing->find(key);
          if (sit != p.syncing->end()) hit = &sit->second;
        }
        if (hit == nullptr) continue;
        dirty[k] = true;
        if (hit->is_raw()) {
          if (hit->ptr.lsize != block_size) {
            return BH_ERROR(kInvalidArgument, "block {} of lineage {} is {} bytes, not {}",
                            first + k, lineage, hit->ptr.lsize, block_size);
          }
          skip[k] = true;
          raws.emplace_back(k, hit->raw);
        } else if (!hit->ptr.hole) {
          ptrs[k] = hit->ptr;  // else: unmapped, zeros
        }
        ++found;
      }
    }
  }
  if (found < n) {
    // One block: a prefix seek, which the files' bloom filters answer. A
    // run of blocks: one total-order seek, then mostly steps to the next
    // block's key (a seek per block was ~4% of the CPUs in 1M reads).
    const bool forward = n - found > 1;
    auto it = p.kv->NewIterator(kCfBlocks, KvIteratorOptions{.upper_bound = "",
                                                             .same_prefix = !forward,
                                                             .memory_only = nowait});
    for (size_t k = 0; k < n; ++k) {
      if (dirty[k]) continue;
      BH_ASSIGN_OR_RETURN(ptrs[k], p.Resolve(*it, lineage, first + k, view, forward));
    }
  }
  BH_RETURN_IF_ERROR(p.ReadPtrs(ptrs, skip, lineage, first, block_size, out, nowait));
  // Raw dirty blocks (D49), runs of them together: a write's blocks sit
  // side by side in the scratch.
  for (size_t i = 0; i < raws.size();) {
    size_t j = i + 1;
    while (j < raws.size() && raws[j].first == raws[j - 1].first + 1 &&
           raws[j].second == raws[j - 1].second + block_size) {
      ++j;
    }
    BH_RETURN_IF_ERROR(p.dirty_scratch->Read(
        raws[i].second, out.subspan(raws[i].first * block_size, (j - i) * block_size)));
    i = j;
  }
  return Status::Ok();
}

Result<std::optional<BlockPtr>> Pool::LookupCommitted(LineageId lineage, uint64_t blkno,
                                                      uint64_t view) {
  return impl_->Resolve(lineage, blkno, view);
}

Result<uint64_t> Pool::Flush() {
  Impl& p = *impl_;
  // Counted before the commit is asked for, so that it never starts as
  // background work (D51).
  Impl::WaitingForCommit waiting(p);
  uint64_t target;
  {
    MutexLock lock(&p.mu);
    if (p.options.read_only) return p.synced_txg;
    target = p.open.empty() && p.pending_tasks.empty() ? p.open_txg - 1 : p.open_txg;
    if (target > p.synced_txg) {
      p.flush_target = std::max(p.flush_target, target);
      p.work_cv.notify_all();
    }
  }
  return p.WaitForTxg(target);
}

Status Pool::FlushWrites() {
  if (impl_->options.read_only) return Status::Ok();
  BH_ASSIGN_OR_RETURN(bool logged, impl_->LogWrites());
  if (logged) return Status::Ok();
  return Flush().status();
}

Result<uint64_t> Pool::RunSyncTask(CheckFn check, SyncFn sync) {
  Impl& p = *impl_;
  if (p.options.read_only) return p.ReadOnlyError();
  SyncTask task{std::move(check), std::move(sync), Status::Ok(), 0, false};
  std::unique_lock<Mutex> lock(p.mu);
  if (!p.failure.ok() || p.closing) {
    return BH_ERROR(kUnavailable, "pool {} is not accepting changes", p.label.name);
  }
  p.pending_tasks.push_back(&task);
  p.work_cv.notify_all();
  Impl::WaitingForCommit waiting(p);
  while (!task.done) p.done_cv.wait(lock);
  if (!task.result.ok()) return task.result;
  return task.txg;
}

Result<LineageInfo> Pool::GetLineage(LineageId lineage) const {
  MutexLock lock(&impl_->mu);
  auto it = impl_->lineages.find(lineage);
  if (it == impl_->lineages.end()) {
    return BH_ERROR(kNotFound, "lineage {} does not exist", lineage);
  }
  return it->second;
}

std::vector<std::pair<LineageId, LineageInfo>> Pool::ListLineages() const {
  MutexLock lock(&impl_->mu);
  return {impl_->lineages.begin(), impl_->lineages.end()};
}

Result<std::optional<std::string>> Pool::GetClientKey(std::string_view key) {
  return impl_->kv->Get(kCfClient, key);
}

Result<std::vector<std::pair<std::string, std::string>>> Pool::ScanClientKeys(
    std::string_view prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  auto it = impl_->kv->NewIterator(kCfClient);
  for (it->Seek(prefix); it->Valid() && it->key().substr(0, prefix.size()) == prefix;
       it->Next()) {
    out.emplace_back(std::string(it->key()), std::string(it->value()));
  }
  BH_RETURN_IF_ERROR(it->status());
  return out;
}

}  // namespace blockhaus::core
