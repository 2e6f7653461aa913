// Theory of operation: volumes, snapshots, clones and the coalescing worker
//
// Overview
//   A volume is a named core lineage with properties; a snapshot is a named
//   txg of its volume's lineage (core fences keep what it sees); a clone is
//   a volume whose lineage falls through to (origin lineage, snapshot txg).
//   Every admin operation is one core sync task: `check` validates against
//   the in-memory tables, `sync` writes the records into the txg's batch and
//   updates the tables, so an operation is all-or-nothing and durable when
//   it returns. This file holds create, snapshot, clone, destroy, rollback,
//   properties and the worker; dataset_ops.cc rename, holds and inherit;
//   resize.cc volsize; diff.cc diff; promote.cc promote.
//
// Data structures & on-disk format
//   In memory (internal/manager_impl.h): datasets by id and by name, the
//   free-job queue by sequence number, one DeviceCell per dataset (the I/O
//   fence its devices hold shared, and the lineage, view and size they
//   address), and the set of lineages a fenced operation is rewriting. On
//   disk: dataset_format.h (client column family of core). Holds and the
//   set of locally set properties are optional fields of the JSON record.
//
// Invariants
//   * A volume's snapshots are views of the volume's own lineage (promote
//     keeps this by moving versions in core, see below).
//   * Destroying snapshot T_i of a lineage whose snapshots are
//     ... < T_prev < T_i < T_next < ... queues the job "free dead versions
//     born in (T_prev, T_i] that died in (T_i, T_next]"; when T_i is the
//     newest, T_next is the txg of the destroy and the lineage's fence moves
//     back to T_prev. Both bounds are fixed when the job is queued, so later
//     snapshots and destroys cannot widen it (and the birth ranges of two
//     jobs on one lineage never overlap).
//   * Destroying a volume marks its lineage destroying (core rejects writes)
//     and queues "destroy lineage"; its snapshots need no job of their own.
//   * A snapshot with clones cannot be destroyed; a clone's lineage job is
//     queued before its origin's, and the worker runs jobs in queue order.
//   * Space: a snapshot destroy first releases the snapshot in core's
//     tallies (ReleaseSnapshot: its unique bytes become pending frees, its
//     interval merges with the next), then queues the job that frees
//     exactly those bytes. The space properties (space.h) are computed
//     from the tallies, never by scanning.
//   * A held snapshot cannot be destroyed by any route (destroy, -r, -R,
//     rollback -r): the check refuses the whole command, holds before
//     clones, naming the tag.
//   * Rollback to T (after the newer snapshots are dropped) removes versions
//     born after T through core's births index, in the same txg, with the
//     volume's I/O fenced and its dirty data flushed first.
//   * Shrink: blocks past the new end become holes exactly as unmaps would
//     (core TruncateLineage), so snapshots keep what they saw; a grow
//     therefore shows zeros there. Refused without force if any block past
//     the new end reads as non-zero.
//   * Promote of clone C of O@S (D17): core moves O's versions born after S
//     to a new lineage N falling through to (L, S) and C's versions into L;
//     O's snapshots up to S become C's, O's later ones move to N with O.
//     Every view keeps reading the same; a dead-interval job follows its
//     versions (L after S -> N; C's -> L, birth range clamped after S).
//   * Rename rewrites names only; ids, guids, origins (by id), holds and
//     open devices (by id) are unaffected.
//
// Concurrency & lock order
//   device cells (exclusive, in dataset-id order: FencedDatasets) -> core
//   sync task -> mu. Block I/O holds its dataset's cell fence shared.
//   Rollback, shrink and promote hold the cells of every dataset whose
//   lineage, view or size they change, flush, and mark the lineages busy so
//   the worker skips their jobs until they are done (core's lineage-wide
//   operations read committed state and must not share a txg with a free
//   step of the same lineage). Core refuses the other half itself: a step
//   in the txg that queued its job (whose writes may have dead-listed
//   versions the job must free) or on a lineage that a promote, rollback,
//   shrink or destroy rewrote in the same txg (a promote moves jobs to a
//   lineage no fence covers) gets FailedPrecondition, and the worker tries
//   that job again in a later txg. The worker thread only issues sync
//   tasks; it never holds mu across one.
//
// Crash consistency
//   Records, jobs and the core changes of an operation share one txg
//   (promote included: version moves, lineage records, dataset records and
//   re-targeted jobs commit together). A job advances in bounded steps, each
//   its own txg that both frees versions and updates (or deletes) the job
//   record, so a crash resumes exactly where the last step committed.
//
//   * Reservations (D14): creating a thick volume, raising refreservation
//     (or volsize with it) and snapshotting a thick volume check in `check`
//     that what the volume holds back grows only into the pool's unreserved
//     free space (space.h); core enforces it on every write.
//
// Failure handling
//   Forbidden destroys and rollbacks fail in `check` with a message naming
//   the flag (-r/-R) that would allow them, or the hold, and the dataset in
//   the way. A worker step that finds a lineage still referenced retries
//   later; any metadata error inside a step (or inside a promote or shrink)
//   fails the txg and suspends the pool.
//
// Tunables
//   VolumeManagerOptions::coalesce_batch (versions per step, 4096). While
//   foreground writes are dirty the worker takes a quarter of that per step
//   and pauses 20 ms between steps (else 2 ms): each step is a txg commit,
//   which also cuts the writers' txg short (bench/snapshots measures it).

