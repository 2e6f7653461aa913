// The intent log (core/txg/intent_log.cc, D46): FlushWrites makes a few
// writes durable by a record instead of a commit, a power cut keeps them,
// Open replays them exactly once, and a bad record stops the open without
// changing the pool.

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>

#include "core/base/sync_point.h"
#include "core/io/fault_vdev.h"
#include "core/kv/kv_store.h"
#include "core/pool/internal/pool_impl.h"
#include "core/txg/intent_file.h"
#include "core/txg/intent_format.h"
#include "tests/test_util.h"

namespace blockhaus::core {
namespace {

using testing::PatternBlock;
using testing::TempDir;

constexpr uint32_t kBs = 16384;
const BlockOptions kLz4{Compression{CompressionAlgo::kLz4, 0}, ChecksumType::kXxh3_128};
// The rig's ring: a quarter of it, 8 MiB of records, starts a commit.
constexpr uint64_t kRingBytes = 32ull << 20;

std::vector<uint8_t> Zeros() { return std::vector<uint8_t>(kBs, 0); }

// A pool whose blocks 0..3 hold committed data (tags 1..4); Open() goes
// over fault seams with a long txg timeout, so nothing commits unasked.
struct Rig {
  TempDir tmp;
  std::unique_ptr<Vdev> base;
  LineageId lineage = 0;
  std::unique_ptr<FaultVdev> vdev;
  std::unique_ptr<Vdev> ibase;  // the intent log's ring file
  std::unique_ptr<FaultVdev> ivdev;
  std::unique_ptr<KvFaultInjector> faults;
  std::unique_ptr<Pool> pool;
  std::promise<void> go_;
  std::future<Status> stalled_;

