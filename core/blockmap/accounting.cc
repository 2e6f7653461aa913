// Theory of operation: space accounting (tallies per lineage and snapshot)
//
// Overview
//   zfsprops(7) space numbers (used, referenced, written, usedbysnapshots,
//   a snapshot's unique bytes, what a destroy frees) must be cheap to read,
//   so they are kept as running tallies, changed by every commit that
//   changes the block map and persisted in the same batch. Nothing scans a
//   lineage to answer `volctl list`. The design is ZFS's deadlist with
//   per-snapshot sub-lists (dsl_deadlist.c), on our birth/death versions.
//
// Data structures & on-disk format
//   Per lineage (space_format.h, column family "space"): total, head,
//   head_new, shadowed, freeing, reservation; per snapshot txg T:
//   referenced, written, shadowed; and dead buckets keyed
//   (death_lo, birth_hi). Every version (birth b, death k; k = kHeadView
//   while the head sees it) of a non-hole block counts {psize rounded to the
//   sector, lsize} in total and in exactly one class, given the lineage's
//   snapshot txgs S (fence = max S):
//     k = head                      -> head (and head_new when b > fence)
//     some s in S with b <= s < k   -> bucket (max{s<k}, min{s>=b})
//     otherwise                     -> freeing (a destroyed snapshot's
//                                      versions, until its job frees them)
//   A snapshot's own referenced bytes are the head's at the instant it is
//   taken and never change; its written bytes are the head_new of that
//   instant. Its unique bytes ("used") are the bucket (T, T): born after the
//   previous snapshot, dead before the next.
//   Clones: a block the clone never wrote shows its origin's version. The
//   head's `shadowed` sums, over blocks the clone has any version of, the
//   origin version it hides (looked up once, when the block's first
//   version is written); referenced(view) = own + referenced(origin view)
//   - shadowed. Snapshots keep the shadowed of their instant.
//
// Invariants
//   * total = head + sum(buckets) + freeing, for a lineage not being
//     destroyed; RecountSpace recomputes every tally from the block map and
//     scrub compares (ScrubReport::space_mismatches).
//   * Every change of a version's (birth, death) goes through SpaceVersion
//     or SpaceMove in the same call that changes the block map, so the
//     tallies are exactly the block map's, txg by txg.
//   * Releasing snapshot T_i (neighbours T_prev, T_next): bucket (T_i, T_i)
//     moves to freeing (the free job's interval is exactly it); buckets
//     (T_i, B) become (T_prev, B), buckets (D, T_i) become (D, T_next);
//     written(T_next) (or head_new) grows by written(T_i) - unique(T_i), the
//     bytes born in T_i's interval that T_next still sees. Cost: the number
//     of buckets, never the number of blocks.
//   * Rollback to T: its per-version changes remove what was born after T
//     and revive what died after T; then the snapshots after T go (their
//     buckets are empty by then) and shadowed = shadowed(T).
//
// Concurrency & lock order
//   Tallies change only on the sync thread, during a commit, under space_mu
//   (the innermost pool lock: nothing is locked while holding it). Readers
//   copy them under space_mu and see the state of the txg being applied or
//   of the last commit; volctl reads between commits.
//
// Crash consistency
//   SpaceFlush writes the changed records into the commit's batch, so a
//   crash leaves tallies and block map at the same txg. A failed commit
//   suspends the pool with memory ahead of disk, as for the block map;
//   reopening reloads the records.
//
// Failure handling
//   A tally that would go below zero is a bug: it is clamped, logged, and
//   scrub reports the lineage (the recount is the reference).
//
// Tunables
//   None.

#include <algorithm>
#include <tuple>

#include "core/base/logging.h"
#include "core/pool/internal/pool_impl.h"

