// Theory of operation: whole-lineage operations (diff, truncate, promote)
//
// Overview
//   The block map (blockmap.cc) changes one block at a time, at a txg. The
//   operations here act on many blocks of a lineage at once but, like
//   rollback, visit only what the births index or a block-number range
//   names, never the lineage block by block:
//     * ChangedBlocks: the blocks two views see differently (volctl diff);
//     * HasDataInRange / TruncateLineage: shrinking a volume;
//     * PromoteLineage: zfs promote, which swaps which lineage holds the
//       shared history of a clone and its origin.
//
// Data structures & on-disk format
//   No new records: these read and rewrite the "blocks", "births",
//   "deadlist" and "lineages" families of blockmap_format.h.
//
// Invariants
//   * Promote of clone C (origin (L, T)), with N the new lineage:
//       - a version of L born after T moves to N under the same
//         (blkno, birth), with its births entry and, if dead, its dead-list
//         entry (same death): N sees exactly what L saw after T, and falls
//         through to (L, T) for the rest, as a clone of (L, T) would;
//       - a dead-list entry of L with birth <= T and death > T goes: the
//         version it names is visible at T, and with everything born after
//         T gone from L it is L's head again;
//       - C's versions (all born after T, because a clone's first write
//         lands after the txg that created it) move into L with their
//         dead-list entries, and the oldest of each block's moved versions
//         dead-lists the version of L it now covers (death = its birth),
//         which keeps "a dead version's death is the birth of the version
//         right above it".
//     Views map one to one: (L, t <= T) unchanged, (L, t > T) -> (N, t),
//     (C, t) -> (L, t), head of C -> head of L, head of L -> head of N; the
//     caller renames its views the same way and no block reads differently.
//   * Truncate writes a hole exactly where an unmap would, through the same
//     ApplyBlockVersion, so frees and dead lists stay those of unmaps.
//
// Concurrency & lock order
//   ChangedBlocks and HasDataInRange read committed state on any thread.
//   TruncateLineage and PromoteLineage run in syncing context; they read
//   committed state and write the txg's batch, so the caller must keep the
//   heads involved quiet (fenced and flushed) and must not run a freeing
//   step of the same lineages in that txg. Pool::Impl::mu is taken only to
//   read or update lineage records.
//
// Crash consistency
//   Each operation writes into one txg's batch: all or nothing.
//
// Failure handling
//   A version that does not decode, or a births entry without its version,
//   is Corruption; in syncing context the caller fails the txg.
//
// Tunables
//   None; the cost is bounded by the change, as stated per function.

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "core/pool/internal/pool_impl.h"

