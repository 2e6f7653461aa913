// Raw dirty blocks (D49): writes with compression on keep their blocks
// uncompressed in the pool's scratch area until the commit, which
// compresses each block once and places it. What must hold: reads see the
// newest data at every moment (before, during and after the commit), the
// committed blocks are stored compressed, the scratch space comes back, a
// full or disabled scratch area leaves writes as they were (compressed by
// their writer), and the area's pages go back to the system when idle.

#include <doctest/doctest.h>

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "core/base/background_cpu.h"
#include "core/base/sync_point.h"
#include "core/pool/internal/dirty_scratch.h"
#include "core/pool/pool.h"
#include "tests/test_util.h"

namespace blockhaus::core {
namespace {

using testing::PatternBlock;
using testing::TempDir;

constexpr uint32_t kBs = 16384;
const BlockOptions kLz4{Compression{CompressionAlgo::kLz4, 0}, ChecksumType::kXxh3_128};
const BlockOptions kOff{Compression{CompressionAlgo::kOff, 0}, ChecksumType::kXxh3_128};

// Blocks first..first+n-1 written with tag `tag`, as one write.
std::vector<uint8_t> Blocks(uint64_t first, size_t n, uint64_t tag) {
  std::vector<uint8_t> data;
  for (size_t k = 0; k < n; ++k) {
    std::vector<uint8_t> b = PatternBlock(kBs, first + k, tag);
    data.insert(data.end(), b.begin(), b.end());
  }
  return data;
}

// A 64 MiB pool with one lineage; commits happen only when asked, unless
// a txg timeout is given.
struct Rig {
  TempDir tmp;
  std::unique_ptr<Pool> pool;
  LineageId lineage = 0;
  uint64_t direct_run_bytes = PoolOptions{}.direct_run_bytes;

  explicit Rig(std::optional<uint64_t> raw_dirty_bytes = std::nullopt,
               uint32_t txg_timeout_ms = 600'000) {
    PoolCreateOptions o;
    o.name = "raw";
    o.data_size = 64 << 20;
    REQUIRE(Pool::Create(tmp / "pool", o).ok());
    Open(raw_dirty_bytes, txg_timeout_ms);
    REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& c) { lineage = c.CreateLineage({}); })
                .ok());
  }
  void Open(std::optional<uint64_t> raw_dirty_bytes = std::nullopt,
            uint32_t txg_timeout_ms = 600'000) {
    pool.reset();
    PoolOptions po;
    po.txg_timeout_ms = txg_timeout_ms;
    po.raw_dirty_bytes = raw_dirty_bytes;
    po.direct_run_bytes = direct_run_bytes;
    auto p = Pool::Open(tmp / "pool", po);
    REQUIRE(p.ok());
    pool = std::move(p).value();
  }
  std::vector<uint8_t> Read(uint64_t first, size_t n) {
    std::vector<uint8_t> out(n * kBs);
    REQUIRE(pool->ReadBlocks(lineage, first, kHeadView, kBs, out).ok());
    return out;
  }
  void Clean() {
    auto r = pool->Scrub();
    REQUIRE(r.ok());
    for (const auto& p : r->problems) MESSAGE(p);
    CHECK(r->clean());
  }
};

TEST_CASE("raw dirty scratch: first fit, freed runs join, a full area says so") {
  CHECK_FALSE(DirtyScratch::Create(4095).ok());
  auto made = DirtyScratch::Create(64 * 1024 + 100);  // rounded down to 64K
  REQUIRE(made.ok());
  DirtyScratch& s = **made;
  CHECK(s.capacity() == 64 * 1024);
  CHECK(s.Allocate(16384) == std::optional<uint64_t>(0));
  CHECK(s.Allocate(16384) == std::optional<uint64_t>(16384));
  CHECK(s.Allocate(32768) == std::optional<uint64_t>(32768));
  CHECK(s.Allocate(4096) == std::nullopt);
  CHECK(s.used() == 65536);
  s.Free(16384, 16384);
  CHECK(s.Allocate(32768) == std::nullopt);  // 16K free, not 32K
  s.Free(0, 16384);                           // joins the run after it
  CHECK(s.Allocate(32768) == std::optional<uint64_t>(0));
  CHECK(s.peak() == 65536);

  std::vector<uint8_t> data = PatternBlock(8192, 1, 2);
  REQUIRE(s.Write(4096, data).ok());
  std::vector<uint8_t> back(8192);
  REQUIRE(s.Read(4096, back).ok());
  CHECK(back == data);

  CHECK_FALSE(s.Trim());  // in use
  s.Free(0, 32768);
  s.Free(32768, 32768);
  CHECK(s.used() == 0);
  CHECK(s.Trim());
  CHECK_FALSE(s.Trim());  // nothing written since
  REQUIRE(s.Read(4096, back).ok());
  CHECK(back == std::vector<uint8_t>(8192, 0));  // the pages went back
}