namespace blockhaus::core {
namespace {

uint64_t Fence(const LineageSpace& s) {
  return s.snapshots.empty() ? 0 : s.snapshots.rbegin()->first;
}

void Sub(SpaceTally& a, const SpaceTally& b, LineageId lineage, const char* what) {
  if (!a.covers(b)) {
    BH_LOG(kError, "space accounting of lineage {}: {} would go below zero", lineage, what);
    a.phys -= std::min(a.phys, b.phys);
    a.logical -= std::min(a.logical, b.logical);
    return;
  }
  a -= b;
}

void Change(SpaceTally& a, const SpaceTally& t, bool add, LineageId lineage, const char* what) {
  if (add) a += t;
  else Sub(a, t, lineage, what);
}

// The bucket of a dead version, or nullopt when no snapshot sees it.
std::optional<std::pair<uint64_t, uint64_t>> Bucket(const LineageSpace& s, uint64_t birth,
                                                    uint64_t death) {
  auto hi = s.snapshots.lower_bound(birth);  // min{s >= birth}
  if (hi == s.snapshots.end() || hi->first >= death) return std::nullopt;
  auto lo = s.snapshots.lower_bound(death);  // first s >= death; the one before is max{s < death}
  --lo;
  return std::make_pair(lo->first, hi->first);
}

void TouchBucket(Pool::Impl& p, LineageId l, const std::pair<uint64_t, uint64_t>& key)
    BH_REQUIRES(p.space_mu) {
  p.space_dirty.insert(SpaceDeadKey(l, key.first, key.second));
}

void ChangeBucket(Pool::Impl& p, LineageSpace& s, LineageId l,
                  const std::pair<uint64_t, uint64_t>& key, const SpaceTally& t, bool add)
    BH_REQUIRES(p.space_mu) {
  SpaceTally& b = s.dead[key];
  Change(b, t, add, l, "a dead bucket");
  if (b.zero()) s.dead.erase(key);
  TouchBucket(p, l, key);
}

// Counts (or uncounts) a version in its class; not in total.
void Classify(Pool::Impl& p, LineageSpace& s, LineageId l, uint64_t birth, uint64_t death,
              const SpaceTally& t, bool add) BH_REQUIRES(p.space_mu) {
  if (death == kHeadView) {
    Change(s.head, t, add, l, "head");
    if (birth > Fence(s)) Change(s.head_new, t, add, l, "head_new");
    return;
  }
  if (auto key = Bucket(s, birth, death)) return ChangeBucket(p, s, l, *key, t, add);
  Change(s.freeing, t, add, l, "freeing");
}

LineageSpace* Find(Pool::Impl& p, LineageId l) BH_REQUIRES(p.space_mu) {
  auto it = p.space.find(l);
  if (it == p.space.end()) {
    BH_LOG(kError, "space accounting: lineage {} has no record", l);
    return nullptr;
  }
  p.space_dirty.insert(SpaceLineageKey(l));
  return &it->second;
}

}  // namespace

SpaceTally BlockTally(const Pool::Impl& p, const BlockPtr& ptr) {
  if (ptr.hole) return {};
  return SpaceTally{p.alloc->RoundUp(ptr.psize), ptr.lsize};
}

void SpaceVersion(Pool::Impl& p, LineageId l, uint64_t birth, uint64_t death,
                  const BlockPtr& ptr, bool add) {
  SpaceTally t = BlockTally(p, ptr);
  if (t.zero()) return;
  MutexLock lock(&p.space_mu);
  LineageSpace* s = Find(p, l);
  if (s == nullptr) return;
  Change(s->total, t, add, l, "total");
  Classify(p, *s, l, birth, death, t, add);
}

void SpaceMove(Pool::Impl& p, LineageId l, uint64_t birth, uint64_t from, uint64_t to,
               const BlockPtr& ptr) {
  SpaceTally t = BlockTally(p, ptr);
  if (t.zero()) return;
  MutexLock lock(&p.space_mu);
  LineageSpace* s = Find(p, l);
  if (s == nullptr) return;
  Classify(p, *s, l, birth, from, t, false);
  Classify(p, *s, l, birth, to, t, true);
}

void SpaceShadow(Pool::Impl& p, LineageId l, const SpaceTally& t, bool add) {
  if (t.zero()) return;
  MutexLock lock(&p.space_mu);
  LineageSpace* s = Find(p, l);
  if (s != nullptr) Change(s->shadowed, t, add, l, "shadowed");
}

void SpaceCreateLineage(Pool::Impl& p, LineageId l) {
  MutexLock lock(&p.space_mu);
  p.space[l] = LineageSpace{};
  p.space_dirty.insert(SpaceLineageKey(l));
}

void SpaceSnapshot(Pool::Impl& p, LineageId l, uint64_t txg) {
  MutexLock lock(&p.space_mu);
  LineageSpace* s = Find(p, l);
  if (s == nullptr) return;
  s->snapshots[txg] = SnapshotSpace{s->head, s->head_new, s->shadowed};
  s->head_new = {};
  p.space_dirty.insert(SpaceSnapshotKey(l, txg));
}

SnapshotRelease SpaceRelease(Pool::Impl& p, LineageId l, uint64_t txg) {
  SnapshotRelease r;
  MutexLock lock(&p.space_mu);
  LineageSpace* s = Find(p, l);
  if (s == nullptr) return r;
  auto it = s->snapshots.find(txg);
  BH_CHECK(it != s->snapshots.end());
  if (it != s->snapshots.begin()) r.prev = std::prev(it)->first;
  if (std::next(it) != s->snapshots.end()) r.next = std::next(it)->first;
  r.unique = s->Unique(txg);
  if (!r.unique.zero()) ChangeBucket(p, *s, l, {txg, txg}, r.unique, false);
  s->freeing += r.unique;
  SpaceTally carry = it->second.written;
  Sub(carry, r.unique, l, "written carried over");
  if (r.next != 0) {
    s->snapshots[r.next].written += carry;
    p.space_dirty.insert(SpaceSnapshotKey(l, r.next));
  } else {
    s->head_new += carry;
  }
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, SpaceTally>> moved;
  for (auto b = s->dead.begin(); b != s->dead.end();) {
    auto [death_lo, birth_hi] = b->first;
    if (death_lo != txg && birth_hi != txg) {
      ++b;
      continue;
    }
    TouchBucket(p, l, b->first);
    moved.emplace_back(death_lo == txg ? std::make_pair(r.prev, birth_hi)
                                       : std::make_pair(death_lo, r.next),
                       b->second);
    b = s->dead.erase(b);
  }
  s->snapshots.erase(txg);
  p.space_dirty.insert(SpaceSnapshotKey(l, txg));
  for (const auto& [key, t] : moved) ChangeBucket(p, *s, l, key, t, true);
  return r;
}

void SpaceRollback(Pool::Impl& p, LineageId l, uint64_t txg) {
  MutexLock lock(&p.space_mu);
  LineageSpace* s = Find(p, l);
  if (s == nullptr) return;
  for (auto it = s->snapshots.upper_bound(txg); it != s->snapshots.end();) {
    p.space_dirty.insert(SpaceSnapshotKey(l, it->first));
    it = s->snapshots.erase(it);
  }
  for (auto b = s->dead.begin(); b != s->dead.end();) {
    if (b->first.first < txg && b->first.second <= txg) {
      ++b;
      continue;
    }
    BH_LOG(kError, "space accounting of lineage {}: bucket ({}, {}) not empty after rollback",
           l, b->first.first, b->first.second);
    TouchBucket(p, l, b->first);
    b = s->dead.erase(b);
  }
  auto snap = s->snapshots.find(txg);
  s->shadowed = snap == s->snapshots.end() ? SpaceTally{} : snap->second.shadowed;
}

void SpaceDestroyed(Pool::Impl& p, LineageId l, const SpaceTally& t) {
  MutexLock lock(&p.space_mu);
  LineageSpace* s = Find(p, l);
  if (s != nullptr) Sub(s->total, t, l, "total");
}

void SpaceDropLineage(Pool::Impl& p, LineageId l, KvBatch& batch) {
  MutexLock lock(&p.space_mu);
  p.space.erase(l);
  std::string lo = SpaceLineageKey(l), hi = SpaceLineageKey(l + 1);
  p.space_dirty.erase(p.space_dirty.lower_bound(lo), p.space_dirty.lower_bound(hi));
  batch.DeleteRange(kCfSpace, lo, hi);
}

void SpaceFlush(Pool::Impl& p, KvBatch& batch) {
  MutexLock lock(&p.space_mu);
  for (const std::string& key : p.space_dirty) {
    Result<SpaceKey> k = DecodeSpaceKey(key);
    BH_CHECK(k.ok());
    auto s = p.space.find(k->lineage);
    if (s == p.space.end()) {
      batch.Delete(kCfSpace, key);
      continue;
    }
    if (k->kind == 0) {
      batch.Put(kCfSpace, key, EncodeLineageSpace(s->second));
    } else if (k->kind == kSpaceKeySnapshot) {
      auto snap = s->second.snapshots.find(k->a);
      if (snap == s->second.snapshots.end()) batch.Delete(kCfSpace, key);
      else batch.Put(kCfSpace, key, EncodeSnapshotSpace(snap->second));
    } else {
      auto b = s->second.dead.find({k->a, k->b});
      if (b == s->second.dead.end()) batch.Delete(kCfSpace, key);
      else batch.Put(kCfSpace, key, EncodeSpaceTally(b->second));
    }
  }
  p.space_dirty.clear();
}

Status SpaceLoad(Pool::Impl& p) {
  MutexLock lock(&p.space_mu);
  auto it = p.kv->NewIterator(kCfSpace);
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    BH_ASSIGN_OR_RETURN(SpaceKey k, DecodeSpaceKey(it->key()));
    LineageSpace& s = p.space[k.lineage];
    if (k.kind == 0) {
      BH_RETURN_IF_ERROR(DecodeLineageSpace(it->value(), &s));
    } else if (k.kind == kSpaceKeySnapshot) {
      BH_ASSIGN_OR_RETURN(s.snapshots[k.a], DecodeSnapshotSpace(it->value()));
    } else {
      BH_ASSIGN_OR_RETURN(s.dead[std::make_pair(k.a, k.b)], DecodeSpaceTally(it->value()));
    }
  }
  return it->status();
}