#include "volume/volume_manager.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <map>
#include <random>
#include <set>
#include <shared_mutex>
#include <thread>

#include "core/base/logging.h"
#include "core/base/thread_annotations.h"
#include "core/base/thread_name.h"
#include "core/base/units.h"
#include "volume/dataset_format.h"
#include "volume/internal/manager_impl.h"
#include "volume/internal/volume_device.h"

namespace blockhaus::volume {

using core::SyncContext;

namespace {

uint64_t Now() { return static_cast<uint64_t>(::time(nullptr)); }

uint64_t RandomGuid() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ 1;
}

Status ParseOnOff(const std::string& key, const std::string& value, bool* out) {
  if (value == "on") *out = true;
  else if (value == "off") *out = false;
  else return BH_ERROR(kInvalidArgument, "bad value '{}' for {}: use on or off", value, key);
  return Status::Ok();
}

Status ParseBlockSize(const std::string& value, uint32_t* out) {
  Result<uint64_t> bs = ParseSize(value);
  if (!bs.ok() || *bs < kMinVolBlockSize || *bs > kMaxVolBlockSize || (*bs & (*bs - 1)) != 0) {
    return BH_ERROR(kInvalidArgument,
                    "bad volblocksize '{}': must be a power of two from 4K to 128K", value);
  }
  *out = static_cast<uint32_t>(*bs);
  return Status::Ok();
}

Status ParseVolsize(const std::string& value, uint32_t block_size, uint64_t* out) {
  Result<uint64_t> size = ParseSize(value);
  if (!size.ok()) return size.status().Annotate("bad volsize");
  if (*size == 0 || *size % block_size != 0) {
    return BH_ERROR(kInvalidArgument,
                    "bad volsize '{}': must be a non-zero multiple of volblocksize ({})", value,
                    block_size);
  }
  *out = *size;
  return Status::Ok();
}

}  // namespace

bool IsReadOnlyProperty(std::string_view key) {
  static constexpr std::array<std::string_view, 20> kReadOnlyProps = {
      "used", "available", "referenced", "written", "logicalused", "logicalreferenced",
      "compressratio", "usedbysnapshots", "usedbydataset", "usedbychildren",
      "usedbyrefreservation", "creation", "origin", "clones", "guid", "type", "name",
      "userrefs", "createtxg", "volblocksize"};
  for (std::string_view ro : kReadOnlyProps) {
    if (key == ro) return true;
  }
  return false;
}

bool IsUserProperty(std::string_view key) { return key.find(':') != std::string_view::npos; }

Status ValidateUserPropertyName(std::string_view key) {
  constexpr size_t kMaxName = 256;
  if (!IsUserProperty(key)) {
    return BH_ERROR(kInvalidArgument, "bad user property name '{}': it must contain ':'", key);
  }
  if (key.size() > kMaxName) {
    return BH_ERROR(kInvalidArgument, "bad user property name: longer than {} characters",
                    kMaxName);
  }
  if (key.front() == '-') {
    return BH_ERROR(kInvalidArgument, "bad user property name '{}': it must not begin with '-'",
                    key);
  }
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '-' ||
              c == '.' || c == '_';
    if (!ok) {
      return BH_ERROR(kInvalidArgument,
                      "bad user property name '{}': only lower-case letters, digits and "
                      "': - . _' are allowed",
                      key);
    }
  }
  return Status::Ok();
}

