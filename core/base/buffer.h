// Buffer: bytes whose growth is not zero-filled.
//
// std::vector<uint8_t>::resize writes zeros over every new byte. A buffer
// about to be filled whole (a block being read or compressed, a READ's
// data) does not need them, and for large buffers that pass over memory
// shows in profiles (4% of the daemon's samples in sequential writes, ~5%
// of the I/O threads in 1M reads). Whoever grows a Buffer writes every new
// byte before anything reads it.
#pragma once

#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace blockhaus {

// An allocator whose value-initialization (resize, sized construction)
// leaves trivial types uninitialized.
template <typename T>
struct DefaultInitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  using std::allocator<T>::allocator;
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// Bytes whose growth is not zero-filled.
using Buffer = std::vector<uint8_t, DefaultInitAllocator<uint8_t>>;

}  // namespace blockhaus
