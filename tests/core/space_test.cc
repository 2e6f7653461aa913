// Space accounting: the tallies of core/blockmap/accounting.cc, their
// on-disk form, and the refusal of pools older than the format.
#include "core/blockmap/space_format.h"

#include <doctest/doctest.h>

#include "core/base/endian.h"
#include "core/kv/kv_store.h"
#include "core/pool/internal/pool_impl.h"
#include "core/pool/pool.h"
#include "tests/core/pool_rig.h"
#include "tests/test_util.h"

namespace blockhaus::core {
namespace {

using testing::PatternBlock;
using testing::TempDir;

constexpr uint64_t kBs = 16384;
const BlockOptions kOff{Compression{}, ChecksumType::kXxh3_128};

std::string Hex(const std::string& s) {
  std::string out;
  for (unsigned char c : s) out += fmt::format("{:02x}", c);
  return out;
}

SpaceTally Blocks(uint64_t n) { return SpaceTally{n * kBs, n * kBs}; }

TEST_CASE("space format: golden bytes and round trip") {
  LineageSpace s;
  s.total = {0x1000, 0x2000};
  s.head = {1, 2};
  s.head_new = {3, 4};
  s.shadowed = {5, 6};
  s.freeing = {7, 8};
  s.reservation = 0x0102030405060708ull;
  std::string enc = EncodeLineageSpace(s);
  CHECK(enc.size() == kLineageSpaceSize);
  CHECK(Hex(enc) ==
        "0100000000000000"
        "00100000000000000020000000000000"
        "01000000000000000200000000000000"
        "03000000000000000400000000000000"
        "05000000000000000600000000000000"
        "07000000000000000800000000000000"
        "0807060504030201"
        "0000000000000000");
  LineageSpace back;
  REQUIRE(DecodeLineageSpace(enc, &back).ok());
  CHECK(back == s);
  CHECK(DecodeLineageSpace(enc.substr(1), &back).code() == Code::kCorruption);
  enc[0] = 9;
  CHECK(DecodeLineageSpace(enc, &back).code() == Code::kCorruption);

  SnapshotSpace snap{{9, 10}, {11, 12}, {13, 14}};
  std::string senc = EncodeSnapshotSpace(snap);
  CHECK(Hex(senc) ==
        "0100000000000000"
        "09000000000000000a00000000000000"
        "0b000000000000000c00000000000000"
        "0d000000000000000e00000000000000");
  CHECK(*DecodeSnapshotSpace(senc) == snap);
  CHECK(Hex(EncodeSpaceTally({0xabc, 0xdef})) == "bc0a000000000000ef0d000000000000");
  CHECK(*DecodeSpaceTally(EncodeSpaceTally({0xabc, 0xdef})) == SpaceTally{0xabc, 0xdef});

  CHECK(Hex(SpaceLineageKey(3)) == "0000000000000003");
  CHECK(Hex(SpaceSnapshotKey(3, 40)) == "0000000000000003010000000000000028");
  CHECK(Hex(SpaceDeadKey(3, 40, 50)) == "00000000000000030200000000000000280000000000000032");
  auto k = DecodeSpaceKey(SpaceDeadKey(3, 40, 50));
  REQUIRE(k.ok());
  CHECK((k->lineage == 3 && k->kind == kSpaceKeyDead && k->a == 40 && k->b == 50));
  CHECK(DecodeSpaceKey("abc").status().code() == Code::kCorruption);
}

// The shared rig, plus writes of uncompressed blocks and checked tallies.
class Rig : public testing::PoolRig {
 public:
  void Write(LineageId l, uint64_t b, uint64_t tag) {
    REQUIRE(pool->Write(l, b, PatternBlock(kBs, 3, tag), kOff).ok());
  }
  LineageSpace Space(LineageId l) {
    REQUIRE(pool->Flush().ok());
    auto s = pool->GetSpace(l);
    REQUIRE(s.ok());
    auto recount = pool->RecountSpace(l);
    REQUIRE(recount.ok());
    CHECK(*recount == *s);
    return *s;
  }
};

TEST_CASE("space: snapshots, overwrites, release, clone and rollback keep exact tallies") {
  Rig rig;
  LineageId l = rig.NewLineage();
  for (uint64_t b = 0; b < 3; ++b) rig.Write(l, b, b + 1);
  LineageSpace s = rig.Space(l);
  CHECK(s.total == Blocks(3));
  CHECK(s.head_new == Blocks(3));

  uint64_t t1 = rig.Snapshot(l);
  rig.Write(l, 0, 10);
  s = rig.Space(l);
  CHECK(s.snapshots.at(t1).referenced == Blocks(3));
  CHECK(s.snapshots.at(t1).written == Blocks(3));
  CHECK(s.total == Blocks(4));
  CHECK(s.head == Blocks(3));
  CHECK(s.head_new == Blocks(1));
  CHECK(s.Unique(t1) == Blocks(1));

  uint64_t t2 = rig.Snapshot(l);
  rig.Write(l, 0, 11);
  rig.Write(l, 1, 12);
  s = rig.Space(l);
  CHECK(s.total == Blocks(6));
  CHECK(s.head_new == Blocks(2));
  CHECK(s.Unique(t1) == Blocks(1));   // v0, born <= t1, died in (t1, t2]
  CHECK(s.Unique(t2) == Blocks(1));   // v0', born and died around t2
  CHECK(s.Snapshots() == Blocks(3));  // plus v1: seen by both
  CHECK(s.snapshots.at(t2).written == Blocks(1));

  // Destroy t1: its unique block waits for the free job; v1 becomes t2's
  // alone; t2's written now counts from the start.
  REQUIRE(rig.pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    SnapshotRelease r = ctx.ReleaseSnapshot(l, t1);
    CHECK(r.prev == 0);
    CHECK(r.next == t2);
    CHECK(r.unique == Blocks(1));
  }).ok());
  s = rig.Space(l);
  CHECK(s.freeing == Blocks(1));
  CHECK(rig.pool->pending_frees().bytes == Blocks(1));
  CHECK(s.Unique(t2) == Blocks(2));
  CHECK(s.snapshots.at(t2).written == Blocks(3));
  REQUIRE(rig.pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    REQUIRE(ctx.FreeDeadVersions(l, 0, t1, t1, t2, 100).ok());
  }).ok());
  s = rig.Space(l);
  CHECK(s.freeing == SpaceTally{});
  CHECK(s.total == Blocks(5));
  rig.Clean();

  // A clone sees t2 through its origin and owns only what it writes.
  LineageId c = rig.NewLineage(LineageInfo{false, l, t2, 0});
  CHECK(*rig.pool->ReferencedAt(c, kHeadView) == Blocks(3));
  rig.Write(c, 0, 20);
  REQUIRE(rig.pool->Unmap(c, 1).ok());
  LineageSpace cs = rig.Space(c);
  CHECK(cs.total == Blocks(1));
  CHECK(cs.shadowed == Blocks(2));
  CHECK(*rig.pool->ReferencedAt(c, kHeadView) == Blocks(2));
  uint64_t ct = rig.Snapshot(c);
  rig.Write(c, 1, 21);
  rig.Space(c);
  CHECK(*rig.pool->ReferencedAt(c, ct) == Blocks(2));
  CHECK(*rig.pool->ReferencedAt(c, kHeadView) == Blocks(3));
  rig.Clean();

  // Roll l back to t2: the two newer versions go, v0' and v1 are the head.
  REQUIRE(rig.pool->RunSyncTask(nullptr, [&](SyncContext& ctx) {
    REQUIRE(ctx.RollbackLineage(l, t2, UINT64_MAX).ok());
    ctx.UpdateLineage(l, LineageInfo{false, 0, 0, t2});
  }).ok());
  s = rig.Space(l);
  CHECK(s.total == Blocks(3));
  CHECK(s.head == Blocks(3));
  CHECK(s.head_new == SpaceTally{});
  CHECK(s.dead.empty());
  rig.Clean();

  // The tallies survive a reopen unchanged.
  LineageSpace before = rig.Space(l), cbefore = rig.Space(c);
  rig.Reopen();
  CHECK(rig.Space(l) == before);
  CHECK(rig.Space(c) == cbefore);
}

TEST_CASE("space: a pool of an older metadata format is refused with a clear error") {
  Rig rig;
  rig.pool.reset();
  {
    KvOptions o;
    o.column_families = ColumnFamilyNames();
    auto kv = KvStore::Open(rig.tmp / "pool/meta", o);
    REQUIRE(kv.ok());
    KvBatch b;
    std::string v;
    PutLE64(&v, 1);
    b.Put(kCfDefault, kMetaKeyFormat, v);
    REQUIRE((*kv)->Write(b, true).ok());
    REQUIRE((*kv)->Close().ok());
  }
  auto p = Pool::Open(rig.tmp / "pool");
  REQUIRE(!p.ok());
  CHECK(p.status().code() == Code::kFailedPrecondition);
  CHECK(p.status().message().find("format 1") != std::string::npos);
  CHECK(p.status().message().find("recreate") != std::string::npos);
}

}  // namespace
}  // namespace blockhaus::core
