// Theory of operation: the space allocator
//
// Overview
//   Pool data lives in one vdev. Its allocatable region is cut into slabs
//   (default 64 MiB, fewer for small pools); each slab keeps its free space as
//   a map of disjoint, coalesced extents counted in sectors. The sync thread
//   asks for one contiguous extent per txg when it can (the txg's blocks then
//   go out as one sequential write) and block by block when it cannot.
//   Allocation is first-fit from the lowest address: first for an extent
//   that holds the whole run up to kGoodRun (1 MiB), then for any extent
//   that holds the next block. Low-first keeps the data file compact and
//   reuses space freed a few txgs ago, whose pages the kernel still caches:
//   on the machines we measure, writing a page the page cache already holds
//   costs a tenth of the CPU of a fresh one (allocation, zeroing and
//   accounting of the page), and a cursor that swept the whole pool wrote
//   only fresh pages (docs/DECISIONS.md D23). Asking for whole runs first
//   keeps a txg's blocks contiguous on disk (one write, and one read when
//   they are read back in order) when the low space is cut into small holes.
//
// Data structures & on-disk format
//   Slab::free is std::map<start sector, length>. The persistent form of a
//   slab is SlabMapPhys (allocator_format.h) in the "alloc" column family,
//   keyed by slab id, followed by SlabLogPhys records keyed by slab id and
//   txg: the allocations and frees each txg made in the slab, in order
//   (Slab::pending until the txg's batch takes them). A txg costs what it
//   changed, not the size of the maps it touched: rewriting whole maps made
//   a SYNCHRONIZE CACHE of 16 random 4K writes cost ~10 ms of CPU once
//   random overwrites had cut the slabs into thousands of free extents.
//   When a slab's log on disk outgrows max(kMinLogOps, 2 x its map), the
//   txg writes the full map instead and deletes the log (condensing, as
//   ZFS does with its space map logs), so opening a pool reads at most
//   about three times the maps. A fresh pool writes every map once.
//
// Invariants
//   * Free extents of a slab are disjoint, non-adjacent (coalesced) and inside
//     the slab; free_sectors is their sum; free_sectors_ is the pool's sum.
//   * I2: an extent passed to Free(txg, ...) is not handed out again until
//     ReleaseDeferred(txg) - the caller releases it once txg is durable.
//   * The persisted map of a slab written in txg N shows as free everything
//     free in memory plus what was freed in N: after a crash at N those blocks
//     are unreferenced, so the persisted state is exactly right for N.
//   * allocated = capacity - free - deferred - reserved; scrub recounts it
//     from the block map and compares (no leak, no double allocation).
//   * Free and reserved extents are disjoint; no log record holds a
//     reservation.
//
// Reservations (D29)
//   Writers place their blocks in the data file as they write them, long
//   before the txg commits. Reserve() takes the space out of the free map
//   like an allocation but logs nothing; Slab::reserved remembers it, and a
//   full map written meanwhile shows it as free. When the txg commits,
//   Commit() logs the allocation of each block it holds in that txg's
//   record; a block overwritten or dropped before its commit is given back
//   by Unreserve(), also without a record. So the records on disk only ever
//   hold allocations whose block pointers commit in the same batch.
//
// Concurrency & lock order
//   Thread-compatible. The pool calls it under its own mutex (a leaf lock):
//   writer threads reserve, the sync thread does the rest.
//
// Crash consistency
//   The allocator holds no state of its own on disk beyond the slab maps that
//   commit atomically with the block pointers of the same txg. A crash loses
//   the open and syncing txgs: their allocations vanish with the pointers that
//   used them, and their deferred frees were never durable.
//
// Failure handling
//   Allocate returns ResourceExhausted when no single extent is long enough;
//   the pool admits writes against free space less a reserve (slop), so this
//   only happens under heavy fragmentation. A slab map that fails to decode
//   fails the pool open with Corruption: guessing free space would risk
//   overwriting live data (I3).
//
// Tunables
//   slab_size (pool create, fixed for the pool's life) and ashift (sector
//   size, 9..16, default 12).

#include "core/alloc/allocator.h"

#include <algorithm>
#include <limits>

#include "core/alloc/allocator_format.h"
#include "core/base/check.h"

