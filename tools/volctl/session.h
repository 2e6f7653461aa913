// How a command reaches the pool it names: a PoolRef from AcquirePool
// (pool_access.h), opened for the command or borrowed from the daemon.
// Shared by the command files.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "core/base/status.h"
#include "tools/volctl/pool_access.h"

namespace blockhaus::tools {

// A pool for one command: opened here, or borrowed from the daemon.
using Session = PoolRef;

// "tank/vm1@snap" -> ("tank", "vm1@snap").
// Errors: InvalidArgument.
Result<std::pair<std::string, std::string>> SplitPool(const std::string& full);

// The pool named `pool_name` (AcquirePool).
Result<std::unique_ptr<Session>> OpenSession(const std::string& pool_name,
                                             Access access = Access::kReadWrite);

// The pool of `full` (POOL/NAME); stores the pool-relative name.
Result<std::unique_ptr<Session>> OpenFor(const std::string& full, std::string* name,
                                         Access access = Access::kReadWrite);

// Reports `status` (exit 1), or returns 0 after a bounded number of worker
// steps when no daemon runs (the daemon's worker frees in the background;
// what is left is resumed by the next open of the pool).
int Finish(Session& s, const Status& status);

}  // namespace blockhaus::tools