// ---- queries --------------------------------------------------------------

Result<LineageSpace> Pool::GetSpace(LineageId lineage) const {
  MutexLock lock(&impl_->space_mu);
  auto it = impl_->space.find(lineage);
  if (it == impl_->space.end()) return BH_ERROR(kNotFound, "lineage {} does not exist", lineage);
  return it->second;
}

Result<SpaceTally> Pool::ReferencedAt(LineageId lineage, uint64_t view) const {
  // referenced(L, v) = own(L, v) + referenced(origin view) - shadowed(L, v):
  // collect the chain, then fold it from the origin end.
  std::vector<std::pair<SpaceTally, SpaceTally>> chain;  // (own, shadowed)
  for (int depth = 0; depth < 1000; ++depth) {
    BH_ASSIGN_OR_RETURN(LineageInfo info, GetLineage(lineage));
    {
      MutexLock lock(&impl_->space_mu);
      auto it = impl_->space.find(lineage);
      if (it == impl_->space.end()) return BH_ERROR(kNotFound, "lineage {} has no space", lineage);
      if (view == kHeadView) {
        chain.emplace_back(it->second.head, it->second.shadowed);
      } else {
        auto snap = it->second.snapshots.find(view);
        if (snap == it->second.snapshots.end()) {
          return BH_ERROR(kNotFound, "lineage {} has no snapshot at txg {}", lineage, view);
        }
        chain.emplace_back(snap->second.referenced, snap->second.shadowed);
      }
    }
    if (info.origin_lineage == 0) {
      SpaceTally r;
      for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
        SpaceTally below = r;
        r = it->first;
        if (it != chain.rbegin()) {
          r += below;
          Sub(r, it->second, lineage, "referenced");
        }
      }
      return r;
    }
    lineage = info.origin_lineage;
    view = info.origin_txg;
  }
  return BH_ERROR(kCorruption, "clone origins of lineage {} form a loop", lineage);
}