TEST_CASE("raw dirty blocks: read back before and after the commit, stored compressed") {
  Rig rig;
  const std::vector<uint8_t> data = Blocks(0, 8, 1);
  REQUIRE(rig.pool->WriteBlocks(rig.lineage, 0, kBs, data, kLz4).ok());
  PoolStats s = rig.pool->stats();
  CHECK(s.raw_dirty_capacity > 0);
  CHECK(s.raw_dirty_bytes == 8 * kBs);
  const uint64_t allocated = s.allocated;
  CHECK(rig.Read(0, 8) == data);
  // A read across raw blocks and ones never written.
  std::vector<uint8_t> wide = rig.Read(0, 10);
  CHECK(std::equal(data.begin(), data.end(), wide.begin()));
  CHECK(std::all_of(wide.begin() + data.size(), wide.end(), [](uint8_t b) { return b == 0; }));

  REQUIRE(rig.pool->Flush().ok());
  s = rig.pool->stats();
  CHECK(s.raw_dirty_bytes == 0);
  CHECK(s.raw_blocks_committed == 8);
  // Half of each block compresses: 12K of 4K sectors each, not 16K.
  CHECK(s.allocated - allocated == 8 * 12288);
  CHECK(rig.Read(0, 8) == data);
  rig.Clean();
  rig.Open();
  CHECK(rig.Read(0, 8) == data);
  rig.Clean();
}

TEST_CASE("raw dirty blocks: a txg's rewrites commit the last copy, once") {
  Rig rig;
  for (uint64_t tag = 1; tag <= 50; ++tag) {
    REQUIRE(rig.pool->WriteBlocks(rig.lineage, 3, kBs, Blocks(3, 2, tag), kLz4).ok());
    CHECK(rig.Read(3, 2) == Blocks(3, 2, tag));
  }
  REQUIRE(rig.pool->Flush().ok());
  PoolStats s = rig.pool->stats();
  CHECK(s.raw_blocks_committed == 2);
  CHECK(s.raw_dirty_bytes == 0);  // the 98 replaced copies' space came back too
  CHECK(rig.Read(3, 2) == Blocks(3, 2, 50));
  // Unmapped in the next txg: the raw block leaves nothing behind.
  REQUIRE(rig.pool->WriteBlocks(rig.lineage, 3, kBs, Blocks(3, 1, 51), kLz4).ok());
  REQUIRE(rig.pool->Unmap(rig.lineage, 3).ok());
  REQUIRE(rig.pool->Flush().ok());
  CHECK(rig.Read(3, 1) == std::vector<uint8_t>(kBs, 0));
  CHECK(rig.pool->stats().raw_dirty_bytes == 0);
  rig.Clean();
}

