#include "volume/volume_manager.h"

#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "tests/test_util.h"
#include "volume/dataset_format.h"

namespace blockhaus::volume {
namespace {

using testing::PatternBlock;
using testing::TempDir;

struct Rig {
  TempDir tmp;
  std::unique_ptr<core::Pool> pool;
  std::unique_ptr<VolumeManager> vm;

  explicit Rig(bool coalescer = false) {
    core::PoolCreateOptions o;
    o.name = "tank";
    o.data_size = 128 << 20;
    REQUIRE(core::Pool::Create(tmp / "pool", o).ok());
    pool = std::move(core::Pool::Open(tmp / "pool")).value();
    Reopen(coalescer);
  }
  void Reopen(bool coalescer = false) {
    vm.reset();
    VolumeManagerOptions vo;
    vo.start_coalescer = coalescer;
    auto r = VolumeManager::Open(pool.get(), vo);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    vm = std::move(r).value();
  }
  std::unique_ptr<BlockDevice> Dev(const std::string& name) {
    auto d = vm->OpenDevice(name);
    REQUIRE_MESSAGE(d.ok(), d.status().ToString());
    return std::move(d).value();
  }
};

VolumeProps Props(uint64_t size, uint32_t bs = 16384) {
  VolumeProps p;
  p.volsize = size;
  p.volblocksize = bs;
  return p;
}

std::vector<uint8_t> ReadAll(BlockDevice& d, uint64_t off, size_t len) {
  std::vector<uint8_t> out(len);
  Status s = d.Read(off, out);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return out;
}

TEST_CASE("volume: create, write unaligned, read back, reopen") {
  Rig rig;
  REQUIRE(rig.vm->CreateVolume("vm1", Props(1 << 20)).ok());
  auto dev = rig.Dev("vm1");
  auto data = PatternBlock(50000, 1, 1);
  REQUIRE(dev->Write(1000, data).ok());  // spans 4 blocks, partial at both ends
  CHECK(ReadAll(*dev, 1000, data.size()) == data);
  CHECK(ReadAll(*dev, 0, 1000) == std::vector<uint8_t>(1000, 0));
  REQUIRE(dev->Flush().ok());
  rig.Reopen();
  auto again = rig.Dev("vm1");
  CHECK(ReadAll(*again, 1000, data.size()) == data);
  CHECK(rig.vm->Get("vm1")->props.volsize == (1u << 20));
}

TEST_CASE("volume: all-zero blocks become holes, any non-zero byte keeps a block") {
  Rig rig;
  REQUIRE(rig.vm->CreateVolume("z", Props(1 << 20, 4096)).ok());
  auto dev = rig.Dev("z");
  const std::vector<size_t> spots = {0, 1, 15, 16, 17, 31, 2048, 4095};
  std::vector<uint8_t> blocks((spots.size() + 1) * 4096, 0);
  for (size_t i = 0; i < spots.size(); ++i) blocks[(i + 1) * 4096 + spots[i]] = 0x5a;
  // Block 0 all zeros, block i+1 with one non-zero byte at spots[i].
  REQUIRE(dev->Write(0, blocks).ok());
  // A commit, for LookupCommitted (a device flush may only log the writes).
  REQUIRE(rig.pool->Flush().ok());
  const uint64_t lineage = rig.vm->Get("z")->lineage;
  auto hole = rig.pool->LookupCommitted(lineage, 0, core::kHeadView);
  REQUIRE(hole.ok());
  CHECK_FALSE(hole->has_value());
  for (size_t i = 0; i < spots.size(); ++i) {
    auto kept = rig.pool->LookupCommitted(lineage, i + 1, core::kHeadView);
    REQUIRE(kept.ok());
    CHECK_MESSAGE(kept->has_value(), "non-zero byte at ", spots[i]);
  }
  CHECK(ReadAll(*dev, 0, blocks.size()) == blocks);
}

TEST_CASE("volume: ranges beyond the volume and writes to snapshots are refused") {
  Rig rig;
  REQUIRE(rig.vm->CreateVolume("v", Props(1 << 20)).ok());
  auto dev = rig.Dev("v");
  std::vector<uint8_t> buf(4096);
  CHECK(dev->Read((1 << 20) - 100, buf).code() == Code::kInvalidArgument);
  CHECK(dev->Write(UINT64_MAX - 10, buf).code() == Code::kInvalidArgument);
  REQUIRE(rig.vm->Snapshot({"v@s"}).ok());
  auto snap = rig.Dev("v@s");
  CHECK(snap->read_only());
  CHECK(snap->Write(0, buf).code() == Code::kPermissionDenied);
}

// TryWrite (event loops, D32) takes whole data blocks only; a partial block
// (read first) or a zero block (unmapped) is WouldBlock with nothing written,
// and the caller's Write does it. Bad ranges and snapshots fail as in Write.
TEST_CASE("volume: TryWrite takes whole data blocks at once and leaves the rest to Write") {
  Rig rig;
  REQUIRE(rig.vm->CreateVolume("v", Props(1 << 20)).ok());
  auto dev = rig.Dev("v");
  auto a = PatternBlock(2 * 16384, 7, 1), b = PatternBlock(2 * 16384, 7, 2);
  REQUIRE(dev->TryWrite(16384, a, nullptr).ok());
  CHECK(ReadAll(*dev, 16384, a.size()) == a);
  CHECK(dev->TryWrite(16384 + 512, ConstByteSpan(b.data(), 16384), nullptr).code() == Code::kWouldBlock);
  CHECK(dev->TryWrite(16384, ConstByteSpan(b.data(), 16384 + 4096), nullptr).code() == Code::kWouldBlock);
  std::vector<uint8_t> zero_second = b;
  std::fill(zero_second.begin() + 16384, zero_second.end(), 0);
  CHECK(dev->TryWrite(16384, zero_second, nullptr).code() == Code::kWouldBlock);
  CHECK(ReadAll(*dev, 16384, a.size()) == a);
  CHECK(dev->TryWrite(1 << 20, a, nullptr).code() == Code::kInvalidArgument);
  REQUIRE(dev->Write(16384, zero_second).ok());
  CHECK(ReadAll(*dev, 16384, a.size()) == zero_second);
  REQUIRE(rig.vm->Snapshot({"v@s"}).ok());
  CHECK(rig.Dev("v@s")->TryWrite(0, a, nullptr).code() == Code::kPermissionDenied);
  REQUIRE(dev->Flush().ok());
  rig.Reopen();
  CHECK(ReadAll(*rig.Dev("v"), 16384, a.size()) == zero_second);
}

TEST_CASE("volume: snapshots keep their view; rollback returns to it") {
  Rig rig;
  REQUIRE(rig.vm->CreateVolume("db", Props(4 << 20)).ok());
  auto dev = rig.Dev("db");
  auto a = PatternBlock(65536, 2, 1), b = PatternBlock(65536, 2, 2);
  REQUIRE(dev->Write(0, a).ok());
  REQUIRE(rig.vm->Snapshot({"db@one"}).ok());
  REQUIRE(dev->Write(0, b).ok());
  REQUIRE(dev->Unmap(65536, 65536).ok());
  REQUIRE(dev->Write(1 << 20, a).ok());
  CHECK(ReadAll(*rig.Dev("db@one"), 0, a.size()) == a);
  CHECK(ReadAll(*dev, 0, b.size()) == b);
  REQUIRE(rig.vm->Rollback("db@one", false).ok());
  CHECK(ReadAll(*dev, 0, a.size()) == a);
  CHECK(ReadAll(*dev, 1 << 20, a.size()) == std::vector<uint8_t>(a.size(), 0));
  auto scrub = rig.pool->Scrub();
  REQUIRE(scrub.ok());
  CHECK(scrub->clean());
}

TEST_CASE("volume: rollback past newer snapshots needs -r") {
  Rig rig;
  REQUIRE(rig.vm->CreateVolume("v", Props(1 << 20)).ok());
  REQUIRE(rig.vm->Snapshot({"v@1"}).ok());
  REQUIRE(rig.vm->Snapshot({"v@2"}).ok());
  Status s = rig.vm->Rollback("v@1", false);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("use -r") != std::string::npos);
  REQUIRE(rig.vm->Rollback("v@1", true).ok());
  CHECK(rig.vm->Get("v@2").status().code() == Code::kNotFound);
}

TEST_CASE("volume: snapshots of several volumes share one txg") {
  Rig rig;
  REQUIRE(rig.vm->CreateVolume("a", Props(1 << 20)).ok());
  REQUIRE(rig.vm->CreateVolume("b", Props(1 << 20)).ok());
  REQUIRE(rig.vm->Snapshot({"a@x", "b@x"}).ok());
  CHECK(rig.vm->Get("a@x")->txg == rig.vm->Get("b@x")->txg);
  // All or nothing: one bad name refuses the whole call.
  CHECK(rig.vm->Snapshot({"a@y", "nosuch@y"}).code() == Code::kNotFound);
  CHECK(rig.vm->Get("a@y").status().code() == Code::kNotFound);
}

TEST_CASE("volume: clones share their origin's blocks; destroy rules as in zfs") {
  Rig rig;
  REQUIRE(rig.vm->CreateVolume("base", Props(1 << 20)).ok());
  auto dev = rig.Dev("base");
  auto a = PatternBlock(16384, 3, 1);
  REQUIRE(dev->Write(0, a).ok());
  REQUIRE(rig.vm->Snapshot({"base@gold"}).ok());
  REQUIRE(rig.vm->Clone("base@gold", "test", {}).ok());
  auto clone = rig.Dev("test");
  CHECK(ReadAll(*clone, 0, a.size()) == a);
  REQUIRE(clone->Write(0, PatternBlock(16384, 3, 2)).ok());
  CHECK(ReadAll(*dev, 0, a.size()) == a);
  CHECK(rig.vm->Get("test")->origin_id == rig.vm->Get("base@gold")->id);

  Status s = rig.vm->Destroy("base", false, false);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("use -r") != std::string::npos);
  s = rig.vm->Destroy("base", true, false);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("use -R") != std::string::npos);
  CHECK(rig.vm->Destroy("base@gold", false, false).code() == Code::kFailedPrecondition);
  REQUIRE(rig.vm->Destroy("base", true, true).ok());
  CHECK(rig.vm->List().empty());
  CHECK(rig.vm->coalescer().jobs_pending == 2);
  REQUIRE(rig.vm->DrainCoalescer(100).ok());
  CHECK(rig.vm->coalescer().jobs_pending == 0);
  REQUIRE(rig.pool->Flush().ok());
  CHECK(rig.pool->stats().allocated == 0);
  auto scrub = rig.pool->Scrub();
  REQUIRE(scrub.ok());
  CHECK(scrub->clean());
}

