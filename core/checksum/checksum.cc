// Theory of operation: block checksums
//
// Overview
//   Every block pointer carries a checksum of the block's physical bytes;
//   reads and scrub recompute and compare it. This file maps the three
//   supported ChecksumTypes onto their libraries (xxHash, ISA-L, OpenSSL)
//   and produces a fixed 32-byte ChecksumValue for each.
//
// Data structures & on-disk format
//   ChecksumType values (kXxh3_128=1, kCrc32c=2, kSha256=3) and the byte
//   layout of each value are on-disk format:
//     xxh3-128: bytes [0,16) = XXH128_canonicalFromHash (big-endian high64
//               then low64, the same order xxhsum prints), rest zero.
//     crc32c:   bytes [0,4) = CRC32C little-endian, rest zero.
//     sha256:   bytes [0,32) = the SHA-256 digest.
//   Unused trailing bytes are always zero so whole values compare with ==.
//
// Invariants
//   * ComputeChecksum is a pure function of (type, bytes): same input, same
//     32 bytes, on every platform and library version (golden tests pin it).
//   * Crc32c(data) is the standard CRC-32C (check value 0xE3069283 for
//     "123456789"): ISA-L's crc32_iscsi is seeded with ~0 and its result
//     complemented, and inputs longer than INT_MAX are fed in chunks.
//
// Concurrency & lock order
//   No shared state, no locks: every call works on its own stack state.
//
// Crash consistency
//   Pure computation; nothing is persisted here.
//
// Failure handling
//   Hashing cannot fail on valid input. An OpenSSL failure (out of memory in
//   EVP) would silently produce a wrong checksum, so it is a BH_CHECK.
//   Unknown ChecksumType values read from disk are rejected by callers via
//   IsValidChecksumType before ComputeChecksum, which BH_CHECKs the type.
//   Parsing unknown names is InvalidArgument.
//
// Tunables
//   None; the default type ("on") is xxh3-128.
#include "core/checksum/checksum.h"

#include <isa-l/crc.h>
#include <openssl/evp.h>
#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>
#endif

#include <algorithm>
#include <climits>
#include <cstring>

namespace blockhaus::core {
namespace {

constexpr uint32_t kCrc32cSeed = 0xFFFFFFFFu;

void Xxh3_128(ConstByteSpan data, ChecksumValue* out) {
#if defined(__x86_64__)
  // Debian builds libxxhash for baseline x86-64 (SSE2, ~19 GB/s); its
  // dispatch entry point picks AVX2/AVX-512 at run time (~40 GB/s).
  const XXH128_hash_t hash = XXH3_128bits_dispatch(data.data(), data.size());
#else
  const XXH128_hash_t hash = XXH3_128bits(data.data(), data.size());
#endif
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, hash);
  static_assert(sizeof(canonical.digest) == 16);
  std::memcpy(out->data(), canonical.digest, sizeof(canonical.digest));
}

void Sha256(ConstByteSpan data, ChecksumValue* out) {
  unsigned int len = 0;
  const int ok = EVP_Digest(data.data(), data.size(), out->data(), &len, EVP_sha256(),
                            nullptr);
  BH_CHECK(ok == 1 && len == 32);
}

}  // namespace

Result<ChecksumType> ParseChecksumType(std::string_view text) {
  if (text == "xxh3" || text == "on") return ChecksumType::kXxh3_128;
  if (text == "crc32c") return ChecksumType::kCrc32c;
  if (text == "sha256") return ChecksumType::kSha256;
  return BH_ERROR(kInvalidArgument,
                  "unknown checksum '{}' (want on, xxh3, crc32c or sha256)", text);
}

std::string ChecksumTypeName(ChecksumType type) {
  switch (type) {
    case ChecksumType::kXxh3_128: return "xxh3";
    case ChecksumType::kCrc32c: return "crc32c";
    case ChecksumType::kSha256: return "sha256";
  }
  return FormatMessage("unknown({})", static_cast<int>(type));
}

bool IsValidChecksumType(uint8_t raw) {
  return raw >= static_cast<uint8_t>(ChecksumType::kXxh3_128) &&
         raw <= static_cast<uint8_t>(ChecksumType::kSha256);
}

ChecksumValue ComputeChecksum(ChecksumType type, ConstByteSpan data) {
  ChecksumValue value{};
  switch (type) {
    case ChecksumType::kXxh3_128:
      Xxh3_128(data, &value);
      return value;
    case ChecksumType::kCrc32c:
      EncodeLE32(value.data(), Crc32c(data));
      return value;
    case ChecksumType::kSha256:
      Sha256(data, &value);
      return value;
  }
  BH_CHECK(IsValidChecksumType(static_cast<uint8_t>(type)));
  return value;
}

uint32_t Crc32c(ConstByteSpan data) {
  uint32_t crc = kCrc32cSeed;
  // crc32_iscsi takes an int length (and a non-const pointer it only reads).
  constexpr size_t kChunk = INT_MAX;
  for (size_t pos = 0; pos < data.size(); pos += kChunk) {
    const size_t n = std::min(kChunk, data.size() - pos);
    crc = crc32_iscsi(const_cast<uint8_t*>(data.data() + pos), static_cast<int>(n), crc);
  }
  return crc ^ kCrc32cSeed;
}

}  // namespace blockhaus::core