  Rig() {
    PoolCreateOptions o;
    o.name = "zil";
    o.data_size = 32 << 20;
    o.intent_log_bytes = kRingBytes;
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
    auto iv = OpenFileVdev(tmp / "pool/intent", FileVdevOptions{});
    REQUIRE(iv.ok());
    ibase = std::move(iv).value();
  }
  Status Open(PoolOptions po = {}) {
    pool.reset();
    vdev = std::make_unique<FaultVdev>(base.get());
    ivdev = std::make_unique<FaultVdev>(ibase.get());
    faults = std::make_unique<KvFaultInjector>(7);
    po.vdev = vdev.get();
    po.intent_vdev = ivdev.get();
    po.kv_fault_injector = faults.get();
    if (po.txg_timeout_ms == 5000) po.txg_timeout_ms = 600'000;
    auto p = Pool::Open(tmp / "pool", po);
    if (!p.ok()) return p.status();
    pool = std::move(p).value();
    return Status::Ok();
  }
  // An open with `po` during which the power goes at sync point `point`:
  // it fails, and whatever it had not synced is lost.
  void OpenLosingPowerAt(const char* point, PoolOptions po) {
    SyncPoints::Set(point, [this] {
      vdev->PowerCut(PowerCutMode::kDrop);
      ivdev->PowerCut(PowerCutMode::kDrop);
      faults->PowerCut(false);
    });
    CHECK(!Open(po).ok());
    SyncPoints::Clear();
    pool.reset();
  }
  // Power goes: whatever was not synced is lost, and the pool with it.
  void PowerCut() {
    vdev->PowerCut(PowerCutMode::kDrop);
    ivdev->PowerCut(PowerCutMode::kDrop);
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
    ivdev->PowerCut(PowerCutMode::kDrop);
    faults->PowerCut(false);
    go_.set_value();
    stalled_.wait();
    SyncPoints::Clear();
    pool->Close().IgnoreError();
    pool.reset();
  }
  // The intent log as the next replay would find it (what is synced).
  uint64_t Salt() {
    auto v = Peek()->Get(kCfDefault, kMetaKeyIntentSalt);
    REQUIRE(v.ok());
    REQUIRE(v->has_value());
    return DecodeLE64(AsBytes(**v));
  }
  // The frames from the ring's head on, and the seq range a recovery open
  // dropped (empty when none).
  std::vector<IntentFrame> Frames(std::pair<uint64_t, uint64_t>* dropped = nullptr) {
    auto kv = Peek();
    uint64_t seq = 1, offset = 0;
    auto head = kv->Get(kCfDefault, kMetaKeyIntentHead);
    REQUIRE(head.ok());
    if (head->has_value()) {
      seq = DecodeLE64(AsBytes(**head));
      offset = DecodeLE64(AsBytes(**head) + 8);
    }
    if (dropped != nullptr) {
      auto d = kv->Get(kCfDefault, kMetaKeyIntentDropFrom);
      REQUIRE(d.ok());
      *dropped = {0, 0};
      if (d->has_value()) *dropped = {DecodeLE64(AsBytes(**d)), DecodeLE64(AsBytes(**d) + 8)};
    }
    auto salt = kv->Get(kCfDefault, kMetaKeyIntentSalt);
    REQUIRE(salt.ok());
    REQUIRE(salt->has_value());
    std::vector<IntentFrame> out;
    auto end = ScanIntentFrames(*ibase, DecodeLE64(AsBytes(**salt)), seq, offset,
                                [&](const IntentFrame& f) {
                                  out.push_back(f);
                                  return Status::Ok();
                                });
    REQUIRE(end.ok());
    return out;
  }
  // Records a replay would take: the ring's frames but those dropped, and
  // records of format 3 in the store.
  size_t Records() {
    std::pair<uint64_t, uint64_t> dropped;
    size_t n = 0;
    for (const IntentFrame& f : Frames(&dropped)) {
      if (f.seq < dropped.first || f.seq >= dropped.second) ++n;
    }
    auto kv = Peek();
    auto it = kv->NewIterator(kCfDefault);
    for (it->Seek(kIntentKeyPrefix); it->Valid() && it->key().starts_with(kIntentKeyPrefix);
         it->Next()) {
      ++n;
    }
    return n;
  }
  // Puts frame `f` back with `body` instead of its own (same length), as
  // the log would have written it: a damaged record behind a sound frame.
  void RewriteFrame(const IntentFrame& f, const std::string& body) {
    REQUIRE(body.size() == f.body.size());
    std::string frame;
    EncodeIntentFrame(Salt(), f.seq, f.record_txg, body, &frame);
    REQUIRE(ibase->Write(f.offset, ConstByteSpan(AsBytes(frame), frame.size())).ok());
    REQUIRE(ibase->Sync().ok());
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

TEST_CASE("intent log: records past a quarter of the ring start a commit that deletes them") {
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

// Records of blocks 0..n-1 in `records` flushes, then a power cut; returns
// their frames.
std::vector<IntentFrame> LeaveRecords(Rig& rig, uint64_t seed, int records,
                                      uint64_t blocks_each) {
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
  std::vector<IntentFrame> frames = rig.Frames();
  REQUIRE(frames.size() == static_cast<size_t>(records));
  return frames;
}

// A record whose count says one entry more than it holds: it does not
// decode (the entry is missing), though its frame is sound.
std::string CountOneMore(const std::string& body) {
  std::string out = body;
  auto* count = reinterpret_cast<uint8_t*>(out.data()) + 4;
  EncodeLE32(count, DecodeLE32(count) + 1);
  return out;
}

// Commits as soon as there is anything: replays meet commits.
PoolOptions Hasty() {
  PoolOptions po;
  po.txg_timeout_ms = 1;
  return po;
}

TEST_CASE("intent log: a damaged record stops the open and loses nothing") {
  Rig rig;
  std::vector<IntentFrame> frames = LeaveRecords(rig, 7, 3, 16);
  // The last record's first payload byte damaged: it decodes, its checksum
  // fails after two records were replayed (and perhaps committed).
  const IntentFrame last = frames.back();
  std::string bad = last.body;
  bad[kIntentHeaderSize + kIntentEntryOverhead] ^= 0x5a;
  rig.RewriteFrame(last, bad);
  // Slow down the replay so that the timer commits part of it.
  SyncPoints::Set("intent:replayed-block",
                  [] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); });
  Status s = rig.Open(Hasty());
  SyncPoints::Clear();
  CHECK(s.code() == Code::kCorruption);
  CHECK(s.message().find("checksum") != std::string::npos);
  CHECK(s.message().find("intent log") != std::string::npos);
  rig.RewriteFrame(last, CountOneMore(last.body));  // says it holds more than it does
  s = rig.Open(Hasty());
  CHECK(s.code() == Code::kCorruption);
  CHECK(rig.Records() == 3);
  // Nothing was lost meanwhile: with the record intact, all of it replays.
  rig.RewriteFrame(last, last.body);
  REQUIRE(rig.Open().ok());
  for (uint64_t b = 0; b < 48; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 7, b));
  CHECK(rig.Records() == 0);
  rig.Clean();
}

enum class Damage { kChecksum, kCutShort };

// Three records (blocks 0..15, 16..31, 32..47), the second damaged; a
// recovery open, with or without the power going once the damaged records
// are deleted.
void CheckRecovery(Damage damage, bool power_cut) {
  Rig rig;
  std::vector<IntentFrame> frames = LeaveRecords(rig, 9, 3, 16);
  std::string bad = frames[1].body;
  uint64_t lost_blocks = 0;
  if (damage == Damage::kChecksum) {
    bad[kIntentHeaderSize + kIntentEntryOverhead] ^= 0x5a;
    lost_blocks = 32;  // both dropped records still decode
  } else {
    bad = CountOneMore(bad);
    lost_blocks = 16;  // only the last one decodes
  }
  rig.RewriteFrame(frames[1], bad);
  // Without the switch nothing changes, and the error says what to do.
  Status s = rig.Open();
  CHECK(s.code() == Code::kCorruption);
  CHECK(s.message().find("volctl pool clear -F") != std::string::npos);
  CHECK(rig.Records() == 3);

  PoolOptions recover;
  recover.discard_damaged_intent_log = true;
  if (power_cut) {
    rig.OpenLosingPowerAt("intent:discarded", recover);
    // Only the record before the damage is left, and an ordinary open
    // replays it.
    REQUIRE(rig.Records() == 1);
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

// Flips one byte of frame f's body in the ring, its check left as it was:
// what a torn write leaves of the last frame, or a bad copy of any.
void DamageFrame(Rig& rig, const IntentFrame& f) {
  std::vector<uint8_t> block(kIntentFrameAlign);
  REQUIRE(rig.ibase->Read(f.offset, block).ok());
  block[kIntentFrameHeaderSize + 100] ^= 0x5a;
  REQUIRE(rig.ibase->Write(f.offset, block).ok());
  REQUIRE(rig.ibase->Sync().ok());
}

TEST_CASE("intent log: a torn last frame ends the log; a frame damaged before others stops it") {
  Rig rig;
  std::vector<IntentFrame> frames = LeaveRecords(rig, 5, 3, 16);
  SUBCASE("the last frame fails its check: the log ends before it") {
    DamageFrame(rig, frames[2]);
    REQUIRE(rig.Open().ok());
    for (uint64_t b = 0; b < 32; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 5, b));
    for (uint64_t b = 32; b < 48; ++b) CHECK(rig.Read(b) == Zeros());
    CHECK(rig.pool->stats().intent_discarded_records == 0);
  }
  SUBCASE("a frame with frames behind it fails its check: the open stops, losing nothing") {
    DamageFrame(rig, frames[1]);
    for (int i = 0; i < 2; ++i) {
      Status s = rig.Open();
      CHECK(s.code() == Code::kCorruption);
      CHECK(s.message().find(fmt::format("intent log frame {} (at {}) fails its check",
                                         frames[1].seq, frames[1].offset)) !=
            std::string::npos);
      CHECK(s.message().find(fmt::format("frames up to {} behind it", frames[2].seq)) !=
            std::string::npos);
      CHECK(s.message().find("volctl pool clear -F") != std::string::npos);
    }
    // A read-only open sees the last commit.
    PoolOptions ro;
    ro.read_only = true;
    REQUIRE(rig.Open(ro).ok());
    CHECK(rig.Read(20) == Zeros());
    DamageFrame(rig, frames[1]);  // the byte back as it was
    REQUIRE(rig.Open().ok());
    for (uint64_t b = 0; b < 48; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 5, b));
  }
  SUBCASE("a frame lost whole, header and all: the log ends there, and no frame behind "
          "comes back") {
    // What a write the device dropped leaves: the place as before (zeros).
    REQUIRE(rig.ibase->Write(frames[1].offset, std::vector<uint8_t>(kIntentFrameAlign, 0)).ok());
    REQUIRE(rig.ibase->Sync().ok());
    REQUIRE(rig.Open().ok());
    for (uint64_t b = 0; b < 16; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 5, b));
    for (uint64_t b = 16; b < 48; ++b) CHECK(rig.Read(b) == Zeros());
    // A new record the lost one's size goes where it was and ends where
    // the third frame begins: that frame must not pass for its successor.
    for (uint64_t b = 16; b < 32; ++b) {
      REQUIRE(rig.pool->Write(rig.lineage, b, PatternBlock(kBs, 6, b), kLz4).ok());
    }
    REQUIRE(rig.pool->FlushWrites().ok());
    std::vector<IntentFrame> now = rig.Frames();
    REQUIRE(now.size() == 1);
    CHECK(now[0].offset == frames[1].offset);
    CHECK(now[0].span == frames[1].span);
    rig.PowerCut();
    REQUIRE(rig.Open().ok());
    for (uint64_t b = 16; b < 32; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 6, b));
    for (uint64_t b = 32; b < 48; ++b) CHECK(rig.Read(b) == Zeros());
    rig.Clean();
  }
}

