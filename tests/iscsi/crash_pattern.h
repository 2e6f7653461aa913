// The content of a 4 KiB block written by the iSCSI crash driver: block
// index and generation in the first words, the rest derived from both, so
// a block read back names the write it came from, and a torn block (parts
// of two writes) matches neither.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace blockhaus::testing {

inline constexpr uint32_t kCrashBlock = 4096;
inline constexpr uint64_t kCrashMagic = 0x426c6f636b686175ull;  // "Blockhau"

inline void FillCrashBlock(uint8_t* out, uint64_t index, uint64_t gen) {
  uint64_t words[kCrashBlock / 8];
  words[0] = kCrashMagic ^ index;
  words[1] = gen;
  uint64_t x = index * 0x9E3779B97F4A7C15ull ^ gen * 0xC2B2AE3D27D4EB4Full;
  for (size_t i = 2; i < kCrashBlock / 8; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    words[i] = x + i;
  }
  std::memcpy(out, words, kCrashBlock);
}

// The generation a block holds: 0 for all zeros, nullopt for anything that
// is not exactly one write of this block (torn, misplaced, garbage).
inline std::optional<uint64_t> DecodeCrashBlock(const uint8_t* in, uint64_t index) {
  bool zero = true;
  for (uint32_t i = 0; i < kCrashBlock && zero; ++i) zero = in[i] == 0;
  if (zero) return 0;
  uint64_t w0, gen;
  std::memcpy(&w0, in, 8);
  std::memcpy(&gen, in + 8, 8);
  if (w0 != (kCrashMagic ^ index) || gen == 0) return std::nullopt;
  uint8_t want[kCrashBlock];
  FillCrashBlock(want, index, gen);
  if (std::memcmp(want, in, kCrashBlock) != 0) return std::nullopt;
  return gen;
}

}  // namespace blockhaus::testing
