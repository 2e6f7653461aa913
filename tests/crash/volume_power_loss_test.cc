// Power loss during volume operations (issue 3; TESTING.md A3 for
// volumes): the operations of volume_crash_ops.h run with the coalescing
// worker freeing in the background, over the fault seams of the data vdev
// and RocksDB; at a random instant power is cut (unsynced writes dropped,
// or in the garble variant partly kept, dropped or filled with junk). The
// pool is reopened and checked like after a kill (volume_crash_check.h),
// with the same per-round first pick and coverage requirement. 30 rounds
// (300 with LONG=1); BH_SEED replays.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "core/io/fault_vdev.h"
#include "core/io/vdev.h"
#include "core/kv/kv_store.h"
#include "core/pool/pool.h"
#include "tests/crash/volume_crash_check.h"
#include "tests/test_util.h"
#include "volume/volume_manager.h"

namespace blockhaus::testing {
namespace {

// The operations until the power goes; returns their log.
std::vector<VolCrashRec> PowerCutRound(const std::string& dir, core::Vdev* base, uint64_t seed,
                                       uint64_t round, bool garble, char first,
                                       std::mt19937_64& rng) {
  core::FaultVdev vdev(base, seed + round);
  core::KvFaultInjector kv(seed + round);
  core::PoolOptions po;
  po.vdev = &vdev;
  po.kv_fault_injector = &kv;
  po.txg_timeout_ms = 15;  // background commits at random instants too
  std::vector<VolCrashRec> log;
  {
    auto pool = core::Pool::Open(dir, po);
    REQUIRE_MESSAGE(pool.ok(), "round " << round << ": " << pool.status().ToString());
    volume::VolumeManagerOptions vo;
    vo.coalesce_batch = 16;
    auto vm = volume::VolumeManager::Open(pool->get(), vo);
    REQUIRE_MESSAGE(vm.ok(), "round " << round << ": " << vm.status().ToString());
    std::atomic<bool> stop{false};
    auto delay = std::chrono::microseconds(rng() % 60000);
    std::thread cutter([&] {
      std::this_thread::sleep_for(delay);
      vdev.PowerCut(garble ? core::PowerCutMode::kGarble : core::PowerCutMode::kDrop);
      kv.PowerCut(garble);
      stop.store(true, std::memory_order_release);
    });
    RunVolumeCrashOps(
        **vm, seed, round,
        [&](const VolCrashRec& r) { log.push_back(r); },
        &stop, first)
        .IgnoreError();  // fails once the power is off
    cutter.join();
    vm->reset();                     // stops the coalescing worker
    (*pool)->Close().IgnoreError();  // fails: the power is off
  }
  vdev.Revive();
  kv.Revive();
  return log;
}

TEST_CASE("crash: power loss during snapshots, destroys, rollbacks and background frees") {
  uint64_t seed = TestSeed();
  MESSAGE("volume power-loss seed " << seed << " (replay with BH_SEED=" << seed << ")");
  TempDir tmp;
  std::string dir = tmp / "pool";
  CreateVolumeCrashPool(dir);
  auto base = core::OpenFileVdev(dir + "/data", core::FileVdevOptions{});
  REQUIRE(base.ok());
  const int rounds = VolumeCrashRounds();
  std::mt19937_64 rng(seed);
  VolCrashState state;
  for (int round = 1; round <= rounds; ++round) {
    std::string ctx = "seed " + std::to_string(seed) + " round " + std::to_string(round) + ": ";
    std::vector<VolCrashRec> log = PowerCutRound(dir, base->get(), seed, static_cast<uint64_t>(round),
                                                 round % 2 == 0, VolCrashFavoured(state), rng);
    core::FaultVdev fresh(base->get(), seed);
    core::PoolOptions reopen;
    reopen.vdev = &fresh;
    ReopenAndVerifyVolumeCrash(dir, reopen, log, seed, ctx, &state);
  }
  MESSAGE(VolCrashSummary(state));
  RequireVolCrashCoverage(state, kVolCrashMinAcked);
}

}  // namespace
}  // namespace blockhaus::testing