// Three records, the second's frame damaged; a recovery open keeps the
// first, drops the other two, and later frames never meet theirs.
void CheckFrameRecovery(bool power_cut) {
  Rig rig;
  std::vector<IntentFrame> frames = LeaveRecords(rig, 9, 3, 16);
  DamageFrame(rig, frames[1]);
  PoolOptions recover;
  recover.discard_damaged_intent_log = true;
  if (power_cut) {
    rig.OpenLosingPowerAt("intent:discarded", recover);
    recover.discard_damaged_intent_log = false;  // the drop is on disk: a plain open goes on
  }
  REQUIRE(rig.Open(recover).ok());
  PoolStats st = rig.pool->stats();
  CHECK(st.intent_replayed_blocks == 16);
  CHECK(st.intent_discarded_records == (power_cut ? 0u : 2u));
  CHECK(st.intent_discarded_blocks == (power_cut ? 0u : 16u));  // the third's; the second's fail
  for (uint64_t b = 0; b < 16; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 9, b));
  for (uint64_t b = 16; b < 48; ++b) CHECK(rig.Read(b) == Zeros());
  CHECK(rig.Records() == 0);
  rig.Clean();
  // A new record of the same size lands where the damaged frame was; the
  // third frame is still behind it, and must not pass for the next one.
  for (uint64_t b = 16; b < 32; ++b) {
    REQUIRE(rig.pool->Write(rig.lineage, b, PatternBlock(kBs, 11, b), kLz4).ok());
  }
  REQUIRE(rig.pool->FlushWrites().ok());
  std::vector<IntentFrame> now = rig.Frames();
  REQUIRE(now.size() == 1);
  CHECK(now[0].offset == frames[1].offset);
  CHECK(now[0].seq > frames[2].seq);
  rig.PowerCut();
  REQUIRE(rig.Open().ok());
  for (uint64_t b = 0; b < 16; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 9, b));
  for (uint64_t b = 16; b < 32; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 11, b));
  for (uint64_t b = 32; b < 48; ++b) CHECK(rig.Read(b) == Zeros());
  rig.Clean();
}