Status ApplyProperty(VolumeProps* p, const std::string& key, const std::string& value,
                     bool at_create) {
  if (IsUserProperty(key)) {
    BH_RETURN_IF_ERROR(ValidateUserPropertyName(key));
    if (value.size() > 8192) {
      return BH_ERROR(kInvalidArgument, "user property {}: value longer than 8192 bytes", key);
    }
    p->user[key] = value;
    return Status::Ok();
  }
  if (key == "volblocksize") {
    if (!at_create) return BH_ERROR(kInvalidArgument, "volblocksize can only be set at create");
    return ParseBlockSize(value, &p->volblocksize);
  }
  if (key == "volsize") return ParseVolsize(value, p->volblocksize, &p->volsize);
  if (key == "compression") {
    auto c = core::ParseCompression(value == "on" ? "lz4" : value);
    if (!c.ok()) {
      return BH_ERROR(kInvalidArgument,
                      "bad compression '{}': use on, off, lz4, zstd or zstd-1..19", value);
    }
    p->compression = *c;
    p->local.insert(key);
    return Status::Ok();
  }
  if (key == "checksum") {
    auto c = core::ParseChecksumType(value);
    if (!c.ok()) return BH_ERROR(kInvalidArgument, "bad checksum '{}': use on, xxh3, crc32c or sha256", value);
    p->checksum = *c;
    p->local.insert(key);
    return Status::Ok();
  }
  if (key == "readonly") {
    p->local.insert(key);
    return ParseOnOff(key, value, &p->readonly);
  }
  if (key == "refreservation") {
    p->local.insert(key);
    if (value == "none") p->refreservation = 0;
    else if (value == "auto") p->refreservation = p->volsize;
    else {
      auto r = ParseSize(value);
      if (!r.ok()) return r.status().Annotate("bad refreservation");
      p->refreservation = *r;
    }
    return Status::Ok();
  }
  if (IsReadOnlyProperty(key)) return BH_ERROR(kInvalidArgument, "property '{}' is read-only", key);
  return BH_ERROR(kInvalidArgument, "unknown property '{}'", key);
}

// ---- loading and records ----------------------------------------------------

Status VolumeManager::Impl::Load() {
  BH_ASSIGN_OR_RETURN(auto records, pool->ScanClientKeys(kDatasetPrefix));
  MutexLock lock(&mu);
  for (const auto& [key, value] : records) {
    BH_ASSIGN_OR_RETURN(Dataset ds, DecodeDataset(value));
    by_name[ds.name] = ds.id;
    by_id[ds.id] = std::move(ds);
  }
  BH_ASSIGN_OR_RETURN(auto job_records, pool->ScanClientKeys(kJobPrefix));
  for (const auto& [key, value] : job_records) {
    if (key.size() != kJobPrefix.size() + 8) return BH_ERROR(kCorruption, "bad job key");
    BH_ASSIGN_OR_RETURN(FreeJob job, DecodeJob(value));
    jobs[DecodeBE64(reinterpret_cast<const uint8_t*>(key.data()) + kJobPrefix.size())] = job;
  }
  BH_ASSIGN_OR_RETURN(auto id, pool->GetClientKey(kNextIdKey));
  if (id) {
    BH_ASSIGN_OR_RETURN(next_id, DecodeU64(*id));
  }
  BH_ASSIGN_OR_RETURN(auto job, pool->GetClientKey(kNextJobKey));
  if (job) {
    BH_ASSIGN_OR_RETURN(next_job, DecodeU64(*job));
  }
  return Status::Ok();
}

const Dataset* VolumeManager::Impl::Find(const std::string& name) const {
  auto it = by_name.find(name);
  return it == by_name.end() ? nullptr : &by_id.at(it->second);
}

std::vector<const Dataset*> VolumeManager::Impl::SnapshotsOf(uint64_t volume_id) const {
  std::vector<const Dataset*> out;
  for (const auto& [id, ds] : by_id) {
    if (ds.is_snapshot() && ds.volume_id == volume_id) out.push_back(&ds);
  }
  std::sort(out.begin(), out.end(), [](auto* a, auto* b) { return a->txg < b->txg; });
  return out;
}

std::vector<const Dataset*> VolumeManager::Impl::ClonesOf(uint64_t snapshot_id) const {
  std::vector<const Dataset*> out;
  for (const auto& [id, ds] : by_id) {
    if (!ds.is_snapshot() && ds.origin_id == snapshot_id) out.push_back(&ds);
  }
  return out;
}

