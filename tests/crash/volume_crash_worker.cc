// volume_crash_worker: the victim of volume_kill_test.cc.
//
//   volume_crash_worker POOL_DIR SEED ROUND FIRST
// Opens the pool and its volumes (coalescing worker running), then runs the
// operations of volume_crash_ops.h until killed, the first one picked as
// FIRST (an op letter; "-" for none). The log goes to fd 3:
// records of 17 bytes (op, id, tag), each written before the operation
// goes on.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "core/base/endian.h"
#include "core/pool/pool.h"
#include "tests/crash/volume_crash_ops.h"
#include "volume/volume_manager.h"

namespace {

using namespace blockhaus;

void Log(const testing::VolCrashRec& r) {
  uint8_t rec[17];
  rec[0] = static_cast<uint8_t>(r.op);
  EncodeLE64(rec + 1, r.id);
  EncodeLE64(rec + 9, r.tag);
  if (::write(3, rec, sizeof(rec)) != sizeof(rec)) std::_Exit(3);
}

int Fail(const Status& s) {
  std::fprintf(stderr, "volume_crash_worker: %s\n", s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) return 2;
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
  const char first = argv[4][0] == '-' ? 0 : argv[4][0];
  return Fail(testing::RunVolumeCrashOps(**vm, seed, round, Log, nullptr, first));
}
