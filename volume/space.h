// Space properties of datasets (zfsprops(7)): read-only numbers computed
// from core's per-lineage tallies in O(snapshots), never by scanning.
//
//   referenced         bytes the dataset sees, including through a clone's
//                      origin (physical, allocated)
//   used               volumes: usedbydataset + usedbysnapshots +
//                      usedbyrefreservation (+ usedbychildren, always 0);
//                      snapshots: bytes only that snapshot holds (freed if
//                      it alone were destroyed)
//   usedbydataset      the head's own live bytes
//   usedbysnapshots    bytes the volume's snapshots hold beyond the head
//   usedbyrefreservation  refreservation - bytes written since the newest
//                      snapshot (never below 0): what the reservation still
//                      keeps back (zfs: refreservation - unique)
//   written            bytes written since the previous snapshot (for a
//                      clone without snapshots: since its origin)
//   logicalused, logicalreferenced: the same before compression
//   compressratio      logicalused / used (snapshots: of referenced)
//
// The pool's "pending frees" (space a destroy released that the
// coalescing worker has not freed yet) belongs to no dataset, as in ZFS.
// Thread safety: thread-safe (reads core under its locks).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/pool/pool.h"
#include "volume/dataset.h"

namespace blockhaus::volume {

struct DatasetSpace {
  uint64_t used = 0;
  uint64_t referenced = 0;
  uint64_t written = 0;
  uint64_t logicalused = 0;
  uint64_t logicalreferenced = 0;
  uint64_t usedbysnapshots = 0;
  uint64_t usedbydataset = 0;
  uint64_t usedbyrefreservation = 0;
  uint64_t usedbychildren = 0;
  uint64_t compress_ratio_x100 = 100;  // compressratio * 100, rounded down

  bool operator==(const DatasetSpace&) const = default;
};

// One object a destroy would remove and the bytes it frees.
struct DestroyItem {
  std::string name;
  uint64_t bytes = 0;
};

// The bytes destroying `ds` frees when `doomed` (ids, ds included) go in
// the same operation: a snapshot frees its unique bytes; a volume frees all
// its lineage holds (that its doomed snapshots do not already list), except
// what is already waiting to be freed.
Result<uint64_t> DestroyBytes(const core::Pool& pool, const Dataset& ds,
                              const std::vector<Dataset>& doomed);

// The space properties of `ds` as of the last committed txg.
// Errors: NotFound (the lineage or snapshot is gone).
Result<DatasetSpace> ComputeSpace(const core::Pool& pool, const Dataset& ds);

// The same computed from a recount of the block map (slow; scrub, tests).
Result<DatasetSpace> RecountDatasetSpace(core::Pool& pool, const Dataset& ds);

// Reservations (docs/DECISIONS.md D14). A thick volume's refreservation is
// its volsize (metadata lives in RocksDB on the host filesystem, not in the
// data vdev, so no estimate is added); it holds back refreservation minus
// the bytes written since its newest snapshot, as zfs measures it against
// "unique" bytes.
//
// Whether a volume (lineage 0: one being created) may raise its
// refreservation from old_res to new_res: the growth of what it holds back
// must fit in the pool's unreserved free space.
// Errors: InvalidArgument (new_res > volsize), ResourceExhausted.
Status CheckReservation(const core::Pool& pool, const std::string& name, uint64_t lineage,
                        uint64_t volsize, uint64_t old_res, uint64_t new_res);
// Whether snapshots of these volumes fit: a snapshot makes a thick
// volume's whole refreservation unused again (zfs refuses it likewise).
// Errors: ResourceExhausted.
Status CheckSnapshotReservations(const core::Pool& pool, const std::vector<Dataset>& volumes);

// "1.50x" (or "1.50" when parsable).
std::string CompressRatioText(uint64_t ratio_x100, bool parsable);

}  // namespace blockhaus::volume
