// Theory of operation: the block map (versions, views, holes, dead lists)
//
// Overview
//   The block map records, for every lineage and logical block number, the
//   versions of that block that some view can still see. A version is born in
//   the txg that wrote it; it is superseded ("dies") in the txg that wrote the
//   next version. A view is a txg T: the head (T = infinity) or a snapshot.
//   Version v (birth b, death k) is visible to every view T with b <= T < k
//   (DESIGN.md §3). A lineage's fence is its newest snapshot txg: a version
//   born after the fence is visible to the head only.
//
// Data structures & on-disk format
//   See blockmap_format.h. "blocks" holds every live version under
//   lineage|blkno|~birth, so one seek finds the newest version born at or
//   before any T. "deadlist" holds versions that died while a snapshot could
//   see them, keyed lineage|death|blkno|birth. "births" indexes versions by
//   birth, so rollback and diff touch only what changed after a txg. A hole
//   version records an unmap (or a clone's unmap) and reads as zeros.
//   The pool's head cache (HeadCache, D45) remembers the committed head of
//   the blocks recent txgs wrote, so a commit overwriting them again takes
//   the D31 path without a lookup; a txg with sync tasks drops it.
//
// Invariants
//   * Overwriting at the head in txg N with previous version p:
//       p.birth > fence  -> p is freed (space deferred to N); new data
//                           takes over p's key, birth and births entry
//                           (D31), a hole removes p's keys;
//       p.birth <= fence -> p stays, and a deadlist entry (death N) is added.
//   * A birth names the interval between two snapshots, not a txg: every
//     reader compares births and deaths with snapshot txgs only (views,
//     dead-list buckets, free jobs, rollback, diff, promote). No snapshot
//     lies between p.birth and N when p.birth > fence, so a version born in
//     N may carry p.birth, and the one beneath p keeps its dead-list entry
//     (death p.birth): one Put instead of two deletes, two puts and a Next
//     over the tombstones of every earlier overwrite.
//   * A hole version is written only when something beneath it would
//     otherwise show through: an older visible version or a clone origin.
//   * A dead version's death is the birth of the version right above it.
//     Freeing a head-only version makes the one beneath the head again (its
//     dead-list entry goes); freeing a dead version from the middle of a
//     chain moves its predecessor's entry up to its own death.
//   * Destroying snapshot T_i between neighbours T_{i-1} and T_{i+1} frees
//     exactly the versions with T_{i-1} < birth <= T_i and
//     T_i < death <= T_{i+1} (FreeDeadVersions); no other view saw them.
//   * Rollback to T deletes versions born after T and drops deadlist entries
//     with death after T, which makes the versions they name the head again.
//   * Space: every change of a version's (birth, death) above (put, freed,
//     dead-listed, revived, death moved up) is reported to the space tallies
//     in the same call (SpaceVersion / SpaceMove, accounting.cc), so the
//     tallies are the block map's at every commit. A clone's first version
//     of a block records the origin version it hides (SpaceShadow).
//
// Concurrency & lock order
//   Lookups (Resolve) run on any thread with fresh RocksDB iterators and see
//   committed state only; readers hold the pool's read gate shared (see
//   txg.cc, I4). Changes happen only in syncing context on the sync thread,
//   into the txg's batch; lookups made while applying see the state of the
//   previous txg, which is right because a txg holds at most one new version
//   per block. The freeing steps (FreeDeadVersions, DestroyLineage) read
//   committed state too, so they refuse to run where the batch holds what
//   they must see: dead-list entries of this very txg, or a lineage that a
//   rollback, truncate, promote or destroy rewrote in it (CheckFreeable).
//
// Crash consistency
//   Every change of the block map is part of one txg batch, together with the
//   allocator maps and space tallies that account for it: a crash leaves all
//   of them at the same txg.
//
// Failure handling
//   A version that does not decode, or a checksum that does not match, is
//   reported as Corruption naming lineage, block and device offset; the
//   reader never gets wrong data. A lookup error during a commit fails the
//   commit and suspends the pool.
//
// Tunables
//   None here; the freeing steps take a per-call limit from their caller.

