// Theory of operation: block compression
//
// Overview
//   This file is the policy half of compression: it parses and names
//   settings, applies ZFS's "save at least 1/8" rule, and dispatches to one
//   codec file per algorithm (lz4.cc, zstd.cc) through internal/codecs.h.
//   Only the codec files include the codec libraries' headers, so swapping
//   or adding a codec touches one file plus the dispatch here.
//
// Data structures & on-disk format
//   CompressionAlgo (kOff=0, kLz4=1, kZstd=2) and the zstd level are stored
//   in block pointers and must never be renumbered. A compressed block is the
//   raw codec output: an LZ4 block (no frame) or a single zstd frame. The
//   logical (decompressed) size lives in the block pointer, not in the
//   stream; Decompress is told it through dst.size() and insists on it.
//
// Invariants
//   * Compress returns 0 or a length n with n <= src.size() - src.size()/8
//     and n <= dst.size(); the bytes dst[0, n) decompress to exactly src.
//   * Decompress either fills all of dst and returns Ok, or returns
//     Corruption; it never writes outside dst whatever the input bytes are.
//   * ParseCompression(CompressionName(c)) == c for every valid c.
//
// Concurrency & lock order
//   No locks. zstd contexts are thread_local (one per thread, created on
//   first use and freed at thread exit); LZ4 needs no context.
//
// Crash consistency
//   Pure functions over caller buffers; nothing is persisted here.
//
// Failure handling
//   Compression never fails: a codec error, an output that does not fit, or
//   one that saves too little all return 0 and the caller stores the block
//   uncompressed. The output capacity handed to the codec is capped at the
//   1/8 threshold, so incompressible data is abandoned early instead of being
//   compressed in full and then thrown away. Decompression of a damaged or
//   truncated stream, or one of the wrong length, is Corruption (the
//   checksum normally catches damage first; this is the second line). An
//   unknown algorithm value read from disk is InvalidArgument.
//
// Tunables
//   zstd level 1..19 (default 3, zstd's own default); the 1/8 rule
//   (kMinSavingShift).
#include "core/compress/compress.h"

#include <algorithm>
#include <charconv>

#include "core/compress/internal/codecs.h"

namespace blockhaus::core {
namespace {

constexpr int kZstdDefaultLevel = 3;
constexpr int kZstdMinLevel = 1;
constexpr int kZstdMaxLevel = 19;
// A compressed block must be at most len - len / 2^kMinSavingShift bytes.
constexpr int kMinSavingShift = 3;

Result<Compression> ParseZstdLevel(std::string_view digits) {
  int level = 0;
  const char* end = digits.data() + digits.size();
  auto [ptr, ec] = std::from_chars(digits.data(), end, level);
  if (digits.empty() || ec != std::errc() || ptr != end || level < kZstdMinLevel ||
      level > kZstdMaxLevel) {
    return BH_ERROR(kInvalidArgument, "zstd level must be {}..{}, got '{}'", kZstdMinLevel,
                    kZstdMaxLevel, digits);
  }
  return Compression{CompressionAlgo::kZstd, static_cast<uint8_t>(level)};
}

}  // namespace

Result<Compression> ParseCompression(std::string_view text) {
  constexpr std::string_view kZstdPrefix = "zstd-";
  if (text == "off") return Compression{CompressionAlgo::kOff, 0};
  if (text == "lz4") return Compression{CompressionAlgo::kLz4, 0};
  if (text == "zstd") return Compression{CompressionAlgo::kZstd, kZstdDefaultLevel};
  if (text.starts_with(kZstdPrefix)) return ParseZstdLevel(text.substr(kZstdPrefix.size()));
  return BH_ERROR(kInvalidArgument,
                  "unknown compression '{}' (want off, lz4, zstd or zstd-1..19)", text);
}

std::string CompressionName(const Compression& c) {
  switch (c.algo) {
    case CompressionAlgo::kOff: return "off";
    case CompressionAlgo::kLz4: return "lz4";
    case CompressionAlgo::kZstd: return FormatMessage("zstd-{}", c.level);
  }
  return FormatMessage("unknown({})", static_cast<int>(c.algo));
}

size_t CompressBound(const Compression& c, size_t len) {
  switch (c.algo) {
    case CompressionAlgo::kOff: return len;
    case CompressionAlgo::kLz4: return internal::Lz4Bound(len);
    case CompressionAlgo::kZstd: return internal::ZstdBound(len);
  }
  return 0;
}

size_t Compress(const Compression& c, ConstByteSpan src, ByteSpan dst) {
  BH_CHECK(c.algo != CompressionAlgo::kOff);
  const size_t limit = src.size() - (src.size() >> kMinSavingShift);
  ByteSpan out = dst.first(std::min(dst.size(), limit));
  size_t n = 0;
  switch (c.algo) {
    case CompressionAlgo::kOff: break;
    case CompressionAlgo::kLz4: n = internal::Lz4Compress(src, out); break;
    case CompressionAlgo::kZstd: n = internal::ZstdCompress(c.level, src, out); break;
  }
  // Re-checked although the capacity was capped: the rule is the contract.
  return (n == 0 || n > limit || n > dst.size()) ? 0 : n;
}

Status Decompress(CompressionAlgo algo, ConstByteSpan src, ByteSpan dst) {
  switch (algo) {
    case CompressionAlgo::kLz4: return internal::Lz4Decompress(src, dst);
    case CompressionAlgo::kZstd: return internal::ZstdDecompress(src, dst);
    case CompressionAlgo::kOff: break;
  }
  return BH_ERROR(kInvalidArgument, "cannot decompress with algorithm {}",
                  static_cast<int>(algo));
}

}  // namespace blockhaus::core
