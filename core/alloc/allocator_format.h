// On-disk form of one slab's free map (value in the "alloc" column family,
// key = slab id as big-endian u64).
//
//   SlabMapPhys, little-endian:
//     u8   version        kSlabMapVersion
//     u8   reserved[3]    0
//     u32  count          number of free extents
//     count x { u32 start_sector, u32 length_sectors }  relative to the slab
// Extents are sorted, disjoint and inside the slab; the decoder checks all
// three. Sector indexes are relative, so a slab may hold up to 2^32 sectors.
//
// Between two full maps a slab's changes are logged (D22): one record per
// txg that touched the slab, key = slab id (BE u64) + txg (BE u64), so the
// records of a slab sort after its map and in txg order.
//
//   SlabLogPhys, little-endian:
//     u8   version        kSlabLogVersion
//     u8   reserved[3]    0
//     u32  count          number of operations
//     count x { u32 start_sector, u32 length_sectors | kSlabLogFreeBit }
// Operations apply in order: an allocation takes a range that was free, a
// free returns one that was allocated (frees parked until their txg is
// durable count as free on disk).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"

namespace blockhaus::core {

inline constexpr uint8_t kSlabMapVersion = 1;
inline constexpr size_t kSlabMapHeaderSize = 8;
inline constexpr size_t kSlabMapEntrySize = 8;

using SectorRanges = std::vector<std::pair<uint32_t, uint32_t>>;

std::string EncodeSlabMap(const SectorRanges& free);
// Errors: Corruption (short, bad version, unsorted, overlapping, or beyond
// slab_sectors).
Result<SectorRanges> DecodeSlabMap(std::string_view encoded, uint64_t slab_sectors);

inline constexpr uint8_t kSlabLogVersion = 1;
inline constexpr uint32_t kSlabLogFreeBit = 0x80000000u;

struct SlabOp {
  bool free = false;  // false: allocation
  uint32_t start = 0;  // sector, relative to the slab
  uint32_t length = 0;  // sectors, < 2^31
  bool operator==(const SlabOp&) const = default;
};

std::string EncodeSlabLog(const std::vector<SlabOp>& ops);
// Errors: Corruption (short, bad version, empty or out-of-slab ranges).
Result<std::vector<SlabOp>> DecodeSlabLog(std::string_view encoded, uint64_t slab_sectors);

}  // namespace blockhaus::core
