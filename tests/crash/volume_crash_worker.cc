// volume_crash_worker: the victim of volume_kill_test.cc.
//
//   volume_crash_worker POOL_DIR SEED ROUND
// Opens the pool and its volumes (coalescing worker running), then forever:
// writes blocks of volume "v", takes snapshots, destroys the oldest, rolls
// back to the newest. Every operation is logged to fd 3 before it starts
// (upper-case op) and, for admin operations, again once acknowledged
// (lower-case op); records are 17 bytes: op, id, tag.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>

#include "core/base/endian.h"
#include "core/pool/pool.h"
#include "tests/test_util.h"
#include "volume/volume_manager.h"

namespace {

using namespace blockhaus;

constexpr uint32_t kBs = 4096;

void Log(char op, uint64_t id, uint64_t tag) {
  uint8_t rec[17];
  rec[0] = static_cast<uint8_t>(op);
  EncodeLE64(rec + 1, id);
  EncodeLE64(rec + 9, tag);
  if (::write(3, rec, sizeof(rec)) != sizeof(rec)) std::_Exit(3);
}

std::string SnapName(uint64_t id) { return "v@s" + std::to_string(id); }

int Fail(const Status& s) {
  std::fprintf(stderr, "volume_crash_worker: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  uint64_t seed = std::strtoull(argv[2], nullptr, 10);
  uint64_t round = std::strtoull(argv[3], nullptr, 10);
  core::PoolOptions po;
  po.txg_timeout_ms = 20;
  auto pool = core::Pool::Open(argv[1], po);
  if (!pool.ok()) return Fail(pool.status());
  volume::VolumeManagerOptions vo;
  vo.coalesce_batch = 16;
  auto vm = volume::VolumeManager::Open(pool->get(), vo);
  if (!vm.ok()) return Fail(vm.status());
  std::mt19937_64 rng(seed ^ (round * 7777));
  for (uint64_t counter = 1;; ++counter) {
    uint64_t dice = rng() % 100;
    uint64_t id = (round << 32) | counter;
    std::vector<uint64_t> snaps;
    for (const auto& d : (*vm)->List()) {
      if (d.is_snapshot()) snaps.push_back(std::strtoull(d.name.c_str() + 3, nullptr, 10));
    }
    Status s;
    if (dice < 75) {
      uint64_t b = rng() % 32;
      Log('W', b, id);
      auto dev = (*vm)->OpenDevice("v");
      if (!dev.ok()) return Fail(dev.status());
      s = (*dev)->Write(b * kBs, testing::PatternBlock(kBs, seed, id));
    } else if (dice < 85 || snaps.empty()) {
      Log('N', id, 0);
      s = (*vm)->Snapshot({SnapName(id)});
      if (s.ok()) Log('n', id, 0);
    } else if (dice < 95) {
      uint64_t oldest = *std::min_element(snaps.begin(), snaps.end());
      Log('D', oldest, 0);
      s = (*vm)->Destroy(SnapName(oldest), false, false);
      if (s.ok()) Log('d', oldest, 0);
    } else {
      uint64_t newest = *std::max_element(snaps.begin(), snaps.end());
      Log('R', newest, 0);
      s = (*vm)->Rollback(SnapName(newest), false);
      if (s.ok()) Log('r', newest, 0);
    }
    if (!s.ok()) return Fail(s);
  }
}
