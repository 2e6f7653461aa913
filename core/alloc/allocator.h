// Allocator: hands out space in a pool's data vdev, slab by slab.
//
// The data region [data_start, data_end) is cut into slabs of slab_size bytes
// (the last one may be shorter). Each slab keeps an in-memory map of its free
// extents in sectors (1 << ashift bytes). Allocation is first-fit from the
// lowest address, whole runs before holes (D23), so the blocks of one txg
// land back to back and go out as one large sequential write, on file
// offsets whose pages the kernel still caches.
//
// Frees are deferred: Free(txg, extent) parks the extent until
// ReleaseDeferred(txg) is called after that txg is durable (invariant I2:
// space freed in txg N is not reused before N is durable).
// What a txg changed in a slab is persisted by TakeDirtySlabs() in the
// txg's batch: as a log record of the slab's allocations and frees, or, once
// the log of a slab has grown past its map, as the full map (its free
// extents plus the frees still parked) that replaces the log (D22).
//
// Errors: ResourceExhausted (no extent of the requested length), Corruption
// (a persisted slab map that does not decode or overlaps itself).
// Thread safety: thread-compatible. The pool serialises every call with its
// own mutex: writers reserve, the sync thread commits, frees and releases.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/alloc/allocator_format.h"
#include "core/base/status.h"

namespace blockhaus::core {

struct Extent {
  uint64_t offset = 0;  // bytes from the start of the vdev
  uint64_t length = 0;  // bytes, a multiple of the sector size

  uint64_t end() const { return offset + length; }
  bool operator==(const Extent&) const = default;
};

struct AllocatorGeometry {
  uint64_t data_start = 0;  // first allocatable byte (sector aligned)
  uint64_t data_end = 0;    // one past the last allocatable byte (sector aligned)
  uint32_t ashift = 12;     // sector size = 1 << ashift
  uint64_t slab_size = 0;   // bytes, a multiple of the sector size
};

class Allocator {
 public:
  // A fresh allocator: everything free, every slab dirty.
  explicit Allocator(const AllocatorGeometry& geometry);

  // Replaces the state of slab `slab_id` with a persisted map.
  // Errors: Corruption (bad encoding, extents outside the slab, overlaps),
  // InvalidArgument (slab_id out of range).
  Status LoadSlab(uint64_t slab_id, std::string_view encoded);
  // Applies one persisted log record of slab `slab_id` (after its map and
  // the records of earlier txgs).
  // Errors: Corruption (bad encoding; an allocation of space that is not
  // free, a free of space that is), InvalidArgument (slab_id out of range).
  Status LoadSlabLog(uint64_t slab_id, std::string_view encoded);

  // Allocates one contiguous extent of `length` bytes (rounded up to sectors).
  // Errors: ResourceExhausted.
  Result<Extent> Allocate(uint64_t length);
  // Allocates one contiguous extent of at least min_length and at most
  // max_length bytes (both rounded up to sectors): the first free run of
  // min_length or more from the cursor, cut to max_length. This is how a txg
  // gets long runs without needing one run as long as the whole txg.
  // Errors: ResourceExhausted.
  Result<Extent> AllocateRun(uint64_t min_length, uint64_t max_length);
  // Gives back space allocated in the syncing txg but never written: it is
  // free again at once (it was free in the last durable txg).
  void Return(const Extent& extent);

  // Reservations: space taken for blocks written before their txg commits
  // (D29). A reserved extent is out of the free maps in memory but free in
  // every record on disk (full maps include it) until Commit() records its
  // allocation in the txg whose metadata points to it; Unreserve() gives
  // it back without a trace. So a crash never leaks what was reserved.
  //
  // Reserves like AllocateRun. Errors: ResourceExhausted.
  Result<Extent> Reserve(uint64_t min_length, uint64_t max_length);
  // Reserves like Reserve, but the highest free space: for reservations
  // that only hold room and are never written (a raw dirty block's, D50),
  // which would otherwise take the low space, whose pages the page cache
  // holds, from the blocks that are written.
  Result<Extent> ReserveHigh(uint64_t min_length, uint64_t max_length);
  // Records the allocation of reserved `extent` (any part of a reservation)
  // in the current txg's log. REQUIRES: it is reserved.
  void Commit(const Extent& extent);
  // Makes reserved `extent` (any part of a reservation) free again at once.
  // REQUIRES: it is reserved, and nothing will read it.
  void Unreserve(const Extent& extent);
  // Parks `extent` until ReleaseDeferred(txg). REQUIRES: it is allocated.
  void Free(uint64_t txg, const Extent& extent);
  // Makes the extents freed in txgs <= txg allocatable again.
  void ReleaseDeferred(uint64_t txg);
  // The same, at most `max_extents` extents per call: true once nothing
  // freed in txgs <= txg is left. For a caller that lets go of its lock
  // between calls, so that a big txg's release does not hold up writers.
  bool ReleaseDeferred(uint64_t txg, size_t max_extents);

