#include "core/pool/pool.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <random>
#include <thread>

#include "core/base/sync_point.h"
#include "core/io/fault_vdev.h"
#include "core/io/vdev.h"
#include "core/kv/kv_store.h"
#include "core/pool/internal/pool_impl.h"
#include "core/pool/pool_dir.h"
#include "tests/test_util.h"

namespace blockhaus::core {
namespace {

using testing::PatternBlock;
using testing::TempDir;

constexpr size_t kBs = 16384;

std::unique_ptr<Pool> MakePool(const TempDir& tmp, uint64_t size = 64 << 20) {
  PoolCreateOptions o;
  o.name = "tank";
  o.data_size = size;
  REQUIRE(Pool::Create(tmp / "pool", o).ok());
  auto pool = Pool::Open(tmp / "pool");
  REQUIRE(pool.ok());
  return std::move(pool).value();
}

LineageId NewLineage(Pool& pool, LineageInfo info = {}) {
  LineageId id = 0;
  auto txg = pool.RunSyncTask(nullptr, [&](SyncContext& ctx) { id = ctx.CreateLineage(info); });
  REQUIRE(txg.ok());
  return id;
}

uint64_t Snapshot(Pool& pool, LineageId l) {
  uint64_t t = 0;
  REQUIRE(pool.RunSyncTask(nullptr, [&](SyncContext& ctx) { t = ctx.SnapshotLineage(l); }).ok());
  return t;
}

std::vector<uint8_t> ReadBlock(Pool& pool, LineageId l, uint64_t b, uint64_t view = kHeadView) {
  std::vector<uint8_t> out(kBs, 0xee);
  Status s = pool.Read(l, b, view, out);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return out;
}

void CheckClean(Pool& pool) {
  auto r = pool.Scrub();
  REQUIRE(r.ok());
  for (const auto& p : r->problems) MESSAGE(p);
  CHECK(r->clean());
}

const std::vector<uint8_t> kZero(kBs, 0);

TEST_CASE("pool: write, read at once, flush, reopen, read again") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  auto a = PatternBlock(kBs, 1, 1);
  REQUIRE(pool->Write(l, 5, a, BlockOptions{}).ok());
  CHECK(ReadBlock(*pool, l, 5) == a);
  CHECK(ReadBlock(*pool, l, 6) == kZero);
  auto txg = pool->Flush();
  REQUIRE(txg.ok());
  CHECK(pool->stats().synced_txg == *txg);
  CHECK(ReadBlock(*pool, l, 5) == a);
  CHECK(pool->stats().allocated > 0);
  CHECK(pool->stats().allocated < kBs);  // half the pattern compresses
  REQUIRE(pool->Close().ok());
  pool.reset();
  auto again = Pool::Open(tmp / "pool");
  REQUIRE(again.ok());
  CHECK(ReadBlock(**again, l, 5) == a);
  CheckClean(**again);
}

TEST_CASE("pool: a compressed block is kept only when it saves a sector") {
  TempDir tmp;
  auto pool = MakePool(tmp);  // 4K sectors (ashift 12)
  LineageId l = NewLineage(*pool);
  BlockOptions lz4{Compression{CompressionAlgo::kLz4, 0}, ChecksumType::kXxh3_128};
  // Half random, half zeros: compresses to about half in both sizes.
  auto small = PatternBlock(4096, 7, 1);
  auto big = PatternBlock(16384, 7, 2);
  REQUIRE(pool->Write(l, 0, small, lz4).ok());
  REQUIRE(pool->Write(l, 1, big, lz4).ok());
  REQUIRE(pool->Flush().ok());
  auto p0 = pool->LookupCommitted(l, 0, kHeadView);
  auto p1 = pool->LookupCommitted(l, 1, kHeadView);
  REQUIRE((p0.ok() && p0->has_value() && p1.ok() && p1->has_value()));
  CHECK((*p0)->compression.algo == CompressionAlgo::kOff);  // 2K would still take 4K
  CHECK((*p0)->psize == 4096);
  CHECK((*p1)->compression.algo == CompressionAlgo::kLz4);
  CHECK((*p1)->psize < 12288);
  CHECK(ReadBlock(*pool, l, 1) != kZero);
  std::vector<uint8_t> out(4096);
  REQUIRE(pool->Read(l, 0, kHeadView, out).ok());
  CHECK(out == small);
  CheckClean(*pool);
}

TEST_CASE("pool: compression that cannot save a sector is not kept, whatever the sector") {
  BlockOptions lz4{Compression{CompressionAlgo::kLz4, 0}, ChecksumType::kXxh3_128};
  // 13K random then zeros: lz4 saves more than 1/8 but not a 4K sector.
  std::vector<uint8_t> mostly_random = PatternBlock(16384, 9, 3);
  std::mt19937_64 rng(9);
  for (size_t i = 0; i < 13 * 1024; ++i) mostly_random[i] = static_cast<uint8_t>(rng());
  std::fill(mostly_random.begin() + 13 * 1024, mostly_random.end(), 0);
  auto small = PatternBlock(4096, 7, 1);  // 2K random, 2K repeating
  for (uint32_t ashift : {12u, 9u}) {
    CAPTURE(ashift);
    TempDir tmp;
    PoolCreateOptions o;
    o.name = "tank";
    o.data_size = 64 << 20;
    o.ashift = ashift;
    REQUIRE(Pool::Create(tmp / "pool", o).ok());
    auto pool = std::move(Pool::Open(tmp / "pool")).value();
    LineageId l = NewLineage(*pool);
    REQUIRE(pool->Write(l, 0, mostly_random, lz4).ok());
    REQUIRE(pool->Write(l, 1, small, lz4).ok());
    REQUIRE(pool->Flush().ok());
    auto p0 = pool->LookupCommitted(l, 0, kHeadView);
    auto p1 = pool->LookupCommitted(l, 1, kHeadView);
    REQUIRE((p0.ok() && p0->has_value() && p1.ok() && p1->has_value()));
    if (ashift == 12) {
      CHECK((*p0)->compression.algo == CompressionAlgo::kOff);  // 4 sectors either way
      CHECK((*p1)->compression.algo == CompressionAlgo::kOff);  // one sector is the least
    } else {
      CHECK((*p0)->compression.algo == CompressionAlgo::kLz4);  // 512-byte sectors: it saves
      CHECK((*p1)->compression.algo == CompressionAlgo::kLz4);
      CHECK((*p1)->psize < 4096);
    }
    std::vector<uint8_t> out(16384);
    REQUIRE(pool->Read(l, 0, kHeadView, out).ok());
    CHECK(out == mostly_random);
    out.resize(4096);
    REQUIRE(pool->Read(l, 1, kHeadView, out).ok());
    CHECK(out == small);
    CheckClean(*pool);
  }
}

TEST_CASE("pool: every compression and checksum reads back") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  std::vector<BlockOptions> opts;
  for (const char* c : {"off", "lz4", "zstd-1", "zstd-19"}) {
    for (ChecksumType t : {ChecksumType::kXxh3_128, ChecksumType::kCrc32c, ChecksumType::kSha256}) {
      opts.push_back(BlockOptions{*ParseCompression(c), t});
    }
  }
  for (size_t i = 0; i < opts.size(); ++i) {
    REQUIRE(pool->Write(l, i, PatternBlock(kBs, 2, i), opts[i]).ok());
  }
  REQUIRE(pool->Flush().ok());
  for (size_t i = 0; i < opts.size(); ++i) CHECK(ReadBlock(*pool, l, i) == PatternBlock(kBs, 2, i));
  CheckClean(*pool);
}

