// The volume crash mix without a crash (issue 3): rounds of the operations
// of volume_crash_ops.h with the coalescing worker freeing beside them,
// small txgs and small worker steps so that steps share txgs with admin
// operations and writes; each round closes the pool cleanly, reopens it
// and checks it like after a crash (volume_crash_check.h: contents, space
// recount, no frees left after the drain, scrub). This is the test that
// found a worker step running in the txg of a promote, on the lineage the
// promote had just moved a free job's versions to: the step saw nothing
// committed there, ended the job, and the versions leaked (about 1 run in
// 3 of 300 rounds before core refused such steps). 100 rounds of 120
// operations (1000 with LONG=1); BH_SEED replays the picks, not the timing.

#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>

#include "core/pool/pool.h"
#include "tests/crash/volume_crash_check.h"
#include "tests/test_util.h"
#include "volume/volume_manager.h"

namespace blockhaus::testing {
namespace {

constexpr size_t kRaceOpsPerRound = 120;

TEST_CASE("crash-free: the volume mix with the worker freeing alongside leaks nothing") {
  uint64_t seed = TestSeed();
  MESSAGE("volume race seed " << seed << " (replay with BH_SEED=" << seed << ")");
  TempDir tmp;
  std::string dir = tmp / "pool";
  CreateVolumeCrashPool(dir);
  const char* long_run = std::getenv("LONG");
  const int rounds = long_run != nullptr && long_run[0] == '1' ? 1000 : 100;
  VolCrashState state;
  for (int round = 1; round <= rounds; ++round) {
    std::string ctx = "seed " + std::to_string(seed) + " round " + std::to_string(round) + ": ";
    std::vector<VolCrashRec> log;
    {
      core::PoolOptions po;
      po.txg_timeout_ms = 15;
      auto pool = core::Pool::Open(dir, po);
      REQUIRE_MESSAGE(pool.ok(), ctx << pool.status().ToString());
      volume::VolumeManagerOptions vo;
      vo.coalesce_batch = 16;
      auto vm = volume::VolumeManager::Open(pool->get(), vo);
      REQUIRE_MESSAGE(vm.ok(), ctx << vm.status().ToString());
      std::atomic<bool> stop{false};
      Status s = RunVolumeCrashOps(
          **vm, seed, static_cast<uint64_t>(round),
          [&](const VolCrashRec& r) {
            log.push_back(r);
            if (log.size() >= kRaceOpsPerRound) stop.store(true, std::memory_order_release);
          },
          &stop, VolCrashFavoured(state));
      REQUIRE_MESSAGE(s.ok(), ctx << s.ToString());
      vm->reset();
      REQUIRE((*pool)->Close().ok());
    }
    ReopenAndVerifyVolumeCrash(dir, core::PoolOptions{}, log, seed, ctx, &state);
  }
  MESSAGE(VolCrashSummary(state));
  RequireVolCrashCoverage(state, kVolCrashMinAcked);
}

}  // namespace
}  // namespace blockhaus::testing