TEST_CASE("volume: destroying a snapshot frees exactly its unique blocks, in the background") {
  Rig rig;
  REQUIRE(rig.vm->CreateVolume("v", Props(8 << 20)).ok());
  auto dev = rig.Dev("v");
  auto fill = [&](uint64_t tag) {
    for (uint64_t i = 0; i < 64; ++i) {
      REQUIRE(dev->Write(i * 16384, PatternBlock(16384, 4, tag * 1000 + i)).ok());
    }
  };
  fill(1);
  REQUIRE(rig.vm->Snapshot({"v@1"}).ok());
  fill(2);
  REQUIRE(rig.vm->Snapshot({"v@2"}).ok());
  fill(3);
  REQUIRE(rig.pool->Flush().ok());
  uint64_t before = rig.pool->stats().allocated;
  REQUIRE(rig.vm->Destroy("v@2", false, false).ok());  // returns at once
  CHECK(rig.vm->coalescer().jobs_pending == 1);
  REQUIRE(rig.vm->DrainCoalescer(100).ok());
  REQUIRE(rig.pool->Flush().ok());
  uint64_t after = rig.pool->stats().allocated;
  CHECK(after < before);
  CHECK(before - after == before / 3);  // one of three equal generations
  auto one = rig.Dev("v@1");
  for (uint64_t i = 0; i < 64; i += 9) {
    CHECK(ReadAll(*one, i * 16384, 16384) == PatternBlock(16384, 4, 1000 + i));
    CHECK(ReadAll(*dev, i * 16384, 16384) == PatternBlock(16384, 4, 3000 + i));
  }
  auto scrub = rig.pool->Scrub();
  REQUIRE(scrub.ok());
  CHECK(scrub->clean());
}

