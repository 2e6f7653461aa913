// I/O error injection (TESTING.md A5-style): EIO, ENOSPC and short writes on
// the Nth data-vdev and intent-log call, and failed RocksDB writes and syncs. Each must come
// back as an error (never a crash, never a silent success); after the fault
// is cleared the pool reopens consistent with everything flushed before it.

#include <doctest/doctest.h>

#include "core/io/fault_vdev.h"
#include "core/io/vdev.h"
#include "core/kv/kv_store.h"
#include "core/pool/pool.h"
#include "tests/crash/crash_verify.h"
#include "tests/test_util.h"

namespace blockhaus::testing {
namespace {

using namespace core;

struct FaultRig : CrashPoolRig {
  FaultRig() : CrashPoolRig("faulty", 8) {}

  // Reopens without faults and checks the blocks flushed at setup, and scrub.
  void CheckIntact() {
    auto pool = Pool::Open(tmp / "pool");
    REQUIRE_MESSAGE(pool.ok(), pool.status().ToString());
    std::vector<uint8_t> buf(kCrashBlockSize);
    for (uint64_t b = 0; b < 8; ++b) {
      REQUIRE((*pool)->Read(lineage, b, kHeadView, buf).ok());
      std::set<uint64_t> ok = {b + 1, 100 + b};  // setup value, or the faulted write's
      CHECK(IdentifyBlock(buf, 1, ok).has_value());
    }
    auto r = (*pool)->Scrub();
    REQUIRE(r.ok());
    CHECK(r->clean());
  }
};

// Writes new versions of the 8 blocks and flushes (by a commit, or through
// the intent log); returns the flush status.
Status OverwriteAndFlush(Pool& pool, LineageId lineage, bool intent_log = false) {
  for (uint64_t b = 0; b < 8; ++b) {
    Status s = pool.Write(lineage, b, PatternBlock(kCrashBlockSize, 1, 100 + b), {});
    if (!s.ok()) return s;
  }
  return intent_log ? pool.FlushWrites() : pool.Flush().status();
}

TEST_CASE("fault: data vdev errors suspend the pool and lose nothing durable") {
  for (FaultOp op : {FaultOp::kWrite, FaultOp::kSync}) {
    for (FaultError err : {FaultError::kEIO, FaultError::kENOSPC, FaultError::kShortWrite}) {
      if (op == FaultOp::kSync && err == FaultError::kShortWrite) continue;
      CAPTURE(static_cast<int>(op));
      CAPTURE(static_cast<int>(err));
      FaultRig rig;
      FaultVdev vdev(rig.base.get());
      PoolOptions po;
      po.vdev = &vdev;
      {
        auto pool = Pool::Open(rig.tmp / "pool", po);
        REQUIRE(pool.ok());
        vdev.FailNth(op, 1, err);
        Status s = OverwriteAndFlush(**pool, rig.lineage);
        CHECK(s.code() == Code::kUnavailable);  // the pool is suspended
        CHECK(!(*pool)->health().ok());
        // Later writes are refused with the reason; reads of committed data go on.
        CHECK((*pool)->Write(rig.lineage, 0, PatternBlock(kCrashBlockSize, 1, 9), {}).code() ==
              Code::kUnavailable);
        CHECK(!(*pool)->Close().ok());
      }
      vdev.ClearFaults();
      rig.CheckIntact();
    }
  }
}

TEST_CASE("fault: metadata write and sync errors suspend the pool") {
  for (int kind = 0; kind < 3; ++kind) {
    CAPTURE(kind);
    FaultRig rig;
    KvFaultInjector kv(7);
    PoolOptions po;
    po.kv_fault_injector = &kv;
    {
      auto pool = Pool::Open(rig.tmp / "pool", po);
      REQUIRE(pool.ok());
      if (kind == 0) kv.FailNthWrite(1, /*enospc=*/false);
      if (kind == 1) kv.FailNthWrite(1, /*enospc=*/true);
      if (kind == 2) kv.FailNthSync(1);
      Status s = OverwriteAndFlush(**pool, rig.lineage);
      CHECK(!s.ok());
      CHECK(!(*pool)->health().ok());
      (*pool)->Close().IgnoreError();  // reports the same failure
    }
    kv.ClearFaults();
    rig.CheckIntact();
  }
}

TEST_CASE("fault: intent log write and sync errors suspend the pool") {
  const std::pair<FaultOp, FaultError> faults[] = {{FaultOp::kWrite, FaultError::kEIO},
                                                   {FaultOp::kWrite, FaultError::kENOSPC},
                                                   {FaultOp::kWrite, FaultError::kShortWrite},
                                                   {FaultOp::kSync, FaultError::kEIO}};
  for (auto [op, err] : faults) {
    CAPTURE(static_cast<int>(op));
    CAPTURE(static_cast<int>(err));
    FaultRig rig;
    auto ring = OpenFileVdev(rig.tmp / "pool/intent", FileVdevOptions{});
    REQUIRE(ring.ok());
    FaultVdev vdev(ring->get());
    PoolOptions po;
    po.intent_vdev = &vdev;
    {
      auto pool = Pool::Open(rig.tmp / "pool", po);
      REQUIRE(pool.ok());
      vdev.FailNth(op, 1, err);
      Status s = OverwriteAndFlush(**pool, rig.lineage, /*intent_log=*/true);
      CHECK(!s.ok());
      CHECK(!(*pool)->health().ok());
      // The record failed; no commit stood in for it.
      CHECK((*pool)->stats().intent_records == 0);
      CHECK((*pool)->stats().txgs_committed == 0);
      (*pool)->Close().IgnoreError();  // reports the same failure
    }
    vdev.ClearFaults();
    rig.CheckIntact();
  }
}

}  // namespace
}  // namespace blockhaus::testing