TEST_CASE("intent log: a recovery open drops a damaged frame and those behind it") {
  SUBCASE("at once") { CheckFrameRecovery(false); }
  SUBCASE("the power goes once the drop is on disk") { CheckFrameRecovery(true); }
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
        r->ivdev->PowerCut(PowerCutMode::kDrop);
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

TEST_CASE("intent log: the ring places frames where no live one is") {
  constexpr uint64_t K = 1024;
  IntentRing r;
  r.capacity = 64 * K;
  CHECK(r.empty());
  CHECK(r.Place(16 * K) == 0u);
  CHECK(r.Place(64 * K) == 0u);
  CHECK(!r.Place(68 * K));
  // Live: [0, 48K).
  r.next_seq = 3;
  r.tail = 48 * K;
  CHECK(r.used() == 48 * K);
  CHECK(r.Place(16 * K) == 48 * K);
  CHECK(!r.Place(20 * K));  // past the end, and the head is at 0
  // The head moved to 32K: the room before it takes what does not fit.
  r.head_seq = 2;
  r.head_offset = 32 * K;
  CHECK(r.used() == 16 * K);
  CHECK(r.Place(16 * K) == 48 * K);
  CHECK(r.Place(20 * K) == 0u);
  CHECK(!r.Place(36 * K));
  // Wrapped: live [32K, 64K) and [0, 8K).
  r.next_seq = 4;
  r.tail = 8 * K;
  CHECK(r.used() == 40 * K);
  CHECK(r.Place(24 * K) == 8 * K);
  CHECK(!r.Place(28 * K));
  // Full: the tail met the head.
  r.next_seq = 5;
  r.tail = 32 * K;
  CHECK(r.used() == 64 * K);
  CHECK(!r.Place(4 * K));
  // Empty again (a commit moved the head to the tail): anywhere.
  r.head_seq = 5;
  CHECK(r.empty());
  CHECK(r.Place(32 * K) == 32 * K);
  CHECK(r.Place(36 * K) == 0u);
}

TEST_CASE("intent log: records go around the ring, and the last ones replay after a cut") {
  Rig rig;
  REQUIRE(rig.Open().ok());
  // 32 blocks of 16K that do not compress per flush: ~0.5 MiB records, so
  // ~150 of them go around the 32 MiB ring twice, with the
  // commits their quarters start in between.
  std::vector<uint8_t> block(kBs);
  auto fill = [&](uint64_t round, uint64_t b) {
    uint64_t x = (round << 32 | b) * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < block.size(); i += 8) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      std::memcpy(block.data() + i, &x, 8);
    }
  };
  uint64_t round = 0;
  for (; round < 150; ++round) {
    for (uint64_t b = 0; b < 32; ++b) {
      fill(round, b);
      REQUIRE(rig.pool->Write(rig.lineage, b, block, kLz4).ok());
    }
    REQUIRE(rig.pool->FlushWrites().ok());
  }
  PoolStats st = rig.pool->stats();
  CHECK(st.intent_bytes > 2 * kRingBytes);  // more than twice around
  CHECK(st.txgs_committed >= 3);
  // The last rounds after the last commit stay in records only.
  REQUIRE(rig.pool->Flush().ok());
  for (int last = 0; last < 3; ++last, ++round) {
    for (uint64_t b = 0; b < 32; ++b) {
      fill(round, b);
      REQUIRE(rig.pool->Write(rig.lineage, b, block, kLz4).ok());
    }
    REQUIRE(rig.pool->FlushWrites().ok());
  }
  CHECK(rig.Records() == 3);
  rig.PowerCut();
  REQUIRE(rig.Open().ok());
  CHECK(rig.pool->stats().intent_replayed_blocks == 3 * 32);
  for (uint64_t b = 0; b < 32; ++b) {
    fill(round - 1, b);
    CHECK(rig.Read(b) == block);
  }
  CHECK(rig.Records() == 0);
  rig.Clean();
}