// ReadBlocks must read exactly what Read reads block by block, whatever mix
// of runs, compression, holes, dirty data, snapshots and clone origins lies
// under the range.
TEST_CASE("pool: ReadBlocks equals block-by-block reads") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  const BlockOptions raw{Compression{CompressionAlgo::kOff, 0}, ChecksumType::kXxh3_128};
  const BlockOptions lz4{Compression{CompressionAlgo::kLz4, 0}, ChecksumType::kCrc32c};
  // One txg of 40 blocks: a physically contiguous run with raw and
  // compressed blocks mixed.
  for (uint64_t b = 0; b < 40; ++b) {
    REQUIRE(pool->Write(l, b, PatternBlock(kBs, 1, b), b % 3 == 0 ? raw : lz4).ok());
  }
  REQUIRE(pool->Flush().ok());
  // A second txg breaks the run in places; unmaps make holes.
  for (uint64_t b : {5, 6, 17, 30}) REQUIRE(pool->Write(l, b, PatternBlock(kBs, 2, b), raw).ok());
  for (uint64_t b : {8, 21}) REQUIRE(pool->Unmap(l, b).ok());
  REQUIRE(pool->Flush().ok());
  uint64_t snap = Snapshot(*pool, l);
  // Dirty data at the head (open txg): overwrites, an unmap, new blocks.
  for (uint64_t b : {2, 3, 41}) REQUIRE(pool->Write(l, b, PatternBlock(kBs, 3, b), lz4).ok());
  REQUIRE(pool->Unmap(l, 10).ok());
  // A clone of the snapshot with one block of its own.
  LineageId c = NewLineage(*pool, LineageInfo{false, l, snap, 0});
  REQUIRE(pool->Write(c, 12, PatternBlock(kBs, 4, 12), raw).ok());

  auto check = [&](LineageId lin, uint64_t view, uint64_t first, uint64_t count) {
    std::vector<uint8_t> want;
    for (uint64_t b = first; b < first + count; ++b) {
      auto one = ReadBlock(*pool, lin, b, view);
      want.insert(want.end(), one.begin(), one.end());
    }
    std::vector<uint8_t> got(count * kBs, 0xee);
    Status s = pool->ReadBlocks(lin, first, view, kBs, got);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    CHECK_MESSAGE(got == want, "lineage ", lin, " view ", view, " blocks ", first, "+", count);
  };
  for (int round = 0; round < 2; ++round) {  // dirty, then committed
    for (auto [first, count] : {std::pair<uint64_t, uint64_t>{0, 48}, {0, 1}, {4, 3}, {7, 20},
                                {29, 3}, {39, 5}, {100, 4}}) {
      check(l, kHeadView, first, count);
      check(l, snap, first, count);
      check(c, kHeadView, first, count);
    }
    REQUIRE(pool->Flush().ok());
  }

  // Bad sizes are refused.
  std::vector<uint8_t> odd(kBs + 512);
  CHECK(pool->ReadBlocks(l, 0, kHeadView, kBs, odd).code() == Code::kInvalidArgument);
  std::vector<uint8_t> small(2 * 4096);
  CHECK(pool->ReadBlocks(l, 0, kHeadView, 4096, small).code() == Code::kInvalidArgument);

  // A damaged block inside a run is reported by its own number.
  auto victim = pool->LookupCommitted(l, 34, kHeadView);
  REQUIRE((victim.ok() && victim->has_value()));
  {
    std::fstream f(tmp / "pool/data", std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f.good());
    f.seekp(static_cast<std::streamoff>((*victim)->offset + 100));
    f.write("garbage", 7);
  }
  std::vector<uint8_t> run(10 * kBs);
  Status bad = pool->ReadBlocks(l, 31, kHeadView, kBs, run);
  CHECK(bad.code() == Code::kCorruption);
  CHECK(bad.ToString().find("block 34") != std::string::npos);
}

// A read of several blocks finds their versions by stepping forward from
// one block's key to the next; past a few versions per block it seeks.
// Whatever the number of versions beneath a view, it must land on the one
// a lookup of that block alone finds.
TEST_CASE("pool: ReadBlocks finds the right version among many per block") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  constexpr uint64_t kBlocks = 12;
  std::vector<uint64_t> snaps;
  for (uint64_t round = 0; round < 12; ++round) {
    // Every round rewrites a different subset, so blocks carry from one to
    // twelve versions and neighbours differ in how many.
    for (uint64_t b = 0; b < kBlocks; ++b) {
      if (b % (round % 4 + 1) != 0) continue;
      REQUIRE(pool->Write(l, b, PatternBlock(kBs, 10 + round, b), BlockOptions{}).ok());
    }
    REQUIRE(pool->Flush().ok());
    snaps.push_back(Snapshot(*pool, l));
  }
  snaps.push_back(kHeadView);
  for (uint64_t view : snaps) {
    std::vector<uint8_t> want;
    for (uint64_t b = 0; b < kBlocks; ++b) {
      auto one = ReadBlock(*pool, l, b, view);
      want.insert(want.end(), one.begin(), one.end());
    }
    std::vector<uint8_t> got(kBlocks * kBs, 0xee);
    Status s = pool->ReadBlocks(l, 0, view, kBs, got);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    CHECK_MESSAGE(got == want, "view ", view);
  }
}

// WriteBlocks compresses and checksums on helper threads as the blocks
// arrive; what it leaves must be exactly what Write leaves block by block:
// the same data (read while dirty, in the compressed dirty form, and after
// the commit) and the same stored form.
TEST_CASE("pool: WriteBlocks equals block-by-block writes") {
  TempDir tmp;
  PoolCreateOptions o;
  o.name = "tank";
  o.data_size = 64 << 20;
  REQUIRE(Pool::Create(tmp / "pool", o).ok());
  PoolOptions with_helpers;
  with_helpers.prepare_threads = 2;
  auto opened = Pool::Open(tmp / "pool", with_helpers);
  REQUIRE(opened.ok());
  Pool& pool = **opened;
  LineageId one = NewLineage(pool), many = NewLineage(pool);
  for (const char* c : {"off", "lz4", "zstd-3"}) {
    CAPTURE(c);
    const BlockOptions opt{*ParseCompression(c), ChecksumType::kXxh3_128};
    // Half-compressible, incompressible and all-zero blocks, 24 of each kind.
    auto random_block = [](uint64_t seed) {
      std::vector<uint8_t> b(kBs);
      std::mt19937_64 rng(seed);
      for (uint8_t& byte : b) byte = static_cast<uint8_t>(rng());
      return b;
    };
    std::vector<uint8_t> data;
    for (uint64_t b = 0; b < 72; ++b) {
      std::vector<uint8_t> block = b % 3 == 0   ? PatternBlock(kBs, 5, b)
                                   : b % 3 == 1 ? random_block(b)
                                                : kZero;
      data.insert(data.end(), block.begin(), block.end());
      REQUIRE(pool.Write(one, b, block, opt).ok());
    }
    REQUIRE(pool.WriteBlocks(many, 0, kBs, data, opt).ok());
    for (int round = 0; round < 2; ++round) {  // dirty, then committed
      std::vector<uint8_t> got(data.size());
      REQUIRE(pool.ReadBlocks(many, 0, kHeadView, kBs, got).ok());
      CHECK(got == data);
      REQUIRE(pool.Flush().ok());
    }
    for (uint64_t b = 0; b < 72; ++b) {
      auto a = pool.LookupCommitted(one, b, kHeadView);
      auto m = pool.LookupCommitted(many, b, kHeadView);
      REQUIRE((a.ok() && m.ok() && a->has_value() && m->has_value()));
      CHECK((*a)->psize == (*m)->psize);
      CHECK((*a)->compression == (*m)->compression);
      CHECK((*a)->checksum == (*m)->checksum);
    }
  }
  CHECK(pool.WriteBlocks(many, 0, kBs, std::vector<uint8_t>(kBs + 512), BlockOptions{})
            .code() == Code::kInvalidArgument);
  CHECK(pool.WriteBlocks(many, 0, 1000, std::vector<uint8_t>(2000), BlockOptions{}).code() ==
        Code::kInvalidArgument);
  CHECK(pool.WriteBlocks(999, 0, kBs, std::vector<uint8_t>(2 * kBs), BlockOptions{}).code() ==
        Code::kNotFound);
  CheckClean(pool);
}

