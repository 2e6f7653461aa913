// Zstandard codec. Contexts are expensive to create (hundreds of KiB of
// tables), so each thread caches one compression and one decompression
// context for its lifetime; that is what makes the API thread-safe without
// a lock.
#include <zstd.h>

#include "core/compress/internal/codecs.h"

namespace blockhaus::core::internal {
namespace {

struct ZstdContexts {
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  ~ZstdContexts() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
};

ZstdContexts& ThreadContexts() {
  thread_local ZstdContexts contexts;
  return contexts;
}

}  // namespace

size_t ZstdBound(size_t len) {
  const size_t bound = ZSTD_compressBound(len);
  return ZSTD_isError(bound) ? 0 : bound;
}

size_t ZstdCompress(int level, ConstByteSpan src, ByteSpan dst) {
  BH_CHECK(level >= 1 && level <= 19);
  ZstdContexts& ctx = ThreadContexts();
  if (ctx.cctx == nullptr) ctx.cctx = ZSTD_createCCtx();
  BH_CHECK(ctx.cctx != nullptr);
  const size_t n = ZSTD_compressCCtx(ctx.cctx, dst.data(), dst.size(), src.data(),
                                     src.size(), level);
  // dstSize_tooSmall is the common error: the data does not compress enough.
  return ZSTD_isError(n) ? 0 : n;
}

Status ZstdDecompress(ConstByteSpan src, ByteSpan dst) {
  ZstdContexts& ctx = ThreadContexts();
  if (ctx.dctx == nullptr) ctx.dctx = ZSTD_createDCtx();
  BH_CHECK(ctx.dctx != nullptr);
  const size_t n = ZSTD_decompressDCtx(ctx.dctx, dst.data(), dst.size(), src.data(),
                                       src.size());
  if (ZSTD_isError(n)) {
    return BH_ERROR(kCorruption, "zstd: {} ({} bytes in, {} expected out)",
                    ZSTD_getErrorName(n), src.size(), dst.size());
  }
  if (n != dst.size()) {
    return BH_ERROR(kCorruption, "zstd: decompressed {} bytes, expected {}", n, dst.size());
  }
  return Status::Ok();
}

}  // namespace blockhaus::core::internal