std::shared_ptr<DeviceCell> VolumeManager::Impl::CellLocked(const Dataset& ds) {
  auto& c = cells[ds.id];
  if (!c) {
    c = std::make_shared<DeviceCell>();
    c->Set(ds);
  }
  return c;
}

std::shared_ptr<DeviceCell> VolumeManager::Impl::Cell(uint64_t dataset_id) {
  MutexLock lock(&mu);
  auto it = by_id.find(dataset_id);
  if (it == by_id.end()) {
    auto& c = cells[dataset_id];
    if (!c) c = std::make_shared<DeviceCell>();
    return c;
  }
  return CellLocked(it->second);
}

void RefreshCells(VolumeManager::Impl& m) {
  for (auto& [id, cell] : m.cells) {
    auto it = m.by_id.find(id);
    if (it != m.by_id.end()) cell->Set(it->second);
  }
}

FencedDatasets::FencedDatasets(VolumeManager::Impl& m, const std::vector<uint64_t>& ids,
                               const std::vector<uint64_t>& lineages)
    : m_(m), lineages_(lineages) {
  std::vector<uint64_t> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (uint64_t id : sorted) cells_.push_back(m.Cell(id));
  for (auto& c : cells_) c->fence.lock();
  MutexLock lock(&m.mu);
  for (uint64_t l : lineages_) m.fenced_lineages.insert(l);
}

FencedDatasets::~FencedDatasets() {
  {
    MutexLock lock(&m_.mu);
    RefreshCells(m_);
    for (uint64_t l : lineages_) m_.fenced_lineages.erase(l);
  }
  for (auto it = cells_.rbegin(); it != cells_.rend(); ++it) (*it)->fence.unlock();
  m_.worker_cv.notify_all();
}

void VolumeManager::Impl::PutDataset(SyncContext& ctx, const Dataset& ds) {
  ctx.PutClientKey(DatasetKey(ds.id), EncodeDataset(ds));
  ctx.PutClientKey(NameKey(ds.name), EncodeU64(ds.id));
  by_name[ds.name] = ds.id;
  by_id[ds.id] = ds;
}

void VolumeManager::Impl::ReplaceDataset(SyncContext& ctx, const Dataset& ds) {
  const Dataset& old = by_id.at(ds.id);
  if (old.name != ds.name) {
    ctx.DeleteClientKey(NameKey(old.name));
    by_name.erase(old.name);
  }
  PutDataset(ctx, ds);
}

void VolumeManager::Impl::DropDataset(SyncContext& ctx, const Dataset& ds) {
  ctx.DeleteClientKey(DatasetKey(ds.id));
  ctx.DeleteClientKey(NameKey(ds.name));
  by_name.erase(ds.name);
  by_id.erase(ds.id);  // invalidates ds
}

void VolumeManager::Impl::QueueJob(SyncContext& ctx, const FreeJob& job) {
  uint64_t seq = next_job++;
  jobs[seq] = job;
  ctx.PutClientKey(JobKey(seq), EncodeJob(job));
  worker_cv.notify_all();
}

void VolumeManager::Impl::PutCounters(SyncContext& ctx) {
  ctx.PutClientKey(kNextIdKey, EncodeU64(next_id));
  ctx.PutClientKey(kNextJobKey, EncodeU64(next_job));
}

// ---- admin operations ---------------------------------------------------------

VolumeManager::VolumeManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<VolumeManager>> VolumeManager::Open(core::Pool* pool,
                                                           const VolumeManagerOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->pool = pool;
  impl->options = options;
  BH_RETURN_IF_ERROR(impl->Load());
  Impl* raw = impl.get();
  if (options.start_coalescer) {
    raw->worker = std::thread([raw] {
      NameThisThread("bh-coalesce");
      raw->WorkerLoop();
    });
  }
  return std::unique_ptr<VolumeManager>(new VolumeManager(std::move(impl)));
}

VolumeManager::~VolumeManager() {
  {
    MutexLock lock(&impl_->mu);
    impl_->stopping = true;
  }
  impl_->worker_cv.notify_all();
  if (impl_->worker.joinable()) impl_->worker.join();
}

