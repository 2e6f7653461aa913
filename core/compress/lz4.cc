// LZ4 block codec (raw LZ4 blocks, no frame: the block pointer records the
// algorithm and the logical size, so a frame header would be redundant).
#include <lz4.h>

#include <algorithm>
#include <climits>

#include "core/compress/internal/codecs.h"

namespace blockhaus::core::internal {

size_t Lz4Bound(size_t len) {
  if (len > LZ4_MAX_INPUT_SIZE) return 0;
  return static_cast<size_t>(LZ4_compressBound(static_cast<int>(len)));
}

size_t Lz4Compress(ConstByteSpan src, ByteSpan dst) {
  if (src.size() > LZ4_MAX_INPUT_SIZE) return 0;
  const int capacity = static_cast<int>(std::min<size_t>(dst.size(), INT_MAX));
  const int n = LZ4_compress_default(reinterpret_cast<const char*>(src.data()),
                                     reinterpret_cast<char*>(dst.data()),
                                     static_cast<int>(src.size()), capacity);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

Status Lz4Decompress(ConstByteSpan src, ByteSpan dst) {
  if (src.size() > INT_MAX || dst.size() > INT_MAX) {
    return BH_ERROR(kCorruption, "lz4: block too large ({} -> {} bytes)", src.size(),
                    dst.size());
  }
  const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(src.data()),
                                    reinterpret_cast<char*>(dst.data()),
                                    static_cast<int>(src.size()),
                                    static_cast<int>(dst.size()));
  if (n < 0) return BH_ERROR(kCorruption, "lz4: malformed block ({} bytes)", src.size());
  if (static_cast<size_t>(n) != dst.size()) {
    return BH_ERROR(kCorruption, "lz4: decompressed {} bytes, expected {}", n, dst.size());
  }
  return Status::Ok();
}

}  // namespace blockhaus::core::internal