TEST_CASE("pool: TryReadBlocks reads what is in memory and never waits for the device") {
  TempDir tmp;
  std::vector<uint8_t> want;
  LineageId l = 0;
  {
    auto pool = MakePool(tmp);
    l = NewLineage(*pool);
    for (uint64_t b = 0; b < 8; ++b) {
      auto one = PatternBlock(kBs, 5, b);
      REQUIRE(pool->Write(l, b, one, BlockOptions{}).ok());
      want.insert(want.end(), one.begin(), one.end());
    }
    REQUIRE(pool->Flush().ok());
    // Just written: metadata in the memtable, data in the page cache.
    std::vector<uint8_t> got(8 * kBs);
    Status s = pool->TryReadBlocks(l, 0, kHeadView, kBs, got);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    CHECK(got == want);
    REQUIRE(pool->Close().ok());
  }
  // Through a vdev that cannot read without waiting (FaultVdev keeps the
  // default ReadNoWait): committed data is WouldBlock, and so is dirty data
  // placed in the data file (D29); raw dirty blocks (D49) are in memory,
  // and holes need no device: both are read.
  auto base = OpenFileVdev((tmp / "pool/data"), FileVdevOptions{});
  REQUIRE(base.ok());
  FaultVdev slow(base->get());
  PoolOptions po;
  po.vdev = &slow;
  auto pool = Pool::Open(tmp / "pool", po);
  REQUIRE(pool.ok());
  std::vector<uint8_t> got(2 * kBs);
  CHECK((*pool)->TryReadBlocks(l, 0, kHeadView, kBs, got).code() == Code::kWouldBlock);
  REQUIRE((*pool)->ReadBlocks(l, 0, kHeadView, kBs, got).ok());
  CHECK(std::equal(got.begin(), got.end(), want.begin()));
  auto fresh = PatternBlock(kBs, 6, 0);
  REQUIRE((*pool)->Write(l, 20, fresh, BlockOptions{}).ok());
  REQUIRE((*pool)->Unmap(l, 22).ok());
  const BlockOptions uncompressed{*ParseCompression("off"), ChecksumType::kXxh3_128};
  REQUIRE((*pool)->Write(l, 24, fresh, uncompressed).ok());
  CHECK((*pool)->TryReadBlocks(l, 24, kHeadView, kBs, got).code() == Code::kWouldBlock);
  // Raw dirty + hole.
  std::fill(got.begin(), got.end(), 1);
  Status s = (*pool)->TryReadBlocks(l, 20, kHeadView, kBs, got);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(std::equal(fresh.begin(), fresh.end(), got.begin()));
  REQUIRE((*pool)->ReadBlocks(l, 20, kHeadView, kBs, got).ok());
  CHECK(std::equal(fresh.begin(), fresh.end(), got.begin()));
  CHECK(std::all_of(got.begin() + kBs, got.end(), [](uint8_t v) { return v == 0; }));
  std::fill(got.begin(), got.end(), 1);
  s = (*pool)->TryReadBlocks(l, 21, kHeadView, kBs, got);  // hole + dirty unmap
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(std::all_of(got.begin(), got.end(), [](uint8_t v) { return v == 0; }));
}

// A pool whose txgs commit only when asked, or by the dirty limit given
// (the timer is 10 minutes away).
std::unique_ptr<Pool> MakeQuietPool(const TempDir& tmp, uint64_t size, uint64_t dirty_limit,
                                    uint32_t ashift = 12, int prepare_threads = -1,
                                    std::optional<uint64_t> raw_dirty_bytes = std::nullopt) {
  PoolCreateOptions o;
  o.name = "tank";
  o.data_size = size;
  o.ashift = ashift;
  REQUIRE(Pool::Create(tmp / "pool", o).ok());
  PoolOptions quiet;
  quiet.txg_timeout_ms = 600000;
  quiet.dirty_limit_bytes = dirty_limit;
  quiet.prepare_threads = prepare_threads;
  quiet.raw_dirty_bytes = raw_dirty_bytes;
  auto pool = Pool::Open(tmp / "pool", quiet);
  REQUIRE(pool.ok());
  return std::move(pool).value();
}

const BlockOptions kRaw{*ParseCompression("off"), ChecksumType::kXxh3_128};

// D29: blocks go to the data file when written, into reserved space. A txg
// that rewrites the same blocks over and over must not hold the space of
// every copy: retired copies go back to the allocator as it goes. Reads see
// the newest copy; scrub counts reservations as free, not leaked.
// D47: the event loop's writes (TryWriteBlocks) never wait for readers, so
// they cannot release retired space themselves; the sync thread does it
// for them between commits. Before, a txg rewriting the same blocks from
// the loop ran out of room after a pool's worth of copies (and its commit
// wrote every copy out).
TEST_CASE("pool: rewriting blocks within one txg reuses their space") {
  TempDir tmp;
  auto opened = MakeQuietPool(tmp, 64 << 20, 1ull << 30);  // no commit unless asked
  Pool& pool = *opened;
  LineageId l = NewLineage(pool);
  const uint64_t synced = pool.stats().synced_txg;
  std::function<Status(ConstByteSpan)> write;
  int would_block = 0;
  SUBCASE("from an I/O thread (WriteBlocks)") {
    write = [&](ConstByteSpan data) { return pool.WriteBlocks(l, 0, kBs, data, kRaw); };
  }
  SUBCASE("from the event loop (TryWriteBlocks)") {
    write = [&](ConstByteSpan data) {
      Status s = pool.TryWriteBlocks(l, 0, kBs, data, kRaw);
      // The release is the sync thread's: give it a moment when the loop
      // outruns it, but not forever.
      for (int tries = 0; s.code() == Code::kWouldBlock && tries < 400; ++tries) {
        ++would_block;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        s = pool.TryWriteBlocks(l, 0, kBs, data, kRaw);
      }
      return s;
    };
  }
  // 8 blocks x 1000 rounds = 125 MiB written, twice the pool.
  std::vector<uint8_t> data(8 * kBs);
  for (uint64_t round = 0; round < 1000; ++round) {
    for (uint64_t b = 0; b < 8; ++b) {
      auto block = PatternBlock(kBs, round, b);
      std::copy(block.begin(), block.end(), data.begin() + static_cast<long>(b * kBs));
    }
    Status s = write(data);
    REQUIRE_MESSAGE(s.ok(), "round ", round, ": ", s.ToString());
    if (round % 97 == 0) {
      std::vector<uint8_t> got(data.size());
      REQUIRE(pool.ReadBlocks(l, 0, kHeadView, kBs, got).ok());
      CHECK(got == data);
    }
  }
  MESSAGE("loop writes that found no room at once: ", would_block);
  CHECK(pool.stats().synced_txg == synced);  // all of it in one txg
  CHECK(pool.stats().dirty == 8 * kBs);
  CheckClean(pool);  // reserved space is neither leaked nor allocated
  REQUIRE(pool.Flush().ok());
  CheckClean(pool);
  CHECK(pool.stats().allocated == 8 * kBs);
  REQUIRE(pool.Close().ok());
  opened.reset();
  auto again = Pool::Open(tmp / "pool");
  REQUIRE_MESSAGE(again.ok(), again.status().ToString());
  std::vector<uint8_t> got(data.size());
  REQUIRE((*again)->ReadBlocks(l, 0, kHeadView, kBs, got).ok());
  CHECK(got == data);
  CheckClean(**again);
}

