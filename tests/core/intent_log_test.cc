// The intent log (core/txg/intent_log.cc, D46): FlushWrites makes a few
// writes durable by a record instead of a commit, a power cut keeps them,
// Open replays them exactly once, and a bad record stops the open without
// changing the pool.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <thread>

#include "core/base/sync_point.h"
#include "core/io/fault_vdev.h"
#include "core/kv/kv_store.h"
#include "core/pool/internal/pool_impl.h"
#include "core/txg/intent_format.h"
#include "tests/test_util.h"

namespace blockhaus::core {
namespace {

using testing::PatternBlock;
using testing::TempDir;

constexpr uint32_t kBs = 16384;
const BlockOptions kLz4{Compression{CompressionAlgo::kLz4, 0}, ChecksumType::kXxh3_128};

std::vector<uint8_t> Zeros() { return std::vector<uint8_t>(kBs, 0); }

// A pool whose blocks 0..3 hold committed data (tags 1..4); Open() goes
// over fault seams with a long txg timeout, so nothing commits unasked.
struct Rig {
  TempDir tmp;
  std::unique_ptr<Vdev> base;
  LineageId lineage = 0;
  std::unique_ptr<FaultVdev> vdev;
  std::unique_ptr<KvFaultInjector> faults;
  std::unique_ptr<Pool> pool;
  std::promise<void> go_;
  std::future<Status> stalled_;