TEST_CASE("raw dirty blocks: a full area, or none, leaves writes to their writers") {
  SUBCASE("full") {
    Rig rig(8 * kBs);
    // 16 blocks do not fit: compressed by the writer, as without the area.
    const std::vector<uint8_t> big = Blocks(0, 16, 2);
    REQUIRE(rig.pool->WriteBlocks(rig.lineage, 0, kBs, big, kLz4).ok());
    CHECK(rig.pool->stats().raw_dirty_bytes == 0);
    CHECK(rig.pool->stats().raw_dirty_full == 1);
    // 4 do.
    const std::vector<uint8_t> small = Blocks(20, 4, 3);
    REQUIRE(rig.pool->TryWriteBlocks(rig.lineage, 20, kBs, small, kLz4).ok());
    CHECK(rig.pool->stats().raw_dirty_bytes == 4 * kBs);
    CHECK(rig.Read(0, 16) == big);
    CHECK(rig.Read(20, 4) == small);
    REQUIRE(rig.pool->Flush().ok());
    CHECK(rig.pool->stats().raw_blocks_committed == 4);
    CHECK(rig.Read(0, 16) == big);
    CHECK(rig.Read(20, 4) == small);
    rig.Clean();
  }
  SUBCASE("off") {
    Rig rig(0);
    CHECK(rig.pool->stats().raw_dirty_capacity == 0);
    const std::vector<uint8_t> data = Blocks(0, 4, 4);
    REQUIRE(rig.pool->WriteBlocks(rig.lineage, 0, kBs, data, kLz4).ok());
    CHECK(rig.pool->stats().raw_dirty_bytes == 0);
    REQUIRE(rig.pool->Flush().ok());
    CHECK(rig.pool->stats().raw_blocks_committed == 0);
    CHECK(rig.Read(0, 4) == data);
    rig.Clean();
  }
  SUBCASE("compression off, and blocks of one sector") {
    Rig rig;
    const std::vector<uint8_t> data = Blocks(0, 2, 5);
    REQUIRE(rig.pool->WriteBlocks(rig.lineage, 0, kBs, data, kOff).ok());
    const std::vector<uint8_t> small = PatternBlock(4096, 9, 6);
    REQUIRE(rig.pool->Write(rig.lineage, 100, small, kLz4).ok());
    CHECK(rig.pool->stats().raw_dirty_bytes == 0);
    REQUIRE(rig.pool->Flush().ok());
    CHECK(rig.Read(0, 2) == data);
    rig.Clean();
  }
}

// D52: a write that goes raw has its blocks copied into the area while its
// data arrives (PrepareAhead); the write copies only the rest and keeps
// them where they are. The run serves one write of the same bytes and goes
// with it, or back with Reset.
TEST_CASE("raw dirty blocks: blocks copied as the data arrives are what the write keeps") {
  Rig rig;
  std::vector<uint8_t> data = Blocks(0, 8, 10);
  StagedWrite staged;
  // The whole write's run is claimed at once; whole blocks are copied, and
  // nothing is visible yet.
  rig.pool->PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), kBs + 100), kLz4);
  CHECK(staged.blocks() == 0);  // nothing compressed: the commit does that
  PoolStats st = rig.pool->stats();
  CHECK(st.raw_dirty_bytes == 8 * kBs);
  CHECK(st.raw_copied_ahead == kBs);
  CHECK(st.dirty == 0);
  CHECK(rig.Read(0, 8) == std::vector<uint8_t>(8 * kBs, 0));
  rig.pool->PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), 5 * kBs), kLz4);
  CHECK(rig.pool->stats().raw_copied_ahead == 5 * kBs);
  // Bytes changed after they were copied (which a caller must never do)
  // show that the write did not copy them again; later ones it did.
  std::vector<uint8_t> expect = data;
  data[0] ^= 0xff;
  data[6 * kBs] ^= 0xff;
  expect[6 * kBs] ^= 0xff;
  REQUIRE(rig.pool->TryWriteBlocks(rig.lineage, 0, kBs, data, kLz4, &staged).ok());
  data[0] ^= 0xff;
  st = rig.pool->stats();
  CHECK(st.raw_dirty_bytes == 8 * kBs);  // in the staged run, no second one
  CHECK(st.raw_dirty_full == 0);
  CHECK(rig.Read(0, 8) == expect);
  REQUIRE(rig.pool->Flush().ok());
  CHECK(rig.Read(0, 8) == expect);
  CHECK(rig.pool->stats().raw_blocks_committed == 8);

  // A shorter write than the run was claimed for (less data than the
  // command asked for) gives the rest back at once.
  const uint64_t before = rig.pool->stats().raw_dirty_bytes;
  rig.pool->PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), 2 * kBs), kLz4);
  CHECK(rig.pool->stats().raw_dirty_bytes == before + 8 * kBs);
  REQUIRE(rig.pool->TryWriteBlocks(rig.lineage, 16, kBs, ConstByteSpan(data.data(), 4 * kBs),
                                   kLz4, &staged)
              .ok());
  CHECK(rig.pool->stats().raw_dirty_bytes == before + 4 * kBs);
  CHECK(rig.Read(16, 4) == std::vector<uint8_t>(data.begin(), data.begin() + 4 * kBs));

  // Staged from other bytes, or with another block size: the run goes
  // back and the write copies everything itself.
  const std::vector<uint8_t> other = Blocks(40, 8, 11);
  auto write_after = [&](ConstByteSpan staged_from, uint32_t staged_bs, uint64_t first) {
    const uint64_t copied = rig.pool->stats().raw_copied_ahead;
    const uint64_t used = rig.pool->stats().raw_dirty_bytes;
    rig.pool->PrepareAhead(&staged, staged_bs, 8 * kBs, staged_from, kLz4);
    REQUIRE(rig.pool->stats().raw_copied_ahead > copied);
    REQUIRE(rig.pool->TryWriteBlocks(rig.lineage, first, kBs, other, kLz4, &staged).ok());
    CHECK(rig.pool->stats().raw_dirty_bytes == used + 8 * kBs);
    CHECK(rig.Read(first, 8) == other);
  };
  write_after(ConstByteSpan(data.data(), 4 * kBs), kBs, 24);
  write_after(ConstByteSpan(other.data(), 4 * kBs), kBs / 2, 32);
  // Reset gives the run back.
  const uint64_t used = rig.pool->stats().raw_dirty_bytes;
  rig.pool->PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), 3 * kBs), kLz4);
  CHECK(rig.pool->stats().raw_dirty_bytes == used + 8 * kBs);
  staged.Reset();
  CHECK(rig.pool->stats().raw_dirty_bytes == used);
  REQUIRE(rig.pool->Flush().ok());
  rig.Clean();
  CHECK(rig.Read(0, 8) == expect);
  CHECK(rig.Read(24, 8) == other);
  CHECK(rig.Read(32, 8) == other);

  // A stage may outlive its pool: it then has nothing to give back.
  rig.pool->PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), 2 * kBs), kLz4);
  rig.pool.reset();
  staged.Reset();
  CHECK(staged.blocks() == 0);
}