// D47: a commit starts once the open txg holds half the dirty limit (the
// txg being written and the one filling stay within the limit together),
// not before: below it, only the timer or a flush commits.
TEST_CASE("pool: a txg commits at half the dirty limit") {
  TempDir tmp;
  constexpr uint64_t kLimit = 16 << 20;
  auto opened = MakeQuietPool(tmp, 128 << 20, kLimit);
  Pool& pool = *opened;
  LineageId l = NewLineage(pool);
  const uint64_t synced = pool.stats().synced_txg;
  std::vector<uint8_t> data(64 * kBs, 0x3c);  // 1 MiB
  uint64_t blkno = 0;
  auto write_mib = [&](uint64_t mib) {
    for (uint64_t i = 0; i < mib; ++i, blkno += 64) {
      REQUIRE(pool.WriteBlocks(l, blkno, kBs, data, kRaw).ok());
    }
  };
  write_mib(kLimit / 2 / (1 << 20));  // exactly half: not past it
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(pool.stats().synced_txg == synced);
  CHECK(pool.stats().dirty == kLimit / 2);
  write_mib(1);
  bool committed = false;
  for (int i = 0; i < 200 && !committed; ++i) {  // up to 10 s
    committed = pool.stats().synced_txg > synced;
    if (!committed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(committed);
  CheckClean(pool);
}

// A txg's metadata memory grows per block, whatever the bytes: 64K blocks
// start a commit even when the dirty limit is far away.
TEST_CASE("pool: a txg of many small blocks commits by their count") {
  TempDir tmp;
  // Neither the timer nor the bytes would commit.
  auto opened = MakeQuietPool(tmp, 128 << 20, 4ull << 30, /*ashift=*/9);
  Pool& pool = *opened;
  LineageId l = NewLineage(pool);
  const uint64_t synced = pool.stats().synced_txg;
  constexpr uint32_t kSmall = 512;
  constexpr uint64_t kPerWrite = 512;
  std::vector<uint8_t> data(kPerWrite * kSmall, 0x5a);
  uint64_t written = 0;
  while (written <= 64 * 1024) {
    REQUIRE(pool.WriteBlocks(l, written, kSmall, data, kRaw).ok());
    written += kPerWrite;
  }
  bool committed = false;
  for (int i = 0; i < 200 && !committed; ++i) {  // up to 10 s
    committed = pool.stats().synced_txg > synced;
    if (!committed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(committed);
  REQUIRE(pool.Flush().ok());
  std::vector<uint8_t> got(kSmall);
  REQUIRE(pool.Read(l, written - 1, kHeadView, got).ok());
  CHECK(got == std::vector<uint8_t>(kSmall, 0x5a));
  CheckClean(pool);
}

// D33: an event loop's write (TryWriteBlocks) compresses every block on
// the loop; WriteBlocks, from an I/O thread, shares them with helpers. The
// calling thread dawdles in each of its blocks, so helpers, if used, take
// some of the eight.
TEST_CASE("pool: TryWriteBlocks compresses on the calling thread alone") {
  TempDir tmp;
  auto opened = MakeQuietPool(tmp, 64 << 20, 1ull << 30, 12, /*prepare_threads=*/2);
  Pool& pool = *opened;
  LineageId l = NewLineage(pool);
  std::vector<uint8_t> data;
  for (uint64_t k = 0; k < 8; ++k) {
    auto one = PatternBlock(kBs, 7, k);
    data.insert(data.end(), one.begin(), one.end());
  }
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<int> on_caller{0}, elsewhere{0};
  SyncPoints::Set("pool:prepare-block", [&] {
    if (std::this_thread::get_id() == caller) {
      ++on_caller;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } else {
      ++elsewhere;
    }
  });
  REQUIRE(pool.WriteBlocks(l, 0, kBs, data, kRaw).ok());
  CHECK(on_caller + elsewhere == 8);
  CHECK(elsewhere > 0);  // the helpers are there and do take blocks
  on_caller = 0;
  elsewhere = 0;
  REQUIRE(pool.TryWriteBlocks(l, 8, kBs, data, kRaw).ok());
  SyncPoints::Clear();
  CHECK(on_caller == 8);
  CHECK(elsewhere == 0);
  std::vector<uint8_t> got(8 * kBs);
  REQUIRE(pool.ReadBlocks(l, 8, kHeadView, kBs, got).ok());
  CHECK(got == data);
}

// D35: blocks prepared while a write's data arrives (PrepareAhead) are what
// the write stores; it prepares only the rest. The staged blocks serve one
// write of the same bytes, block size, options and pool, and go with it.
TEST_CASE("pool: TryWriteBlocks takes the blocks PrepareAhead staged from the same data") {
  TempDir tmp;
  // Staging is for writes that compress their own blocks: with raw dirty
  // blocks off (or their area full, D49).
  auto opened = MakeQuietPool(tmp, 64 << 20, 1ull << 30, 12, -1, 0);
  Pool& pool = *opened;
  LineageId l = NewLineage(pool);
  const BlockOptions lz4{*ParseCompression("lz4"), ChecksumType::kXxh3_128};
  std::vector<uint8_t> data;
  for (uint64_t k = 0; k < 8; ++k) {
    auto one = PatternBlock(kBs, 11, k);
    data.insert(data.end(), one.begin(), one.end());
  }
  std::atomic<int> prepared{0};
  SyncPoints::Set("pool:prepare-block", [&] { ++prepared; });
  auto read8 = [&](uint64_t first) {
    std::vector<uint8_t> got(8 * kBs);
    REQUIRE(pool.ReadBlocks(l, first, kHeadView, kBs, got).ok());
    return got;
  };

  StagedWrite staged;
  // Arrival in pieces: whole blocks only, each prepared once, placed in
  // reserved space at once.
  pool.PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), kBs + 100), lz4);
  CHECK(staged.blocks() == 1);
  pool.PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), 5 * kBs), lz4);
  CHECK(staged.blocks() == 5);
  CHECK(prepared == 5);
  CHECK(pool.stats().dirty == 0);  // nothing in the txg, nothing readable
  CHECK(read8(0) == std::vector<uint8_t>(8 * kBs, 0));
  // The write stores what was staged: bytes changed after staging (which a
  // caller must never do) show that the staged blocks were not redone.
  std::vector<uint8_t> expect = data;
  data[0] ^= 0xff;
  data[6 * kBs] ^= 0xff;
  expect[6 * kBs] ^= 0xff;
  REQUIRE(pool.TryWriteBlocks(l, 0, kBs, data, lz4, &staged).ok());
  CHECK(prepared == 8);
  CHECK(staged.blocks() == 0);
  CHECK(read8(0) == expect);
  data[0] ^= 0xff;

  // Staged from other bytes (another buffer), other options or another
  // block size: not used, the write prepares everything itself.
  std::vector<uint8_t> copy = data;
  auto write_after = [&](ConstByteSpan staged_from, uint32_t staged_bs, const BlockOptions& o,
                         uint64_t first) {
    pool.PrepareAhead(&staged, staged_bs, 8 * kBs, staged_from, o);
    REQUIRE(staged.blocks() > 0);
    prepared = 0;
    REQUIRE(pool.TryWriteBlocks(l, first, kBs, data, lz4, &staged).ok());
    CHECK(prepared == 8);
    CHECK(staged.blocks() == 0);
    CHECK(read8(first) == data);
  };
  write_after(ConstByteSpan(copy.data(), 4 * kBs), kBs, lz4, 8);
  write_after(ConstByteSpan(data.data(), 4 * kBs), kBs, kRaw, 16);
  write_after(ConstByteSpan(data.data(), 4 * kBs), kBs / 2, lz4, 24);

  // A write that fails takes the staged blocks with it too.
  pool.PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), 2 * kBs), lz4);
  CHECK(pool.TryWriteBlocks(l, 0, kBs, ConstByteSpan(data.data(), kBs + 1), lz4, &staged).code() ==
        Code::kInvalidArgument);
  CHECK(staged.blocks() == 0);
  // Restarting at another address starts afresh; Reset forgets and gives
  // the space back.
  REQUIRE(pool.Flush().ok());
  const uint64_t reserved = pool.stats().reserved;
  pool.PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), 2 * kBs), lz4);
  const uint64_t two = pool.stats().reserved - reserved;
  CHECK(two > 0);
  pool.PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(copy.data(), 3 * kBs), lz4);
  CHECK(staged.blocks() == 3);
  CHECK(pool.stats().reserved - reserved == two / 2 * 3);
  staged.Reset();
  CHECK(staged.blocks() == 0);
  CHECK(pool.stats().reserved == reserved);
  // The write's own blocks are reserved until their commit, staged or not.
  pool.PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), 2 * kBs), lz4);
  REQUIRE(pool.TryWriteBlocks(l, 0, kBs, ConstByteSpan(data.data(), 4 * kBs), lz4, &staged).ok());
  CHECK(pool.stats().reserved - reserved == two * 2);
  REQUIRE(pool.Flush().ok());
  CHECK(pool.stats().reserved == reserved);
  SyncPoints::Clear();
  REQUIRE(pool.Flush().ok());
  auto report = pool.Scrub();
  REQUIRE(report.ok());
  CHECK(report->clean());
  CHECK(read8(0) == expect);

  // A stage may outlive its pool (a connection closing after the daemon's
  // pool): it then has nothing to give back.
  pool.PrepareAhead(&staged, kBs, 8 * kBs, ConstByteSpan(data.data(), 2 * kBs), lz4);
  CHECK(staged.blocks() == 2);
  opened.reset();
  staged.Reset();
  CHECK(staged.blocks() == 0);
}

