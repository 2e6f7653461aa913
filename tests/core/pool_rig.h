// A pool for core tests: a 64 MiB pool "tank" in a temporary directory,
// open, with the sync tasks tests use most.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <utility>

#include "core/pool/pool.h"
#include "tests/test_util.h"

namespace blockhaus::testing {

class PoolRig {
 public:
  PoolRig() {
    core::PoolCreateOptions o;
    o.name = "tank";
    o.data_size = 64 << 20;
    REQUIRE(core::Pool::Create(tmp / "pool", o).ok());
    Reopen();
  }
  // Closes the pool (if open) and opens it again.
  void Reopen() {
    pool.reset();
    auto p = core::Pool::Open(tmp / "pool");
    REQUIRE(p.ok());
    pool = std::move(p).value();
  }
  core::LineageId NewLineage(core::LineageInfo info = {}) {
    core::LineageId id = 0;
    REQUIRE(pool->RunSyncTask(nullptr, [&](core::SyncContext& c) { id = c.CreateLineage(info); }).ok());
    return id;
  }
  uint64_t Snapshot(core::LineageId l) {
    uint64_t t = 0;
    REQUIRE(pool->RunSyncTask(nullptr, [&](core::SyncContext& c) { t = c.SnapshotLineage(l); }).ok());
    return t;
  }
  // Scrub finds nothing wrong (its problems are printed).
  void Clean() {
    auto r = pool->Scrub();
    REQUIRE(r.ok());
    for (const auto& p : r->problems) MESSAGE(p);
    CHECK(r->clean());
  }

  TempDir tmp;
  std::unique_ptr<core::Pool> pool;
};

}  // namespace blockhaus::testing
