// crash_worker: the victim of the kill -9 test (kill_test.cc).
//
//   crash_worker POOL_DIR LINEAGE SEED ROUND
// Opens the pool, then writes, unmaps and flushes at random forever, logging
// every operation to fd 3 before issuing it (17-byte records: op, blkno,
// tag), and FlushDone after each flush returns. The parent kills it with
// SIGKILL at a random instant and checks the pool against the log.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>

#include "core/base/endian.h"
#include "core/pool/pool.h"
#include "tests/crash/crash_model.h"
#include "tests/test_util.h"

namespace {

using namespace blockhaus;
using namespace blockhaus::testing;

void Log(CrashOp op, uint64_t blkno, uint64_t tag) {
  uint8_t rec[17];
  rec[0] = static_cast<uint8_t>(op);
  EncodeLE64(rec + 1, blkno);
  EncodeLE64(rec + 9, tag);
  // A pipe write of <= PIPE_BUF bytes is atomic; the record is in the
  // kernel before the operation starts, so SIGKILL cannot lose it.
  if (::write(3, rec, sizeof(rec)) != sizeof(rec)) std::_Exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: crash_worker POOL_DIR LINEAGE SEED ROUND\n");
    return 2;
  }
  core::LineageId lineage = std::strtoull(argv[2], nullptr, 10);
  uint64_t seed = std::strtoull(argv[3], nullptr, 10);
  uint64_t round = std::strtoull(argv[4], nullptr, 10);
  core::PoolOptions po;
  po.txg_timeout_ms = 20;
  auto pool = core::Pool::Open(argv[1], po);
  if (!pool.ok()) {
    std::fprintf(stderr, "crash_worker: %s\n", pool.status().ToString().c_str());
    return 1;
  }
  std::mt19937_64 rng(seed ^ (round * 104729));
  core::BlockOptions opts;
  for (uint64_t counter = 1;; ++counter) {
    uint64_t dice = rng() % 100;
    uint64_t b = rng() % 128;
    Status s;
    if (dice < 70) {
      uint64_t tag = (round << 32) | counter;
      Log(CrashOp::kWrite, b, tag);
      s = (*pool)->Write(lineage, b, PatternBlock(kCrashBlockSize, seed, tag), opts);
    } else if (dice < 85) {
      Log(CrashOp::kUnmap, b, 0);
      s = (*pool)->Unmap(lineage, b);
    } else {
      // Half of the flushes go through the intent log (D46), half commit.
      Log(CrashOp::kFlushStart, 0, 0);
      s = dice < 92 ? (*pool)->FlushWrites() : (*pool)->Flush().status();
      if (s.ok()) Log(CrashOp::kFlushDone, 0, 0);
    }
    if (!s.ok()) {
      std::fprintf(stderr, "crash_worker: %s\n", s.ToString().c_str());
      return 1;
    }
  }
}