  Rig() {
    PoolCreateOptions o;
    o.name = "zil";
    o.data_size = 32 << 20;
    REQUIRE(Pool::Create(tmp / "pool", o).ok());
    auto p = Pool::Open(tmp / "pool");
    REQUIRE(p.ok());
    REQUIRE((*p)->RunSyncTask(nullptr, [&](SyncContext& c) { lineage = c.CreateLineage({}); })
                .ok());
    for (uint64_t b = 0; b < 4; ++b) {
      REQUIRE((*p)->Write(lineage, b, PatternBlock(kBs, 1, b + 1), kLz4).ok());
    }
    REQUIRE((*p)->Close().ok());
    auto v = OpenFileVdev(tmp / "pool/data", FileVdevOptions{});
    REQUIRE(v.ok());
    base = std::move(v).value();
  }
  Status Open(PoolOptions po = {}) {
    pool.reset();
    vdev = std::make_unique<FaultVdev>(base.get());
    faults = std::make_unique<KvFaultInjector>(7);
    po.vdev = vdev.get();
    po.kv_fault_injector = faults.get();
    if (po.txg_timeout_ms == 5000) po.txg_timeout_ms = 600'000;
    auto p = Pool::Open(tmp / "pool", po);
    if (!p.ok()) return p.status();
    pool = std::move(p).value();
    return Status::Ok();
  }
  // Power goes: whatever was not synced is lost, and the pool with it.
  void PowerCut() {
    vdev->PowerCut(PowerCutMode::kDrop);
    faults->PowerCut(false);
    pool->Close().IgnoreError();
    pool.reset();
  }
  std::vector<uint8_t> Read(uint64_t b) {
    std::vector<uint8_t> out(kBs);
    REQUIRE(pool->Read(lineage, b, kHeadView, out).ok());
    return out;
  }
  // The metadata store as a second, read-only instance sees it (what is
  // synced), beside the pool's. Opening one can lose a race with the live
  // instance deleting a file it has just listed (an SST file a compaction
  // replaced: "Can't access 000043.sst"); the next try sees the new set.
  std::unique_ptr<KvStore> Peek() {
    KvOptions o;
    o.column_families = ColumnFamilyNames();
    o.read_only = true;
    for (int tries = 1;; ++tries) {
      auto kv = KvStore::Open(tmp / "pool/meta", o);
      if (kv.ok()) return std::move(kv).value();
      REQUIRE_MESSAGE(tries < 20, kv.status().ToString());
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // Puts one key of the default family while the pool is closed.
  void PutMetadata(std::string_view key, const std::string& value) {
    KvOptions o;
    o.column_families = ColumnFamilyNames();
    auto kv = KvStore::Open(tmp / "pool/meta", o);
    REQUIRE(kv.ok());
    KvBatch b;
    b.Put(kCfDefault, key, value);
    REQUIRE((*kv)->Write(b, true).ok());
    REQUIRE((*kv)->Close().ok());
  }
  // Commits the open txg on another thread and stops that commit before
  // its metadata batch; CutPowerInCommit() then cuts the power
  // and lets it go on (to fail), so the txg never lands.
  void StallCommit() {
    auto reached = std::make_shared<std::promise<void>>();
    std::future<void> at_batch = reached->get_future();
    std::shared_future<void> go = go_.get_future().share();
    auto once = std::make_shared<std::atomic<bool>>(false);
    SyncPoints::Set("txg:before-metadata", [reached, go, once] {
      if (once->exchange(true)) return;
      reached->set_value();
      go.wait();
    });
    stalled_ = std::async(std::launch::async, [this] { return pool->Flush().status(); });
    at_batch.wait();
  }
  void CutPowerInCommit() {
    vdev->PowerCut(PowerCutMode::kDrop);
    faults->PowerCut(false);
    go_.set_value();
    stalled_.wait();
    SyncPoints::Clear();
    pool->Close().IgnoreError();
    pool.reset();
  }
  size_t Records() {
    auto kv = Peek();
    auto it = kv->NewIterator(kCfDefault);
    size_t n = 0;
    for (it->Seek(kIntentKeyPrefix); it->Valid() && it->key().starts_with(kIntentKeyPrefix);
         it->Next()) {
      ++n;
    }
    return n;
  }
  void Clean() {
    auto r = pool->Scrub();
    REQUIRE(r.ok());
    for (const auto& p : r->problems) MESSAGE(p);
    CHECK(r->clean());
  }
};

TEST_CASE("intent log: a flush of a few writes logs them, and a power cut keeps them") {
  Rig rig;
  REQUIRE(rig.Open().ok());
  REQUIRE(rig.pool->Write(rig.lineage, 0, PatternBlock(kBs, 1, 10), kLz4).ok());  // compressed
  std::vector<uint8_t> noise = PatternBlock(kBs, 2, 11);
  for (size_t i = 0; i < noise.size(); i += 2) noise[i] ^= static_cast<uint8_t>(i * 131);
  REQUIRE(rig.pool->Write(rig.lineage, 5, noise, kLz4).ok());  // does not compress
  REQUIRE(rig.pool->Unmap(rig.lineage, 1).ok());               // a hole over committed data
  REQUIRE(rig.pool->Write(rig.lineage, 2, PatternBlock(kBs, 1, 12), {}).ok());
  REQUIRE(rig.pool->Write(rig.lineage, 2, PatternBlock(kBs, 1, 13), {}).ok());  // rewritten
  // Uncompressed until a commit (D49): the record compresses them itself.
  CHECK(rig.pool->stats().raw_dirty_bytes >= 3 * kBs);
  REQUIRE(rig.pool->FlushWrites().ok());
  PoolStats s = rig.pool->stats();
  CHECK(s.intent_records == 1);
  CHECK(s.txgs_committed == 0);
  CHECK(rig.Records() == 1);
  // A second flush with nothing new writes nothing.
  REQUIRE(rig.pool->FlushWrites().ok());
  CHECK(rig.pool->stats().intent_records == 1);
  // Written after the flush: may be lost.
  REQUIRE(rig.pool->Write(rig.lineage, 3, PatternBlock(kBs, 1, 14), kLz4).ok());
  rig.PowerCut();

  REQUIRE(rig.Open().ok());
  CHECK(rig.pool->stats().intent_replayed_blocks == 4);
  CHECK(rig.Read(0) == PatternBlock(kBs, 1, 10));
  CHECK(rig.Read(1) == Zeros());
  CHECK(rig.Read(2) == PatternBlock(kBs, 1, 13));
  CHECK(rig.Read(3) == PatternBlock(kBs, 1, 4));
  CHECK(rig.Read(5) == noise);
  CHECK(rig.Records() == 0);  // the replay's commit deleted the record
  rig.Clean();
  // Replayed once: a later power cut finds nothing to replay and the
  // committed data.
  rig.PowerCut();
  REQUIRE(rig.Open().ok());
  CHECK(rig.pool->stats().intent_replayed_blocks == 0);
  CHECK(rig.Read(2) == PatternBlock(kBs, 1, 13));
  rig.Clean();
}

TEST_CASE("intent log: a commit deletes the records of its txg") {
  Rig rig;
  REQUIRE(rig.Open().ok());
  for (int round = 0; round < 3; ++round) {
    REQUIRE(rig.pool->Write(rig.lineage, round, PatternBlock(kBs, 3, round), kLz4).ok());
    REQUIRE(rig.pool->FlushWrites().ok());
  }
  CHECK(rig.Records() == 3);
  REQUIRE(rig.pool->Flush().ok());
  CHECK(rig.Records() == 0);
  CHECK(rig.pool->stats().txgs_committed == 1);
  REQUIRE(rig.pool->Close().ok());
  REQUIRE(rig.Open().ok());
  CHECK(rig.pool->stats().intent_replayed_blocks == 0);
  for (int round = 0; round < 3; ++round) CHECK(rig.Read(round) == PatternBlock(kBs, 3, round));
}

TEST_CASE("intent log: past its limit, or when off, a flush commits") {
  Rig rig;
  const BlockOptions plain{Compression{CompressionAlgo::kOff, 0}, ChecksumType::kXxh3_128};
  const uint64_t three = 3 * (kBs + kIntentEntryOverhead);
  for (uint64_t limit : {three, uint64_t{0}}) {
    CAPTURE(limit);
    PoolOptions po;
    po.intent_log_max_bytes = limit;
    REQUIRE(rig.Open(po).ok());
    // Three blocks fit the limit exactly: logged (when the log is on).
    for (uint64_t b = 0; b < 3; ++b) {
      REQUIRE(rig.pool->Write(rig.lineage, b, PatternBlock(kBs, 4, b), plain).ok());
    }
    REQUIRE(rig.pool->FlushWrites().ok());
    CHECK(rig.pool->stats().intent_records == (limit > 0 ? 1 : 0));
    CHECK(rig.pool->stats().txgs_committed == (limit > 0 ? 0 : 1));
    // Four are past it: committed.
    for (uint64_t b = 0; b < 4; ++b) {
      REQUIRE(rig.pool->Write(rig.lineage, b, PatternBlock(kBs, 5, b), plain).ok());
    }
    REQUIRE(rig.pool->FlushWrites().ok());
    CHECK(rig.pool->stats().intent_records == (limit > 0 ? 1 : 0));
    CHECK(rig.pool->stats().txgs_committed == (limit > 0 ? 1 : 2));
    rig.PowerCut();
    REQUIRE(rig.Open().ok());
    for (uint64_t b = 0; b < 4; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 5, b));
  }
}

TEST_CASE("intent log: records past 16 MiB start a commit that deletes them") {
  Rig rig;
  REQUIRE(rig.Open().ok());
  // 40 flushes of 32 blocks: ~20 MiB of records (the data does not compress).
  std::vector<uint8_t> block(kBs);
  uint64_t x = 88172645463325252ull;
  for (int round = 0; round < 40; ++round) {
    for (uint64_t b = 0; b < 32; ++b) {
      for (size_t i = 0; i < block.size(); i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        std::memcpy(block.data() + i, &x, 8);
      }
      REQUIRE(rig.pool->Write(rig.lineage, b, block, kLz4).ok());
    }
    REQUIRE(rig.pool->FlushWrites().ok());
  }
  CHECK(rig.pool->stats().intent_records == 40);
  for (int i = 0; i < 500 && rig.pool->stats().txgs_committed == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(rig.pool->stats().txgs_committed >= 1);
  REQUIRE(rig.pool->Flush().ok());
  CHECK(rig.Records() == 0);
}

TEST_CASE("intent log: records of a txg caught syncing replay once, with the open txg's") {
  Rig rig;
  REQUIRE(rig.Open().ok());
  // Txg A holds block 0 and is stopped in its commit, before its batch.
  REQUIRE(rig.pool->Write(rig.lineage, 0, PatternBlock(kBs, 5, 1), kLz4).ok());
  rig.StallCommit();
  // Txg B, open meanwhile: block 1, and block 0 again. One record holds
  // A's block 0 (syncing) and B's blocks; it is keyed by B.
  REQUIRE(rig.pool->Write(rig.lineage, 1, PatternBlock(kBs, 5, 2), kLz4).ok());
  REQUIRE(rig.pool->FlushWrites().ok());
  REQUIRE(rig.pool->Write(rig.lineage, 0, PatternBlock(kBs, 5, 3), kLz4).ok());
  REQUIRE(rig.pool->FlushWrites().ok());
  CHECK(rig.pool->stats().intent_records == 2);
  // Power goes while A is still committing: A never lands.
  rig.CutPowerInCommit();

  REQUIRE(rig.Open().ok());
  CHECK(rig.pool->stats().intent_replayed_blocks == 3);
  CHECK(rig.Read(0) == PatternBlock(kBs, 5, 3));
  CHECK(rig.Read(1) == PatternBlock(kBs, 5, 2));
  CHECK(rig.Records() == 0);  // B's records too, though keyed past the replay's txg
  // New writes after the replay, then another power cut: nothing old comes
  // back over them.
  REQUIRE(rig.pool->Write(rig.lineage, 0, PatternBlock(kBs, 5, 4), kLz4).ok());
  REQUIRE(rig.pool->Write(rig.lineage, 1, PatternBlock(kBs, 5, 5), kLz4).ok());
  REQUIRE(rig.pool->Flush().ok());
  rig.PowerCut();
  REQUIRE(rig.Open().ok());
  CHECK(rig.pool->stats().intent_replayed_blocks == 0);
  CHECK(rig.Read(0) == PatternBlock(kBs, 5, 4));
  CHECK(rig.Read(1) == PatternBlock(kBs, 5, 5));
  rig.Clean();
}

TEST_CASE("intent log: a read-only open leaves the records, a read-write open replays them") {
  Rig rig;
  REQUIRE(rig.Open().ok());
  REQUIRE(rig.pool->Write(rig.lineage, 0, PatternBlock(kBs, 6, 1), kLz4).ok());
  REQUIRE(rig.pool->FlushWrites().ok());
  rig.PowerCut();
  PoolOptions ro;
  ro.read_only = true;
  REQUIRE(rig.Open(ro).ok());
  CHECK(rig.Read(0) == PatternBlock(kBs, 1, 1));  // the committed version
  CHECK(rig.Records() == 1);
  rig.pool.reset();
  REQUIRE(rig.Open().ok());
  CHECK(rig.Read(0) == PatternBlock(kBs, 6, 1));
}

// Records of blocks 0..n-1 in `records` flushes, then a power cut.
void LeaveRecords(Rig& rig, uint64_t seed, int records, uint64_t blocks_each) {
  REQUIRE(rig.Open().ok());
  for (int r = 0; r < records; ++r) {
    for (uint64_t k = 0; k < blocks_each; ++k) {
      uint64_t b = r * blocks_each + k;
      REQUIRE(rig.pool->Write(rig.lineage, b, PatternBlock(kBs, seed, b), kLz4).ok());
    }
    REQUIRE(rig.pool->FlushWrites().ok());
  }
  CHECK(rig.pool->stats().intent_records == static_cast<uint64_t>(records));
  rig.PowerCut();
}

// Commits as soon as there is anything: replays meet commits.
PoolOptions Hasty() {
  PoolOptions po;
  po.txg_timeout_ms = 1;
  return po;
}

TEST_CASE("intent log: a damaged record stops the open and loses nothing") {
  Rig rig;
  LeaveRecords(rig, 7, 3, 16);
  // The last record's first payload byte damaged: it decodes, its checksum
  // fails after two records were replayed (and perhaps committed).
  std::string key, value;
  {
    auto kv = rig.Peek();
    auto it = kv->NewIterator(kCfDefault);
    for (it->Seek(kIntentKeyPrefix); it->Valid() && it->key().starts_with(kIntentKeyPrefix);
         it->Next()) {
      key = std::string(it->key());
      value = std::string(it->value());
    }
    REQUIRE(!key.empty());
  }
  auto rewrite = [&](const std::string& v) { rig.PutMetadata(key, v); };
  std::string bad = value;
  bad[kIntentHeaderSize + kIntentEntryOverhead] ^= 0x5a;
  rewrite(bad);
  // Slow down the replay so that the timer commits part of it.
  SyncPoints::Set("intent:replayed-block",
                  [] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
  Status s = rig.Open(Hasty());
  SyncPoints::Clear();
  CHECK(s.code() == Code::kCorruption);
  CHECK(s.message().find("checksum") != std::string::npos);
  CHECK(s.message().find("intent log") != std::string::npos);
  rewrite(value.substr(0, value.size() - 1));  // truncated
  s = rig.Open(Hasty());
  CHECK(s.code() == Code::kCorruption);
  CHECK(rig.Records() == 3);
  // Nothing was lost meanwhile: with the record intact, all of it replays.
  rewrite(value);
  REQUIRE(rig.Open().ok());
  for (uint64_t b = 0; b < 48; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 7, b));
  CHECK(rig.Records() == 0);
  rig.Clean();
}

// Keys and values of the records, in replay order.
std::vector<std::pair<std::string, std::string>> RecordsOf(Rig& rig) {
  std::vector<std::pair<std::string, std::string>> out;
  auto kv = rig.Peek();
  auto it = kv->NewIterator(kCfDefault);
  for (it->Seek(kIntentKeyPrefix); it->Valid() && it->key().starts_with(kIntentKeyPrefix);
       it->Next()) {
    out.emplace_back(std::string(it->key()), std::string(it->value()));
  }
  return out;
}

enum class Damage { kChecksum, kCutShort };

// Three records (blocks 0..15, 16..31, 32..47), the second damaged; a
// recovery open, with or without the power going once the damaged records
// are deleted.
void CheckRecovery(Damage damage, bool power_cut) {
  Rig rig;
  LeaveRecords(rig, 9, 3, 16);
  auto records = RecordsOf(rig);
  REQUIRE(records.size() == 3);
  std::string bad = records[1].second;
  uint64_t lost_blocks = 0;
  if (damage == Damage::kChecksum) {
    bad[kIntentHeaderSize + kIntentEntryOverhead] ^= 0x5a;
    lost_blocks = 32;  // both dropped records still decode
  } else {
    bad.pop_back();
    lost_blocks = 16;  // only the last one decodes
  }
  rig.PutMetadata(records[1].first, bad);
  // Without the switch nothing changes, and the error says what to do.
  Status s = rig.Open();
  CHECK(s.code() == Code::kCorruption);
  CHECK(s.message().find("volctl pool clear -F") != std::string::npos);
  CHECK(RecordsOf(rig).size() == 3);

  PoolOptions recover;
  recover.discard_damaged_intent_log = true;
  if (power_cut) {
    Rig* r = &rig;
    SyncPoints::Set("intent:discarded", [r] {
      r->vdev->PowerCut(PowerCutMode::kDrop);
      r->faults->PowerCut(false);
    });
    CHECK(!rig.Open(recover).ok());
    SyncPoints::Clear();
    rig.pool.reset();
    // Only the record before the damage is left, and an ordinary open
    // replays it.
    REQUIRE(RecordsOf(rig).size() == 1);
    recover.discard_damaged_intent_log = false;
  }
  REQUIRE(rig.Open(recover).ok());
  PoolStats st = rig.pool->stats();
  CHECK(st.intent_replayed_blocks == 16);
  CHECK(st.intent_discarded_records == (power_cut ? 0u : 2u));
  CHECK(st.intent_discarded_blocks == (power_cut ? 0u : lost_blocks));
  // The flushes up to the damaged one, in order; after it, the committed
  // state (blocks 0..3 were written before, the rest never).
  for (uint64_t b = 0; b < 16; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 9, b));
  for (uint64_t b = 16; b < 48; ++b) CHECK(rig.Read(b) == Zeros());
  CHECK(rig.Records() == 0);
  rig.Clean();
  // And it stays so.
  REQUIRE(rig.Open().ok());
  CHECK(rig.Read(15) == PatternBlock(kBs, 9, 15));
  CHECK(rig.Read(16) == Zeros());
}

TEST_CASE("intent log: a recovery open drops a damaged record and those after it") {
  SUBCASE("a payload fails its checksum") { CheckRecovery(Damage::kChecksum, false); }
  SUBCASE("the record is cut short") { CheckRecovery(Damage::kCutShort, false); }
  SUBCASE("the power goes once the damaged records are deleted") {
    CheckRecovery(Damage::kChecksum, true);
  }
}

TEST_CASE("intent log: power lost while a replay's blocks are being committed") {
  Rig rig;
  // Txg A (blocks 0..20) is stopped in its commit; the record (keyed by B)
  // holds A's blocks and blocks 21..40 of B; the power goes before A
  // lands. So the record's entries carry the txg numbers A and B, which
  // the reopened pool's own commits reuse.
  REQUIRE(rig.Open().ok());
  for (uint64_t b = 0; b <= 20; ++b) {
    REQUIRE(rig.pool->Write(rig.lineage, b, PatternBlock(kBs, 8, b), kLz4).ok());
  }
  rig.StallCommit();
  for (uint64_t b = 21; b <= 40; ++b) {
    REQUIRE(rig.pool->Write(rig.lineage, b, PatternBlock(kBs, 8, b), kLz4).ok());
  }
  REQUIRE(rig.pool->FlushWrites().ok());
  rig.CutPowerInCommit();

  // The replay goes slowly; the timer commits what it put back so far, and
  // the power goes right after that commit.
  {
    std::atomic<int> commits{0};
    Rig* r = &rig;
    SyncPoints::Set("intent:replayed-block",
                    [] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
    SyncPoints::Set("txg:committed", [&] {
      if (commits.fetch_add(1) == 0) {
        r->vdev->PowerCut(PowerCutMode::kDrop);
        r->faults->PowerCut(false);
      }
    });
    Status s = rig.Open(Hasty());
    SyncPoints::Clear();
    CHECK(commits.load() >= 1);
    CHECK(!s.ok());  // the power went during the replay
    rig.pool.reset();
  }
  // Every flushed block is still there.
  REQUIRE(rig.Open().ok());
  for (uint64_t b = 0; b <= 40; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 8, b));
  CHECK(rig.Records() == 0);
  rig.Clean();
}

TEST_CASE("intent log: records decode only when whole and sane") {
  BlockPtr ptr;
  ptr.lsize = 4096;
  ptr.psize = 100;
  std::string r;
  StartIntentRecord(&r);
  uint8_t* p = AppendIntentEntry(&r, 1, 2, 3, ptr);
  REQUIRE(p != nullptr);
  std::memset(p, 0xab, 100);
  BlockPtr hole;
  hole.hole = true;
  CHECK(AppendIntentEntry(&r, 1, 9, 4, hole) == nullptr);
  FinishIntentRecord(&r, 2);
  auto ok = DecodeIntentRecord(r);
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 2);
  CHECK((*ok)[0].lineage == 1);
  CHECK((*ok)[0].blkno == 2);
  CHECK((*ok)[0].txg == 3);
  CHECK((*ok)[0].payload.size() == 100);
  CHECK((*ok)[1].ptr.hole);
  CHECK((*ok)[1].payload.empty());
  // Every cut short of the whole record, trailing bytes, a wrong count or
  // version, an impossible size: Corruption, never a crash.
  for (size_t n = 0; n < r.size(); ++n) {
    CHECK(DecodeIntentRecord(std::string_view(r).substr(0, n)).status().code() ==
          Code::kCorruption);
  }
  CHECK(DecodeIntentRecord(r + "x").status().code() == Code::kCorruption);
  std::string wrong = r;
  wrong[4] = 3;
  CHECK(DecodeIntentRecord(wrong).status().code() == Code::kCorruption);
  wrong = r;
  EncodeLE32(reinterpret_cast<uint8_t*>(wrong.data()) + 4, 0xffffffffu);
  CHECK(DecodeIntentRecord(wrong).status().code() == Code::kCorruption);
  wrong = r;
  wrong[0] = 9;
  CHECK(DecodeIntentRecord(wrong).status().code() == Code::kCorruption);
  wrong = r;
  EncodeLE32(reinterpret_cast<uint8_t*>(wrong.data()) + kIntentHeaderSize + 24 + 8, 1u << 20);
  CHECK(DecodeIntentRecord(wrong).status().code() == Code::kCorruption);
  CHECK(DecodeIntentKey("intent").status().code() == Code::kCorruption);
  auto key = DecodeIntentKey(EncodeIntentKey(5, 6));
  REQUIRE(key.ok());
  CHECK(key->first == 5);
  CHECK(key->second == 6);
}

TEST_CASE("intent log: a format 2 pool is upgraded by a read-write open") {
  Rig rig;
  REQUIRE(rig.Open().ok());
  rig.pool.reset();
  auto set_format = [&](uint64_t v) {
    std::string s;
    PutLE64(&s, v);
    rig.PutMetadata(kMetaKeyFormat, s);
  };
  auto format = [&] {
    auto v = rig.Peek()->Get(kCfDefault, kMetaKeyFormat);
    REQUIRE(v.ok());
    REQUIRE(v->has_value());
    return DecodeLE64(AsBytes(**v));
  };
  set_format(2);
  REQUIRE(rig.Open(PoolOptions{.read_only = true}).ok());
  CHECK(format() == 2);  // a read-only open changes nothing
  REQUIRE(rig.Open().ok());
  CHECK(format() == 3);
  rig.pool.reset();
  set_format(4);
  Status s = rig.Open();
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("format 4") != std::string::npos);
}

}  // namespace
}  // namespace blockhaus::core
