#include "core/kv/kv_store.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "tests/core/kv_test_util.h"

namespace blockhaus::core {
namespace {

using testing::ScratchDir;

constexpr int kDefault = 0;
constexpr int kMeta = 1;
constexpr int kIndex = 2;  // A prefix family (4-byte prefixes).

KvOptions TestOptions(bool create = true) {
  KvOptions o;
  o.column_families = {"default", "meta", "index"};
  o.create_if_missing = create;
  o.prefix_length = 4;
  o.prefix_families = {kIndex};
  o.block_cache_bytes = 1 << 20;
  return o;
}

std::unique_ptr<KvStore> MustOpen(const std::string& path, const KvOptions& o) {
  auto store = KvStore::Open(path, o);
  REQUIRE_MESSAGE(store.ok(), store.status().ToString());
  return std::move(store).value();
}

std::optional<std::string> MustGet(KvStore& store, int cf, std::string_view key) {
  auto v = store.Get(cf, key);
  REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  return *v;
}

void MustWrite(KvStore& store, KvBatch& batch, bool sync = false) {
  Status s = store.Write(batch, sync);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
}

std::vector<std::string> Keys(KvIterator& it) {
  std::vector<std::string> keys;
  for (; it.Valid(); it.Next()) keys.emplace_back(it.key());
  CHECK(it.status().ok());
  return keys;
}

TEST_CASE("KvStore: opening a missing store without create_if_missing is NotFound") {
  ScratchDir dir;
  REQUIRE(dir.ok());
  auto store = KvStore::Open(dir.Sub("db"), TestOptions(/*create=*/false));
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == Code::kNotFound);
  CHECK(store.status().message().find("does not exist") != std::string::npos);
}

TEST_CASE("KvStore: invalid options are InvalidArgument") {
  ScratchDir dir;
  KvOptions o = TestOptions();
  o.column_families = {"meta", "default"};
  CHECK(KvStore::Open(dir.Sub("db"), o).status().code() == Code::kInvalidArgument);
  o = TestOptions();
  o.prefix_families = {7};
  CHECK(KvStore::Open(dir.Sub("db"), o).status().code() == Code::kInvalidArgument);
  o = TestOptions();
  o.insert_hint_length = o.prefix_length + 1;  // longer than some keys may be
  CHECK(KvStore::Open(dir.Sub("db"), o).status().code() == Code::kInvalidArgument);
}

// The pool's pattern: every batch overwrites a run of keys under a few
// leading bytes (lineages), in key order. With insert hints each insert
// starts from the last one of its lineage; the result must be the same.
TEST_CASE("KvStore: insert hints keep every key in order with its newest value") {
  ScratchDir dir;
  KvOptions o = TestOptions();
  o.insert_hint_length = 2;
  auto store = MustOpen(dir.Sub("db"), o);
  auto key = [](int lineage, int n) { return fmt::format("L{}{:06d}", lineage, n); };
  constexpr int kKeys = 600;
  for (int round = 0; round < 6; ++round) {
    KvBatch b;
    // Each round overwrites a different window of each lineage, so a new
    // version lands between older ones of the neighbouring keys.
    for (int lineage = 0; lineage < 3; ++lineage) {
      for (int n = round * 50; n < round * 50 + 300; ++n) {
        b.Put(kIndex, key(lineage, n % kKeys), fmt::format("{}", round));
      }
    }
    MustWrite(*store, b);
  }
  auto it = store->NewIterator(kIndex);
  it->SeekToFirst();
  std::vector<std::string> keys = Keys(*it);
  CHECK(std::is_sorted(keys.begin(), keys.end()));
  CHECK(std::adjacent_find(keys.begin(), keys.end()) == keys.end());
  CHECK(keys.size() == 3 * 550);  // windows 0..549 were written, 550..599 never
  for (int lineage = 0; lineage < 3; ++lineage) {
    for (int n : {0, 49, 50, 299, 300, 549}) {
      const int newest = std::min(5, n / 50);  // the last round whose window holds n
      CHECK(MustGet(*store, kIndex, key(lineage, n)) == fmt::format("{}", newest));
    }
    CHECK(MustGet(*store, kIndex, key(lineage, 550)) == std::nullopt);
  }

  // A range delete whose begin key is in the hints' domain is refused, the
  // whole batch with it (RocksDB 7.x would mix its insert into the hints).
  KvBatch refused;
  refused.Put(kIndex, key(2, 0), "refused");
  refused.DeleteRange(kIndex, "L1", "L2");
  CHECK(store->Write(refused, false).code() == Code::kInvalidArgument);
  CHECK(MustGet(*store, kIndex, key(2, 0)) == "0");
  CHECK(MustGet(*store, kIndex, key(1, 0)) == "0");

  // One with a shorter begin key goes in without a hint; the hinted puts
  // after it still land where a scan finds them.
  KvBatch b;
  b.DeleteRange(kIndex, "L", "M");
  for (int n : {7, 3, 5}) b.Put(kIndex, key(1, n), "after");
  MustWrite(*store, b);
  KvBatch more;
  for (int n : {4, 6}) more.Put(kIndex, key(1, n), "after");
  more.Put(kIndex, key(0, 1), "after");
  MustWrite(*store, more);
  auto after = store->NewIterator(kIndex);
  after->SeekToFirst();
  CHECK(Keys(*after) == std::vector<std::string>{key(0, 1), key(1, 3), key(1, 4), key(1, 5),
                                                 key(1, 6), key(1, 7)});
}

TEST_CASE("KvStore: put, get, delete and DeleteRange across two families") {
  ScratchDir dir;
  auto store = MustOpen(dir.Sub("db"), TestOptions());
  KvBatch b;
  b.Put(kDefault, "a", "1");
  b.Put(kMeta, "a", "meta-1");
  for (char c = 'c'; c <= 'g'; ++c) b.Put(kMeta, std::string(1, c), "x");
  CHECK(b.count() == 7);
  CHECK(b.byte_size() > 0);
  MustWrite(*store, b);
  CHECK(MustGet(*store, kDefault, "a") == "1");
  CHECK(MustGet(*store, kMeta, "a") == "meta-1");
  CHECK(MustGet(*store, kDefault, "c") == std::nullopt);  // Families are disjoint.

  b.Clear();
  CHECK(b.count() == 0);
  b.Delete(kDefault, "a");
  b.DeleteRange(kMeta, "d", "f");  // Deletes d and e, keeps f.
  b.DeleteRange(kMeta, "z", "a");  // Empty range: ignored.
  MustWrite(*store, b);
  CHECK(MustGet(*store, kDefault, "a") == std::nullopt);
  CHECK(MustGet(*store, kMeta, "a") == "meta-1");
  auto it = store->NewIterator(kMeta);
  it->SeekToFirst();
  CHECK(Keys(*it) == std::vector<std::string>{"a", "c", "f", "g"});
  CHECK(store->Get(9, "a").status().code() == Code::kInvalidArgument);
}

TEST_CASE("KvStore: a batch applies atomically") {
  ScratchDir dir;
  auto store = MustOpen(dir.Sub("db"), TestOptions());
  KvBatch b;
  b.Put(kDefault, "x", "1");
  b.Put(kMeta, "y", "2");
  b.Put(5, "z", "3");  // No such family: the whole batch must fail.
  CHECK(store->Write(b, true).code() == Code::kInvalidArgument);
  CHECK(MustGet(*store, kDefault, "x") == std::nullopt);
  CHECK(MustGet(*store, kMeta, "y") == std::nullopt);

  KvBatch short_key;
  short_key.Put(kDefault, "x", "1");
  short_key.Put(kIndex, "ab", "too short for the prefix extractor");
  CHECK(store->Write(short_key, false).code() == Code::kInvalidArgument);
  CHECK(MustGet(*store, kDefault, "x") == std::nullopt);

  // An iterator sees the snapshot taken at its creation, never half a batch.
  auto before = store->NewIterator(kDefault);
  KvBatch good;
  for (int i = 0; i < 100; ++i) good.Put(kDefault, fmt::format("k{:03}", i), "v");
  MustWrite(*store, good, true);
  before->SeekToFirst();
  CHECK_FALSE(before->Valid());
  auto after = store->NewIterator(kDefault);
  after->SeekToFirst();
  CHECK(Keys(*after).size() == 100);
}

// Write applies a batch in key order (for the memtable's sake); the result
// must be what applying the ops one by one in batch order gives.
TEST_CASE("KvStore: a batch means its ops in the order they were added") {
  ScratchDir dir;
  auto store = MustOpen(dir.Sub("db"), TestOptions());
  KvBatch seed;
  for (const char* k : {"b", "d", "m", "q"}) seed.Put(kMeta, k, "old");
  MustWrite(*store, seed);

  KvBatch b;
  b.Put(kMeta, "z", "1");
  b.Put(kMeta, "a", "1");
  b.Delete(kMeta, "a");       // put, then delete: gone
  b.Delete(kMeta, "b");
  b.Put(kMeta, "b", "2");     // delete, then put: there
  b.Put(kMeta, "c", "1");
  b.Put(kMeta, "c", "2");     // the last put wins
  b.Put(kMeta, "e", "1");     // before the range delete: deleted by it
  b.DeleteRange(kMeta, "d", "p");
  b.Put(kMeta, "f", "2");     // after the range delete: survives it
  b.Put(kDefault, "f", "other family");
  b.Delete(kMeta, "q");
  b.Put(kMeta, "n", "2");
  MustWrite(*store, b);

  auto it = store->NewIterator(kMeta);
  it->SeekToFirst();
  CHECK(Keys(*it) == std::vector<std::string>{"b", "c", "f", "n", "z"});
  CHECK(MustGet(*store, kMeta, "b") == "2");
  CHECK(MustGet(*store, kMeta, "c") == "2");
  CHECK(MustGet(*store, kMeta, "f") == "2");
  CHECK(MustGet(*store, kMeta, "m") == std::nullopt);
  CHECK(MustGet(*store, kDefault, "f") == "other family");
}

TEST_CASE("KvStore: iterator upper bound and same_prefix") {
  ScratchDir dir;
  auto store = MustOpen(dir.Sub("db"), TestOptions());
  KvBatch b;
  for (std::string p : {"aaaa", "aaab", "bbbb"}) {
    for (int i = 0; i < 3; ++i) {
      b.Put(kIndex, p + std::to_string(i), "v");
      b.Put(kMeta, p + std::to_string(i), "v");
    }
  }
  MustWrite(*store, b);
  store->Flush().IgnoreError();  // Half in SST files (with bloom filters)...
  KvBatch more;
  more.Put(kIndex, "aaaa9", "v");  // ...half in the memtable.
  more.Put(kMeta, "aaaa9", "v");
  MustWrite(*store, more);

  for (int cf : {kIndex, kMeta}) {
    CAPTURE(cf);
    auto bounded = store->NewIterator(cf, {.upper_bound = "aaab1", .same_prefix = false});
    bounded->Seek("aaaa1");
    CHECK(Keys(*bounded) == std::vector<std::string>{"aaaa1", "aaaa2", "aaaa9", "aaab0"});
    auto prefix = store->NewIterator(cf, {.upper_bound = "", .same_prefix = true});
    prefix->Seek("aaaa1");
    CHECK(Keys(*prefix) == std::vector<std::string>{"aaaa1", "aaaa2", "aaaa9"});
    prefix->Seek("aaab");
    CHECK(Keys(*prefix) == std::vector<std::string>{"aaab0", "aaab1", "aaab2"});
    prefix->Seek("cccc");
    CHECK_FALSE(prefix->Valid());
    auto all = store->NewIterator(cf);
    all->Seek("aaab");
    CHECK(Keys(*all).size() == 6);
  }
  // On a prefix family, a same_prefix Seek key must hold a whole prefix.
  auto prefix = store->NewIterator(kIndex, {.upper_bound = "", .same_prefix = true});
  prefix->Seek("aa");
  CHECK_FALSE(prefix->Valid());
  CHECK(prefix->status().code() == Code::kInvalidArgument);
}

TEST_CASE("KvStore: data persists across reopen") {
  ScratchDir dir;
  const std::string path = dir.Sub("db");
  {
    auto store = MustOpen(path, TestOptions());
    KvBatch b;
    b.Put(kMeta, "flushed", "1");
    MustWrite(*store, b, true);
    REQUIRE(store->Flush().ok());
    b.Clear();
    b.Put(kMeta, "wal-only", "2");
    MustWrite(*store, b, true);
    REQUIRE(store->Close().ok());
  }
  auto store = MustOpen(path, TestOptions(/*create=*/false));
  CHECK(MustGet(*store, kMeta, "flushed") == "1");
  CHECK(MustGet(*store, kMeta, "wal-only") == "2");
  store.reset();  // Destructor closes.

  // A family that is on disk but not requested is opened anyway.
  KvOptions fewer;
  fewer.column_families = {"default", "meta"};
  store = MustOpen(path, fewer);
  CHECK(MustGet(*store, kMeta, "wal-only") == "2");
  store.reset();
  KvOptions more = fewer;
  more.column_families.push_back("new");
  CHECK(KvStore::Open(path, more).status().code() == Code::kNotFound);
  more.create_if_missing = true;
  CHECK(KvStore::Open(path, more).ok());
}

TEST_CASE("KvStore: a memory-only iterator says WouldBlock where it needs a file") {
  ScratchDir dir;
  const std::string path = dir.Sub("db");
  {
    auto store = MustOpen(path, TestOptions());
    KvBatch b;
    b.Put(kIndex, "aaaa-on-disk", "1");
    MustWrite(*store, b, true);
    REQUIRE(store->Flush().ok());  // into a table file, out of the memtable
    REQUIRE(store->Close().ok());
  }
  auto store = MustOpen(path, TestOptions(/*create=*/false));
  KvBatch b;
  b.Put(kIndex, "bbbb-in-memtable", "2");
  MustWrite(*store, b);
  KvIteratorOptions mem{.upper_bound = "", .same_prefix = true, .memory_only = true};
  auto it = store->NewIterator(kIndex, mem);
  it->Seek("bbbb");
  REQUIRE(it->Valid());
  CHECK(it->key() == "bbbb-in-memtable");
  it->Seek("aaaa");  // its block was never read since the open
  CHECK_FALSE(it->Valid());
  CHECK(it->status().code() == Code::kWouldBlock);
  // A normal iterator reads the file, which brings the block into the
  // cache; then the memory-only one finds it too.
  auto disk = store->NewIterator(kIndex, KvIteratorOptions{.upper_bound = "", .same_prefix = true});
  disk->Seek("aaaa");
  REQUIRE(disk->Valid());
  CHECK(disk->key() == "aaaa-on-disk");
  auto again = store->NewIterator(kIndex, mem);
  again->Seek("aaaa");
  REQUIRE(again->Valid());
  CHECK(again->value() == "1");
}

TEST_CASE("KvStore: a second open of the same path is Unavailable") {
  ScratchDir dir;
  auto store = MustOpen(dir.Sub("db"), TestOptions());
  auto second = KvStore::Open(dir.Sub("db"), TestOptions());
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == Code::kUnavailable);
  CHECK(second.status().message().find("locked by another process") != std::string::npos);
  REQUIRE(store->Close().ok());
  CHECK(KvStore::Open(dir.Sub("db"), TestOptions()).ok());
}

TEST_CASE("KvStore: every call after Close is Unavailable") {
  ScratchDir dir;
  auto store = MustOpen(dir.Sub("db"), TestOptions());
  KvBatch b;
  b.Put(kDefault, "a", "1");
  b.Put(kDefault, "b", "2");
  MustWrite(*store, b);
  auto live = store->NewIterator(kDefault);
  live->SeekToFirst();
  REQUIRE(live->Valid());
  REQUIRE(store->Close().ok());

  CHECK_FALSE(live->Valid());  // Invalidated by Close, still safe to use.
  CHECK(live->status().code() == Code::kUnavailable);
  live->Next();
  CHECK(store->Get(kDefault, "a").status().code() == Code::kUnavailable);
  CHECK(store->Write(b, false).code() == Code::kUnavailable);
  CHECK(store->Flush().code() == Code::kUnavailable);
  CHECK(store->Close().code() == Code::kUnavailable);
  auto it = store->NewIterator(kDefault);
  it->SeekToFirst();
  CHECK_FALSE(it->Valid());
  CHECK(it->status().code() == Code::kUnavailable);
  live.reset();
}

}  // namespace
}  // namespace blockhaus::core
