#include "core/base/buffer_cache.h"

#include <map>
#include <mutex>

namespace blockhaus {

struct BufferCache::State {
  std::mutex mu;
  size_t max_bytes;
  size_t cached = 0;
  std::map<size_t, std::vector<Buffer*>> free;  // by capacity

  void Put(Buffer* buf) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (cached + buf->capacity() <= max_bytes) {
        cached += buf->capacity();
        free[buf->capacity()].push_back(buf);
        return;
      }
    }
    delete buf;
  }
  ~State() {
    for (auto& [size, list] : free) {
      for (auto* b : list) delete b;
    }
  }
};

BufferCache::BufferCache(size_t max_cached_bytes) : state_(std::make_shared<State>()) {
  state_->max_bytes = max_cached_bytes;
}

BufferCache::~BufferCache() = default;

std::shared_ptr<Buffer> BufferCache::Get(size_t size) {
  Buffer* buf = nullptr;
  {
    // The smallest cached buffer that holds `size` without growing, if it
    // wastes less than half: blocks and their compressed forms differ by a
    // few bytes (the compressor's bound), and both should find a buffer.
    std::lock_guard<std::mutex> lock(state_->mu);
    for (auto it = state_->free.lower_bound(size);
         it != state_->free.end() && it->first <= 2 * size; ++it) {
      if (it->second.empty()) continue;
      buf = it->second.back();
      it->second.pop_back();
      state_->cached -= it->first;
      break;
    }
  }
  if (buf == nullptr) {
    buf = new Buffer(size);
  } else {
    buf->resize(size);  // within capacity: no allocation, no fill
  }
  // The deleter holds the state, so a buffer may outlive the cache object.
  std::shared_ptr<State> state = state_;
  return std::shared_ptr<Buffer>(buf, [state](Buffer* b) {
    state->Put(b);
  });
}

void BufferCache::SetLimit(size_t max_cached_bytes) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->max_bytes = max_cached_bytes;
}

size_t BufferCache::cached_bytes() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->cached;
}

}  // namespace blockhaus