// For event loops (D32): a write goes in whole at once, or WouldBlock with
// nothing written, wherever WriteBlocks would wait (here: the throttle, with
// a commit held at its metadata write and more than the dirty limit open).
TEST_CASE("pool: TryWriteBlocks writes at once or not at all, and never waits") {
  TempDir tmp;
  auto opened = MakeQuietPool(tmp, 64 << 20, 1 << 20);
  Pool& pool = *opened;
  LineageId l = NewLineage(pool);
  auto blocks = [](uint64_t n, uint64_t seed) {
    std::vector<uint8_t> out;
    for (uint64_t k = 0; k < n; ++k) {
      auto one = PatternBlock(kBs, seed, k);
      out.insert(out.end(), one.begin(), one.end());
    }
    return out;
  };
  auto read4 = [&] {
    std::vector<uint8_t> got(4 * kBs);
    REQUIRE(pool.ReadBlocks(l, 0, kHeadView, kBs, got).ok());
    return got;
  };
  const auto first = blocks(4, 1), second = blocks(4, 2);
  REQUIRE(pool.TryWriteBlocks(l, 0, kBs, first, kRaw).ok());
  CHECK(read4() == first);
  CHECK(pool.TryWriteBlocks(l, 0, kBs, ConstByteSpan(first.data(), 100), kRaw).code() ==
        Code::kInvalidArgument);

  std::mutex m;
  std::condition_variable cv;
  bool held = false, release = false;
  SyncPoints::Set("txg:before-metadata", [&] {
    std::unique_lock<std::mutex> lock(m);
    held = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
  });
  std::thread flusher([&] { CHECK(pool.Flush().ok()); });
  {
    std::unique_lock<std::mutex> lock(m);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return held; }));
  }
  // The throttle stops writers only once past the limit: 64 blocks reach
  // it, the 65th goes past.
  REQUIRE(pool.WriteBlocks(l, 100, kBs, blocks(65, 3), kRaw).ok());
  const uint64_t allocated = pool.stats().allocated;
  auto attempt = std::async(std::launch::async,
                            [&] { return pool.TryWriteBlocks(l, 0, kBs, second, kRaw); });
  const bool returned = attempt.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  CHECK_MESSAGE(returned, "TryWriteBlocks waited for the held commit");
  if (returned) {
    CHECK(attempt.get().code() == Code::kWouldBlock);
    CHECK(read4() == first);
    CHECK(pool.stats().allocated == allocated);
  }
  {
    std::lock_guard<std::mutex> lock(m);
    release = true;
  }
  cv.notify_all();
  flusher.join();
  if (!returned) attempt.wait();
  SyncPoints::Clear();

  REQUIRE(pool.Flush().ok());
  REQUIRE(pool.TryWriteBlocks(l, 0, kBs, second, kRaw).ok());
  CHECK(read4() == second);
  REQUIRE(pool.Flush().ok());
  CHECK(read4() == second);
  CheckClean(pool);
}

TEST_CASE("pool: overwrite without snapshot frees the old version") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  BlockOptions off{Compression{}, ChecksumType::kXxh3_128};
  REQUIRE(pool->Write(l, 0, PatternBlock(kBs, 3, 0), off).ok());
  REQUIRE(pool->Flush().ok());
  uint64_t used = pool->stats().allocated;
  CHECK(used == kBs);
  for (int i = 1; i < 5; ++i) {
    REQUIRE(pool->Write(l, 0, PatternBlock(kBs, 3, i), off).ok());
    REQUIRE(pool->Flush().ok());
  }
  CHECK(pool->stats().allocated == kBs);
  CHECK(ReadBlock(*pool, l, 0) == PatternBlock(kBs, 3, 4));
  CheckClean(*pool);
}

// What the block map of a closed pool holds for one lineage: the births of
// its versions of `blkno`, its births-index entries for it, and its dead-list
// entries for it as (death, birth).
struct StoredVersions {
  std::vector<uint64_t> births, indexed;
  std::vector<std::pair<uint64_t, uint64_t>> dead;
};

StoredVersions ReadStoredVersions(const TempDir& tmp, LineageId l, uint64_t blkno) {
  KvOptions o;
  o.column_families = ColumnFamilyNames();
  o.read_only = true;
  auto kv = KvStore::Open(tmp / "pool/meta", o);
  REQUIRE(kv.ok());
  StoredVersions v;
  auto scan = [&](int cf, auto add) {
    auto it = (*kv)->NewIterator(cf);
    for (it->Seek(LineagePrefix(l)); it->Valid() && it->key().substr(0, 8) == LineagePrefix(l);
         it->Next()) {
      add(it->key());
    }
    REQUIRE(it->status().ok());
  };
  scan(kCfBlocks, [&](std::string_view k) {
    if (DecodeBlockKey(k).blkno == blkno) v.births.push_back(DecodeBlockKey(k).birth);
  });
  scan(kCfBirths, [&](std::string_view k) {
    if (DecodeBirthKey(k).blkno == blkno) v.indexed.push_back(DecodeBirthKey(k).birth);
  });
  scan(kCfDeadList, [&](std::string_view k) {
    DeadKey d = DecodeDeadKey(k);
    if (d.blkno == blkno) v.dead.emplace_back(d.death, d.birth);
  });
  std::sort(v.births.begin(), v.births.end());
  std::sort(v.indexed.begin(), v.indexed.end());
  REQUIRE((*kv)->Close().ok());
  return v;
}