namespace blockhaus::core {

namespace {
// A slab's log is condensed into a full map once it holds more operations
// than this, or twice the map's extents if that is more.
constexpr uint64_t kMinLogOps = 256;
// A run this long (or the whole request, if shorter) is looked for before
// settling for the first extent that holds the next block.
constexpr uint64_t kGoodRun = 1u << 20;
}  // namespace

Allocator::Allocator(const AllocatorGeometry& geometry) : geometry_(geometry) {
  BH_CHECK(geometry.slab_size > 0 && geometry.data_end > geometry.data_start);
  BH_CHECK(geometry.slab_size % sector_size() == 0);
  BH_CHECK(geometry.data_start % sector_size() == 0);
  uint64_t first = geometry.data_start >> geometry.ashift;
  uint64_t last = geometry.data_end >> geometry.ashift;
  uint64_t per_slab = geometry.slab_size >> geometry.ashift;
  for (uint64_t s = first; s < last; s += per_slab) {
    Slab slab;
    slab.start = s;
    slab.sectors = std::min(per_slab, last - s);
    slab.free.emplace(s, slab.sectors);
    slab.free_sectors = slab.sectors;
    free_sectors_ += slab.sectors;
    slabs_.push_back(std::move(slab));
  }
}

uint64_t Allocator::RoundUp(uint64_t bytes) const {
  uint64_t mask = sector_size() - 1;
  return (bytes + mask) & ~mask;
}

uint64_t Allocator::capacity() const {
  return geometry_.data_end - geometry_.data_start;
}
uint64_t Allocator::free_bytes() const { return free_sectors_ << geometry_.ashift; }
uint64_t Allocator::deferred_bytes() const {
  return deferred_sectors_ << geometry_.ashift;
}
uint64_t Allocator::reserved_bytes() const {
  return reserved_sectors_ << geometry_.ashift;
}

Status Allocator::LoadSlab(uint64_t slab_id, std::string_view encoded) {
  if (slab_id >= slabs_.size()) {
    return BH_ERROR(kInvalidArgument, "slab {} does not exist (pool has {})", slab_id,
                    slabs_.size());
  }
  Slab& slab = slabs_[slab_id];
  BH_ASSIGN_OR_RETURN(SectorRanges ranges, DecodeSlabMap(encoded, slab.sectors));
  free_sectors_ -= slab.free_sectors;
  slab.free.clear();
  slab.free_sectors = 0;
  for (const auto& [start, len] : ranges) {
    InsertFree(slab, slab.start + start, len);
    slab.free_sectors += len;
  }
  free_sectors_ += slab.free_sectors;
  slab.needs_map = false;
  slab.pending.clear();
  slab.logged_ops = 0;
  return Status::Ok();
}

Status Allocator::LoadSlabLog(uint64_t slab_id, std::string_view encoded) {
  if (slab_id >= slabs_.size()) {
    return BH_ERROR(kInvalidArgument, "slab {} does not exist (pool has {})", slab_id,
                    slabs_.size());
  }
  Slab& slab = slabs_[slab_id];
  BH_ASSIGN_OR_RETURN(std::vector<SlabOp> ops, DecodeSlabLog(encoded, slab.sectors));
  for (const SlabOp& op : ops) {
    uint64_t start = slab.start + op.start;
    uint64_t end = start + op.length;
    auto next = slab.free.upper_bound(start);
    if (op.free) {
      bool clear = (next == slab.free.end() || end <= next->first) &&
                   (next == slab.free.begin() ||
                    std::prev(next)->first + std::prev(next)->second <= start);
      if (!clear) {
        return BH_ERROR(kCorruption, "slab log frees [{}, +{}), which is already free",
                        op.start, op.length);
      }
      InsertFree(slab, start, op.length);
      slab.free_sectors += op.length;
      free_sectors_ += op.length;
    } else {
      if (next == slab.free.begin()) {
        return BH_ERROR(kCorruption, "slab log allocates [{}, +{}), which is not free",
                        op.start, op.length);
      }
      auto it = std::prev(next);
      uint64_t ext_start = it->first, ext_end = it->first + it->second;
      if (end > ext_end) {
        return BH_ERROR(kCorruption, "slab log allocates [{}, +{}), which is not free",
                        op.start, op.length);
      }
      slab.free.erase(it);
      if (ext_start < start) slab.free.emplace(ext_start, start - ext_start);
      if (end < ext_end) slab.free.emplace(end, ext_end - end);
      slab.free_sectors -= op.length;
      free_sectors_ -= op.length;
    }
  }
  slab.logged_ops += ops.size();
  return Status::Ok();
}

// Inserts [start, start+len) into the slab's map, merging with neighbours.
// REQUIRES: the range is not already free.
void Allocator::InsertFree(Slab& slab, uint64_t start, uint64_t len) {
  auto next = slab.free.lower_bound(start);
  BH_CHECK(next == slab.free.end() || start + len <= next->first);
  if (next != slab.free.begin()) {
    auto prev = std::prev(next);
    BH_CHECK(prev->first + prev->second <= start);  // no double free
    if (prev->first + prev->second == start) {
      start = prev->first;
      len += prev->second;
      slab.free.erase(prev);
    }
  }
  if (next != slab.free.end() && start + len == next->first) {
    len += next->second;
    slab.free.erase(next);
  }
  slab.free.emplace(start, len);
  if (len >= slab.no_fit) slab.no_fit = UINT64_MAX;
}

bool Allocator::AllocateInSlab(Slab& slab, uint64_t min_sectors, uint64_t max_sectors,
                               uint64_t* start, uint64_t* got, bool high) {
  if (slab.free_sectors < min_sectors || min_sectors >= slab.no_fit) return false;
  auto fits = [&](const auto& e) { return e.second >= min_sectors; };
  auto it = slab.free.end();
  if (high) {
    auto r = std::find_if(slab.free.rbegin(), slab.free.rend(), fits);
    if (r != slab.free.rend()) it = std::prev(r.base());
  } else {
    it = std::find_if(slab.free.begin(), slab.free.end(), fits);
  }
  if (it != slab.free.end()) {
    *got = std::min(it->second, max_sectors);
    uint64_t rest = it->second - *got;
    if (high) {
      *start = it->first + rest;
      if (rest > 0) {
        it->second = rest;
      } else {
        slab.free.erase(it);
      }
    } else {
      *start = it->first;
      slab.free.erase(it);
      if (rest > 0) slab.free.emplace(*start + *got, rest);
    }
    slab.free_sectors -= *got;
    slab.pending.push_back(SlabOp{false, static_cast<uint32_t>(*start - slab.start),
                                  static_cast<uint32_t>(*got)});
    return true;
  }
  slab.no_fit = min_sectors;
  return false;
}

Result<Extent> Allocator::AllocateRun(uint64_t min_length, uint64_t max_length) {
  return AllocateRun(min_length, max_length, /*high=*/false);
}

Result<Extent> Allocator::AllocateRun(uint64_t min_length, uint64_t max_length, bool high) {
  uint64_t min_sectors = RoundUp(min_length) >> geometry_.ashift;
  uint64_t max_sectors = std::max(min_sectors, RoundUp(max_length) >> geometry_.ashift);
  BH_CHECK(min_sectors > 0);
  const uint64_t good = std::clamp(kGoodRun >> geometry_.ashift, min_sectors, max_sectors);
  for (uint64_t want : {good, min_sectors}) {
    for (size_t i = 0; i < slabs_.size(); ++i) {
      Slab& slab = slabs_[high ? slabs_.size() - 1 - i : i];
      uint64_t start = 0, got = 0;
      if (AllocateInSlab(slab, want, max_sectors, &start, &got, high)) {
        free_sectors_ -= got;
        return Extent{start << geometry_.ashift, got << geometry_.ashift};
      }
    }
    if (want == min_sectors) break;
  }
  return BH_ERROR(kResourceExhausted,
                  "no free extent of {} bytes ({} bytes free in all)", min_length,
                  free_bytes());
}

Result<Extent> Allocator::Allocate(uint64_t length) { return AllocateRun(length, length); }

Result<Extent> Allocator::Reserve(uint64_t min_length, uint64_t max_length) {
  return Reserve(min_length, max_length, /*high=*/false);
}

Result<Extent> Allocator::ReserveHigh(uint64_t min_length, uint64_t max_length) {
  return Reserve(min_length, max_length, /*high=*/true);
}

Result<Extent> Allocator::Reserve(uint64_t min_length, uint64_t max_length, bool high) {
  BH_ASSIGN_OR_RETURN(Extent e, AllocateRun(min_length, max_length, high));
  uint64_t start = e.offset >> geometry_.ashift;
  uint64_t sectors = e.length >> geometry_.ashift;
  Slab& slab = SlabOf(start);
  slab.pending.pop_back();  // AllocateRun's record: a reservation leaves none
  slab.reserved.emplace(start, sectors);
  reserved_sectors_ += sectors;
  return e;
}

Allocator::Slab& Allocator::TakeReserved(uint64_t start, uint64_t sectors) {
  Slab& slab = SlabOf(start);
  auto it = slab.reserved.upper_bound(start);
  BH_CHECK(it != slab.reserved.begin());
  --it;
  uint64_t r_start = it->first, r_end = it->first + it->second;
  BH_CHECK(start + sectors <= r_end);
  slab.reserved.erase(it);
  if (r_start < start) slab.reserved.emplace(r_start, start - r_start);
  if (start + sectors < r_end) slab.reserved.emplace(start + sectors, r_end - start - sectors);
  reserved_sectors_ -= sectors;
  return slab;
}

void Allocator::Commit(const Extent& extent) {
  uint64_t start = extent.offset >> geometry_.ashift;
  uint64_t sectors = extent.length >> geometry_.ashift;
  Slab& slab = TakeReserved(start, sectors);
  slab.pending.push_back(SlabOp{false, static_cast<uint32_t>(start - slab.start),
                                static_cast<uint32_t>(sectors)});
}

void Allocator::Unreserve(const Extent& extent) {
  uint64_t start = extent.offset >> geometry_.ashift;
  uint64_t sectors = extent.length >> geometry_.ashift;
  Slab& slab = TakeReserved(start, sectors);
  InsertFree(slab, start, sectors);
  slab.free_sectors += sectors;
  free_sectors_ += sectors;
}

void Allocator::Return(const Extent& extent) {
  uint64_t start = extent.offset >> geometry_.ashift;
  uint64_t sectors = extent.length >> geometry_.ashift;
  Slab& slab = SlabOf(start);
  InsertFree(slab, start, sectors);
  slab.free_sectors += sectors;
  free_sectors_ += sectors;
  slab.pending.push_back(SlabOp{true, static_cast<uint32_t>(start - slab.start),
                                static_cast<uint32_t>(sectors)});
}

Allocator::Slab& Allocator::SlabOf(uint64_t sector) {
  uint64_t first = geometry_.data_start >> geometry_.ashift;
  uint64_t per_slab = geometry_.slab_size >> geometry_.ashift;
  BH_CHECK(sector >= first);
  uint64_t idx = (sector - first) / per_slab;
  BH_CHECK(idx < slabs_.size());
  return slabs_[idx];
}

void Allocator::Free(uint64_t txg, const Extent& extent) {
  BH_CHECK(extent.offset % sector_size() == 0 && extent.length % sector_size() == 0);
  BH_CHECK(extent.offset >= geometry_.data_start && extent.end() <= geometry_.data_end);
  uint64_t start = extent.offset >> geometry_.ashift;
  uint64_t sectors = extent.length >> geometry_.ashift;
  Slab& slab = SlabOf(start);
  BH_CHECK(start + sectors <= slab.start + slab.sectors);  // blocks never span slabs
  slab.pending.push_back(SlabOp{true, static_cast<uint32_t>(start - slab.start),
                                static_cast<uint32_t>(sectors)});
  deferred_[txg].emplace_back(start, sectors);
  deferred_sectors_ += sectors;
}

void Allocator::ReleaseDeferred(uint64_t txg) {
  ReleaseDeferred(txg, std::numeric_limits<size_t>::max());
}

bool Allocator::ReleaseDeferred(uint64_t txg, size_t max_extents) {
  for (size_t n = 0; !deferred_.empty() && deferred_.begin()->first <= txg;) {
    auto& extents = deferred_.begin()->second;
    for (; !extents.empty(); extents.pop_back()) {
      if (n++ == max_extents) return false;
      const auto [start, sectors] = extents.back();
      Slab& slab = SlabOf(start);
      InsertFree(slab, start, sectors);
      slab.free_sectors += sectors;
      free_sectors_ += sectors;
      deferred_sectors_ -= sectors;
    }
    deferred_.erase(deferred_.begin());
  }
  return true;
}

std::vector<Allocator::SlabRecord> Allocator::TakeDirtySlabs(uint64_t txg) {
  SlabRecordCursor cursor = BeginSlabRecords(txg);
  while (!StepSlabRecords(cursor, slabs_.size())) {
  }
  return std::move(cursor.records);
}

Allocator::SlabRecordCursor Allocator::BeginSlabRecords(uint64_t txg) const {
  SlabRecordCursor c;
  c.txg = txg;
  c.parked.resize(slabs_.size());
  const uint64_t first = geometry_.data_start >> geometry_.ashift;
  const uint64_t per_slab = geometry_.slab_size >> geometry_.ashift;
  for (const auto& [parked_txg, list] : deferred_) {
    for (const auto& [start, sectors] : list) {
      c.parked[(start - first) / per_slab].emplace_back(start, sectors);
    }
  }
  for (auto& list : c.parked) std::sort(list.begin(), list.end());
  return c;
}

bool Allocator::StepSlabRecords(SlabRecordCursor& c, size_t max_slabs) {
  for (size_t done = 0; c.next < slabs_.size() && done < max_slabs; ++c.next) {
    Slab& slab = slabs_[c.next];
    if (!slab.needs_map && slab.pending.empty()) continue;
    ++done;
    uint64_t limit = std::max<uint64_t>(kMinLogOps, 2 * slab.free.size());
    if (!slab.needs_map && slab.logged_ops + slab.pending.size() <= limit) {
      c.records.push_back(SlabRecord{c.next, c.txg, EncodeSlabLog(slab.pending)});
      slab.logged_ops += slab.pending.size();
    } else {
      // The full map. Parked frees and reservations count as free on disk
      // (see Invariants): nothing durable points to them.
      c.records.push_back(SlabRecord{c.next, 0, EncodeSlabMap(FullMap(slab, c.parked[c.next]))});
      slab.needs_map = false;
      slab.logged_ops = 0;
    }
    slab.pending.clear();
  }
  return c.next == slabs_.size();
}

SectorRanges Allocator::FullMap(const Slab& slab,
                                const std::vector<std::pair<uint64_t, uint64_t>>& parked) {
  // Three sorted, disjoint sets of extents, merged in address order with
  // neighbours coalesced (as InsertFree would have them).
  SectorRanges ranges;
  ranges.reserve(slab.free.size() + slab.reserved.size() + parked.size());
  auto f = slab.free.begin();
  auto r = slab.reserved.begin();
  auto p = parked.begin();
  uint64_t end = slab.start;  // where the last range ends
  for (;;) {
    const uint64_t fs = f != slab.free.end() ? f->first : UINT64_MAX;
    const uint64_t rs = r != slab.reserved.end() ? r->first : UINT64_MAX;
    const uint64_t ps = p != parked.end() ? p->first : UINT64_MAX;
    const uint64_t start = std::min({fs, rs, ps});
    if (start == UINT64_MAX) break;
    uint64_t len = 0;
    if (start == fs) len = (f++)->second;
    else if (start == rs) len = (r++)->second;
    else len = (p++)->second;
    BH_CHECK(start >= end);  // disjoint: no double free
    if (!ranges.empty() && start == end) {
      ranges.back().second += static_cast<uint32_t>(len);
    } else {
      ranges.emplace_back(static_cast<uint32_t>(start - slab.start), static_cast<uint32_t>(len));
    }
    end = start + len;
  }
  return ranges;
}

std::vector<Extent> Allocator::AllocatedExtents() const {
  std::vector<Extent> out;
  for (const Slab& slab : slabs_) {
    uint64_t pos = slab.start;
    auto emit = [&](uint64_t end) {
      if (end <= pos) return;
      Extent e{pos << geometry_.ashift, (end - pos) << geometry_.ashift};
      if (!out.empty() && out.back().end() == e.offset) {
        out.back().length += e.length;
      } else {
        out.push_back(e);
      }
    };
    // Free and reserved extents are disjoint: walk both in address order.
    auto f = slab.free.begin();
    auto r = slab.reserved.begin();
    while (f != slab.free.end() || r != slab.reserved.end()) {
      auto& next = (r == slab.reserved.end() || (f != slab.free.end() && f->first < r->first))
                       ? f
                       : r;
      emit(next->first);
      pos = next->first + next->second;
      ++next;
    }
    emit(slab.start + slab.sectors);
  }
  return out;
}

}  // namespace blockhaus::core