TEST_CASE("volume: the worker resumes queued frees after a restart") {
  Rig rig;
  REQUIRE(rig.vm->CreateVolume("v", Props(8 << 20)).ok());
  auto dev = rig.Dev("v");
  for (uint64_t i = 0; i < 100; ++i) REQUIRE(dev->Write(i * 16384, PatternBlock(16384, 5, i)).ok());
  dev.reset();
  REQUIRE(rig.vm->Destroy("v", false, false).ok());
  VolumeManagerOptions small;
  small.start_coalescer = false;
  small.coalesce_batch = 30;
  rig.vm.reset();
  rig.vm = std::move(VolumeManager::Open(rig.pool.get(), small)).value();
  CHECK(*rig.vm->DrainCoalescer(1) == 1);  // one bounded step, then "crash"
  rig.vm.reset();
  rig.vm = std::move(VolumeManager::Open(rig.pool.get(), small)).value();
  CHECK(rig.vm->coalescer().jobs_pending == 1);
  CHECK(*rig.vm->DrainCoalescer(100) == 3);  // 70 versions left, 30 per step
  REQUIRE(rig.pool->Flush().ok());
  CHECK(rig.pool->stats().allocated == 0);
}

TEST_CASE("volume: background worker frees without being asked") {
  Rig rig(/*coalescer=*/true);
  REQUIRE(rig.vm->CreateVolume("v", Props(4 << 20)).ok());
  auto dev = rig.Dev("v");
  for (uint64_t i = 0; i < 50; ++i) REQUIRE(dev->Write(i * 16384, PatternBlock(16384, 6, i)).ok());
  dev.reset();
  REQUIRE(rig.vm->Destroy("v", false, false).ok());
  for (int i = 0; i < 500 && rig.vm->coalescer().jobs_pending > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(rig.vm->coalescer().jobs_pending == 0);
}

TEST_CASE("volume: names and properties are validated") {
  Rig rig;
  CHECK(rig.vm->CreateVolume("bad name", Props(1 << 20)).code() == Code::kInvalidArgument);
  CHECK(rig.vm->CreateVolume("a@b", Props(1 << 20)).code() == Code::kInvalidArgument);
  CHECK(rig.vm->CreateVolume("v", Props(1000)).code() == Code::kInvalidArgument);
  REQUIRE(rig.vm->CreateVolume("v", Props(1 << 20)).ok());
  CHECK(rig.vm->CreateVolume("v", Props(1 << 20)).code() == Code::kAlreadyExists);
  CHECK(rig.vm->Snapshot({"v"}).code() == Code::kInvalidArgument);
  CHECK(rig.vm->Snapshot({"v@a@b"}).code() == Code::kInvalidArgument);
  CHECK(rig.vm->SetProperty("v", "compression", "zstd-3").ok());
  CHECK(rig.vm->Get("v")->props.compression.level == 3);
  CHECK(rig.vm->SetProperty("v", "compression", "gzip").code() == Code::kInvalidArgument);
  CHECK(rig.vm->SetProperty("v", "volblocksize", "4K").code() == Code::kInvalidArgument);
  CHECK(rig.vm->SetProperty("v", "used", "1").code() == Code::kInvalidArgument);
  CHECK(rig.vm->SetProperty("v", "frobs", "1").code() == Code::kInvalidArgument);
  CHECK(rig.vm->SetProperty("v", "volsize", "512K").ok());  // nothing written beyond
  CHECK(rig.vm->SetProperty("v", "volsize", "2M").ok());
  CHECK(rig.vm->SetProperty("v", "org.example:owner", "ops").ok());
  CHECK(rig.vm->Get("v")->props.user.at("org.example:owner") == "ops");
  VolumeProps p;
  CHECK(ApplyProperty(&p, "volblocksize", "3K", true).code() == Code::kInvalidArgument);
  CHECK(ApplyProperty(&p, "volblocksize", "256K", true).code() == Code::kInvalidArgument);
  CHECK(ApplyProperty(&p, "volblocksize", "4K", true).ok());
}

TEST_CASE("dataset format: round trip and corrupt records") {
  Dataset ds;
  ds.id = 7;
  ds.type = DatasetType::kSnapshot;
  ds.name = "vm@s";
  ds.lineage = 3;
  ds.txg = 99;
  ds.props = Props(1 << 30);
  ds.props.user["a:b"] = "c";
  auto dec = DecodeDataset(EncodeDataset(ds));
  REQUIRE(dec.ok());
  CHECK(*dec == ds);
  CHECK(DecodeDataset("not json").status().code() == Code::kCorruption);
  CHECK(DecodeDataset("{\"v\":1}").status().code() == Code::kCorruption);
  CHECK(DecodeDataset("{\"v\":2}").status().code() == Code::kNotSupported);
  FreeJob job{FreeJob::Kind::kDeadInterval, 1, 2, 3, 4, 5, 6, std::string("\x00\x01\xff", 3), true};
  CHECK(*DecodeJob(EncodeJob(job)) == job);
  CHECK(DecodeJob("[]").status().code() == Code::kCorruption);
}

}  // namespace
}  // namespace blockhaus::volume
