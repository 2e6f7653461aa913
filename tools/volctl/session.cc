#include "tools/volctl/session.h"

#include "tools/volctl/output.h"

namespace blockhaus::tools {
namespace {

constexpr uint64_t kDrainSteps = 64;

}  // namespace

Result<std::pair<std::string, std::string>> SplitPool(const std::string& full) {
  size_t slash = full.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == full.size()) {
    return BH_ERROR(kInvalidArgument, "'{}' is not POOL/VOLUME[@SNAPSHOT]", full);
  }
  return std::make_pair(full.substr(0, slash), full.substr(slash + 1));
}

Result<std::unique_ptr<Session>> OpenSession(const std::string& pool_name, Access access) {
  return AcquirePool(pool_name, access);
}

Result<std::unique_ptr<Session>> OpenFor(const std::string& full, std::string* name,
                                         Access access) {
  BH_ASSIGN_OR_RETURN(auto parts, SplitPool(full));
  *name = parts.second;
  return OpenSession(parts.first, access);
}

int Finish(Session& s, const Status& status) {
  if (!status.ok()) return ReportError(status);
  if (s.live) return 0;  // the daemon's worker frees in the background
  Result<uint64_t> drained = s.vm->DrainCoalescer(kDrainSteps);
  if (!drained.ok()) return ReportError(drained.status());
  return 0;
}

}  // namespace blockhaus::tools