TEST_CASE("pool: new data over a version only the head sees takes over its key (D31)") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  auto write = [&](int gen) {
    REQUIRE(pool->Write(l, 0, PatternBlock(kBs, 21, gen), BlockOptions{}).ok());
    auto txg = pool->Flush();
    REQUIRE(txg.ok());
    return *txg;
  };
  auto reopen_and_look = [&] {
    REQUIRE(pool->Close().ok());
    pool.reset();
    StoredVersions v = ReadStoredVersions(tmp, l, 0);
    auto reopened = Pool::Open(tmp / "pool");
    REQUIRE_MESSAGE(reopened.ok(), reopened.status().ToString());
    pool = std::move(reopened).value();
    return v;
  };
  // No snapshot: one version, one index entry, born when first written.
  uint64_t first = write(1);
  for (int gen = 2; gen <= 4; ++gen) write(gen);
  StoredVersions v = reopen_and_look();
  CHECK(v.births == std::vector<uint64_t>{first});
  CHECK(v.indexed == std::vector<uint64_t>{first});
  CHECK(v.dead.empty());
  CHECK(ReadBlock(*pool, l, 0) == PatternBlock(kBs, 21, 4));
  CheckClean(*pool);

  // After a snapshot the first overwrite is a new version (the snapshot sees
  // the old one); the overwrites after it take over that new version's key.
  uint64_t snap = Snapshot(*pool, l);
  uint64_t second = write(5);
  for (int gen = 6; gen <= 8; ++gen) write(gen);
  v = reopen_and_look();
  CHECK(v.births == std::vector<uint64_t>{first, second});
  CHECK(v.indexed == std::vector<uint64_t>{first, second});
  CHECK(v.dead == std::vector<std::pair<uint64_t, uint64_t>>{{second, first}});
  CHECK(ReadBlock(*pool, l, 0) == PatternBlock(kBs, 21, 8));
  CHECK(ReadBlock(*pool, l, 0, snap) == PatternBlock(kBs, 21, 4));
  auto changed = pool->ChangedBlocks(l, snap, l, kHeadView, snap);
  REQUIRE(changed.ok());
  CHECK(*changed == std::vector<uint64_t>{0});
  CheckClean(*pool);

  // Rollback finds the taken-over version by its inherited birth.
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    REQUIRE(ctx.RollbackLineage(l, snap, 1000).ok());
  }).ok());
  REQUIRE(pool->Flush().ok());
  v = reopen_and_look();
  CHECK(v.births == std::vector<uint64_t>{first});
  CHECK(v.indexed == std::vector<uint64_t>{first});
  CHECK(v.dead.empty());
  CHECK(ReadBlock(*pool, l, 0) == PatternBlock(kBs, 21, 4));
  CheckClean(*pool);
}

TEST_CASE("pool: a snapshot view keeps its data; the head moves on") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  auto v1 = PatternBlock(kBs, 4, 1), v2 = PatternBlock(kBs, 4, 2);
  REQUIRE(pool->Write(l, 0, v1, BlockOptions{}).ok());
  REQUIRE(pool->Write(l, 1, v1, BlockOptions{}).ok());
  uint64_t t1 = Snapshot(*pool, l);
  REQUIRE(pool->Write(l, 0, v2, BlockOptions{}).ok());
  REQUIRE(pool->Unmap(l, 1).ok());
  CHECK(ReadBlock(*pool, l, 0) == v2);
  CHECK(ReadBlock(*pool, l, 1) == kZero);
  REQUIRE(pool->Flush().ok());
  CHECK(ReadBlock(*pool, l, 0, t1) == v1);
  CHECK(ReadBlock(*pool, l, 1, t1) == v1);
  CHECK(ReadBlock(*pool, l, 0) == v2);
  CHECK(ReadBlock(*pool, l, 1) == kZero);
  CheckClean(*pool);
}

TEST_CASE("pool: destroying a snapshot frees exactly what only it saw") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  BlockOptions off{Compression{}, ChecksumType::kXxh3_128};
  REQUIRE(pool->Write(l, 0, PatternBlock(kBs, 5, 1), off).ok());
  uint64_t t1 = Snapshot(*pool, l);
  REQUIRE(pool->Write(l, 0, PatternBlock(kBs, 5, 2), off).ok());
  uint64_t t2 = Snapshot(*pool, l);
  REQUIRE(pool->Write(l, 0, PatternBlock(kBs, 5, 3), off).ok());
  REQUIRE(pool->Flush().ok());
  CHECK(pool->stats().allocated == 3 * kBs);
  // Destroy t2 (neighbours t1 and the head): frees the version born in
  // (t1, t2] that died in (t2, head].
  FreeProgress progress;
  uint64_t released = 0;
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    SnapshotRelease rel = ctx.ReleaseSnapshot(l, t2);
    CHECK(rel.prev == t1);
    CHECK(rel.next == 0);
    CHECK(rel.unique == SpaceTally{kBs, kBs});
    released = ctx.txg();
    // Versions that die in this txg are not committed yet: not now.
    auto early = ctx.FreeDeadVersions(l, t1, t2, t2, released, 100);
    CHECK(early.status().code() == Code::kFailedPrecondition);
  }).ok());
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    progress = *ctx.FreeDeadVersions(l, t1, t2, t2, released, 100);
  }).ok());
  CHECK(progress.versions == 1);
  CHECK(progress.bytes == kBs);
  REQUIRE(pool->Flush().ok());
  CHECK(pool->stats().allocated == 2 * kBs);
  CHECK(ReadBlock(*pool, l, 0, t1) == PatternBlock(kBs, 5, 1));
  CHECK(ReadBlock(*pool, l, 0) == PatternBlock(kBs, 5, 3));
  CheckClean(*pool);
}

TEST_CASE("pool: rollback drops newer versions and revives older ones") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  auto v1 = PatternBlock(kBs, 6, 1);
  REQUIRE(pool->Write(l, 0, v1, BlockOptions{}).ok());
  REQUIRE(pool->Write(l, 1, v1, BlockOptions{}).ok());
  uint64_t t1 = Snapshot(*pool, l);
  REQUIRE(pool->Write(l, 0, PatternBlock(kBs, 6, 2), BlockOptions{}).ok());
  REQUIRE(pool->Unmap(l, 1).ok());
  REQUIRE(pool->Write(l, 2, PatternBlock(kBs, 6, 3), BlockOptions{}).ok());
  REQUIRE(pool->Flush().ok());
  FreeProgress progress;
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    progress = *ctx.RollbackLineage(l, t1, 1000);
  }).ok());
  CHECK(!progress.more);
  CHECK(ReadBlock(*pool, l, 0) == v1);
  CHECK(ReadBlock(*pool, l, 1) == v1);
  CHECK(ReadBlock(*pool, l, 2) == kZero);
  CheckClean(*pool);
}