#include <cstring>
#include <shared_mutex>

#include "core/base/logging.h"
#include "core/pool/internal/pool_impl.h"

namespace blockhaus::core {
namespace {

bool SamePrefix(std::string_view key, std::string_view prefix) {
  return key.size() >= prefix.size() && key.substr(0, prefix.size()) == prefix;
}

std::string NextPrefix(uint64_t lineage) { return LineagePrefix(lineage + 1); }

using Version = std::optional<std::pair<uint64_t, BlockPtr>>;

// One head-cache hit in this many is checked against the block map (D45);
// every one where assertions are on (the sanitizer tree runs every test so).
#ifdef NDEBUG
constexpr uint64_t kHeadCacheCheckEvery = 64;
#else
constexpr uint64_t kHeadCacheCheckEvery = 1;
#endif

// The version the iterator stands on, if it is of the block whose keys
// start like `key`.
Result<Version> CurrentVersion(const KvIterator& it, std::string_view key) {
  if (!it.Valid()) {
    BH_RETURN_IF_ERROR(it.status());
    return Version();
  }
  if (!SamePrefix(it.key(), key.substr(0, kBlockKeyPrefix))) return Version();
  BH_ASSIGN_OR_RETURN(BlockPtr ptr, DecodeBlockPtr(it.value()));
  return Version(std::make_pair(DecodeBlockKey(it.key()).birth, ptr));
}

// The newest version of (lineage, blkno) born at or before view, if any.
Result<Version> SeekVersion(KvIterator& it, uint64_t lineage, uint64_t blkno, uint64_t view) {
  std::string key = EncodeBlockKey(lineage, blkno, view);
  it.Seek(key);
  return CurrentVersion(it, key);
}

// The newest version of (lineage, blkno) born at or before view, from an
// iterator that moves forward through blocks in key order (a commit's
// sorted blocks, a read of consecutive blocks): the next block's version
// is usually a few keys on, and stepping there is cheaper than a Seek,
// which searches every memtable and file again. Seeks when the iterator
// is not behind the target or the step budget runs out; lands where
// SeekVersion would.
Result<Version> SeekForward(KvIterator& it, uint64_t lineage, uint64_t blkno, uint64_t view) {
  constexpr int kMaxSteps = 8;
  std::string key = EncodeBlockKey(lineage, blkno, view);
  bool behind = it.Valid() && it.key() < key;
  for (int steps = 0; behind && steps < kMaxSteps; ++steps) {
    it.Next();
    if (!it.Valid() || it.key() >= key) return CurrentVersion(it, key);
  }
  it.Seek(key);
  return CurrentVersion(it, key);
}

// The head version of (lineage, blkno), stepping forward (a commit's
// blocks are sorted).
Result<Version> SeekHead(KvIterator& it, uint64_t lineage, uint64_t blkno) {
  return SeekForward(it, lineage, blkno, kHeadView);
}

// `death` is the version's death (kHeadView while the head sees it), for
// the space tallies.
void FreeVersion(SyncContext::Rep& rep, uint64_t lineage, uint64_t blkno, uint64_t birth,
                 uint64_t death, const BlockPtr& ptr, FreeProgress* progress) {
  std::string key = EncodeBlockKey(lineage, blkno, birth);
  if (!rep.freed_versions.insert(key).second) return;  // freed earlier in this txg
  SpaceVersion(*rep.pool, lineage, birth, death, ptr, /*add=*/false);
  rep.batch->Delete(kCfBlocks, key);
  rep.batch->Delete(kCfBirths, EncodeBirthKey(lineage, birth, blkno));
  if (!ptr.hole) {
    uint64_t len = rep.pool->alloc->RoundUp(ptr.psize);
    rep.frees.push_back(Extent{ptr.offset, len});
    if (progress) progress->bytes += len;
  }
  if (progress) progress->versions++;
}

void RemoveDead(SyncContext::Rep& rep, const std::string& dead_key) {
  rep.removed_dead.insert(dead_key);
  rep.batch->Delete(kCfDeadList, dead_key);
}

void PutVersion(SyncContext::Rep& rep, uint64_t lineage, uint64_t blkno, const BlockPtr& ptr) {
  SpaceVersion(*rep.pool, lineage, rep.txg, kHeadView, ptr, /*add=*/true);
  rep.batch->Put(kCfBlocks, EncodeBlockKey(lineage, blkno, rep.txg), EncodeBlockPtr(ptr));
  rep.batch->Put(kCfBirths, EncodeBirthKey(lineage, rep.txg, blkno), "");
}

// D31: data replacing a version only the head sees (born after the fence)
// takes over its key. Returns false, having done nothing, when something
// earlier in this txg freed that version already.
bool ReplaceHeadOnly(SyncContext::Rep& rep, uint64_t lineage, uint64_t blkno, uint64_t birth,
                     const BlockPtr& old, const BlockPtr& ptr) {
  std::string key = EncodeBlockKey(lineage, blkno, birth);
  if (!rep.freed_versions.insert(key).second) return false;
  SpaceVersion(*rep.pool, lineage, birth, kHeadView, old, /*add=*/false);
  if (!old.hole) rep.frees.push_back(Extent{old.offset, rep.pool->alloc->RoundUp(old.psize)});
  SpaceVersion(*rep.pool, lineage, birth, kHeadView, ptr, /*add=*/true);
  rep.batch->Put(kCfBlocks, key, EncodeBlockPtr(ptr));
  return true;
}

// The version after the one the iterator stands on, if it is of the same
// block.
Result<Version> NextVersion(KvIterator& it) {
  std::string prefix(it.key().substr(0, kBlockKeyPrefix));
  it.Next();
  return CurrentVersion(it, prefix);
}

}  // namespace

// A dead version D (birth b, death k) is being freed from the middle of its
// block's chain. Its predecessor P was dead-listed with death b (when D
// superseded it); from now on the next version above P is D's successor,
// born at k, so P's entry moves to death k. This keeps the invariant the
// block map relies on: a dead version's death is the birth of the version
// right above it. No remaining view lies in [b, k), so no read changes.
Status ExtendPredecessor(SyncContext::Rep& rep, LineageId lineage, const DeadKey& dk) {
  auto it = rep.pool->kv->NewIterator(kCfBlocks, {.upper_bound = "", .same_prefix = true});
  uint64_t view = dk.birth - 1;
  Version pred;
  while (view > 0) {
    BH_ASSIGN_OR_RETURN(pred, SeekVersion(*it, lineage, dk.blkno, view));
    if (!pred || !rep.freed_versions.contains(EncodeBlockKey(lineage, dk.blkno, pred->first))) break;
    view = pred->first - 1;  // freed earlier in this txg: look further down
    pred.reset();
  }
  if (!pred) return Status::Ok();
  std::string old_key = EncodeDeadKey(lineage, dk.birth, dk.blkno, pred->first);
  if (rep.removed_dead.contains(old_key)) return Status::Ok();  // the head again
  RemoveDead(rep, old_key);
  rep.batch->Put(kCfDeadList, EncodeDeadKey(lineage, dk.death, dk.blkno, pred->first),
                 EncodeBlockPtr(pred->second));
  SpaceMove(*rep.pool, lineage, pred->first, dk.birth, dk.death, pred->second);
  return Status::Ok();
}

// New data over a version only the head has seen (born after the fence)
// takes over that version's key (D31). Otherwise (a hole, or a version a
// snapshot sees) versions only the head has seen are dropped first,
// newest to oldest; each one's predecessor was dead-listed when it was
// superseded and is the head again once it is gone, so that dead-list entry
// goes too. What remains on top is seen by a snapshot: it is dead-listed with
// death = this txg when the new version supersedes it.
Status ApplyBlockVersion(SyncContext::Rep& rep, LineageId lineage, const LineageInfo& info,
                         uint64_t blkno, const BlockPtr& ptr) {
  Pool::Impl& p = *rep.pool;
  KvIterator& it = *rep.blocks_it;
  const DirtyKey key{lineage, blkno};
  // D45: new data over a head-only version the cache knows takes over its
  // key without a lookup. A sample of the hits (every one in builds with
  // assertions) is checked against the block map: a cache that disagrees
  // fails the commit, which suspends the pool, before anything is freed.
  if (const HeadCache::Head* cached = p.head_cache.Find(key);
      cached && cached->birth > info.fence_txg && !ptr.hole) {
    const HeadCache::Head head = *cached;
    if (p.head_cache_hits++ % kHeadCacheCheckEvery == 0) {
      BH_ASSIGN_OR_RETURN(auto stored, SeekHead(it, lineage, blkno));
      if (!stored || stored->first != head.birth || !(stored->second == head.ptr)) {
        p.head_cache.Clear();
        return BH_ERROR(kInternal,
                        "head cache disagrees with the block map at lineage {} block {} "
                        "(cached birth {}, stored {})",
                        lineage, blkno, head.birth, stored ? stored->first : 0);
      }
    }
    if (ReplaceHeadOnly(rep, lineage, blkno, head.birth, head.ptr, ptr)) {
      p.head_cache.Stage(key, HeadCache::Head{head.birth, ptr});
      return Status::Ok();
    }
  }
  BH_ASSIGN_OR_RETURN(auto cur, SeekHead(it, lineage, blkno));
  if (cur && cur->first > info.fence_txg && !ptr.hole &&
      ReplaceHeadOnly(rep, lineage, blkno, cur->first, cur->second, ptr)) {
    p.head_cache.Stage(key, HeadCache::Head{cur->first, ptr});
    return Status::Ok();
  }
  // What follows leaves a new version on top, or a hole, or nothing new:
  // only the first is worth remembering.
  p.head_cache.Stage(key, std::nullopt);
  bool first_version = !cur;
  while (cur && cur->first > info.fence_txg) {
    auto [birth, version] = *cur;
    FreeVersion(rep, lineage, blkno, birth, kHeadView, version, nullptr);
    BH_ASSIGN_OR_RETURN(cur, NextVersion(it));
    if (cur) {
      RemoveDead(rep, EncodeDeadKey(lineage, birth, blkno, cur->first));
      SpaceMove(*rep.pool, lineage, cur->first, birth, kHeadView, cur->second);
    }
  }
  if (ptr.hole) {
    if (!cur && info.origin_lineage == 0) return Status::Ok();  // nothing shows through
    if (cur && cur->second.hole) return Status::Ok();           // zeros already
  }
  if (cur) {
    rep.batch->Put(kCfDeadList, EncodeDeadKey(lineage, rep.txg, blkno, cur->first),
                   EncodeBlockPtr(cur->second));
    SpaceMove(*rep.pool, lineage, cur->first, kHeadView, rep.txg, cur->second);
  }
  if (first_version && info.origin_lineage != 0) {
    // The clone's first version of this block hides its origin's from now on.
    BH_ASSIGN_OR_RETURN(auto hidden,
                        rep.pool->Resolve(info.origin_lineage, blkno, info.origin_txg));
    if (hidden) SpaceShadow(*rep.pool, lineage, BlockTally(*rep.pool, *hidden), true);
  }
  PutVersion(rep, lineage, blkno, ptr);
  if (!ptr.hole) p.head_cache.Stage(key, HeadCache::Head{rep.txg, ptr});
  return Status::Ok();
}

Result<std::optional<BlockPtr>> Pool::Impl::Resolve(LineageId lineage, uint64_t blkno,
                                                    uint64_t view) {
  auto it = kv->NewIterator(kCfBlocks, KvIteratorOptions{.upper_bound = "", .same_prefix = true});
  return Resolve(*it, lineage, blkno, view);
}

Result<std::optional<BlockPtr>> Pool::Impl::Resolve(KvIterator& it, LineageId lineage,
                                                    uint64_t blkno, uint64_t view,
                                                    bool forward) {
  for (int depth = 0; depth < 1000; ++depth) {
    BH_ASSIGN_OR_RETURN(auto found, forward && depth == 0
                                        ? SeekForward(it, lineage, blkno, view)
                                        : SeekVersion(it, lineage, blkno, view));
    if (found) {
      if (found->second.hole) return std::optional<BlockPtr>();
      return std::optional<BlockPtr>(found->second);
    }
    LineageInfo info;
    {
      MutexLock guard(&mu);
      auto li = lineages.find(lineage);
      if (li == lineages.end()) return BH_ERROR(kNotFound, "lineage {} does not exist", lineage);
      info = li->second;
    }
    if (info.origin_lineage == 0) return std::optional<BlockPtr>();
    lineage = info.origin_lineage;
    view = info.origin_txg;
  }
  return BH_ERROR(kCorruption, "clone origins of lineage {} form a loop", lineage);
}

Result<std::optional<std::pair<uint64_t, BlockPtr>>> Pool::Impl::HeadVersion(LineageId lineage,
                                                                          uint64_t blkno) {
  auto it = kv->NewIterator(kCfBlocks, KvIteratorOptions{.upper_bound = "", .same_prefix = true});
  return SeekVersion(*it, lineage, blkno, kHeadView);
}

namespace {

// Checks a stored block's bytes against its checksum and expands them into
// `out` (a copy when stored raw, unless `payload` already is `out`).
Status CheckAndExpand(const Pool::Impl& p, const BlockPtr& ptr, LineageId lineage,
                      uint64_t blkno, ConstByteSpan payload, ByteSpan out) {
  if (ComputeChecksum(ptr.checksum_type, payload) != ptr.checksum) {
    BH_LOG(kError, "pool {}: checksum mismatch in lineage {} block {} at offset {}",
           p.label.name, lineage, blkno, ptr.offset);
    return BH_ERROR(kCorruption, "checksum mismatch in lineage {} block {} at offset {}",
                    lineage, blkno, ptr.offset);
  }
  if (ptr.compression.algo == CompressionAlgo::kOff) {
    if (payload.data() != out.data()) std::memcpy(out.data(), payload.data(), out.size());
    return Status::Ok();
  }
  // The context is formatted only for an error: this runs for every block
  // read (64 formatted strings per 1M read).
  Status s = Decompress(ptr.compression.algo, payload, out);
  if (!s.ok()) {
    s.Annotate(fmt::format("lineage {} block {} at offset {}", lineage, blkno, ptr.offset));
  }
  return s;
}

Status CheckSize(const BlockPtr& ptr, LineageId lineage, uint64_t blkno, size_t size) {
  if (ptr.lsize == size) return Status::Ok();
  return BH_ERROR(kInvalidArgument, "block {} of lineage {} holds {} bytes, not {}", blkno,
                  lineage, ptr.lsize, size);
}

}  // namespace

Status Pool::Impl::ReadPtr(const BlockPtr& ptr, LineageId lineage, uint64_t blkno,
                           ByteSpan out, bool nowait) {
  BH_RETURN_IF_ERROR(CheckSize(ptr, lineage, blkno, out.size()));
  // Compressed blocks are read into a per-thread scratch buffer (no
  // allocation per read); uncompressed ones straight into `out`.
  thread_local std::vector<uint8_t> scratch;
  ByteSpan target = out.subspan(0, ptr.psize);
  if (ptr.compression.algo != CompressionAlgo::kOff) {
    if (scratch.size() < ptr.psize) scratch.resize(kMaxBlockSize);
    target = ByteSpan(scratch.data(), ptr.psize);
  }
  BH_RETURN_IF_ERROR(nowait ? vdev->ReadNoWait(ptr.offset, target)
                            : vdev->Read(ptr.offset, target));
  return CheckAndExpand(*this, ptr, lineage, blkno, target, out);
}

Status Pool::Impl::ReadPtrs(const std::vector<std::optional<BlockPtr>>& ptrs,
                            const std::vector<bool>& skip, LineageId lineage, uint64_t first,
                            uint32_t block_size, ByteSpan out, bool nowait) {
  // A run: blocks i..j-1 stored back to back on the device (what one txg's
  // sequential writes become). At most kMaxRun bytes per device read.
  constexpr uint64_t kMaxRun = 1u << 20;
  thread_local std::vector<uint8_t> run_buf;
  const size_t n = ptrs.size();
  for (size_t i = 0; i < n;) {
    ByteSpan block_out = out.subspan(i * block_size, block_size);
    if (skip[i]) {
      ++i;
      continue;
    }
    if (!ptrs[i]) {
      std::memset(block_out.data(), 0, block_size);
      ++i;
      continue;
    }
    const BlockPtr& a = *ptrs[i];
    BH_RETURN_IF_ERROR(CheckSize(a, lineage, first + i, block_size));
    // Raw blocks that fill their sectors exactly can land in `out` directly.
    auto direct = [&](const BlockPtr& b) {
      return b.compression.algo == CompressionAlgo::kOff && alloc->RoundUp(b.psize) == b.psize;
    };
    bool all_direct = direct(a);
    uint64_t end = a.offset + alloc->RoundUp(a.psize);
    size_t j = i + 1;
    for (; j < n && !skip[j] && ptrs[j] && ptrs[j]->offset == end && ptrs[j]->lsize == block_size;
         ++j) {
      uint64_t len = alloc->RoundUp(ptrs[j]->psize);
      if (end + len - a.offset > kMaxRun) break;
      all_direct = all_direct && direct(*ptrs[j]);
      end += len;
    }
    if (j == i + 1) {
      BH_RETURN_IF_ERROR(ReadPtr(a, lineage, first + i, block_out, nowait));
      ++i;
      continue;
    }
    ByteSpan dst;
    if (all_direct) {
      dst = out.subspan(i * block_size, (j - i) * block_size);
    } else {
      if (run_buf.size() < kMaxRun) run_buf.resize(kMaxRun);
      dst = ByteSpan(run_buf.data(), end - a.offset);
    }
    BH_RETURN_IF_ERROR(nowait ? vdev->ReadNoWait(a.offset, dst) : vdev->Read(a.offset, dst));
    for (size_t k = i; k < j; ++k) {
      const BlockPtr& b = *ptrs[k];
      ConstByteSpan payload(dst.data() + (b.offset - a.offset), b.psize);
      BH_RETURN_IF_ERROR(CheckAndExpand(*this, b, lineage, first + k, payload,
                                        out.subspan(k * block_size, block_size)));
    }
    i = j;
  }
  return Status::Ok();
}

// ---- SyncContext --------------------------------------------------------

uint64_t SyncContext::txg() const { return rep_->txg; }

LineageId SyncContext::CreateLineage(const LineageInfo& info) {
  Pool::Impl& p = *rep_->pool;
  MutexLock lock(&p.mu);
  LineageId id = p.next_lineage++;
  p.lineages[id] = info;
  rep_->batch->Put(kCfLineages, LineagePrefix(id), EncodeLineage(info));
  SpaceCreateLineage(p, id);
  return id;
}

void SyncContext::UpdateLineage(LineageId lineage, const LineageInfo& info) {
  Pool::Impl& p = *rep_->pool;
  MutexLock lock(&p.mu);
  BH_CHECK(p.lineages.contains(lineage));
  if (info.destroying && !p.lineages[lineage].destroying) rep_->rewritten.insert(lineage);
  p.lineages[lineage] = info;
  rep_->batch->Put(kCfLineages, LineagePrefix(lineage), EncodeLineage(info));
}

uint64_t SyncContext::SnapshotLineage(LineageId lineage) {
  Pool::Impl& p = *rep_->pool;
  LineageInfo info;
  {
    MutexLock lock(&p.mu);
    BH_CHECK(p.lineages.contains(lineage));
    info = p.lineages[lineage];
  }
  info.fence_txg = rep_->txg;
  UpdateLineage(lineage, info);
  SpaceSnapshot(p, lineage, rep_->txg);
  return rep_->txg;
}

namespace {

// A freeing step reads committed state: refused (FailedPrecondition, try a
// later txg) where this txg's batch holds what it would have to see.
Status CheckFreeable(const SyncContext::Rep& rep, LineageId lineage, uint64_t death_hi) {
  if (rep.rewritten.contains(lineage)) {
    return BH_ERROR(kFailedPrecondition,
                    "lineage {} was rewritten in txg {}; free its versions in a later txg",
                    lineage, rep.txg);
  }
  if (death_hi >= rep.txg) {
    return BH_ERROR(kFailedPrecondition,
                    "versions of lineage {} that died in txg {} are not committed yet", lineage,
                    rep.txg);
  }
  return Status::Ok();
}

}  // namespace

Result<FreeProgress> SyncContext::FreeDeadVersions(LineageId lineage, uint64_t birth_lo,
                                                   uint64_t birth_hi, uint64_t death_lo,
                                                   uint64_t death_hi, uint64_t limit,
                                                   std::string* cursor) {
  BH_RETURN_IF_ERROR(CheckFreeable(*rep_, lineage, death_hi));
  FreeProgress progress;
  std::string upper = EncodeDeadKey(lineage, death_hi + 1, 0, 0);
  if (death_hi == kHeadView) upper = NextPrefix(lineage);
  auto it = rep_->pool->kv->NewIterator(kCfDeadList, KvIteratorOptions{.upper_bound = upper});
  uint64_t examined = 0;
  std::string start = EncodeDeadKey(lineage, death_lo + 1, 0, 0);
  if (cursor != nullptr && *cursor > start) start = *cursor;
  if (cursor != nullptr) cursor->clear();
  for (it->Seek(start); it->Valid(); it->Next()) {
    if (examined++ >= limit) {
      progress.more = true;
      if (cursor != nullptr) *cursor = std::string(it->key());
      break;
    }
    DeadKey dk = DecodeDeadKey(it->key());
    if (dk.birth <= birth_lo || dk.birth > birth_hi) continue;
    std::string dead_key(it->key());
    if (rep_->removed_dead.contains(dead_key)) continue;  // made the head again in this txg
    BH_ASSIGN_OR_RETURN(BlockPtr ptr, DecodeBlockPtr(it->value()));
    RemoveDead(*rep_, dead_key);
    BH_RETURN_IF_ERROR(ExtendPredecessor(*rep_, lineage, dk));
    FreeVersion(*rep_, lineage, dk.blkno, dk.birth, dk.death, ptr, &progress);
  }
  BH_RETURN_IF_ERROR(it->status());
  return progress;
}

Result<FreeProgress> SyncContext::RollbackLineage(LineageId lineage, uint64_t txg,
                                                  uint64_t limit) {
  rep_->rewritten.insert(lineage);
  FreeProgress progress;
  Pool::Impl& p = *rep_->pool;
  auto dead = p.kv->NewIterator(kCfDeadList, {.upper_bound = NextPrefix(lineage)});
  for (dead->Seek(EncodeDeadKey(lineage, txg + 1, 0, 0)); dead->Valid(); dead->Next()) {
    if (progress.versions >= limit) return FreeProgress{progress.versions, progress.bytes, true};
    std::string dead_key(dead->key());
    if (rep_->removed_dead.contains(dead_key)) continue;  // gone earlier in this txg
    RemoveDead(*rep_, dead_key);
    DeadKey dk = DecodeDeadKey(dead_key);
    BH_ASSIGN_OR_RETURN(BlockPtr dead_ptr, DecodeBlockPtr(dead->value()));
    SpaceMove(p, lineage, dk.birth, dk.death, kHeadView, dead_ptr);  // revived
    progress.versions++;
  }
  BH_RETURN_IF_ERROR(dead->status());
  auto births = p.kv->NewIterator(kCfBirths, {.upper_bound = NextPrefix(lineage)});
  for (births->Seek(EncodeBirthKey(lineage, txg + 1, 0)); births->Valid(); births->Next()) {
    if (progress.versions >= limit) return FreeProgress{progress.versions, progress.bytes, true};
    BirthKey bk = DecodeBirthKey(births->key());
    BH_ASSIGN_OR_RETURN(auto v, p.kv->Get(kCfBlocks, EncodeBlockKey(lineage, bk.blkno, bk.birth)));
    if (!v) return BH_ERROR(kCorruption, "birth entry of lineage {} block {} has no version",
                            lineage, bk.blkno);
    BH_ASSIGN_OR_RETURN(BlockPtr ptr, DecodeBlockPtr(*v));
    FreeVersion(*rep_, lineage, bk.blkno, bk.birth, kHeadView, ptr, &progress);
  }
  BH_RETURN_IF_ERROR(births->status());
  SpaceRollback(p, lineage, txg);
  return progress;
}

Result<FreeProgress> SyncContext::DestroyLineage(LineageId lineage, uint64_t limit) {
  Pool::Impl& p = *rep_->pool;
  // Also covers "marked destroying in this txg": its blocks of this txg are
  // placed and indexed in this very batch.
  BH_RETURN_IF_ERROR(CheckFreeable(*rep_, lineage, 0));
  rep_->rewritten.insert(lineage);
  {
    MutexLock lock(&p.mu);
    auto self = p.lineages.find(lineage);
    if (self == p.lineages.end() || !self->second.destroying) {
      return BH_ERROR(kFailedPrecondition,
                      "lineage {} must be marked destroying (in an earlier txg) first", lineage);
    }
    for (const auto& [id, info] : p.lineages) {
      if (info.origin_lineage == lineage) {
        return BH_ERROR(kFailedPrecondition, "lineage {} is the origin of clone lineage {}",
                        lineage, id);
      }
    }
  }
  // The indexes go first and whole (two range deletes): from the first step
  // on, no dead-list job can find a version of this lineage to free twice.
  auto births = p.kv->NewIterator(kCfBirths, {.upper_bound = NextPrefix(lineage)});
  births->Seek(LineagePrefix(lineage));
  bool indexed = births->Valid();
  BH_RETURN_IF_ERROR(births->status());
  auto dead = p.kv->NewIterator(kCfDeadList, {.upper_bound = NextPrefix(lineage)});
  dead->Seek(LineagePrefix(lineage));
  indexed = indexed || dead->Valid();
  BH_RETURN_IF_ERROR(dead->status());
  if (indexed) {
    rep_->batch->DeleteRange(kCfDeadList, LineagePrefix(lineage), NextPrefix(lineage));
    rep_->batch->DeleteRange(kCfBirths, LineagePrefix(lineage), NextPrefix(lineage));
  }
  FreeProgress progress;
  auto it = p.kv->NewIterator(kCfBlocks, {.upper_bound = NextPrefix(lineage)});
  for (it->Seek(LineagePrefix(lineage)); it->Valid(); it->Next()) {
    if (progress.versions >= limit) {
      progress.more = true;
      return progress;
    }
    BH_ASSIGN_OR_RETURN(BlockPtr ptr, DecodeBlockPtr(it->value()));
    rep_->batch->Delete(kCfBlocks, it->key());
    if (!ptr.hole) {
      uint64_t len = p.alloc->RoundUp(ptr.psize);
      rep_->frees.push_back(Extent{ptr.offset, len});
      progress.bytes += len;
      SpaceDestroyed(p, lineage, BlockTally(p, ptr));
    }
    progress.versions++;
  }
  BH_RETURN_IF_ERROR(it->status());
  rep_->batch->Delete(kCfLineages, LineagePrefix(lineage));
  SpaceDropLineage(p, lineage, *rep_->batch);
  MutexLock guard(&p.mu);
  p.lineages.erase(lineage);
  return progress;
}

void SyncContext::PutClientKey(std::string_view key, std::string_view value) {
  rep_->batch->Put(kCfClient, key, value);
}

void SyncContext::DeleteClientKey(std::string_view key) {
  rep_->batch->Delete(kCfClient, key);
}

void SyncContext::Fail(const Status& status) {
  if (rep_->failure.ok()) rep_->failure = status;
}

}  // namespace blockhaus::core
