#include "core/base/buffer_cache.h"

#include <doctest/doctest.h>

namespace blockhaus {
namespace {

TEST_CASE("buffer cache: buffers come back and fit requests a little smaller") {
  BufferCache cache(1 << 20);
  const uint8_t* first = nullptr;
  {
    auto b = cache.Get(16464);  // a compressor's bound for a 16K block
    CHECK(b->size() == 16464);
    first = b->data();
  }
  CHECK(cache.cached_bytes() == 16464);
  {
    auto b = cache.Get(16384);  // the block itself: same buffer, no growth
    CHECK(b->data() == first);
    CHECK(b->size() == 16384);
    CHECK(cache.cached_bytes() == 0);
  }
  // Too big, or so small that it would waste over half: a fresh buffer.
  {
    auto big = cache.Get(32768);
    CHECK(big->data() != first);
    CHECK(big->size() == 32768);
  }
  auto tiny = cache.Get(4096);
  CHECK(tiny->data() != first);
  CHECK(tiny->size() == 4096);
}

TEST_CASE("buffer cache: holds no more than its limit") {
  BufferCache cache(64 << 10);
  {
    std::vector<std::shared_ptr<Buffer>> held;
    for (int i = 0; i < 10; ++i) held.push_back(cache.Get(16384));
  }
  CHECK(cache.cached_bytes() == (64u << 10));
  // Buffers may outlive the cache.
  auto survivor = std::make_unique<BufferCache>(1 << 20);
  auto b = survivor->Get(512);
  survivor.reset();
  b.reset();
}

}  // namespace
}  // namespace blockhaus