TEST_CASE("intent log: the scan tells a damaged frame from the end, around the wrap too") {
  constexpr uint64_t K = 1024;
  constexpr uint64_t kSalt = 0x5eed;
  std::unique_ptr<Vdev> ring = NewMemVdev(64 * K);
  // A frame of `seq` at `at` taking 8K; damaged: one body byte flipped
  // after its check was taken.
  auto put = [&](uint64_t seq, uint64_t at, bool damaged = false) {
    std::string frame;
    EncodeIntentFrame(kSalt, seq, 1, std::string(5000, static_cast<char>('a' + seq)), &frame);
    REQUIRE(frame.size() == 8 * K);
    if (damaged) frame[kIntentFrameHeaderSize + 10] ^= 0x01;
    REQUIRE(ring->Write(at, ConstByteSpan(AsBytes(frame), frame.size())).ok());
  };
  auto scan = [&](uint64_t seq, uint64_t at, std::vector<uint64_t>* seen) {
    auto end = ScanIntentFrames(*ring, kSalt, seq, at, [&](const IntentFrame& f) {
      seen->push_back(f.seq);
      return Status::Ok();
    });
    REQUIRE(end.ok());
    return *end;
  };
  std::vector<uint64_t> seen;
  SUBCASE("the damaged frame ends the ring, the next is at 0") {
    put(5, 40 * K);
    put(6, 48 * K);
    put(7, 56 * K, true);
    put(8, 0);
    IntentScanEnd end = scan(5, 40 * K, &seen);
    CHECK(seen == std::vector<uint64_t>{5, 6});
    CHECK(end.next_seq == 7);
    CHECK(end.tail == 56 * K);
    REQUIRE(end.damaged.has_value());
    CHECK(end.damaged->seq == 7);
    CHECK(end.damaged->offset == 56 * K);
    CHECK(end.damaged->behind_offset == 0);
    CHECK(end.damaged->after_seq == 9);
  }
  SUBCASE("the damaged frame went to 0, the next after it") {
    put(5, 44 * K);
    put(6, 52 * K);  // ends at 60K: the next 8K goes to 0
    put(7, 0, true);
    put(8, 8 * K);
    IntentScanEnd end = scan(5, 44 * K, &seen);
    CHECK(seen == std::vector<uint64_t>{5, 6});
    CHECK(end.tail == 60 * K);
    REQUIRE(end.damaged.has_value());
    CHECK(end.damaged->offset == 0);
    CHECK(end.damaged->behind_offset == 8 * K);
    CHECK(end.damaged->after_seq == 9);
  }
  SUBCASE("a frame torn at 0 with nothing behind it is the end") {
    put(5, 44 * K);
    put(6, 52 * K);
    put(7, 0, true);
    put(3, 8 * K);  // an older lap's
    IntentScanEnd end = scan(5, 44 * K, &seen);
    CHECK(end.next_seq == 7);
    CHECK(!end.damaged.has_value());
  }
  SUBCASE("damage twice: the frames behind both count") {
    put(5, 0);
    put(6, 8 * K, true);
    put(7, 16 * K);
    put(8, 24 * K, true);
    put(9, 32 * K);
    IntentScanEnd end = scan(5, 0, &seen);
    CHECK(seen == std::vector<uint64_t>{5});
    REQUIRE(end.damaged.has_value());
    CHECK(end.damaged->seq == 6);
    CHECK(end.damaged->after_seq == 10);
  }
}