PendingFrees Pool::pending_frees() const {
  PendingFrees out;
  auto lineages = ListLineages();
  MutexLock lock(&impl_->space_mu);
  for (const auto& [id, info] : lineages) {
    auto it = impl_->space.find(id);
    if (it == impl_->space.end()) continue;
    if (info.destroying) {
      out.bytes += it->second.total;
      out.lineages++;
    } else {
      out.bytes += it->second.freeing;
    }
  }
  return out;
}

uint64_t Pool::unused_reservations() const {
  MutexLock lock(&impl_->space_mu);
  uint64_t sum = 0;
  for (const auto& [id, s] : impl_->space) {
    if (s.reservation > s.head_new.phys) sum += s.reservation - s.head_new.phys;
  }
  return sum;
}

// ---- recount -----------------------------------------------------------------

namespace {

// Counts the versions of one block (newest first) into `out`.
Status RecountBlock(Pool::Impl& p, const LineageInfo& info, uint64_t blkno,
                    const std::vector<std::pair<uint64_t, BlockPtr>>& versions,
                    LineageSpace& out) {
  uint64_t death = kHeadView;
  uint64_t fence = Fence(out);
  for (const auto& [birth, ptr] : versions) {
    SpaceTally t = BlockTally(p, ptr);
    out.total += t;
    if (!info.destroying && !t.zero()) {
      if (death == kHeadView) {
        out.head += t;
        if (birth > fence) out.head_new += t;
      } else if (auto key = Bucket(out, birth, death)) {
        out.dead[*key] += t;
      } else {
        out.freeing += t;
      }
      uint64_t prev = 0;
      for (auto& [txg, snap] : out.snapshots) {
        if (birth <= txg && txg < death) {
          snap.referenced += t;
          if (birth > prev) snap.written += t;
        }
        prev = txg;
      }
    }
    death = birth;
  }
  if (info.destroying || info.origin_lineage == 0 || versions.empty()) return Status::Ok();
  BH_ASSIGN_OR_RETURN(auto hidden, p.Resolve(info.origin_lineage, blkno, info.origin_txg));
  if (!hidden) return Status::Ok();
  SpaceTally t = BlockTally(p, *hidden);
  out.shadowed += t;
  for (auto& [txg, snap] : out.snapshots) {
    if (txg >= versions.back().first) snap.shadowed += t;
  }
  return Status::Ok();
}

}  // namespace