Status VolumeManager::CreateVolume(const std::string& name, const VolumeProps& props) {
  BH_RETURN_IF_ERROR(ValidateVolumeName(name));
  if (props.volsize == 0 || props.volsize % props.volblocksize != 0) {
    return BH_ERROR(kInvalidArgument, "volsize must be a non-zero multiple of volblocksize");
  }
  Impl& m = *impl_;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    if (m.Find(name)) return BH_ERROR(kAlreadyExists, "'{}' already exists", name);
    return CheckReservation(*m.pool, name, 0, props.volsize, 0, props.refreservation);
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    Dataset ds;
    ds.id = m.next_id++;
    ds.name = name;
    ds.lineage = ctx.CreateLineage({});
    ds.txg = ctx.txg();
    ds.creation = Now();
    ds.guid = RandomGuid();
    ds.props = props;
    ctx.SetReservation(ds.lineage, props.refreservation);
    m.PutDataset(ctx, ds);
    m.PutCounters(ctx);
  };
  return m.pool->RunSyncTask(check, sync).status();
}

Status VolumeManager::Snapshot(const std::vector<std::string>& names) {
  if (names.empty()) return BH_ERROR(kInvalidArgument, "no snapshot named");
  for (const auto& n : names) BH_RETURN_IF_ERROR(ValidateSnapshotName(n));
  Impl& m = *impl_;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    std::set<std::string> volumes;
    for (const auto& n : names) {
      auto [vol, snap] = SplitSnapshotName(n);
      const Dataset* v = m.Find(vol);
      if (v == nullptr || v->is_snapshot()) return BH_ERROR(kNotFound, "volume '{}' does not exist", vol);
      if (m.Find(n)) return BH_ERROR(kAlreadyExists, "snapshot '{}' already exists", n);
      if (!volumes.insert(vol).second) {
        return BH_ERROR(kInvalidArgument, "two snapshots of '{}' in one call", vol);
      }
    }
    std::vector<Dataset> thick;
    for (const auto& vol : volumes) thick.push_back(*m.Find(vol));
    return CheckSnapshotReservations(*m.pool, thick);
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    for (const auto& n : names) {
      const Dataset& vol = *m.Find(SplitSnapshotName(n).first);
      Dataset snap;
      snap.id = m.next_id++;
      snap.type = DatasetType::kSnapshot;
      snap.name = n;
      snap.lineage = vol.lineage;
      snap.txg = ctx.SnapshotLineage(vol.lineage);
      snap.volume_id = vol.id;
      snap.creation = Now();
      snap.guid = RandomGuid();
      snap.props = vol.props;
      m.PutDataset(ctx, snap);
    }
    m.PutCounters(ctx);
  };
  return m.pool->RunSyncTask(check, sync).status();
}

Status VolumeManager::Clone(const std::string& snapshot, const std::string& name,
                            const std::map<std::string, std::string>& props) {
  BH_RETURN_IF_ERROR(ValidateSnapshotName(snapshot));
  BH_RETURN_IF_ERROR(ValidateVolumeName(name));
  Impl& m = *impl_;
  VolumeProps clone_props;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    const Dataset* snap = m.Find(snapshot);
    if (snap == nullptr) return BH_ERROR(kNotFound, "snapshot '{}' does not exist", snapshot);
    if (m.Find(name)) return BH_ERROR(kAlreadyExists, "'{}' already exists", name);
    clone_props = snap->props;
    clone_props.user.clear();
    clone_props.refreservation = 0;  // clones start thin, as in zfs
    for (const auto& [k, v] : props) BH_RETURN_IF_ERROR(ApplyProperty(&clone_props, k, v, false));
    return Status::Ok();
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    const Dataset& snap = *m.Find(snapshot);
    Dataset ds;
    ds.id = m.next_id++;
    ds.name = name;
    ds.lineage = ctx.CreateLineage(core::LineageInfo{false, snap.lineage, snap.txg, 0});
    ds.txg = ctx.txg();
    ds.origin_id = snap.id;
    ds.creation = Now();
    ds.guid = RandomGuid();
    ds.props = clone_props;
    ctx.SetReservation(ds.lineage, clone_props.refreservation);
    m.PutDataset(ctx, ds);
    m.PutCounters(ctx);
  };
  return m.pool->RunSyncTask(check, sync).status();
}

