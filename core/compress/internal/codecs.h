// Private seam between compress.cc (policy: parsing, the 1/8 rule, dispatch)
// and the one file per codec that may include the codec's header.
// Compressors return the compressed length, or 0 when the output does not
// fit in dst (or the codec refused the input). Decompressors must fill dst
// exactly or return Corruption.
#pragma once

#include <cstddef>

#include "core/base/endian.h"
#include "core/base/status.h"

namespace blockhaus::core::internal {

// 0 when len exceeds what LZ4 can take in one call.
size_t Lz4Bound(size_t len);
size_t Lz4Compress(ConstByteSpan src, ByteSpan dst);
Status Lz4Decompress(ConstByteSpan src, ByteSpan dst);

// 0 when len exceeds what zstd can bound.
size_t ZstdBound(size_t len);
// REQUIRES: 1 <= level <= 19.
size_t ZstdCompress(int level, ConstByteSpan src, ByteSpan dst);
Status ZstdDecompress(ConstByteSpan src, ByteSpan dst);

}  // namespace blockhaus::core::internal
