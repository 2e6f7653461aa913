// Block compression: off, lz4, zstd-1..19.
//
// Compress() writes the compressed form of `src` into `dst` and returns its
// length, or 0 when compressing is not worth it: the result would save less
// than 1/8 of the input (ZFS's rule), or would not fit in `dst`. A caller that
// gets 0 stores the block uncompressed. Decompress() must reproduce exactly
// `dst.size()` bytes or fail with Corruption.
//
// The algorithm of a stored block is recorded in its block pointer as a
// CompressionAlgo value and a level; both are part of the on-disk format:
// never renumber.
// Thread safety: thread-safe (per-thread codec contexts are cached).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/endian.h"
#include "core/base/status.h"

namespace blockhaus::core {

enum class CompressionAlgo : uint8_t {
  kOff = 0,
  kLz4 = 1,
  kZstd = 2,
};

struct Compression {
  CompressionAlgo algo = CompressionAlgo::kOff;
  uint8_t level = 0;  // zstd: 1..19; 0 for the others.

  bool operator==(const Compression&) const = default;
};

// Parses "off", "lz4", "zstd" (level 3, zstd's default) or "zstd-N" (1..19).
// InvalidArgument otherwise.
Result<Compression> ParseCompression(std::string_view text);
// The inverse of ParseCompression: "off", "lz4", "zstd-3".
std::string CompressionName(const Compression& c);

// Worst-case compressed size for `len` input bytes under `c`.
size_t CompressBound(const Compression& c, size_t len);

// Returns the compressed length in dst, or 0 (store uncompressed).
// REQUIRES: c.algo != kOff.
size_t Compress(const Compression& c, ConstByteSpan src, ByteSpan dst);

// Errors: Corruption (bad stream or wrong length), InvalidArgument (unknown
// algorithm).
Status Decompress(CompressionAlgo algo, ConstByteSpan src, ByteSpan dst);

}  // namespace blockhaus::core
