// Space properties from core's tallies; see space.h for the definitions and
// core/blockmap/accounting.cc for how the tallies are kept.
#include "volume/space.h"

#include <fmt/format.h>

#include <algorithm>

namespace blockhaus::volume {
namespace {

uint64_t Ratio(uint64_t logical, uint64_t phys) {
  if (phys == 0) return 100;
  return static_cast<uint64_t>(static_cast<unsigned __int128>(logical) * 100 / phys);
}

// `own` is the lineage's tallies (stored or recounted); `referenced` the
// bytes its view sees through clone origins.
DatasetSpace FromTallies(const Dataset& ds, const core::LineageSpace& own,
                         const core::SpaceTally& referenced) {
  DatasetSpace s;
  s.referenced = referenced.phys;
  s.logicalreferenced = referenced.logical;
  if (ds.is_snapshot()) {
    core::SpaceTally unique = own.Unique(ds.txg);
    auto snap = own.snapshots.find(ds.txg);
    s.used = unique.phys;
    s.logicalused = unique.logical;
    if (snap != own.snapshots.end()) s.written = snap->second.written.phys;
    s.compress_ratio_x100 = Ratio(referenced.logical, referenced.phys);
    return s;
  }
  core::SpaceTally snaps = own.Snapshots();
  s.usedbysnapshots = snaps.phys;
  s.usedbydataset = own.head.phys;
  uint64_t reserved = ds.props.refreservation;
  s.usedbyrefreservation = reserved > own.head_new.phys ? reserved - own.head_new.phys : 0;
  s.used = s.usedbydataset + s.usedbysnapshots + s.usedbyrefreservation + s.usedbychildren;
  s.logicalused = own.head.logical + snaps.logical;
  s.written = own.head_new.phys;
  s.compress_ratio_x100 = Ratio(s.logicalused, s.usedbydataset + s.usedbysnapshots);
  return s;
}

}  // namespace

Result<DatasetSpace> ComputeSpace(const core::Pool& pool, const Dataset& ds) {
  BH_ASSIGN_OR_RETURN(core::LineageSpace own, pool.GetSpace(ds.lineage));
  BH_ASSIGN_OR_RETURN(core::SpaceTally referenced,
                      pool.ReferencedAt(ds.lineage, ds.is_snapshot() ? ds.txg : core::kHeadView));
  return FromTallies(ds, own, referenced);
}

Result<DatasetSpace> RecountDatasetSpace(core::Pool& pool, const Dataset& ds) {
  BH_ASSIGN_OR_RETURN(core::LineageSpace own, pool.RecountSpace(ds.lineage));
  // referenced through the origin chain: recount each lineage of the chain.
  uint64_t lineage = ds.lineage;
  uint64_t view = ds.is_snapshot() ? ds.txg : core::kHeadView;
  std::vector<std::pair<core::SpaceTally, core::SpaceTally>> chain;  // (own, shadowed)
  for (int depth = 0; depth < 1000; ++depth) {
    BH_ASSIGN_OR_RETURN(core::LineageSpace ls, pool.RecountSpace(lineage));
    if (view == core::kHeadView) {
      chain.emplace_back(ls.head, ls.shadowed);
    } else {
      auto snap = ls.snapshots.find(view);
      if (snap == ls.snapshots.end()) {
        return BH_ERROR(kNotFound, "lineage {} has no snapshot at txg {}", lineage, view);
      }
      chain.emplace_back(snap->second.referenced, snap->second.shadowed);
    }
    BH_ASSIGN_OR_RETURN(core::LineageInfo info, pool.GetLineage(lineage));
    if (info.origin_lineage == 0) break;
    lineage = info.origin_lineage;
    view = info.origin_txg;
  }
  core::SpaceTally referenced;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    core::SpaceTally below = referenced;
    referenced = it->first;
    if (it != chain.rbegin()) {
      referenced += below;
      referenced -= it->second;
    }
  }
  return FromTallies(ds, own, referenced);
}

namespace {

// Bytes a lineage has written since its newest snapshot (committed).
uint64_t WrittenSinceSnapshot(const core::Pool& pool, uint64_t lineage) {
  if (lineage == 0) return 0;
  auto s = pool.GetSpace(lineage);
  return s.ok() ? s->head_new.phys : 0;
}

uint64_t Held(uint64_t res, uint64_t written) { return res > written ? res - written : 0; }

}  // namespace

Status CheckReservation(const core::Pool& pool, const std::string& name, uint64_t lineage,
                        uint64_t volsize, uint64_t old_res, uint64_t new_res) {
  if (new_res > volsize) {
    return BH_ERROR(kInvalidArgument, "cannot set refreservation of '{}' to {}: more than its "
                    "volsize ({})", name, new_res, volsize);
  }
  uint64_t written = WrittenSinceSnapshot(pool, lineage);
  uint64_t before = Held(old_res, written), after = Held(new_res, written);
  if (after <= before) return Status::Ok();
  uint64_t free = pool.unreserved_free();
  if (after - before > free) {
    return BH_ERROR(kResourceExhausted, "out of space: '{}' would reserve {} more bytes, the "
                    "pool has {} unreserved", name, after - before, free);
  }
  return Status::Ok();
}

Status CheckSnapshotReservations(const core::Pool& pool, const std::vector<Dataset>& volumes) {
  uint64_t need = 0;
  for (const Dataset& v : volumes) {
    uint64_t res = v.props.refreservation;
    need += std::min(res, WrittenSinceSnapshot(pool, v.lineage));
  }
  if (need == 0) return Status::Ok();
  uint64_t free = pool.unreserved_free();
  if (need > free) {
    return BH_ERROR(kResourceExhausted, "out of space: the snapshot would make {} bytes of "
                    "refreservation unused again, the pool has {} unreserved", need, free);
  }
  return Status::Ok();
}

Result<uint64_t> DestroyBytes(const core::Pool& pool, const Dataset& ds,
                              const std::vector<Dataset>& doomed) {
  BH_ASSIGN_OR_RETURN(core::LineageSpace s, pool.GetSpace(ds.lineage));
  if (ds.is_snapshot()) return s.Unique(ds.txg).phys;
  uint64_t bytes = s.total.phys - s.freeing.phys;
  for (const Dataset& d : doomed) {
    if (d.is_snapshot() && d.volume_id == ds.id) bytes -= s.Unique(d.txg).phys;
  }
  return bytes;
}

std::string CompressRatioText(uint64_t ratio_x100, bool parsable) {
  return fmt::format("{}.{:02}{}", ratio_x100 / 100, ratio_x100 % 100, parsable ? "" : "x");
}

}  // namespace blockhaus::volume
