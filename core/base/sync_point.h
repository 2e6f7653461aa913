// BH_SYNC_POINT("name"): a named place in the code where a test can run a
// callback (to stop, fail or interleave) instead of sleeping (RocksDB
// SyncPoint). Compiled in only when BH_SYNC_POINTS is defined (test builds).
#pragma once

#include <functional>
#include <string>

namespace blockhaus {

class SyncPoints {
 public:
  using Callback = std::function<void()>;
  // Runs `cb` each time the named point is reached, until Clear().
  static void Set(const std::string& name, Callback cb);
  static void Clear();
  static void Reach(const char* name);
};

}  // namespace blockhaus

#ifdef BH_SYNC_POINTS
#define BH_SYNC_POINT(name) ::blockhaus::SyncPoints::Reach(name)
#else
#define BH_SYNC_POINT(name) \
  do {                      \
  } while (0)
#endif