Status VolumeManager::Impl::CheckDestroy(const Dataset& ds, bool recursive, bool clones,
                                         std::vector<uint64_t>* order) const {
  std::vector<const Dataset*> snaps;
  if (ds.is_snapshot()) {
    snaps.push_back(&ds);
  } else {
    snaps = SnapshotsOf(ds.id);
    if (!snaps.empty() && !recursive) {
      return BH_ERROR(kFailedPrecondition,
                      "cannot destroy '{}': it has snapshots (use -r), e.g. '{}'", ds.name,
                      snaps.front()->name);
    }
  }
  for (const Dataset* s : snaps) {  // holds first: no flag overrides them
    if (!s->holds.empty()) {
      return BH_ERROR(kFailedPrecondition,
                      "cannot destroy '{}': snapshot '{}' is held by tag '{}' (volctl release "
                      "it first)", ds.name, s->name, s->holds.begin()->first);
    }
  }
  for (const Dataset* s : snaps) {
    for (const Dataset* c : ClonesOf(s->id)) {
      if (!clones) {
        return BH_ERROR(kFailedPrecondition,
                        "cannot destroy '{}': snapshot '{}' has dependent clone '{}' (use -R)",
                        ds.name, s->name, c->name);
      }
      BH_RETURN_IF_ERROR(CheckDestroy(*c, true, true, order));
    }
  }
  for (const Dataset* s : snaps) {
    if (s != &ds) order->push_back(s->id);
  }
  order->push_back(ds.id);
  return Status::Ok();
}

void VolumeManager::Impl::SyncDestroySnapshot(SyncContext& ctx, const Dataset& snap) {
  uint64_t prev = 0, next = 0;
  for (const Dataset* s : SnapshotsOf(snap.volume_id)) {
    if (s->txg < snap.txg) prev = s->txg;
    if (s->txg > snap.txg && next == 0) next = s->txg;
  }
  // Space accounting: the bytes only it saw become pending frees, its
  // interval merges with the next (core/blockmap/accounting.cc).
  core::SnapshotRelease released = ctx.ReleaseSnapshot(snap.lineage, snap.txg);
  if (released.prev != prev || released.next != next) {
    BH_LOG(kError, "snapshot {}: core knows neighbours ({}, {}), the volume ({}, {})",
           snap.name, released.prev, released.next, prev, next);
  }
  if (next == 0) {
    // The newest snapshot: versions that died up to now are its alone, and
    // versions born after prev are again the head's only.
    next = ctx.txg();
    auto info = pool->GetLineage(snap.lineage);
    if (info.ok()) {
      core::LineageInfo li = *info;
      li.fence_txg = prev;
      ctx.UpdateLineage(snap.lineage, li);
    }
  }
  QueueJob(ctx, FreeJob{FreeJob::Kind::kDeadInterval, snap.lineage, prev, snap.txg, snap.txg,
                        next, 0, "", false});
}

Status VolumeManager::Destroy(const std::string& name, bool recursive, bool clones) {
  Impl& m = *impl_;
  std::vector<uint64_t> order;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    order.clear();
    const Dataset* ds = m.Find(name);
    if (ds == nullptr) return BH_ERROR(kNotFound, "'{}' does not exist", name);
    return m.CheckDestroy(*ds, recursive, clones, &order);
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    std::set<uint64_t> dying_volumes;
    for (uint64_t id : order) {
      const Dataset& d = m.by_id.at(id);
      if (!d.is_snapshot()) dying_volumes.insert(id);
    }
    for (uint64_t id : order) {
      Dataset d = m.by_id.at(id);
      if (d.is_snapshot()) {
        if (!dying_volumes.contains(d.volume_id)) m.SyncDestroySnapshot(ctx, d);
      } else {
        auto info = m.pool->GetLineage(d.lineage);
        if (info.ok()) {
          core::LineageInfo li = *info;
          li.destroying = true;
          ctx.UpdateLineage(d.lineage, li);
        }
        m.QueueJob(ctx, FreeJob{FreeJob::Kind::kLineage, d.lineage, 0, 0, 0, 0, 0, "", false});
      }
      m.DropDataset(ctx, d);
    }
    m.PutCounters(ctx);
  };
  return m.pool->RunSyncTask(check, sync).status();
}

Result<std::vector<DestroyItem>> VolumeManager::PlanDestroy(const std::string& name,
                                                            bool recursive,
                                                            bool clones) const {
  Impl& m = *impl_;
  std::vector<Dataset> doomed;
  {
    MutexLock lock(&m.mu);
    const Dataset* ds = m.Find(name);
    if (ds == nullptr) return BH_ERROR(kNotFound, "'{}' does not exist", name);
    std::vector<uint64_t> order;
    BH_RETURN_IF_ERROR(m.CheckDestroy(*ds, recursive, clones, &order));
    for (uint64_t id : order) doomed.push_back(m.by_id.at(id));
  }
  std::vector<DestroyItem> out;
  for (const Dataset& d : doomed) {
    BH_ASSIGN_OR_RETURN(uint64_t bytes, DestroyBytes(*m.pool, d, doomed));
    out.push_back(DestroyItem{d.name, bytes});
  }
  return out;
}