TEST_CASE("intent log: a frame-shaped run of other bytes is not taken for a frame") {
  Rig rig;
  std::vector<IntentFrame> frames = LeaveRecords(rig, 10, 1, 4);
  const IntentFrame& f = frames[0];
  // Where the next frame would go: a would-be frame 2, sound but for the
  // seed of its check (a guest's data in a payload could look like this),
  // whose record is damaged so that a replay taking it fails.
  std::string forged;
  EncodeIntentFrame(rig.Salt() ^ 1, f.seq + 1, f.record_txg, CountOneMore(f.body), &forged);
  auto put = [&](const std::string& frame) {
    REQUIRE(rig.ibase->Write(f.offset + f.span, ConstByteSpan(AsBytes(frame), frame.size()))
                .ok());
    REQUIRE(rig.ibase->Sync().ok());
  };
  put(forged);
  CHECK(rig.Records() == 1);
  // With the pool's own seed it would be a frame (so the test can fail).
  std::string real;
  EncodeIntentFrame(rig.Salt(), f.seq + 1, f.record_txg, CountOneMore(f.body), &real);
  put(real);
  CHECK(rig.Records() == 2);
  CHECK(rig.Open().code() == Code::kCorruption);
  put(forged);
  REQUIRE(rig.Open().ok());
  CHECK(rig.pool->stats().intent_replayed_blocks == 4);
  for (uint64_t b = 0; b < 4; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 10, b));
  rig.Clean();
}

