// Power cuts and injected I/O errors under KvStore (KvFaultInjector).
#include <atomic>
#include <charconv>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "core/base/sync_point.h"
#include "core/kv/kv_store.h"
#include "tests/core/kv_test_util.h"

namespace blockhaus::core {
namespace {

using testing::ScratchDir;

constexpr int kCounterCf = 0;  // "k" -> the number of the last batch.
constexpr int kBodyCf = 1;     // "b<i>" -> a value naming the batch.
constexpr int kBodyKeys = 48;

KvOptions FaultOptions(KvFaultInjector* injector) {
  KvOptions o;
  o.column_families = {"default", "body"};
  o.create_if_missing = true;
  o.block_cache_bytes = 1 << 20;
  o.fault_injector = injector;
  return o;
}

std::string BodyKey(int i) { return fmt::format("b{:03}", i); }
std::string BodyValue(uint64_t batch, int i) {
  return fmt::format("batch {:08} key {:03} {:x>80}", batch, i, "");
}

// Batch n sets the counter to n and rewrites every body key, in two families.
Status WriteBatchNumber(KvStore& store, uint64_t n, bool sync) {
  KvBatch b;
  b.Put(kCounterCf, "k", std::to_string(n));
  for (int i = 0; i < kBodyKeys; ++i) b.Put(kBodyCf, BodyKey(i), BodyValue(n, i));
  return store.Write(b, sync);
}

uint64_t ParseCounter(const std::string& text) {
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  REQUIRE_MESSAGE((ec == std::errc() && ptr == text.data() + text.size()), text);
  return n;
}

// Returns the batch number the store holds, checking that its state is
// exactly that of a prefix of the batches (no torn batch).
uint64_t CheckPrefixState(KvStore& store) {
  auto counter = store.Get(kCounterCf, "k");
  REQUIRE_MESSAGE(counter.ok(), counter.status().ToString());
  uint64_t n = counter->has_value() ? ParseCounter(**counter) : 0;
  auto it = store.NewIterator(kBodyCf);
  int seen = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++seen) {
    REQUIRE(seen < kBodyKeys);
    CHECK(it->key() == BodyKey(seen));
    CHECK(it->value() == BodyValue(n, seen));
  }
  REQUIRE_MESSAGE(it->status().ok(), it->status().ToString());
  CHECK(seen == (n == 0 ? 0 : kBodyKeys));
  return n;
}

std::unique_ptr<KvStore> MustOpen(const std::string& path, KvFaultInjector* injector) {
  auto store = KvStore::Open(path, FaultOptions(injector));
  REQUIRE_MESSAGE(store.ok(), store.status().ToString());
  return std::move(store).value();
}

uint64_t BaseSeed() {
  const char* env = std::getenv("BH_KV_FAULT_SEED");
  uint64_t seed = 0;
  if (env != nullptr) {
    std::string_view text(env);
    if (std::from_chars(text.data(), text.data() + text.size(), seed).ec == std::errc()) {
      return seed;
    }
  }
  return std::random_device()();
}

struct CutOutcome {
  uint64_t written = 0;  // Last batch number written.
  uint64_t synced = 0;   // Last batch number written with sync.
};

// Writes batches after `start` (some synced, some not, some flushes).
CutOutcome RunWorkload(KvStore& store, uint64_t start, std::mt19937_64& rng) {
  CutOutcome out{start, start};
  const int batches = 8 + static_cast<int>(rng() % 16);
  for (int i = 0; i < batches; ++i) {
    const bool sync = i + 1 < batches && rng() % 2 == 0;  // Last one unsynced.
    const uint64_t n = out.written + 1;
    Status s = WriteBatchNumber(store, n, sync);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    out.written = n;
    if (sync) out.synced = n;
    if (rng() % 10 == 0) REQUIRE(store.Flush().ok());
  }
  return out;
}

TEST_CASE("KvFault: power cuts keep every synced batch and never tear one") {
  ScratchDir dir;
  REQUIRE(dir.ok());
  const std::string path = dir.Sub("db");
  const uint64_t base_seed = BaseSeed();
  MESSAGE("base seed ", base_seed, " (set BH_KV_FAULT_SEED to repeat)");
  uint64_t recovered = 0;
  int lossy_cuts = 0;
  for (int iter = 0; iter < 20; ++iter) {
    const uint64_t seed = base_seed + static_cast<uint64_t>(iter);
    const bool garble = iter % 2 == 1;
    MESSAGE("iteration ", iter, " seed ", seed, std::string(garble ? " garble" : " drop"));
    std::mt19937_64 rng(seed);
    KvFaultInjector injector(seed);
    auto store = MustOpen(path, &injector);
    REQUIRE(CheckPrefixState(*store) == recovered);
    CutOutcome out = RunWorkload(*store, recovered, rng);

    injector.PowerCut(garble);
    CHECK_FALSE(WriteBatchNumber(*store, out.written + 1, true).ok());
    store.reset();  // All I/O fails; must neither crash nor hang.
    injector.Revive();

    store = MustOpen(path, &injector);  // Open never fails after a cut.
    recovered = CheckPrefixState(*store);
    CHECK(recovered >= out.synced);
    CHECK(recovered <= out.written);
    if (recovered < out.written) ++lossy_cuts;
    REQUIRE(store->Close().ok());
  }
  CHECK(lossy_cuts > 0);  // The model did drop unsynced data.
}

// Writes batches 1..3 synced, then a batch under an armed fault.
Status FailOneWrite(const std::string& path, KvFaultInjector& injector, bool enospc,
                    bool sync_fault) {
  auto store = MustOpen(path, &injector);
  for (uint64_t n = 1; n <= 3; ++n) REQUIRE(WriteBatchNumber(*store, n, true).ok());
  if (sync_fault) {
    injector.FailNthSync(1);
  } else {
    injector.FailNthWrite(1, enospc);
  }
  Status s = WriteBatchNumber(*store, 4, true);
  injector.ClearFaults();
  return s;
}

void CheckConsistentAfterReopen(const std::string& path, KvFaultInjector& injector) {
  auto store = MustOpen(path, &injector);
  uint64_t n = CheckPrefixState(*store);
  CHECK(n >= 3);
  CHECK(n <= 4);
  REQUIRE(WriteBatchNumber(*store, n + 1, true).ok());
  CHECK(CheckPrefixState(*store) == n + 1);
}

TEST_CASE("KvFault: an injected ENOSPC fails Write with ResourceExhausted") {
  ScratchDir dir;
  KvFaultInjector injector(1);
  Status s = FailOneWrite(dir.Sub("db"), injector, /*enospc=*/true, /*sync_fault=*/false);
  CHECK(s.code() == Code::kResourceExhausted);
  CheckConsistentAfterReopen(dir.Sub("db"), injector);
}

TEST_CASE("KvFault: an injected write error fails Write with IOError") {
  ScratchDir dir;
  KvFaultInjector injector(2);
  Status s = FailOneWrite(dir.Sub("db"), injector, /*enospc=*/false, /*sync_fault=*/false);
  CHECK(s.code() == Code::kIOError);
  CheckConsistentAfterReopen(dir.Sub("db"), injector);
}

TEST_CASE("KvFault: an injected sync error fails a synced Write") {
  ScratchDir dir;
  KvFaultInjector injector(3);
  Status s = FailOneWrite(dir.Sub("db"), injector, /*enospc=*/false, /*sync_fault=*/true);
  CHECK(s.code() == Code::kIOError);
  CheckConsistentAfterReopen(dir.Sub("db"), injector);
}

TEST_CASE("KvFault: a cut right after creation leaves an openable store") {
  ScratchDir dir;
  KvFaultInjector injector(4);
  auto store = MustOpen(dir.Sub("db"), &injector);
  REQUIRE(WriteBatchNumber(*store, 1, /*sync=*/false).ok());
  injector.PowerCut(/*garble=*/true);
  store.reset();
  injector.Revive();
  store = MustOpen(dir.Sub("db"), &injector);
  CHECK(CheckPrefixState(*store) <= 1);
}

// Reopens a store holding batches 1..3 and writes synced batches 4..6 (with a
// flush after 4), cutting power the n-th time `point` is reached (garbling on
// even n). Returns how often the point was reached.
int CutAtNthEvent(const char* point, int n) {
  ScratchDir dir;
  const std::string path = dir.Sub("db");
  KvFaultInjector injector(static_cast<uint64_t>(n));
  {
    auto store = MustOpen(path, &injector);
    for (uint64_t b = 1; b <= 3; ++b) REQUIRE(WriteBatchNumber(*store, b, true).ok());
  }
  std::atomic<int> hits{0};
  SyncPoints::Set(point, [&] {
    if (++hits == n) injector.PowerCut(/*garble=*/n % 2 == 0);
  });
  uint64_t acked = 3;
  {
    auto store = KvStore::Open(path, FaultOptions(&injector));
    for (uint64_t b = 4; store.ok() && b <= 6; ++b) {
      if (!WriteBatchNumber(**store, b, true).ok()) break;
      acked = b;
      if (b == 4 && !(*store)->Flush().ok()) break;
    }
  }
  SyncPoints::Clear();
  injector.Revive();
  auto store = MustOpen(path, &injector);
  const uint64_t recovered = CheckPrefixState(*store);
  CHECK(recovered >= acked);
  CHECK(recovered <= acked + 1);  // The batch in flight at the cut may survive.
  return hits.load();
}

void CutAtEveryEvent(const char* point) {
  const int total = CutAtNthEvent(point, 1 << 20);  // Counts the events; no cut.
  MESSAGE(std::string(point), " reached ", total, " times");
  for (int n = 1; n <= total; ++n) {
    CAPTURE(n);
    CHECK(CutAtNthEvent(point, n) >= n);
  }
}

// About 4 s: a cut during a flush makes RocksDB sleep 1 s before it retries
// (DBImpl::BackgroundCallFlush), and three of the syncs belong to the flush.
TEST_CASE("KvFault: a cut after any file sync of reopen and workload loses nothing acked") {
  CutAtEveryEvent("KvFaultFs::Sync:Done");
}

TEST_CASE("KvFault: a cut between any rename and its directory fsync is rolled back") {
  CutAtEveryEvent("KvFaultFs::RenameFile:Done");
}

}  // namespace
}  // namespace blockhaus::core
