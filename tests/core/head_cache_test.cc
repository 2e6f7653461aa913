// The commit's head cache (D45): what it remembers, when it forgets, and
// that commits using it leave the same block map as lookups would.
#include <doctest/doctest.h>

#include <vector>

#include "core/pool/internal/pool_impl.h"
#include "core/pool/pool.h"
#include "tests/core/pool_rig.h"
#include "tests/test_util.h"

namespace blockhaus::core {
namespace {

using testing::PatternBlock;

constexpr size_t kBs = 16384;
constexpr uint64_t kBlocks = 24;
const BlockOptions kLz4{Compression{CompressionAlgo::kLz4, 0}, ChecksumType::kXxh3_128};

HeadCache::Head HeadAt(uint64_t birth, uint64_t offset) {
  HeadCache::Head h;
  h.birth = birth;
  h.ptr.offset = offset;
  h.ptr.psize = 4096;
  h.ptr.lsize = 4096;
  return h;
}

TEST_CASE("head cache: staged heads count only once published") {
  HeadCache cache;
  cache.Stage({1, 7}, HeadAt(5, 4096));
  CHECK(cache.Find({1, 7}) == nullptr);
  cache.Publish();
  REQUIRE(cache.Find({1, 7}) != nullptr);
  CHECK(cache.Find({1, 7})->birth == 5);
  CHECK(cache.Find({2, 7}) == nullptr);

  // A txg that failed: what it staged is dropped, the published stay.
  cache.Stage({1, 7}, HeadAt(9, 8192));
  cache.DropStaged();
  cache.Publish();
  CHECK(cache.Find({1, 7})->ptr.offset == 4096);

  // The last word of a txg on a block wins; "unknown" erases.
  cache.Stage({1, 7}, HeadAt(9, 8192));
  cache.Stage({1, 7}, std::nullopt);
  cache.Stage({1, 8}, std::nullopt);
  cache.Stage({1, 8}, HeadAt(9, 12288));
  cache.Publish();
  CHECK(cache.Find({1, 7}) == nullptr);
  REQUIRE(cache.Find({1, 8}) != nullptr);
  CHECK(cache.Find({1, 8})->ptr.offset == 12288);

  cache.Clear();
  CHECK(cache.size() == 0);
  CHECK(cache.Find({1, 8}) == nullptr);
}

TEST_CASE("head cache: two generations bound it, the newest heads stay") {
  HeadCache cache(/*generation=*/4);
  for (uint64_t b = 0; b < 10; ++b) cache.Stage({1, b}, HeadAt(2, b * 4096));
  cache.Publish();
  CHECK(cache.size() <= 8);
  for (uint64_t b = 6; b < 10; ++b) {
    REQUIRE(cache.Find({1, b}) != nullptr);
    CHECK(cache.Find({1, b})->ptr.offset == b * 4096);
  }
  CHECK(cache.Find({1, 0}) == nullptr);
  // A head in the older generation replaced in the newer one: the newer
  // is found, and an erase leaves no older copy behind.
  cache.Stage({1, 6}, HeadAt(3, 999 * 4096));
  cache.Stage({1, 7}, std::nullopt);
  cache.Publish();
  CHECK(cache.Find({1, 6})->birth == 3);
  CHECK(cache.Find({1, 7}) == nullptr);
}

// The shared rig, with one lineage written and read whole.
class Rig : public testing::PoolRig {
 public:
  Rig() : lineage(NewLineage()) {}

  // Writes every block with `tag` and commits.
  void WriteAll(uint64_t tag) {
    for (uint64_t b = 0; b < kBlocks; ++b) {
      REQUIRE(pool->Write(lineage, b, PatternBlock(kBs, tag, b), kLz4).ok());
    }
    REQUIRE(pool->Flush().ok());
  }
  void CheckAll(uint64_t tag, uint64_t view = kHeadView) {
    std::vector<uint8_t> out(kBs);
    for (uint64_t b = 0; b < kBlocks; ++b) {
      REQUIRE(pool->Read(lineage, b, view, out).ok());
      CHECK_MESSAGE(out == PatternBlock(kBs, tag, b), "block ", b, " view ", view);
    }
  }
  uint64_t hits() { return pool->stats().head_cache_hits; }

  LineageId lineage;
};

TEST_CASE("head cache: overwrites of blocks the last txgs wrote skip the lookup") {
  Rig rig;
  rig.WriteAll(1);
  CHECK(rig.hits() == 0);  // first versions: nothing to find
  rig.WriteAll(2);
  CHECK(rig.hits() == kBlocks);
  rig.WriteAll(3);
  CHECK(rig.hits() == 2 * kBlocks);
  rig.CheckAll(3);
  // Only the newest versions hold space: the replaced ones were freed.
  rig.Clean();
  REQUIRE(rig.pool->Close().ok());
}

TEST_CASE("head cache: a snapshot makes commits look again, and keeps its versions") {
  Rig rig;
  rig.WriteAll(1);
  rig.WriteAll(2);
  uint64_t snap = rig.Snapshot(rig.lineage);
  uint64_t before = rig.hits();
  rig.WriteAll(3);  // over versions the snapshot sees: dead-listed, not replaced
  CHECK(rig.hits() == before);
  rig.WriteAll(4);  // over versions only the head saw
  CHECK(rig.hits() == before + kBlocks);
  rig.CheckAll(2, snap);
  rig.CheckAll(4);
  rig.Clean();
}

TEST_CASE("head cache: unmaps, rollback and reopen leave nothing stale") {
  Rig rig;
  rig.WriteAll(1);
  uint64_t snap = rig.Snapshot(rig.lineage);
  rig.WriteAll(2);
  rig.WriteAll(3);
  // Unmap half the blocks: their heads are not cached any more.
  for (uint64_t b = 0; b < kBlocks; b += 2) REQUIRE(rig.pool->Unmap(rig.lineage, b).ok());
  REQUIRE(rig.pool->Flush().ok());
  uint64_t before = rig.hits();
  rig.WriteAll(4);
  CHECK(rig.hits() == before + kBlocks / 2);  // the odd blocks only
  rig.CheckAll(4);
  rig.Clean();

  // A rollback rewrites the lineage in a sync task: the cache is dropped
  // and the next commit finds the revived versions in the block map.
  REQUIRE(rig.pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    CHECK(ctx.RollbackLineage(rig.lineage, snap, 1000).ok());
  }).ok());
  rig.CheckAll(1);
  before = rig.hits();
  rig.WriteAll(5);  // over the snapshot's versions
  CHECK(rig.hits() == before);
  rig.WriteAll(6);
  CHECK(rig.hits() == before + kBlocks);
  rig.CheckAll(6);
  rig.CheckAll(1, snap);
  rig.Clean();

  // A reopened pool starts with an empty cache.
  REQUIRE(rig.pool->Close().ok());
  rig.Reopen();
  CHECK(rig.hits() == 0);
  rig.WriteAll(7);
  CHECK(rig.hits() == 0);
  rig.WriteAll(8);
  CHECK(rig.hits() == kBlocks);
  rig.CheckAll(8);
  rig.CheckAll(1, snap);
  rig.Clean();
}

}  // namespace
}  // namespace blockhaus::core