namespace blockhaus::core {
namespace {

std::string NextLineagePrefix(uint64_t lineage) { return LineagePrefix(lineage + 1); }

// The committed version of (lineage, blkno) born at or before view, in this
// lineage only (no fall-through).
Result<std::optional<std::pair<uint64_t, BlockPtr>>> VersionAt(KvStore& kv, LineageId lineage,
                                                                uint64_t blkno, uint64_t view) {
  auto it = kv.NewIterator(kCfBlocks, {.upper_bound = "", .same_prefix = true});
  std::string key = EncodeBlockKey(lineage, blkno, view);
  it->Seek(key);
  if (!it->Valid()) {
    BH_RETURN_IF_ERROR(it->status());
    return std::optional<std::pair<uint64_t, BlockPtr>>();
  }
  if (it->key().substr(0, kBlockKeyPrefix) != std::string_view(key).substr(0, kBlockKeyPrefix)) {
    return std::optional<std::pair<uint64_t, BlockPtr>>();
  }
  BH_ASSIGN_OR_RETURN(BlockPtr ptr, DecodeBlockPtr(it->value()));
  return std::optional<std::pair<uint64_t, BlockPtr>>(
      std::make_pair(DecodeBlockKey(it->key()).birth, ptr));
}

// Block numbers in [first, end) with a stored version in `lineage` or in any
// lineage it falls through to.
Result<std::set<uint64_t>> StoredBlocks(Pool::Impl& p, LineageId lineage, uint64_t first,
                                        uint64_t end) {
  std::set<uint64_t> out;
  for (int depth = 0; lineage != 0; ++depth) {
    if (depth >= 1000) return BH_ERROR(kCorruption, "clone origins form a loop");
    auto it = p.kv->NewIterator(kCfBlocks, {.upper_bound = EncodeBlockKey(lineage, end, kHeadView)});
    for (it->Seek(EncodeBlockKey(lineage, first, kHeadView)); it->Valid(); it->Next()) {
      out.insert(DecodeBlockKey(it->key()).blkno);
    }
    BH_RETURN_IF_ERROR(it->status());
    MutexLock lock(&p.mu);
    auto li = p.lineages.find(lineage);
    if (li == p.lineages.end()) return BH_ERROR(kNotFound, "lineage {} does not exist", lineage);
    lineage = li->second.origin_lineage;
  }
  return out;
}

}  // namespace

Result<std::vector<uint64_t>> Pool::ChangedBlocks(LineageId a_lineage, uint64_t a,
                                                  LineageId b_lineage, uint64_t b,
                                                  uint64_t born_after) {
  Impl& p = *impl_;
  std::string upper = b == kHeadView ? NextLineagePrefix(b_lineage)
                                     : EncodeBirthKey(b_lineage, b + 1, 0);
  auto births = p.kv->NewIterator(kCfBirths, {.upper_bound = upper});
  std::set<uint64_t> candidates;
  for (births->Seek(EncodeBirthKey(b_lineage, born_after + 1, 0)); births->Valid();
       births->Next()) {
    candidates.insert(DecodeBirthKey(births->key()).blkno);
  }
  BH_RETURN_IF_ERROR(births->status());
  std::vector<uint64_t> out;
  for (uint64_t blkno : candidates) {
    BH_ASSIGN_OR_RETURN(auto va, p.Resolve(a_lineage, blkno, a));
    BH_ASSIGN_OR_RETURN(auto vb, p.Resolve(b_lineage, blkno, b));
    if (va != vb) out.push_back(blkno);
  }
  return out;
}

Result<bool> Pool::HasDataInRange(LineageId lineage, uint64_t first, uint64_t end) {
  BH_ASSIGN_OR_RETURN(auto blocks, StoredBlocks(*impl_, lineage, first, end));
  for (uint64_t blkno : blocks) {
    BH_ASSIGN_OR_RETURN(auto v, impl_->Resolve(lineage, blkno, kHeadView));
    if (v) return true;
  }
  return false;
}

Result<FreeProgress> SyncContext::TruncateLineage(LineageId lineage, uint64_t first,
                                                  uint64_t end) {
  Pool::Impl& p = *rep_->pool;
  rep_->rewritten.insert(lineage);
  BH_ASSIGN_OR_RETURN(auto blocks, StoredBlocks(p, lineage, first, end));
  LineageInfo info;
  {
    MutexLock lock(&p.mu);
    info = p.lineages.at(lineage);
  }
  BlockPtr hole;
  hole.hole = true;
  FreeProgress progress;
  for (uint64_t blkno : blocks) {
    BH_RETURN_IF_ERROR(ApplyBlockVersion(*rep_, lineage, info, blkno, hole));
    progress.versions++;
  }
  return progress;
}

namespace {

// A version a promote moves or reclassifies, with its death (kHeadView
// while the head sees it).
struct VersionMove {
  uint64_t blkno = 0, birth = 0, death = kHeadView;
  BlockPtr ptr;
};

// A version of L that a merged clone version now covers (death `death`),
// or, with `hidden` set, a merged block L has no version of at T: the
// version of L's own origin it hides (space accounting's shadow).
struct Cover {
  uint64_t blkno = 0, death = 0;
  std::optional<std::pair<uint64_t, BlockPtr>> below;
  std::optional<BlockPtr> hidden;
};

struct PromoteMoves {
  std::vector<VersionMove> split;    // L -> N (born after T)
  std::vector<VersionMove> revived;  // L's, born <= T, dead after T: head again
  std::vector<VersionMove> merged;   // clone -> L
  std::vector<Cover> covers;
};

// Moves L's versions, births and dead-list entries born after T to N, and
// drops L's dead-list entries that died after T (their versions are L's
// head again).
Status SplitAfter(SyncContext::Rep& rep, LineageId l, uint64_t t, LineageId n,
                  PromoteMoves* moves) {
  Pool::Impl& p = *rep.pool;
  KvBatch& batch = *rep.batch;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> deaths;  // (blkno, birth) -> death
  auto dead = p.kv->NewIterator(kCfDeadList, {.upper_bound = NextLineagePrefix(l)});
  for (dead->Seek(EncodeDeadKey(l, t + 1, 0, 0)); dead->Valid(); dead->Next()) {
    DeadKey dk = DecodeDeadKey(dead->key());
    batch.Delete(kCfDeadList, dead->key());
    if (dk.birth > t) {
      batch.Put(kCfDeadList, EncodeDeadKey(n, dk.death, dk.blkno, dk.birth), dead->value());
      deaths[{dk.blkno, dk.birth}] = dk.death;
    } else {
      BH_ASSIGN_OR_RETURN(BlockPtr ptr, DecodeBlockPtr(dead->value()));
      moves->revived.push_back({dk.blkno, dk.birth, dk.death, ptr});
    }
  }
  BH_RETURN_IF_ERROR(dead->status());
  auto births = p.kv->NewIterator(kCfBirths, {.upper_bound = NextLineagePrefix(l)});
  for (births->Seek(EncodeBirthKey(l, t + 1, 0)); births->Valid(); births->Next()) {
    BirthKey bk = DecodeBirthKey(births->key());
    std::string key = EncodeBlockKey(l, bk.blkno, bk.birth);
    BH_ASSIGN_OR_RETURN(auto v, p.kv->Get(kCfBlocks, key));
    if (!v) {
      return BH_ERROR(kCorruption, "birth entry of lineage {} block {} has no version", l,
                      bk.blkno);
    }
    BH_ASSIGN_OR_RETURN(BlockPtr ptr, DecodeBlockPtr(*v));
    batch.Delete(kCfBlocks, key);
    batch.Delete(kCfBirths, births->key());
    batch.Put(kCfBlocks, EncodeBlockKey(n, bk.blkno, bk.birth), *v);
    batch.Put(kCfBirths, EncodeBirthKey(n, bk.birth, bk.blkno), "");
    auto d = deaths.find({bk.blkno, bk.birth});
    moves->split.push_back({bk.blkno, bk.birth, d == deaths.end() ? kHeadView : d->second, ptr});
  }
  return births->status();
}

// Moves every version of clone lineage C into L (whose head is now its view
// at T), dead-listing the L version each block's oldest moved version
// covers. `li` is L's record (its own origin, for shadows).
Status MergeInto(SyncContext::Rep& rep, LineageId c, LineageId l, const LineageInfo& li,
                 uint64_t t, PromoteMoves* moves) {
  Pool::Impl& p = *rep.pool;
  KvBatch& batch = *rep.batch;
  auto cover = [&](uint64_t blkno, uint64_t oldest_birth) -> Status {
    Cover cv{blkno, oldest_birth, {}, {}};
    BH_ASSIGN_OR_RETURN(cv.below, VersionAt(*p.kv, l, blkno, t));
    if (cv.below) {
      batch.Put(kCfDeadList, EncodeDeadKey(l, oldest_birth, blkno, cv.below->first),
                EncodeBlockPtr(cv.below->second));
    } else if (li.origin_lineage != 0) {
      BH_ASSIGN_OR_RETURN(cv.hidden, p.Resolve(li.origin_lineage, blkno, li.origin_txg));
    }
    moves->covers.push_back(cv);
    return Status::Ok();
  };
  auto it = p.kv->NewIterator(kCfBlocks, {.upper_bound = NextLineagePrefix(c)});
  std::optional<std::pair<uint64_t, uint64_t>> last;  // (blkno, birth) of the previous key
  for (it->Seek(LineagePrefix(c)); it->Valid(); it->Next()) {
    BlockKey bk = DecodeBlockKey(it->key());
    uint64_t death = kHeadView;
    if (last && last->first != bk.blkno) BH_RETURN_IF_ERROR(cover(last->first, last->second));
    if (last && last->first == bk.blkno) death = last->second;  // newest first
    BH_ASSIGN_OR_RETURN(BlockPtr ptr, DecodeBlockPtr(it->value()));
    batch.Put(kCfBlocks, EncodeBlockKey(l, bk.blkno, bk.birth), it->value());
    batch.Put(kCfBirths, EncodeBirthKey(l, bk.birth, bk.blkno), "");
    moves->merged.push_back({bk.blkno, bk.birth, death, ptr});
    last = std::make_pair(bk.blkno, bk.birth);
  }
  BH_RETURN_IF_ERROR(it->status());
  if (last) BH_RETURN_IF_ERROR(cover(last->first, last->second));
  auto dead = p.kv->NewIterator(kCfDeadList, {.upper_bound = NextLineagePrefix(c)});
  for (dead->Seek(LineagePrefix(c)); dead->Valid(); dead->Next()) {
    DeadKey dk = DecodeDeadKey(dead->key());
    batch.Put(kCfDeadList, EncodeDeadKey(l, dk.death, dk.blkno, dk.birth), dead->value());
  }
  BH_RETURN_IF_ERROR(dead->status());
  for (int cf : {kCfBlocks, kCfBirths, kCfDeadList}) {
    batch.DeleteRange(cf, LineagePrefix(c), NextLineagePrefix(c));
  }
  batch.Delete(kCfLineages, LineagePrefix(c));
  return Status::Ok();
}

// The snapshot records of N (L's snapshots after T), computed from the
// versions that moved: referenced and written as a recount would, and the
// shadow of each block N has versions of (the version of L at T it hides).
Status SplitSnapshotSpace(Pool::Impl& p, LineageId l, uint64_t t, const LineageSpace& old_l,
                          const std::vector<VersionMove>& split, LineageSpace* out) {
  std::map<uint64_t, uint64_t> oldest;  // blkno -> oldest moved birth
  for (const VersionMove& v : split) {
    auto [it, fresh] = oldest.emplace(v.blkno, v.birth);
    if (!fresh) it->second = std::min(it->second, v.birth);
  }
  for (auto it = old_l.snapshots.upper_bound(t); it != old_l.snapshots.end(); ++it) {
    out->snapshots[it->first] = {};
  }
  for (const VersionMove& v : split) {
    SpaceTally tally = BlockTally(p, v.ptr);
    uint64_t prev = 0;
    for (auto& [txg, snap] : out->snapshots) {
      if (v.birth <= txg && txg < v.death) {
        snap.referenced += tally;
        if (v.birth > prev) snap.written += tally;
      }
      prev = txg;
    }
  }
  for (const auto& [blkno, birth] : oldest) {
    BH_ASSIGN_OR_RETURN(auto hidden, p.Resolve(l, blkno, t));
    if (!hidden) continue;
    SpaceTally tally = BlockTally(p, *hidden);
    out->shadowed += tally;
    for (auto& [txg, snap] : out->snapshots) {
      if (txg >= birth) snap.shadowed += tally;
    }
  }
  return Status::Ok();
}

// Space accounting of a promote (accounting.cc), proportional to the
// versions moved times the snapshots after T. L loses what moved to N and
// its snapshots after T, takes the clone's versions and snapshots; the
// snapshot records that cannot follow version by version (referenced and
// shadowed of the clone's snapshots, N's snapshots) are computed from the
// moved versions and the records of snapshot T.
Status PromoteSpace(SyncContext::Rep& rep, LineageId l, LineageId k, LineageId n, uint64_t t,
                    const PromoteMoves& moves) {
  Pool::Impl& p = *rep.pool;
  LineageSpace old_l, old_k;
  {
    MutexLock lock(&p.space_mu);
    old_l = p.space.at(l);
    old_k = p.space.at(k);
  }
  const SnapshotSpace at_t = old_l.snapshots.at(t);
  for (const VersionMove& v : moves.split) SpaceVersion(p, l, v.birth, v.death, v.ptr, false);
  for (const VersionMove& v : moves.revived) SpaceMove(p, l, v.birth, v.death, kHeadView, v.ptr);
  LineageSpace n_space;
  BH_RETURN_IF_ERROR(SplitSnapshotSpace(p, l, t, old_l, moves.split, &n_space));
  {
    MutexLock lock(&p.space_mu);
    LineageSpace& s = p.space.at(l);
    for (auto it = s.snapshots.upper_bound(t); it != s.snapshots.end();) {
      p.space_dirty.insert(SpaceSnapshotKey(l, it->first));
      it = s.snapshots.erase(it);
    }
    s.shadowed = at_t.shadowed;
    for (const Cover& c : moves.covers) {
      if (c.hidden) s.shadowed += BlockTally(p, *c.hidden);
    }
    for (const auto& [txg, ks] : old_k.snapshots) {
      SnapshotSpace snap{ks.referenced, ks.written, at_t.shadowed};
      snap.referenced += at_t.referenced;
      for (const Cover& c : moves.covers) {
        if (c.death > txg) continue;
        if (c.below) snap.referenced -= BlockTally(p, c.below->second);
        if (c.hidden) snap.shadowed += BlockTally(p, *c.hidden);
      }
      s.snapshots[txg] = snap;
      p.space_dirty.insert(SpaceSnapshotKey(l, txg));
    }
    s.reservation = old_k.reservation;
    p.space_dirty.insert(SpaceLineageKey(l));
    LineageSpace& ns = p.space.at(n);
    ns.snapshots = n_space.snapshots;
    ns.shadowed = n_space.shadowed;
    ns.reservation = old_l.reservation;
    for (const auto& [txg, snap] : ns.snapshots) p.space_dirty.insert(SpaceSnapshotKey(n, txg));
    p.space_dirty.insert(SpaceLineageKey(n));
  }
  for (const VersionMove& v : moves.merged) SpaceVersion(p, l, v.birth, v.death, v.ptr, true);
  for (const Cover& c : moves.covers) {
    if (c.below) SpaceMove(p, l, c.below->first, kHeadView, c.death, c.below->second);
  }
  for (const VersionMove& v : moves.split) SpaceVersion(p, n, v.birth, v.death, v.ptr, true);
  SpaceDropLineage(p, k, *rep.batch);
  return Status::Ok();
}

}  // namespace

Result<LineageId> SyncContext::PromoteLineage(LineageId clone, uint64_t new_fence) {
  Pool::Impl& p = *rep_->pool;
  LineageInfo ci, li;
  {
    MutexLock lock(&p.mu);
    auto c = p.lineages.find(clone);
    if (c == p.lineages.end() || c->second.origin_lineage == 0) {
      return BH_ERROR(kFailedPrecondition, "lineage {} is not a clone", clone);
    }
    ci = c->second;
    li = p.lineages.at(ci.origin_lineage);
  }
  const LineageId l = ci.origin_lineage;
  const uint64_t t = ci.origin_txg;
  LineageId n = CreateLineage(LineageInfo{false, l, t, new_fence});
  rep_->rewritten.insert({l, clone, n});
  PromoteMoves moves;
  BH_RETURN_IF_ERROR(SplitAfter(*rep_, l, t, n, &moves));
  BH_RETURN_IF_ERROR(MergeInto(*rep_, clone, l, li, t, &moves));
  BH_RETURN_IF_ERROR(PromoteSpace(*rep_, l, clone, n, t, moves));
  MutexLock lock(&p.mu);
  p.lineages.erase(clone);
  li.fence_txg = std::max(t, ci.fence_txg);
  p.lineages[l] = li;
  rep_->batch->Put(kCfLineages, LineagePrefix(l), EncodeLineage(li));
  for (auto& [id, info] : p.lineages) {
    bool moved_view = info.origin_lineage == l && info.origin_txg > t && id != n;
    if (moved_view) info.origin_lineage = n;
    if (info.origin_lineage == clone) info.origin_lineage = l;
    if (moved_view || info.origin_lineage == l) {
      rep_->batch->Put(kCfLineages, LineagePrefix(id), EncodeLineage(info));
    }
  }
  return n;
}

}  // namespace blockhaus::core