Result<LineageSpace> RecountSpaceLocked(Pool::Impl& p, LineageId l) {
  LineageInfo info;
  {
    MutexLock lock(&p.mu);
    auto it = p.lineages.find(l);
    if (it == p.lineages.end()) return BH_ERROR(kNotFound, "lineage {} does not exist", l);
    info = it->second;
  }
  LineageSpace out;
  {
    MutexLock lock(&p.space_mu);
    auto it = p.space.find(l);
    if (it == p.space.end()) return BH_ERROR(kCorruption, "lineage {} has no space record", l);
    out.reservation = it->second.reservation;
    for (const auto& [txg, snap] : it->second.snapshots) out.snapshots[txg] = {};
  }
  auto it = p.kv->NewIterator(kCfBlocks, {.upper_bound = LineagePrefix(l + 1)});
  std::vector<std::pair<uint64_t, BlockPtr>> versions;
  uint64_t blkno = 0;
  for (it->Seek(LineagePrefix(l)); it->Valid(); it->Next()) {
    BlockKey key = DecodeBlockKey(it->key());
    if (!versions.empty() && key.blkno != blkno) {
      BH_RETURN_IF_ERROR(RecountBlock(p, info, blkno, versions, out));
      versions.clear();
    }
    blkno = key.blkno;
    BH_ASSIGN_OR_RETURN(BlockPtr ptr, DecodeBlockPtr(it->value()));
    versions.emplace_back(key.birth, ptr);
  }
  BH_RETURN_IF_ERROR(it->status());
  BH_RETURN_IF_ERROR(RecountBlock(p, info, blkno, versions, out));
  return out;
}

