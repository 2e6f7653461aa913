#include "core/alloc/allocator_format.h"

#include "core/base/endian.h"

namespace blockhaus::core {

std::string EncodeSlabMap(const SectorRanges& free) {
  std::string out;
  out.reserve(kSlabMapHeaderSize + free.size() * kSlabMapEntrySize);
  out.push_back(static_cast<char>(kSlabMapVersion));
  out.append(3, '\0');
  PutLE32(&out, static_cast<uint32_t>(free.size()));
  for (const auto& [start, len] : free) {
    PutLE32(&out, start);
    PutLE32(&out, len);
  }
  return out;
}

Result<SectorRanges> DecodeSlabMap(std::string_view encoded, uint64_t slab_sectors) {
  const auto* p = reinterpret_cast<const uint8_t*>(encoded.data());
  if (encoded.size() < kSlabMapHeaderSize) {
    return BH_ERROR(kCorruption, "slab map: {} bytes is shorter than its header",
                    encoded.size());
  }
  if (p[0] != kSlabMapVersion) {
    return BH_ERROR(kCorruption, "slab map: unknown version {}", p[0]);
  }
  uint64_t count = DecodeLE32(p + 4);
  if (encoded.size() != kSlabMapHeaderSize + count * kSlabMapEntrySize) {
    return BH_ERROR(kCorruption, "slab map: {} bytes cannot hold {} extents",
                    encoded.size(), count);
  }
  SectorRanges ranges;
  ranges.reserve(count);
  uint64_t prev_end = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* e = p + kSlabMapHeaderSize + i * kSlabMapEntrySize;
    uint64_t start = DecodeLE32(e);
    uint64_t len = DecodeLE32(e + 4);
    if (len == 0 || start < prev_end || start + len > slab_sectors) {
      return BH_ERROR(kCorruption, "slab map: extent {} [{}, +{}) is empty, unsorted or "
                      "outside the slab of {} sectors", i, start, len, slab_sectors);
    }
    prev_end = start + len;
    ranges.emplace_back(static_cast<uint32_t>(start), static_cast<uint32_t>(len));
  }
  return ranges;
}

std::string EncodeSlabLog(const std::vector<SlabOp>& ops) {
  std::string out;
  out.reserve(kSlabMapHeaderSize + ops.size() * kSlabMapEntrySize);
  out.push_back(static_cast<char>(kSlabLogVersion));
  out.append(3, '\0');
  PutLE32(&out, static_cast<uint32_t>(ops.size()));
  for (const SlabOp& op : ops) {
    PutLE32(&out, op.start);
    PutLE32(&out, op.length | (op.free ? kSlabLogFreeBit : 0));
  }
  return out;
}

Result<std::vector<SlabOp>> DecodeSlabLog(std::string_view encoded, uint64_t slab_sectors) {
  const auto* p = reinterpret_cast<const uint8_t*>(encoded.data());
  if (encoded.size() < kSlabMapHeaderSize) {
    return BH_ERROR(kCorruption, "slab log: {} bytes is shorter than its header",
                    encoded.size());
  }
  if (p[0] != kSlabLogVersion) return BH_ERROR(kCorruption, "slab log: unknown version {}", p[0]);
  uint64_t count = DecodeLE32(p + 4);
  if (encoded.size() != kSlabMapHeaderSize + count * kSlabMapEntrySize) {
    return BH_ERROR(kCorruption, "slab log: {} bytes cannot hold {} operations",
                    encoded.size(), count);
  }
  std::vector<SlabOp> ops;
  ops.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    const uint8_t* e = p + kSlabMapHeaderSize + i * kSlabMapEntrySize;
    uint32_t start = DecodeLE32(e);
    uint32_t word = DecodeLE32(e + 4);
    uint32_t len = word & ~kSlabLogFreeBit;
    if (len == 0 || uint64_t{start} + len > slab_sectors) {
      return BH_ERROR(kCorruption, "slab log: operation {} [{}, +{}) is empty or outside the "
                      "slab of {} sectors", i, start, len, slab_sectors);
    }
    ops.push_back(SlabOp{(word & kSlabLogFreeBit) != 0, start, len});
  }
  return ops;
}

}  // namespace blockhaus::core
