// On-disk formats of the block map (FORMAT VERSION kBlockPtrVersion).
//
// Column family "blocks": one entry per version of a logical block.
//   key   BlockKey, 24 bytes big-endian: lineage u64 | blkno u64 | ~birth u64
//         (birth inverted so that the newest version of a block sorts first:
//         the head reads the first key of the prefix, a view at txg T seeks to
//         ~T and reads the first key it lands on)
//   value BlockPtrPhys, 56 bytes little-endian (below)
// Column family "deadlist": a version superseded while a snapshot could see it.
//   key   lineage u64 | death u64 | blkno u64 | birth u64  (32 bytes BE)
//   value BlockPtrPhys of the dead version (to free it without a lookup)
// Column family "births": every live non-hole version, by birth.
//   key   lineage u64 | birth u64 | blkno u64  (24 bytes BE), value empty
//   Rollback, diff and incremental send find what changed after a txg here,
//   in time proportional to the change.
// Column family "lineages": key lineage u64 BE, value LineagePhys.
//
// BlockPtrPhys (56 bytes):
//   u8  version        kBlockPtrVersion
//   u8  flags          bit 0: hole (the block reads as zeros; no space)
//   u8  compression    CompressionAlgo
//   u8  comp_level     zstd level, else 0
//   u8  checksum_type  ChecksumType
//   u8  reserved[3]    0
//   u32 lsize          logical bytes (the block size)
//   u32 psize          stored bytes (compressed or == lsize); the space used
//                      is psize rounded up to the pool's sector
//   u64 offset         byte offset in the data vdev
//   u8  checksum[32]   over the psize stored bytes
//
// LineagePhys (32 bytes):
//   u8  version, u8 flags (bit 0: destroying), u8 reserved[6]
//   u64 origin_lineage  0 when the lineage is not a clone
//   u64 origin_txg      the view of the origin that a clone falls through to
//   u64 fence_txg       the newest snapshot txg of this lineage (0: none)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/status.h"
#include "core/checksum/checksum.h"
#include "core/compress/compress.h"

namespace blockhaus::core {

inline constexpr uint8_t kBlockPtrVersion = 1;
inline constexpr size_t kBlockPtrSize = 56;
inline constexpr size_t kBlockKeySize = 24;
inline constexpr size_t kBlockKeyPrefix = 16;  // lineage | blkno
inline constexpr size_t kDeadKeySize = 32;
inline constexpr size_t kBirthKeySize = 24;
inline constexpr uint8_t kLineageVersion = 1;
inline constexpr size_t kLineageSize = 32;

struct BlockPtr {
  bool hole = false;
  Compression compression;
  ChecksumType checksum_type = ChecksumType::kXxh3_128;
  uint32_t lsize = 0;
  uint32_t psize = 0;
  uint64_t offset = 0;
  ChecksumValue checksum{};

  bool operator==(const BlockPtr&) const = default;
};

struct LineageInfo {
  bool destroying = false;
  uint64_t origin_lineage = 0;
  uint64_t origin_txg = 0;
  uint64_t fence_txg = 0;

  bool operator==(const LineageInfo&) const = default;
};

std::string EncodeBlockPtr(const BlockPtr& ptr);
// Errors: Corruption (size, version, flags, unknown algorithm or checksum).
Result<BlockPtr> DecodeBlockPtr(std::string_view encoded);

std::string EncodeBlockKey(uint64_t lineage, uint64_t blkno, uint64_t birth);
struct BlockKey {
  uint64_t lineage;
  uint64_t blkno;
  uint64_t birth;
};
// REQUIRES: key.size() == kBlockKeySize.
BlockKey DecodeBlockKey(std::string_view key);

std::string EncodeDeadKey(uint64_t lineage, uint64_t death, uint64_t blkno, uint64_t birth);
struct DeadKey {
  uint64_t lineage;
  uint64_t death;
  uint64_t blkno;
  uint64_t birth;
};
DeadKey DecodeDeadKey(std::string_view key);

std::string EncodeBirthKey(uint64_t lineage, uint64_t birth, uint64_t blkno);
struct BirthKey {
  uint64_t lineage;
  uint64_t birth;
  uint64_t blkno;
};
BirthKey DecodeBirthKey(std::string_view key);

// The 8-byte big-endian key prefix of a lineage in any block map family.
std::string LineagePrefix(uint64_t lineage);

std::string EncodeLineage(const LineageInfo& info);
Result<LineageInfo> DecodeLineage(std::string_view encoded);

}  // namespace blockhaus::core