Result<LineageSpace> Pool::RecountSpace(LineageId lineage) {
  MutexLock sync_lock(&impl_->sync_mu);
  return RecountSpaceLocked(*impl_, lineage);
}

// Names the first tally of `have` that differs from `want`, or "".
std::string SpaceDifference(const LineageSpace& have, const LineageSpace& want,
                            bool destroying) {
  auto text = [](const SpaceTally& t) { return fmt::format("{}/{}", t.phys, t.logical); };
  auto cmp = [&](const char* what, const SpaceTally& h, const SpaceTally& w) -> std::string {
    if (h == w) return "";
    return fmt::format("{} is {}, recount says {}", what, text(h), text(w));
  };
  std::string d = cmp("total", have.total, want.total);
  if (!d.empty() || destroying) return d;
  for (auto [what, h, w] : {std::tuple{"head", have.head, want.head},
                            std::tuple{"head_new", have.head_new, want.head_new},
                            std::tuple{"shadowed", have.shadowed, want.shadowed},
                            std::tuple{"freeing", have.freeing, want.freeing}}) {
    if (d = cmp(what, h, w); !d.empty()) return d;
  }
  if (have.snapshots != want.snapshots) {
    for (const auto& [txg, snap] : have.snapshots) {
      const SnapshotSpace& w = want.snapshots.at(txg);
      if (snap == w) continue;
      return fmt::format("snapshot {}: referenced {} written {} shadowed {}, recount says "
                         "{} {} {}", txg, text(snap.referenced), text(snap.written),
                         text(snap.shadowed), text(w.referenced), text(w.written),
                         text(w.shadowed));
    }
  }
  if (have.dead != want.dead) {
    std::string out = "dead buckets differ: have";
    for (const auto& [k, t] : have.dead) out += fmt::format(" ({},{})={}", k.first, k.second, text(t));
    out += "; recount";
    for (const auto& [k, t] : want.dead) out += fmt::format(" ({},{})={}", k.first, k.second, text(t));
    return out;
  }
  return "";
}

Status CheckSpace(Pool::Impl& p, ScrubReport& r, std::vector<std::string>* problems) {
  std::vector<std::pair<LineageId, LineageInfo>> lineages;
  {
    MutexLock lock(&p.mu);
    lineages.assign(p.lineages.begin(), p.lineages.end());
  }
  for (const auto& [id, info] : lineages) {
    BH_ASSIGN_OR_RETURN(LineageSpace want, RecountSpaceLocked(p, id));
    LineageSpace have;
    {
      MutexLock lock(&p.space_mu);
      have = p.space.at(id);
    }
    std::string d = SpaceDifference(have, want, info.destroying);
    if (d.empty()) continue;
    r.space_mismatches++;
    problems->push_back(fmt::format("lineage {} space: {}", id, d));
  }
  return Status::Ok();
}

// ---- SyncContext ------------------------------------------------------------

SnapshotRelease SyncContext::ReleaseSnapshot(LineageId lineage, uint64_t txg) {
  return SpaceRelease(*rep_->pool, lineage, txg);
}

void SyncContext::SetReservation(LineageId lineage, uint64_t bytes) {
  Pool::Impl& p = *rep_->pool;
  MutexLock lock(&p.space_mu);
  LineageSpace* s = Find(p, lineage);
  if (s != nullptr) s->reservation = bytes;
}

}  // namespace blockhaus::core
