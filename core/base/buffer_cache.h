// BufferCache: recycles block-sized byte buffers.
//
// Every write leaves one block (or its compressed form) in a buffer that
// lives until its txg has committed. Allocating those fresh each time costs page faults (glibc maps
// 128 KiB buffers with mmap) and cold caches; recycling them keeps the
// working set warm. Buffers come back to the cache when their last
// shared_ptr goes, up to max_cached_bytes (of capacity); past that they are
// freed. A request takes the smallest cached buffer whose capacity holds
// it (at most twice its size), so sizes a few bytes apart share buffers.
//
// The buffers are Buffer, not std::vector<uint8_t>: growing one leaves the
// new bytes uninitialized instead of zeroing them, which for a buffer about
// to be filled is a wasted pass over memory (4% of the daemon's samples in
// sequential writes).
//
// Thread safety: thread-safe. Buffers may outlive the cache.
#pragma once

#include <cstddef>
#include <memory>

#include "core/base/buffer.h"

namespace blockhaus {


class BufferCache {
 public:
  explicit BufferCache(size_t max_cached_bytes);
  ~BufferCache();

  // A buffer of exactly `size` bytes (contents unspecified).
  std::shared_ptr<Buffer> Get(size_t size);
  size_t cached_bytes() const;
  // Changes max_cached_bytes (buffers above a lower limit go as they come
  // back).
  void SetLimit(size_t max_cached_bytes);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace blockhaus
