// VolumeManager::Resize: grow and shrink (volsize).
//
// Growing only rewrites the record: blocks past the old end were never
// written (or were truncated by an earlier shrink) and read as zeros.
// Shrinking fences the volume's devices, flushes, and in one sync task
// makes the blocks past the new end read as zeros exactly as unmaps would
// (SyncContext::TruncateLineage): head-only versions are freed with the
// txg, versions a snapshot sees stay on its dead list, and a clone gets
// holes over what its origin shows there. Snapshots keep their own volsize
// and contents; rollback restores both. Cost: the versions stored past the
// new end, never the volume size.

#include "volume/internal/manager_impl.h"
#include "volume/space.h"

namespace blockhaus::volume {

using core::SyncContext;

Status VolumeManager::Resize(const std::string& name, uint64_t volsize, bool force) {
  Impl& m = *impl_;
  Dataset ds;
  {
    MutexLock lock(&m.mu);
    const Dataset* d = m.Find(name);
    if (d == nullptr) return BH_ERROR(kNotFound, "'{}' does not exist", name);
    if (d->is_snapshot()) {
      return BH_ERROR(kInvalidArgument, "cannot set volsize of snapshot '{}'", name);
    }
    ds = *d;
  }
  const uint32_t bs = ds.props.volblocksize;
  if (volsize == 0 || volsize % bs != 0) {
    return BH_ERROR(kInvalidArgument,
                    "bad volsize {}: must be a non-zero multiple of volblocksize ({})", volsize,
                    bs);
  }
  std::optional<FencedDatasets> fenced;
  if (volsize < ds.props.volsize) {
    fenced.emplace(m, std::vector<uint64_t>{ds.id}, std::vector<uint64_t>{ds.lineage});
    BH_RETURN_IF_ERROR(m.pool->Flush().status());
  }
  Dataset updated;
  uint64_t old_size = 0;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    const Dataset* d = m.Find(name);
    if (d == nullptr || d->id != ds.id || d->lineage != ds.lineage ||
        (volsize < d->props.volsize && !fenced)) {
      return BH_ERROR(kAborted, "'{}' changed during the resize; retry", name);
    }
    old_size = d->props.volsize;
    updated = *d;
    // A thick volume's refreservation follows its volsize (as in zfs).
    if (updated.props.refreservation == updated.props.volsize) updated.props.refreservation = volsize;
    updated.props.volsize = volsize;
    BH_RETURN_IF_ERROR(CheckReservation(*m.pool, name, d->lineage, volsize,
                                        d->props.refreservation, updated.props.refreservation));
    if (volsize >= d->props.volsize || force) return Status::Ok();
    BH_ASSIGN_OR_RETURN(bool data, m.pool->HasDataInRange(d->lineage, volsize / bs,
                                                          d->props.volsize / bs));
    if (data) {
      return BH_ERROR(kFailedPrecondition,
                      "cannot shrink '{}' to {} bytes: it holds written data beyond that "
                      "(use -f to discard it)", name, volsize);
    }
    return Status::Ok();
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    if (volsize < old_size) {
      auto r = ctx.TruncateLineage(updated.lineage, volsize / bs, old_size / bs);
      if (!r.ok()) return ctx.Fail(r.status());
    }
    ctx.SetReservation(updated.lineage, updated.props.refreservation);
    m.PutDataset(ctx, updated);
  };
  Status s = m.pool->RunSyncTask(check, sync).status();
  if (s.ok()) {
    std::shared_ptr<DeviceCell> cell = m.Cell(ds.id);
    // Under the fence for a shrink; a grow only widens what devices accept.
    cell->size.store(volsize, std::memory_order_relaxed);
  }
  return s;
}

}  // namespace blockhaus::volume
