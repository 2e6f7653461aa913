#include "core/base/buffer_cache.h"

#include <map>
#include <mutex>

namespace blockhaus {

struct BufferCache::State {
  std::mutex mu;
  size_t max_bytes;
  size_t cached = 0;
  std::map<size_t, std::vector<std::vector<uint8_t>*>> free;  // by exact size

  void Put(std::vector<uint8_t>* buf) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (cached + buf->size() <= max_bytes) {
        cached += buf->size();
        free[buf->size()].push_back(buf);
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

std::shared_ptr<std::vector<uint8_t>> BufferCache::Get(size_t size) {
  std::vector<uint8_t>* buf = nullptr;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->free.find(size);
    if (it != state_->free.end() && !it->second.empty()) {
      buf = it->second.back();
      it->second.pop_back();
      state_->cached -= size;
    }
  }
  if (buf == nullptr) buf = new std::vector<uint8_t>(size);
  // The deleter holds the state, so a buffer may outlive the cache object.
  std::shared_ptr<State> state = state_;
  return std::shared_ptr<std::vector<uint8_t>>(buf, [state](std::vector<uint8_t>* b) {
    state->Put(b);
  });
}

size_t BufferCache::cached_bytes() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->cached;
}

}  // namespace blockhaus