Status VolumeManager::Rollback(const std::string& snapshot, bool destroy_newer) {
  BH_RETURN_IF_ERROR(ValidateSnapshotName(snapshot));
  Impl& m = *impl_;
  Dataset snap;
  {
    MutexLock lock(&m.mu);
    const Dataset* s = m.Find(snapshot);
    if (s == nullptr) return BH_ERROR(kNotFound, "snapshot '{}' does not exist", snapshot);
    snap = *s;
  }
  // Fence the volume's I/O and flush its dirty data: core's rollback needs
  // the head quiet (REQUIRES of SyncContext::RollbackLineage).
  FencedDatasets fenced(m, {snap.volume_id}, {snap.lineage});
  BH_RETURN_IF_ERROR(m.pool->Flush().status());
  std::vector<uint64_t> newer;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    newer.clear();
    if (!m.Find(snapshot)) return BH_ERROR(kNotFound, "snapshot '{}' does not exist", snapshot);
    for (const Dataset* s : m.SnapshotsOf(snap.volume_id)) {
      if (s->txg <= snap.txg) continue;
      if (!destroy_newer) {
        return BH_ERROR(kFailedPrecondition,
                        "cannot roll back to '{}': more recent snapshots exist (use -r), e.g. "
                        "'{}'", snapshot, s->name);
      }
      if (!s->holds.empty()) {
        return BH_ERROR(kFailedPrecondition,
                        "cannot roll back to '{}': snapshot '{}' is held by tag '{}'",
                        snapshot, s->name, s->holds.begin()->first);
      }
      if (auto c = m.ClonesOf(s->id); !c.empty()) {
        return BH_ERROR(kFailedPrecondition,
                        "cannot roll back to '{}': snapshot '{}' has dependent clone '{}'",
                        snapshot, s->name, c.front()->name);
      }
      newer.push_back(s->id);
    }
    return Status::Ok();
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    for (uint64_t id : newer) m.DropDataset(ctx, m.by_id.at(id));
    Result<core::FreeProgress> r = ctx.RollbackLineage(snap.lineage, snap.txg, UINT64_MAX);
    if (!r.ok()) return ctx.Fail(r.status());
    core::LineageInfo li = *m.pool->GetLineage(snap.lineage);
    li.fence_txg = snap.txg;
    ctx.UpdateLineage(snap.lineage, li);
    Dataset vol = m.by_id.at(snap.volume_id);
    vol.props.volsize = snap.props.volsize;
    m.PutDataset(ctx, vol);
  };
  return m.pool->RunSyncTask(check, sync).status();
}

std::vector<Dataset> VolumeManager::List() const {
  MutexLock lock(&impl_->mu);
  std::vector<Dataset> out;
  for (const auto& [name, id] : impl_->by_name) out.push_back(impl_->by_id.at(id));
  return out;
}

Result<Dataset> VolumeManager::Get(const std::string& name) const {
  MutexLock lock(&impl_->mu);
  const Dataset* ds = impl_->Find(name);
  if (ds == nullptr) return BH_ERROR(kNotFound, "'{}' does not exist", name);
  return *ds;
}

Status VolumeManager::SetProperty(const std::string& name, const std::string& key,
                                  const std::string& value) {
  Impl& m = *impl_;
  if (key == "volsize") {
    uint32_t bs = 0;
    {
      MutexLock lock(&m.mu);
      const Dataset* ds = m.Find(name);
      if (ds == nullptr) return BH_ERROR(kNotFound, "'{}' does not exist", name);
      bs = ds->props.volblocksize;
    }
    uint64_t size = 0;
    BH_RETURN_IF_ERROR(ParseVolsize(value, bs, &size));
    return Resize(name, size, /*force=*/false);
  }
  Dataset updated;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    const Dataset* ds = m.Find(name);
    if (ds == nullptr) return BH_ERROR(kNotFound, "'{}' does not exist", name);
    updated = *ds;
    if (ds->is_snapshot() && key.find(':') == std::string::npos) {
      return BH_ERROR(kInvalidArgument, "snapshot properties other than user properties are "
                      "read-only");
    }
    BH_RETURN_IF_ERROR(ApplyProperty(&updated.props, key, value, false));
    if (ds->is_snapshot()) return Status::Ok();
    return CheckReservation(*m.pool, name, ds->lineage, updated.props.volsize,
                            ds->props.refreservation, updated.props.refreservation);
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    if (!updated.is_snapshot()) ctx.SetReservation(updated.lineage, updated.props.refreservation);
    m.PutDataset(ctx, updated);
  };
  return m.pool->RunSyncTask(check, sync).status();
}