  // What the metadata store must hold for the slabs changed since the last
  // call: a log record of `txg`'s changes, or a full map (txg == 0) that
  // replaces the slab's map and every log record of it (the caller deletes
  // them in the same batch).
  struct SlabRecord {
    uint64_t slab = 0;
    uint64_t txg = 0;  // 0: the full map
    std::string value;
  };
  std::vector<SlabRecord> TakeDirtySlabs(uint64_t txg);

  // TakeDirtySlabs in steps of a few slabs, for a caller that lets its lock
  // go between steps so writers reserve meanwhile (D40): one slab's full
  // map walks its free, reserved and parked extents, a txg's dirty slabs
  // took tens of milliseconds at once. BeginSlabRecords reads only the
  // parked frees, which no one but the thread calling Free and
  // ReleaseDeferred changes: that thread may call it without the lock.
  // StepSlabRecords (under the lock) appends the records of up to
  // `max_slabs` more slabs and returns true once every slab is done.
  // Reserve and Unreserve between steps change no record: a full map
  // counts reservations as free either way.
  struct SlabRecordCursor {
    uint64_t txg = 0;
    size_t next = 0;  // the next slab to look at
    // Parked frees by slab (start sector, length), sorted.
    std::vector<std::vector<std::pair<uint64_t, uint64_t>>> parked;
    std::vector<SlabRecord> records;
  };
  SlabRecordCursor BeginSlabRecords(uint64_t txg) const;
  bool StepSlabRecords(SlabRecordCursor& cursor, size_t max_slabs);

  // Every allocated extent, merged and sorted (for scrub's leak check);
  // reservations are not allocated.
  std::vector<Extent> AllocatedExtents() const;

  uint64_t capacity() const;        // bytes in the data region
  uint64_t free_bytes() const;      // allocatable now
  uint64_t deferred_bytes() const;  // freed, waiting for their txg
  uint64_t reserved_bytes() const;  // reserved, not committed
  // Held by committed blocks (reservations are not).
  uint64_t allocated_bytes() const {
    return capacity() - free_bytes() - deferred_bytes() - reserved_bytes();
  }
  uint64_t slab_count() const { return slabs_.size(); }
  uint64_t sector_size() const { return uint64_t{1} << geometry_.ashift; }
  uint64_t RoundUp(uint64_t bytes) const;

 private:
  struct Slab {
    uint64_t start = 0;                  // sector index of the slab's first sector
    uint64_t sectors = 0;                // length in sectors
    std::map<uint64_t, uint64_t> free;   // start sector -> length, disjoint, coalesced
    uint64_t free_sectors = 0;
    bool needs_map = true;       // a fresh slab: no map on disk yet
    std::vector<SlabOp> pending;  // changes since the last TakeDirtySlabs
    uint64_t logged_ops = 0;      // operations in its log on disk
    // Every free extent is shorter than this many sectors (a search for
    // that much or more can skip the slab). UINT64_MAX: not known.
    uint64_t no_fit = UINT64_MAX;
    // Reserved extents (start sector -> length), disjoint, not coalesced.
    std::map<uint64_t, uint64_t> reserved;
  };

  static void InsertFree(Slab& slab, uint64_t start, uint64_t len);
  // The full map of a slab: its free, reserved and parked extents, merged.
  static SectorRanges FullMap(const Slab& slab,
                              const std::vector<std::pair<uint64_t, uint64_t>>& parked);
  // high: the slab's highest free extent that fits, cut from its top.
  bool AllocateInSlab(Slab& slab, uint64_t min_sectors, uint64_t max_sectors,
                      uint64_t* start, uint64_t* got, bool high = false);
  Result<Extent> AllocateRun(uint64_t min_length, uint64_t max_length, bool high);
  Result<Extent> Reserve(uint64_t min_length, uint64_t max_length, bool high);
  Slab& SlabOf(uint64_t sector);
  // Takes [start, start+sectors) out of its slab's reservations.
  // REQUIRES: it is reserved.
  Slab& TakeReserved(uint64_t start, uint64_t sectors);

  AllocatorGeometry geometry_;
  std::vector<Slab> slabs_;
  uint64_t free_sectors_ = 0;
  // txg -> extents (in sectors: start, length) freed in that txg.
  std::map<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>> deferred_;
  uint64_t deferred_sectors_ = 0;
  uint64_t reserved_sectors_ = 0;
};

}  // namespace blockhaus::core