TEST_CASE("raw dirty blocks: reads and writes while their commit places them") {
  Rig rig;
  const std::vector<uint8_t> first = Blocks(0, 32, 7);
  const std::vector<uint8_t> second = Blocks(8, 4, 8);
  REQUIRE(rig.pool->WriteBlocks(rig.lineage, 0, kBs, first, kLz4).ok());
  std::atomic<int> calls{0};
  std::vector<uint8_t> seen;
  Status wrote;
  // Placed in the data file, not yet committed: the syncing txg's blocks
  // still read from the scratch area, and a write goes to the next txg.
  SyncPoints::Set("txg:before-metadata", [&] {
    if (calls++ > 0) return;
    seen = rig.Read(0, 32);
    wrote = rig.pool->WriteBlocks(rig.lineage, 8, kBs, second, kLz4);
  });
  REQUIRE(rig.pool->Flush().ok());
  SyncPoints::Clear();
  CHECK(calls >= 1);
  CHECK(seen == first);
  REQUIRE(wrote.ok());
  std::vector<uint8_t> expect = first;
  std::copy(second.begin(), second.end(), expect.begin() + 8 * kBs);
  CHECK(rig.Read(0, 32) == expect);
  CHECK(rig.pool->stats().raw_dirty_bytes == 4 * kBs);  // the next txg's
  REQUIRE(rig.pool->Flush().ok());
  CHECK(rig.pool->stats().raw_dirty_bytes == 0);
  CHECK(rig.pool->stats().raw_blocks_committed == 36);
  CHECK(rig.Read(0, 32) == expect);
  rig.Clean();
}