TEST_CASE("intent log: records of format 3, in the metadata store, still replay") {
  Rig rig;
  std::vector<IntentFrame> frames = LeaveRecords(rig, 11, 2, 4);
  // The same records as an older build kept them, and no frame.
  for (const IntentFrame& f : frames) {
    rig.PutMetadata(EncodeIntentKey(f.record_txg, f.seq), f.body);
  }
  const std::vector<uint8_t> zeros(frames.back().offset + frames.back().span, 0);
  REQUIRE(rig.ibase->Write(0, zeros).ok());
  REQUIRE(rig.ibase->Sync().ok());
  CHECK(rig.Records() == 2);
  REQUIRE(rig.Open().ok());
  CHECK(rig.pool->stats().intent_replayed_blocks == 8);
  for (uint64_t b = 0; b < 8; ++b) CHECK(rig.Read(b) == PatternBlock(kBs, 11, b));
  CHECK(rig.Records() == 0);
  rig.Clean();
}

TEST_CASE("intent log: a missing ring file stops the open; a recovery open makes a new one") {
  Rig rig;
  LeaveRecords(rig, 12, 1, 4);
  rig.ibase.reset();
  std::filesystem::remove(rig.tmp / "pool/intent");
  auto p = Pool::Open(rig.tmp / "pool");
  REQUIRE(!p.ok());
  CHECK(p.status().code() == Code::kCorruption);
  CHECK(p.status().message().find("missing") != std::string::npos);
  CHECK(p.status().message().find("volctl pool clear -F") != std::string::npos);
  CHECK(!std::filesystem::exists(rig.tmp / "pool/intent"));
  // The record is lost with its file: the committed data, and a log that
  // works again.
  p = Pool::Open(rig.tmp / "pool", PoolOptions{.discard_damaged_intent_log = true});
  REQUIRE(p.ok());
  std::vector<uint8_t> out(kBs);
  REQUIRE((*p)->Read(rig.lineage, 0, kHeadView, out).ok());
  CHECK(out == PatternBlock(kBs, 1, 1));
  REQUIRE((*p)->Write(rig.lineage, 0, PatternBlock(kBs, 12, 99), kLz4).ok());
  REQUIRE((*p)->FlushWrites().ok());
  CHECK((*p)->stats().intent_records == 1);
  REQUIRE((*p)->Close().ok());
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

TEST_CASE("intent log: a pool of format 2 or 3 is upgraded by a read-write open") {
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
  CHECK(format() == 4);
  rig.pool.reset();
  set_format(5);
  Status s = rig.Open();
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("format 5") != std::string::npos);
}

}  // namespace
}  // namespace blockhaus::core
