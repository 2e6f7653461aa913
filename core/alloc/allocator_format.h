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

}  // namespace blockhaus::core