TEST_CASE("raw dirty blocks: copies replaced while a commit runs go back during it") {
  // 64 blocks of scratch: the syncing txg's 8, the open txg's 8, and room
  // for five rewrites of them. Forty rewrites fit only if the copies they
  // replace come back while the commit (held at a sync point) runs.
  Rig rig(64 * kBs);
  const std::vector<uint8_t> first = Blocks(0, 8, 1);
  REQUIRE(rig.pool->WriteBlocks(rig.lineage, 0, kBs, first, kLz4).ok());
  std::atomic<int> calls{0};
  bool drained = true;
  Status wrote;
  SyncPoints::Set("txg:before-metadata", [&] {
    if (calls++ > 0) return;
    for (uint64_t tag = 2; tag <= 41 && wrote.ok() && drained; ++tag) {
      wrote = rig.pool->WriteBlocks(rig.lineage, 100, kBs, Blocks(100, 8, tag), kLz4);
      // The release thread gives the replaced copy back: the syncing
      // txg's 8 blocks and this txg's newest 8 are left.
      drained = false;
      for (int i = 0; i < 500 && !drained; ++i) {
        drained = rig.pool->stats().raw_dirty_bytes <= 16 * kBs;
        if (!drained) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
  });
  REQUIRE(rig.pool->Flush().ok());
  SyncPoints::Clear();
  REQUIRE(calls >= 1);
  REQUIRE(wrote.ok());
  CHECK(drained);
  PoolStats s = rig.pool->stats();
  CHECK(s.raw_dirty_full == 0);
  CHECK(s.raw_dirty_bytes == 8 * kBs);  // the open txg's newest copies
  CHECK(rig.Read(0, 8) == first);
  CHECK(rig.Read(100, 8) == Blocks(100, 8, 41));
  REQUIRE(rig.pool->Flush().ok());
  CHECK(rig.pool->stats().raw_dirty_bytes == 0);
  CHECK(rig.pool->stats().raw_blocks_committed == 16);
  CHECK(rig.Read(100, 8) == Blocks(100, 8, 41));
  rig.Clean();
}

TEST_CASE("raw dirty blocks: a commit nobody waits for compresses as background CPU") {
  struct Seen {
    std::atomic<int> chunks{0};
    std::atomic<int> background{0};   // chunks begun under SCHED_IDLE
    std::atomic<int> after{0};        // the sync thread still so after them
  };
  auto watch = [](Seen& seen) {
    SyncPoints::Set("txg:raw-chunk", [&seen] {
      ++seen.chunks;
      if (ThisThreadIsBackground() && sched_getscheduler(0) == SCHED_IDLE) ++seen.background;
    });
    SyncPoints::Set("txg:before-metadata", [&seen] {
      if (ThisThreadIsBackground() || sched_getscheduler(0) != SCHED_OTHER) ++seen.after;
    });
  };
  const std::vector<uint8_t> data = Blocks(0, 8, 3);
  SUBCASE("the timer's commit: background") {
    Rig rig(std::nullopt, /*txg_timeout_ms=*/100);
    Seen seen;
    watch(seen);
    REQUIRE(rig.pool->WriteBlocks(rig.lineage, 0, kBs, data, kLz4).ok());
    for (int i = 0; i < 300 && rig.pool->stats().raw_blocks_committed < 8; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    SyncPoints::Clear();
    REQUIRE(rig.pool->stats().raw_blocks_committed == 8);
    CHECK(seen.chunks >= 1);
    CHECK(seen.background == seen.chunks);
    CHECK(seen.after == 0);
    CHECK(rig.Read(0, 8) == data);
  }
  SUBCASE("a flush waits for it: normal") {
    Rig rig;
    Seen seen;
    watch(seen);
    REQUIRE(rig.pool->WriteBlocks(rig.lineage, 0, kBs, data, kLz4).ok());
    REQUIRE(rig.pool->Flush().ok());
    SyncPoints::Clear();
    CHECK(seen.chunks >= 1);
    CHECK(seen.background == 0);
    CHECK(seen.after == 0);
    CHECK(rig.Read(0, 8) == data);
  }
}

TEST_CASE("raw dirty blocks: a commit writes streams past the page cache, the rest through it") {
  Rig rig;
  rig.direct_run_bytes = 1 << 20;  // 64 blocks
  rig.Open();
  // One block short of a stream: buffered.
  const std::vector<uint8_t> short_run = Blocks(0, 63, 1);
  REQUIRE(rig.pool->WriteBlocks(rig.lineage, 0, kBs, short_run, kLz4).ok());
  // A stream of 256 blocks (4 MiB) as 1 MiB writes, one of them rewritten.
  const std::vector<uint8_t> stream = Blocks(1000, 256, 2);
  for (size_t k = 0; k < 4; ++k) {
    REQUIRE(rig.pool->WriteBlocks(rig.lineage, 1000 + 64 * k, kBs,
                                  ConstByteSpan(stream).subspan(k * 64 * kBs, 64 * kBs), kLz4)
                .ok());
  }
  REQUIRE(rig.pool->WriteBlocks(rig.lineage, 1064, kBs,
                                ConstByteSpan(stream).subspan(64 * kBs, 64 * kBs), kLz4)
              .ok());
  // Scattered blocks, every other one: no run at all.
  for (uint64_t b = 3000; b < 3200; b += 2) {
    REQUIRE(rig.pool->WriteBlocks(rig.lineage, b, kBs, Blocks(b, 1, 3), kLz4).ok());
  }
  REQUIRE(rig.pool->Flush().ok());
  // The stream alone went direct: 256 blocks of 12K stored (half of each
  // block compresses), nothing of the others.
  REQUIRE_MESSAGE(rig.pool->stats().direct_bytes > 0,
                  "no direct writes: does the file system of " << rig.tmp.path()
                      << " support O_DIRECT (statx STATX_DIOALIGN)?");
  CHECK(rig.pool->stats().direct_bytes == 256 * 12288);
  CHECK(rig.Read(0, 63) == short_run);
  CHECK(rig.Read(1000, 256) == stream);
  for (uint64_t b = 3000; b < 3200; b += 2) CHECK(rig.Read(b, 1) == Blocks(b, 1, 3));
  rig.Clean();

  // The stream rewritten in the next txg goes direct again; reads, and a
  // reopen, see the new blocks.
  const std::vector<uint8_t> again = Blocks(1000, 256, 4);
  REQUIRE(rig.pool->WriteBlocks(rig.lineage, 1000, kBs, again, kLz4).ok());
  REQUIRE(rig.pool->Flush().ok());
  CHECK(rig.pool->stats().direct_bytes == 2 * 256 * 12288);
  CHECK(rig.Read(1000, 256) == again);
  rig.Clean();
  rig.Open();
  CHECK(rig.Read(0, 63) == short_run);
  CHECK(rig.Read(1000, 256) == again);
  rig.Clean();

  // 0 turns it off.
  rig.direct_run_bytes = 0;
  rig.Open();
  REQUIRE(rig.pool->WriteBlocks(rig.lineage, 1000, kBs, stream, kLz4).ok());
  REQUIRE(rig.pool->Flush().ok());
  CHECK(rig.pool->stats().direct_bytes == 0);
  CHECK(rig.Read(1000, 256) == stream);
  rig.Clean();
}

TEST_CASE("raw dirty blocks: a pool of sectors below a page writes streams buffered") {
  TempDir tmp;
  PoolCreateOptions o;
  o.name = "small";
  o.data_size = 64 << 20;
  o.ashift = 9;
  REQUIRE(Pool::Create(tmp / "pool", o).ok());
  auto p = Pool::Open(tmp / "pool", PoolOptions{});
  REQUIRE(p.ok());
  Pool& pool = **p;
  LineageId lineage = 0;
  REQUIRE(pool.RunSyncTask(nullptr, [&](SyncContext& c) { lineage = c.CreateLineage({}); }).ok());
  const std::vector<uint8_t> stream = Blocks(0, 512, 5);  // 8 MiB
  REQUIRE(pool.WriteBlocks(lineage, 0, kBs, stream, kLz4).ok());
  REQUIRE(pool.Flush().ok());
  CHECK(pool.stats().raw_blocks_committed == 512);
  CHECK(pool.stats().direct_bytes == 0);
  std::vector<uint8_t> back(stream.size());
  REQUIRE(pool.ReadBlocks(lineage, 0, kHeadView, kBs, back).ok());
  CHECK(back == stream);
}

TEST_CASE("raw dirty blocks: an idle pool gives the area's pages back") {
  Rig rig(std::nullopt, /*txg_timeout_ms=*/100);
  using Clock = std::chrono::steady_clock;
  std::atomic<int> trims{0};
  std::atomic<Clock::rep> trimmed_at{0};
  SyncPoints::Set("txg:raw-trimmed", [&] {
    if (trims++ == 0) trimmed_at = Clock::now().time_since_epoch().count();
  });
  const std::vector<uint8_t> data = Blocks(0, 4, 9);
  REQUIRE(rig.pool->WriteBlocks(rig.lineage, 0, kBs, data, kLz4).ok());
  // The timer commits the write; six timeouts later with nothing to do
  // (D53), not the first, the pages go.
  for (int i = 0; i < 400 && rig.pool->stats().raw_blocks_committed < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const Clock::time_point committed = Clock::now();
  REQUIRE(rig.pool->stats().raw_blocks_committed == 4);
  for (int i = 0; i < 300 && trims == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  SyncPoints::Clear();
  REQUIRE(trims >= 1);
  const auto idle = Clock::time_point(Clock::duration(trimmed_at.load())) - committed;
  MESSAGE("trimmed " << std::chrono::duration_cast<std::chrono::milliseconds>(idle).count()
                     << " ms after the commit");
  CHECK(idle >= std::chrono::milliseconds(450));
  CHECK(rig.pool->stats().raw_blocks_committed == 4);
  CHECK(rig.Read(0, 4) == data);
  REQUIRE(rig.pool->Close().ok());
}

}  // namespace
}  // namespace blockhaus::core