// ---- coalescing worker ----------------------------------------------------------

// One bounded step of the oldest job that can progress, in its own txg.
// Returns whether a job made progress.
Result<bool> VolumeManager::Impl::Step(uint64_t* freed, uint64_t batch) {
  if (batch == 0) batch = options.coalesce_batch;
  bool progressed = false;
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&mu);
    for (auto it = jobs.begin(); it != jobs.end(); ++it) {
      FreeJob& job = it->second;
      if (fenced_lineages.contains(job.lineage)) continue;  // being rewritten under a fence
      Result<core::FreeProgress> r =
          job.kind == FreeJob::Kind::kLineage
              ? ctx.DestroyLineage(job.lineage, batch)
              : ctx.FreeDeadVersions(job.lineage, job.birth_lo, job.birth_hi, job.death_lo,
                                     job.death_hi, batch, &job.cursor);
      // A clone's lineage first, or the job's versions are not committed yet.
      if (!r.ok() && r.status().code() == Code::kFailedPrecondition) continue;
      if (!r.ok()) return ctx.Fail(r.status());
      job.freed_bytes += r->bytes;
      bytes_freed += r->bytes;
      *freed = r->bytes;
      bool done = !r->more;
      if (done && job.kind == FreeJob::Kind::kDeadInterval) {
        // End of a pass: another one if this one freed anything.
        bool again = job.pass_freed || r->versions > 0;
        job.pass_freed = false;
        done = !again;
      } else if (r->versions > 0) {
        job.pass_freed = true;
      }
      if (done) {
        ctx.DeleteClientKey(JobKey(it->first));
        jobs.erase(it);
      } else {
        ctx.PutClientKey(JobKey(it->first), EncodeJob(job));
      }
      progressed = true;
      return;
    }
  };
  BH_RETURN_IF_ERROR(pool->RunSyncTask(nullptr, sync).status());
  return progressed;
}

void VolumeManager::Impl::WorkerLoop() {
  std::unique_lock<Mutex> lock(mu);
  while (!stopping) {
    if (jobs.empty()) {
      worker_cv.wait(lock);
      continue;
    }
    lock.unlock();
    uint64_t freed = 0;
    // Foreground writes in flight: smaller steps, further apart, because
    // every step is a txg commit that also cuts the writers' txg short
    // (measured in docs/PERFORMANCE.md, bench/snapshots).
    bool busy = pool->stats().dirty > 0;
    Result<bool> r = Step(&freed, busy ? std::max<uint64_t>(options.coalesce_batch / 4, 1) : 0);
    lock.lock();
    if (!r.ok()) break;  // the pool is suspended; nothing more can commit
    // Yield to foreground I/O between steps; back off when blocked on a clone.
    worker_cv.wait_for(lock, std::chrono::milliseconds(!*r ? 200 : busy ? 20 : 2));
  }
}

Result<std::unique_ptr<BlockDevice>> VolumeManager::OpenDevice(const std::string& name) {
  BH_ASSIGN_OR_RETURN(Dataset ds, Get(name));
  return NewVolumeDevice(impl_->pool, ds, impl_->Cell(ds.id));
}

Result<DatasetSpace> VolumeManager::Space(const Dataset& ds) const {
  return ComputeSpace(*impl_->pool, ds);
}

uint64_t VolumeManager::Available(const Dataset& ds) const {
  return impl_->pool->room(ds.lineage).available;
}

CoalescerStatus VolumeManager::coalescer() const {
  MutexLock lock(&impl_->mu);
  CoalescerStatus st{impl_->jobs.size(), impl_->bytes_freed, 0};
  for (const auto& [seq, job] : impl_->jobs) st.pending_bytes_freed += job.freed_bytes;
  return st;
}

Result<uint64_t> VolumeManager::DrainCoalescer(uint64_t max_steps) {
  uint64_t steps = 0;
  while (steps < max_steps) {
    {
      MutexLock lock(&impl_->mu);
      if (impl_->jobs.empty()) break;
    }
    uint64_t freed = 0;
    BH_ASSIGN_OR_RETURN(bool progressed, impl_->Step(&freed));
    ++steps;
    if (!progressed) break;
  }
  return steps;
}

}  // namespace blockhaus::volume
