// Block checksums: verified on every read, and by scrub.
//
// A block pointer stores the checksum type and a 32-byte value computed over
// the block's physical (stored, possibly compressed) bytes, so scrub can check
// a block without decompressing it. Unused trailing bytes of the value are 0.
//   xxh3-128  (default) 16 bytes, XXH3_128bits, ~40 GB/s
//   crc32c    4 bytes little-endian, ISA-L crc32_iscsi (seed ~0, final ~), ~50 GB/s
//   sha256    32 bytes, OpenSSL EVP, ~1.8 GB/s, for users who want a
//             cryptographic hash
// Values are part of the on-disk format: never renumber ChecksumType.
// Thread safety: thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/endian.h"
#include "core/base/status.h"

namespace blockhaus::core {

enum class ChecksumType : uint8_t {
  kXxh3_128 = 1,
  kCrc32c = 2,
  kSha256 = 3,
};

using ChecksumValue = std::array<uint8_t, 32>;

// Parses "xxh3" (alias "on"), "crc32c", "sha256". InvalidArgument otherwise.
Result<ChecksumType> ParseChecksumType(std::string_view text);
std::string ChecksumTypeName(ChecksumType type);
// True when `raw` names a known ChecksumType (for decoding on-disk values).
bool IsValidChecksumType(uint8_t raw);

ChecksumValue ComputeChecksum(ChecksumType type, ConstByteSpan data);

// CRC32C (Castagnoli), as iSCSI digests and the pool label use it.
uint32_t Crc32c(ConstByteSpan data);

}  // namespace blockhaus::core
