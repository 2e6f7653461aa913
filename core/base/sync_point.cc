#include "core/base/sync_point.h"

#include <map>
#include <mutex>

namespace blockhaus {
namespace {
std::mutex& Mu() {
  static std::mutex mu;
  return mu;
}
std::map<std::string, SyncPoints::Callback>& Table() {
  static std::map<std::string, SyncPoints::Callback> table;
  return table;
}
}  // namespace

void SyncPoints::Set(const std::string& name, Callback cb) {
  std::lock_guard<std::mutex> lock(Mu());
  Table()[name] = std::move(cb);
}

void SyncPoints::Clear() {
  std::lock_guard<std::mutex> lock(Mu());
  Table().clear();
}

void SyncPoints::Reach(const char* name) {
  Callback cb;
  {
    std::lock_guard<std::mutex> lock(Mu());
    auto it = Table().find(name);
    if (it == Table().end()) return;
    cb = it->second;
  }
  cb();
}

}  // namespace blockhaus
