// VolumeManager::Promote: zfs promote on lineages (DECISIONS.md D17).
//
// Before: volume O (lineage L) with snapshots ... <= S < ...; clone C
// (lineage K) of O@S. After: C owns L, with O's snapshots up to S (renamed
// C@...) and C's own snapshots; O lives on a new lineage N that falls
// through to (L, S), with its snapshots after S; O's origin is C@S and C's
// origin is what O's was. Core moves the versions (SyncContext::
// PromoteLineage): those of L born after S go to N, those of K go to L.
// Every view maps to a view that reads the same, so no data moves on disk
// and the cost is the snapshots plus the blocks O and C changed since S.
//
// Free jobs follow their versions: a dead-interval job of L whose birth
// range lies after S now runs on N; a job of K runs on L, its birth range
// clamped to after S (K's versions were all born after S; L's own versions
// at or before S belong to C@S and older). No job's birth range straddles
// S: S existed when any such job was queued, so it bounded the range. A
// moved job's versions reach their new lineage in this txg's batch, which a
// step reads past (committed state only); core refuses steps on the three
// lineages until the next txg, and N is fenced by nothing else.
//
// Crash safety: one sync task. Concurrency: the devices of every dataset
// whose lineage or view changes (O, C, their snapshots, and the clones of
// those snapshots, whose origin lineage core re-points) are fenced, their
// dirty data flushed, and the worker skips L and K for the duration.

#include <algorithm>

#include "volume/internal/manager_impl.h"

namespace blockhaus::volume {

using core::SyncContext;

namespace {

struct PromotePlan {
  uint64_t clone_id = 0, origin_snap_id = 0, origin_vol_id = 0;
  std::vector<uint64_t> fenced_ids;  // datasets whose devices must be quiet
};

// Whom to fence, and the checks that need the tables. Computed before
// fencing and again in check (Aborted if a concurrent operation changed it).
Status PlanPromote(VolumeManager::Impl& m, const std::string& name, PromotePlan* plan)
    BH_REQUIRES(m.mu) {
  const Dataset* c = m.Find(name);
  if (c == nullptr) return BH_ERROR(kNotFound, "volume '{}' does not exist", name);
  if (c->origin_id == 0) {
    return BH_ERROR(kFailedPrecondition,
                    "cannot promote '{}': not a clone (only a clone can be promoted)", name);
  }
  const Dataset& s = m.by_id.at(c->origin_id);
  const Dataset& o = m.by_id.at(s.volume_id);
  *plan = PromotePlan{c->id, s.id, o.id, {c->id, o.id}};
  for (uint64_t vol : {c->id, o.id}) {
    for (const Dataset* snap : m.SnapshotsOf(vol)) {
      plan->fenced_ids.push_back(snap->id);
      for (const Dataset* cl : m.ClonesOf(snap->id)) plan->fenced_ids.push_back(cl->id);
    }
  }
  std::sort(plan->fenced_ids.begin(), plan->fenced_ids.end());
  plan->fenced_ids.erase(std::unique(plan->fenced_ids.begin(), plan->fenced_ids.end()),
                         plan->fenced_ids.end());
  for (const Dataset* snap : m.SnapshotsOf(o.id)) {
    if (snap->txg > s.txg) continue;
    std::string moved = name + "@" + SplitSnapshotName(snap->name).second;
    if (m.Find(moved)) {
      return BH_ERROR(kFailedPrecondition,
                      "cannot promote '{}': snapshot name '{}' exists in both '{}' and '{}'",
                      name, SplitSnapshotName(snap->name).second, o.name, name);
    }
  }
  return Status::Ok();
}

}  // namespace

Status VolumeManager::Promote(const std::string& name) {
  BH_RETURN_IF_ERROR(ValidateVolumeName(name));
  Impl& m = *impl_;
  PromotePlan plan;
  std::vector<uint64_t> lineages;
  {
    MutexLock lock(&m.mu);
    BH_RETURN_IF_ERROR(PlanPromote(m, name, &plan));
    lineages = {m.by_id.at(plan.clone_id).lineage, m.by_id.at(plan.origin_vol_id).lineage};
  }
  FencedDatasets fenced(m, plan.fenced_ids, lineages);
  BH_RETURN_IF_ERROR(m.pool->Flush().status());
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    PromotePlan now;
    BH_RETURN_IF_ERROR(PlanPromote(m, name, &now));
    if (now.fenced_ids != plan.fenced_ids || now.origin_snap_id != plan.origin_snap_id) {
      return BH_ERROR(kAborted, "'{}' changed during the promote; retry", name);
    }
    return Status::Ok();
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    Dataset c = m.by_id.at(plan.clone_id);
    const Dataset s = m.by_id.at(plan.origin_snap_id);
    Dataset o = m.by_id.at(plan.origin_vol_id);
    uint64_t new_fence = 0;
    for (const Dataset* snap : m.SnapshotsOf(o.id)) {
      if (snap->txg > s.txg) new_fence = std::max(new_fence, snap->txg);
    }
    Result<core::LineageId> n = ctx.PromoteLineage(c.lineage, new_fence);
    if (!n.ok()) return ctx.Fail(n.status());
    const uint64_t l = o.lineage, k = c.lineage;
    for (const Dataset* p : m.SnapshotsOf(o.id)) {
      Dataset snap = *p;
      if (snap.txg <= s.txg) {
        snap.volume_id = c.id;
        snap.name = name + "@" + SplitSnapshotName(snap.name).second;
      } else {
        snap.lineage = *n;
      }
      m.ReplaceDataset(ctx, snap);
    }
    for (const Dataset* p : m.SnapshotsOf(c.id)) {
      if (p->lineage != k) continue;  // just moved over from O
      Dataset snap = *p;
      snap.lineage = l;
      m.PutDataset(ctx, snap);
    }
    c.lineage = l;
    c.origin_id = o.origin_id;
    o.lineage = *n;
    o.origin_id = s.id;
    m.PutDataset(ctx, c);
    m.PutDataset(ctx, o);
    for (auto& [seq, job] : m.jobs) {
      if (job.kind != FreeJob::Kind::kDeadInterval) continue;
      bool moved = false;
      if (job.lineage == l && job.birth_lo >= s.txg) {
        job.lineage = *n;
        moved = true;
      } else if (job.lineage == k) {
        job.lineage = l;
        job.birth_lo = std::max(job.birth_lo, s.txg);
        moved = true;
      }
      if (!moved) continue;
      job.cursor.clear();  // a dead-list key of the old lineage
      job.pass_freed = false;
      ctx.PutClientKey(JobKey(seq), EncodeJob(job));
    }
  };
  return m.pool->RunSyncTask(check, sync).status();
}

}  // namespace blockhaus::volume
