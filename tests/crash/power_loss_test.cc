// Simulated power loss (TESTING.md A3/A4): the data vdev and RocksDB both run
// over fault seams that keep unsynced writes apart; at a random instant power
// is cut (unsynced writes dropped, or in the garble variant partly kept,
// dropped or filled with junk), then the pool is reopened and checked
// against the model. 50 rounds per run, 500 with LONG=1. Replay a failure
// with BH_SEED=<printed seed>.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "core/io/fault_vdev.h"
#include "core/io/vdev.h"
#include "core/kv/kv_store.h"
#include "core/pool/pool.h"
#include "tests/crash/crash_verify.h"
#include "tests/test_util.h"

namespace blockhaus::testing {
namespace {

using namespace core;

constexpr uint64_t kBlocks = 96;

int Rounds(int normal, int long_run) {
  const char* l = std::getenv("LONG");
  return (l != nullptr && l[0] == '1') ? long_run : normal;
}

struct Rig : CrashPoolRig {
  Rig() : CrashPoolRig("crash", 0) {}
};

// Random writes, unmaps and flushes until `stop`; every op logged first.
void Workload(Pool& pool, LineageId lineage, uint64_t seed, uint64_t round,
              std::atomic<bool>& stop, std::vector<CrashRecord>& log) {
  std::mt19937_64 rng(seed ^ (round * 7919));
  uint64_t counter = 0;
  BlockOptions opts{Compression{CompressionAlgo::kLz4, 0}, ChecksumType::kXxh3_128};
  while (!stop.load(std::memory_order_acquire) && counter < 2000) {
    uint64_t dice = rng() % 100;
    uint64_t b = rng() % kBlocks;
    if (dice < 70) {
      uint64_t tag = (round << 32) | ++counter;
      log.push_back({CrashOp::kWrite, b, tag});
      if (!pool.Write(lineage, b, PatternBlock(kCrashBlockSize, seed, tag), opts).ok()) break;
    } else if (dice < 85) {
      ++counter;
      log.push_back({CrashOp::kUnmap, b, 0});
      if (!pool.Unmap(lineage, b).ok()) break;
    } else {
      ++counter;
      // Half of the flushes go through the intent log (D46), half commit.
      log.push_back({CrashOp::kFlushStart});
      Status flushed = dice < 92 ? pool.FlushWrites() : pool.Flush().status();
      if (!flushed.ok()) break;
      log.push_back({CrashOp::kFlushDone});
    }
  }
}

void RunRound(Rig& rig, uint64_t seed, uint64_t round, bool garble,
              std::map<uint64_t, uint64_t>& state) {
  FaultVdev vdev(rig.base.get(), seed + round);
  KvFaultInjector kv(seed + round);
  PoolOptions po;
  po.vdev = &vdev;
  po.kv_fault_injector = &kv;
  po.txg_timeout_ms = 15;  // background commits at random instants too
  std::vector<CrashRecord> log;
  {
    auto pool = Pool::Open(rig.tmp / "pool", po);
    REQUIRE_MESSAGE(pool.ok(), "round " << round << ": " << pool.status().ToString());
    std::atomic<bool> stop{false};
    std::mt19937_64 rng(seed * 31 + round);
    auto delay = std::chrono::microseconds(rng() % 40000);
    std::thread cutter([&] {
      std::this_thread::sleep_for(delay);
      vdev.PowerCut(garble ? PowerCutMode::kGarble : PowerCutMode::kDrop);
      kv.PowerCut(garble);
      stop.store(true, std::memory_order_release);
    });
    Workload(**pool, rig.lineage, seed, round, stop, log);
    cutter.join();
    (*pool)->Close().IgnoreError();  // fails: the power is off
  }
  vdev.Revive();
  kv.Revive();
  FaultVdev fresh(rig.base.get(), seed);
  PoolOptions reopen;
  reopen.vdev = &fresh;
  auto pool = Pool::Open(rig.tmp / "pool", reopen);
  std::string context = "seed " + std::to_string(seed) + " round " + std::to_string(round);
  REQUIRE_MESSAGE(pool.ok(), context << ": reopen: " << pool.status().ToString());
  CrashModel model(state);
  state = VerifyAfterCrash(**pool, rig.lineage, seed, model, log, context);
  REQUIRE((*pool)->Close().ok());
}

TEST_CASE("crash: power loss at random instants (drop and garble)") {
  uint64_t seed = TestSeed();
  MESSAGE("power-loss seed " << seed << " (replay with BH_SEED=" << seed << ")");
  Rig rig;
  std::map<uint64_t, uint64_t> state;
  int rounds = Rounds(50, 500);
  for (int round = 1; round <= rounds; ++round) {
    RunRound(rig, seed, static_cast<uint64_t>(round), round % 2 == 0, state);
  }
}

}  // namespace
}  // namespace blockhaus::testing