TEST_CASE("pool: a clone falls through to its origin until it writes") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  auto v1 = PatternBlock(kBs, 7, 1);
  REQUIRE(pool->Write(l, 0, v1, BlockOptions{}).ok());
  REQUIRE(pool->Write(l, 1, v1, BlockOptions{}).ok());
  uint64_t t1 = Snapshot(*pool, l);
  REQUIRE(pool->Write(l, 0, PatternBlock(kBs, 7, 2), BlockOptions{}).ok());
  LineageId c = NewLineage(*pool, LineageInfo{false, l, t1, 0});
  CHECK(ReadBlock(*pool, c, 0) == v1);  // the snapshot's, not the head's
  REQUIRE(pool->Write(c, 1, PatternBlock(kBs, 7, 3), BlockOptions{}).ok());
  REQUIRE(pool->Unmap(c, 0).ok());
  REQUIRE(pool->Flush().ok());
  CHECK(ReadBlock(*pool, c, 0) == kZero);
  CHECK(ReadBlock(*pool, c, 1) == PatternBlock(kBs, 7, 3));
  CHECK(ReadBlock(*pool, l, 1) == v1);
  // The origin cannot go while the clone depends on it.
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    ctx.UpdateLineage(l, LineageInfo{true, 0, 0, t1});
  }).ok());
  auto busy = pool->RunSyncTask(
      [&](SyncContext& ctx) { return ctx.DestroyLineage(l, 10).status(); }, nullptr);
  CHECK(busy.status().code() == Code::kFailedPrecondition);
  CheckClean(*pool);
}

TEST_CASE("pool: destroying a lineage frees all of it, in bounded steps") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  for (int i = 0; i < 20; ++i) REQUIRE(pool->Write(l, i, PatternBlock(kBs, 8, i), BlockOptions{}).ok());
  Snapshot(*pool, l);
  for (int i = 0; i < 10; ++i) REQUIRE(pool->Write(l, i, PatternBlock(kBs, 8, 100 + i), BlockOptions{}).ok());
  REQUIRE(pool->Flush().ok());
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    ctx.UpdateLineage(l, LineageInfo{true, 0, 0, 0});
  }).ok());
  CHECK(pool->Write(l, 0, kZero, BlockOptions{}).code() == Code::kFailedPrecondition);
  int steps = 0;
  bool more = true;
  while (more && steps < 100) {
    REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
      more = ctx.DestroyLineage(l, 7)->more;
    }).ok());
    ++steps;
  }
  CHECK(steps == 5);  // 30 versions, 7 per step
  REQUIRE(pool->Flush().ok());
  CHECK(pool->stats().allocated == 0);
  CHECK(pool->GetLineage(l).status().code() == Code::kNotFound);
  CheckClean(*pool);
}

// A freeing step reads committed state; in the txg of a lineage-wide
// rewrite the lineage's new state is only in the batch, so the step must be
// refused, not run on the old state (a promote moved a free job's versions
// to a new lineage in the batch, a step there found nothing and ended the
// job: the versions leaked).
TEST_CASE("pool: a freeing step waits for a rewrite of its lineage to commit") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  for (int i = 0; i < 4; ++i) REQUIRE(pool->Write(l, i, PatternBlock(kBs, 12, i), BlockOptions{}).ok());
  uint64_t t1 = Snapshot(*pool, l);
  for (int i = 0; i < 4; ++i) {
    REQUIRE(pool->Write(l, i, PatternBlock(kBs, 12, 10 + i), BlockOptions{}).ok());
  }
  uint64_t t2 = Snapshot(*pool, l);
  LineageId c = NewLineage(*pool, LineageInfo{false, l, t2, 0});
  REQUIRE(pool->Write(c, 0, PatternBlock(kBs, 12, 20), BlockOptions{}).ok());
  // Snapshot t1 goes: the versions only it saw are the step's to free.
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) { ctx.ReleaseSnapshot(l, t1); }).ok());
  REQUIRE(pool->Flush().ok());
  auto refused = [&](SyncContext& ctx, LineageId lineage) {
    auto r = ctx.FreeDeadVersions(lineage, 0, t1, t1, t2, 100);
    return r.status().code() == Code::kFailedPrecondition;
  };
  SUBCASE("promote: all three lineages") {
    LineageId n = 0;
    REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
      CHECK(!refused(ctx, l));
      n = *ctx.PromoteLineage(c, t2);
      CHECK(refused(ctx, l));
      CHECK(refused(ctx, c));
      CHECK(refused(ctx, n));
    }).ok());
    REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
      CHECK(!refused(ctx, l));
      CHECK(!refused(ctx, n));
    }).ok());
  }
  SUBCASE("rollback") {
    REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
      REQUIRE(ctx.RollbackLineage(c, t2, 100).ok());
      CHECK(refused(ctx, c));
      CHECK(!refused(ctx, l));
    }).ok());
  }
  SUBCASE("truncate") {
    REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
      REQUIRE(ctx.TruncateLineage(l, 2, 4).ok());
      CHECK(refused(ctx, l));
    }).ok());
  }
  SUBCASE("marked destroying, then destroyed: not in the same txg") {
    REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
      ctx.UpdateLineage(c, LineageInfo{true, l, t2, 0});
      CHECK(ctx.DestroyLineage(c, 100).status().code() == Code::kFailedPrecondition);
    }).ok());
    REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
      auto r = ctx.DestroyLineage(c, 100);
      REQUIRE(r.ok());
      CHECK(r->versions == 1);
      // A second step on it in the same txg would free its versions twice.
      CHECK(ctx.DestroyLineage(c, 100).status().code() == Code::kFailedPrecondition);
    }).ok());
  }
  REQUIRE(pool->Flush().ok());
  CheckClean(*pool);
}

TEST_CASE("pool: writes past the free space fail cleanly and lose nothing") {
  TempDir tmp;
  auto pool = MakePool(tmp, 8 << 20);
  LineageId l = NewLineage(*pool);
  BlockOptions off{Compression{}, ChecksumType::kXxh3_128};
  uint64_t written = 0;
  Status s;
  for (uint64_t b = 0; b < 1000; ++b) {
    s = pool->Write(l, b, PatternBlock(kBs, 9, b), off);
    if (!s.ok()) break;
    ++written;
  }
  CHECK(s.code() == Code::kResourceExhausted);
  CHECK(written > 300);
  REQUIRE(pool->Flush().ok());
  for (uint64_t b = 0; b < written; b += 37) CHECK(ReadBlock(*pool, l, b) == PatternBlock(kBs, 9, b));
  // Unmaps need no space and give it back.
  for (uint64_t b = 0; b < written; ++b) REQUIRE(pool->Unmap(l, b).ok());
  REQUIRE(pool->Flush().ok());
  CHECK(pool->stats().allocated == 0);
  CHECK(pool->Write(l, 0, PatternBlock(kBs, 9, 0), off).ok());
  CheckClean(*pool);
}

TEST_CASE("pool: bad inputs") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  std::vector<uint8_t> odd(1000);
  CHECK(pool->Write(l, 0, odd, BlockOptions{}).code() == Code::kInvalidArgument);
  CHECK(pool->Write(999, 0, kZero, BlockOptions{}).code() == Code::kNotFound);
  std::vector<uint8_t> out(kBs);
  CHECK(pool->Read(999, 0, kHeadView, out).code() == Code::kNotFound);
  REQUIRE(pool->Write(l, 0, PatternBlock(kBs, 1, 1), BlockOptions{}).ok());
  std::vector<uint8_t> small(4096);
  CHECK(pool->Read(l, 0, kHeadView, small).code() == Code::kInvalidArgument);
  auto failing = pool->RunSyncTask([](SyncContext&) { return BH_ERROR(kAborted, "no"); },
                                   [](SyncContext&) { FAIL("sync ran after failed check"); });
  CHECK(failing.status().code() == Code::kAborted);
}

