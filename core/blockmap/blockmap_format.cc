#include "core/blockmap/blockmap_format.h"

#include <cstring>

#include "core/base/endian.h"

namespace blockhaus::core {
namespace {

constexpr uint8_t kFlagHole = 0x01;
constexpr uint8_t kLineageFlagDestroying = 0x01;

const uint8_t* Bytes(std::string_view s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

}  // namespace

std::string EncodeBlockPtr(const BlockPtr& ptr) {
  std::string out(kBlockPtrSize, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  p[0] = kBlockPtrVersion;
  p[1] = ptr.hole ? kFlagHole : 0;
  p[2] = static_cast<uint8_t>(ptr.compression.algo);
  p[3] = ptr.compression.level;
  p[4] = static_cast<uint8_t>(ptr.checksum_type);
  EncodeLE32(p + 8, ptr.lsize);
  EncodeLE32(p + 12, ptr.psize);
  EncodeLE64(p + 16, ptr.offset);
  std::memcpy(p + 24, ptr.checksum.data(), ptr.checksum.size());
  return out;
}

Result<BlockPtr> DecodeBlockPtr(std::string_view encoded) {
  if (encoded.size() != kBlockPtrSize) {
    return BH_ERROR(kCorruption, "block pointer of {} bytes, expected {}", encoded.size(),
                    kBlockPtrSize);
  }
  const uint8_t* p = Bytes(encoded);
  if (p[0] != kBlockPtrVersion) {
    return BH_ERROR(kCorruption, "block pointer version {} is unknown", p[0]);
  }
  if ((p[1] & ~kFlagHole) != 0 || p[5] != 0 || p[6] != 0 || p[7] != 0) {
    return BH_ERROR(kCorruption, "block pointer has unknown flags {:#x}", p[1]);
  }
  BlockPtr ptr;
  ptr.hole = (p[1] & kFlagHole) != 0;
  if (p[2] > static_cast<uint8_t>(CompressionAlgo::kZstd)) {
    return BH_ERROR(kCorruption, "block pointer names compression {}", p[2]);
  }
  ptr.compression = {static_cast<CompressionAlgo>(p[2]), p[3]};
  if (!ptr.hole && !IsValidChecksumType(p[4])) {
    return BH_ERROR(kCorruption, "block pointer names checksum type {}", p[4]);
  }
  ptr.checksum_type = ptr.hole ? ChecksumType::kXxh3_128 : static_cast<ChecksumType>(p[4]);
  ptr.lsize = DecodeLE32(p + 8);
  ptr.psize = DecodeLE32(p + 12);
  ptr.offset = DecodeLE64(p + 16);
  std::memcpy(ptr.checksum.data(), p + 24, ptr.checksum.size());
  if (!ptr.hole && (ptr.psize == 0 || ptr.psize > ptr.lsize)) {
    return BH_ERROR(kCorruption, "block pointer sizes lsize={} psize={} are impossible",
                    ptr.lsize, ptr.psize);
  }
  return ptr;
}

std::string EncodeBlockKey(uint64_t lineage, uint64_t blkno, uint64_t birth) {
  std::string key;
  key.reserve(kBlockKeySize);
  PutBE64(&key, lineage);
  PutBE64(&key, blkno);
  PutBE64(&key, ~birth);
  return key;
}

BlockKey DecodeBlockKey(std::string_view key) {
  BH_CHECK(key.size() == kBlockKeySize);
  const uint8_t* p = Bytes(key);
  return {DecodeBE64(p), DecodeBE64(p + 8), ~DecodeBE64(p + 16)};
}

std::string EncodeDeadKey(uint64_t lineage, uint64_t death, uint64_t blkno, uint64_t birth) {
  std::string key;
  key.reserve(kDeadKeySize);
  PutBE64(&key, lineage);
  PutBE64(&key, death);
  PutBE64(&key, blkno);
  PutBE64(&key, birth);
  return key;
}

DeadKey DecodeDeadKey(std::string_view key) {
  BH_CHECK(key.size() == kDeadKeySize);
  const uint8_t* p = Bytes(key);
  return {DecodeBE64(p), DecodeBE64(p + 8), DecodeBE64(p + 16), DecodeBE64(p + 24)};
}

std::string EncodeBirthKey(uint64_t lineage, uint64_t birth, uint64_t blkno) {
  std::string key;
  key.reserve(kBirthKeySize);
  PutBE64(&key, lineage);
  PutBE64(&key, birth);
  PutBE64(&key, blkno);
  return key;
}

BirthKey DecodeBirthKey(std::string_view key) {
  BH_CHECK(key.size() == kBirthKeySize);
  const uint8_t* p = Bytes(key);
  return {DecodeBE64(p), DecodeBE64(p + 8), DecodeBE64(p + 16)};
}

std::string LineagePrefix(uint64_t lineage) {
  std::string key;
  PutBE64(&key, lineage);
  return key;
}

std::string EncodeLineage(const LineageInfo& info) {
  std::string out(kLineageSize, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  p[0] = kLineageVersion;
  p[1] = info.destroying ? kLineageFlagDestroying : 0;
  EncodeLE64(p + 8, info.origin_lineage);
  EncodeLE64(p + 16, info.origin_txg);
  EncodeLE64(p + 24, info.fence_txg);
  return out;
}

Result<LineageInfo> DecodeLineage(std::string_view encoded) {
  if (encoded.size() != kLineageSize) {
    return BH_ERROR(kCorruption, "lineage record of {} bytes, expected {}",
                    encoded.size(), kLineageSize);
  }
  const uint8_t* p = Bytes(encoded);
  if (p[0] != kLineageVersion || (p[1] & ~kLineageFlagDestroying) != 0) {
    return BH_ERROR(kCorruption, "lineage record version {} flags {:#x} unknown", p[0], p[1]);
  }
  LineageInfo info;
  info.destroying = (p[1] & kLineageFlagDestroying) != 0;
  info.origin_lineage = DecodeLE64(p + 8);
  info.origin_txg = DecodeLE64(p + 16);
  info.fence_txg = DecodeLE64(p + 24);
  return info;
}

}  // namespace blockhaus::core