TEST_CASE("pool: create and open refuse what is not a pool") {
  TempDir tmp;
  PoolCreateOptions o;
  o.name = "tank";
  o.data_size = 64 << 20;
  CHECK(Pool::Open(tmp / "nothing").status().code() == Code::kNotFound);
  REQUIRE(Pool::Create(tmp / "p", o).ok());
  CHECK(Pool::Create(tmp / "p", o).code() == Code::kAlreadyExists);
  o.data_size = 1 << 20;
  CHECK(Pool::Create(tmp / "small", o).code() == Code::kInvalidArgument);
  o.data_size = 64 << 20;
  o.name = "1bad";
  CHECK(Pool::Create(tmp / "bad", o).code() == Code::kInvalidArgument);
  {
    auto first = Pool::Open(tmp / "p");
    REQUIRE(first.ok());
    auto second = Pool::Open(tmp / "p");
    CHECK(second.status().code() == Code::kUnavailable);
  }
  SUBCASE("corrupt label") {
    std::fstream f(tmp / "p/label", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('X');
    f.close();
    auto r = Pool::Open(tmp / "p");
    CHECK(r.status().code() == Code::kCorruption);
  }
  SUBCASE("missing metadata") {
    std::filesystem::remove_all(tmp / "p/meta");
    CHECK(Pool::Open(tmp / "p").status().code() == Code::kCorruption);
  }
  SUBCASE("data file of another pool") {
    o.name = "other";
    REQUIRE(Pool::Create(tmp / "q", o).ok());
    std::filesystem::copy_file(tmp / "q/data", tmp / "p/data",
                               std::filesystem::copy_options::overwrite_existing);
    CHECK(Pool::Open(tmp / "p").status().code() == Code::kCorruption);
  }
}

TEST_CASE("pool: concurrent flushes share commits") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        CHECK(pool->Write(l, t * 100 + i, PatternBlock(kBs, 10, t * 100 + i), BlockOptions{}).ok());
        CHECK(pool->Flush().ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(pool->stats().txgs_committed <= 100);
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 25; ++i) CHECK(ReadBlock(*pool, l, t * 100 + i) == PatternBlock(kBs, 10, t * 100 + i));
  }
  CheckClean(*pool);
}

}  // namespace
}  // namespace blockhaus::core

namespace blockhaus::core {
namespace {

// Regression (found by the volume model test): a head-only version freed on
// overwrite must make the version beneath it the head again, also after a
// destroyed snapshot freed a version from the middle of the chain.
TEST_CASE("pool: freeing mid-chain and head-only versions keeps one dead entry per version") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  BlockOptions off{Compression{}, ChecksumType::kXxh3_128};
  auto v1 = PatternBlock(kBs, 11, 1);
  REQUIRE(pool->Write(l, 0, v1, off).ok());
  uint64_t t1 = Snapshot(*pool, l);
  REQUIRE(pool->Unmap(l, 0).ok());
  uint64_t t2 = Snapshot(*pool, l);
  REQUIRE(pool->Write(l, 0, PatternBlock(kBs, 11, 2), off).ok());
  REQUIRE(pool->Flush().ok());
  // Destroy t2, the newest snapshot: free what only it saw, fence back to t1.
  uint64_t released = 0;
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    ctx.ReleaseSnapshot(l, t2);
    ctx.UpdateLineage(l, LineageInfo{false, 0, 0, t1});
    released = ctx.txg();
  }).ok());
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    auto r = ctx.FreeDeadVersions(l, t1, t2, t2, released, 100);
    REQUIRE(r.ok());
  }).ok());
  REQUIRE(pool->Unmap(l, 0).ok());
  REQUIRE(pool->Flush().ok());
  CHECK(ReadBlock(*pool, l, 0) == kZero);
  CHECK(ReadBlock(*pool, l, 0, t1) == v1);
  CheckClean(*pool);
  // Destroy t1 one entry per txg: v1 must be on the dead list once, or the
  // second step would free it a second time.
  uint64_t death_hi = pool->stats().open_txg;
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) { ctx.ReleaseSnapshot(l, t1); }).ok());
  bool more = true;
  for (int step = 0; more && step < 10; ++step) {
    REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
      auto r = ctx.FreeDeadVersions(l, 0, t1, t1, death_hi, 1);
      REQUIRE(r.ok());
      more = r->more;
    }).ok());
    REQUIRE(pool->Flush().ok());
    CheckClean(*pool);
  }
  REQUIRE(pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    ctx.UpdateLineage(l, LineageInfo{false, 0, 0, 0});
  }).ok());
  REQUIRE(pool->Flush().ok());
  CHECK(pool->stats().allocated == 0);
  CHECK(ReadBlock(*pool, l, 0) == kZero);
  CheckClean(*pool);
}

// Every file under dir (the lock file aside) with its size and bytes.
std::map<std::string, std::string> DirContents(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.path().filename() == "lock") continue;
    std::string rel = e.path().string().substr(dir.size());
    if (!e.is_regular_file()) {
      out[rel] = "dir";
      continue;
    }
    std::ifstream f(e.path(), std::ios::binary);
    out[rel] = std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  }
  return out;
}

TEST_CASE("pool: a read-only open reads everything and writes nothing") {
  TempDir tmp;
  auto pool = MakePool(tmp);
  LineageId l = NewLineage(*pool);
  auto a = PatternBlock(kBs, 1, 1);
  auto b = PatternBlock(kBs, 2, 1);
  REQUIRE(pool->Write(l, 1, a, BlockOptions{}).ok());
  REQUIRE(pool->Flush().ok());
  uint64_t snap = Snapshot(*pool, l);
  REQUIRE(pool->Write(l, 1, b, BlockOptions{}).ok());
  uint64_t synced = *pool->Flush();
  PoolStats before = pool->stats();

  SUBCASE("after a clean close") {
    REQUIRE(pool->Close().ok());
    pool.reset();
  }
  SUBCASE("from a crash image: the metadata WAL still holds every commit") {
    std::filesystem::copy(tmp / "pool", tmp / "image", std::filesystem::copy_options::recursive);
    REQUIRE(pool->Close().ok());
    pool.reset();
    std::filesystem::remove_all(tmp / "pool");
    std::filesystem::rename(tmp / "image", tmp / "pool");
  }
  auto files = DirContents(tmp / "pool");
  PoolOptions ro;
  ro.read_only = true;
  auto opened = Pool::Open(tmp / "pool", ro);
  REQUIRE(opened.ok());
  Pool& p = **opened;
  CHECK(ReadBlock(p, l, 1) == b);
  CHECK(ReadBlock(p, l, 1, snap) == a);
  CHECK(ReadBlock(p, l, 2) == kZero);
  CHECK(p.stats().allocated == before.allocated);
  CHECK(p.stats().synced_txg == synced);
  auto scrub = p.Scrub();
  REQUIRE(scrub.ok());
  CHECK(scrub->problems.empty());

  Status w = p.Write(l, 3, a, BlockOptions{});
  CHECK(w.code() == Code::kFailedPrecondition);
  CHECK(w.message().find("read-only") != std::string::npos);
  CHECK(p.Unmap(l, 1).code() == Code::kFailedPrecondition);
  CHECK(p.RunSyncTask(nullptr, [](SyncContext& ctx) { ctx.CreateLineage({}); }).status().code() ==
        Code::kFailedPrecondition);
  auto flushed = p.Flush();
  REQUIRE(flushed.ok());
  CHECK(*flushed == synced);
  CHECK(ReadBlock(p, l, 1) == b);  // the refused unmap changed nothing
  REQUIRE(p.Close().ok());
  opened->reset();
  CHECK(DirContents(tmp / "pool") == files);

  // A read-write open still works after it, and sees the same pool.
  auto rw = Pool::Open(tmp / "pool");
  REQUIRE(rw.ok());
  CHECK(ReadBlock(**rw, l, 1) == b);
  CHECK((*rw)->stats().synced_txg == synced);
  CheckClean(**rw);
}

}  // namespace
}  // namespace blockhaus::core
