#include "core/kv/kv_store.h"

#include <doctest/doctest.h>

#include "tests/test_util.h"

namespace blockhaus::core {
namespace {

using testing::TempDir;

std::unique_ptr<KvStore> Must(Result<std::unique_ptr<KvStore>> r) {
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return std::move(r).value();
}

KvOptions TwoFamilies(bool create, KvFaultInjector* fi = nullptr) {
  KvOptions o;
  o.column_families = {"default", "blocks"};
  o.create_if_missing = create;
  o.prefix_length = 4;
  o.prefix_families = {1};
  o.fault_injector = fi;
  return o;
}

TEST_CASE("kv: a missing store is NotFound unless created") {
  TempDir tmp;
  CHECK(KvStore::Open(tmp / "db", TwoFamilies(false)).status().code() == Code::kNotFound);
  CHECK(KvStore::Open(tmp / "db", TwoFamilies(true)).ok());
}

TEST_CASE("kv: batches apply atomically across families and persist") {
  TempDir tmp;
  {
    auto kv = Must(KvStore::Open(tmp / "db", TwoFamilies(true)));
    KvBatch b;
    b.Put(0, "a", "1");
    b.Put(1, "aaaa1", "x");
    b.Put(1, "aaaa2", "y");
    b.Put(1, "bbbb1", "z");
    CHECK(b.count() == 4);
    REQUIRE(kv->Write(b, true).ok());
    CHECK(**kv->Get(0, "a") == "1");
    CHECK(!kv->Get(1, "a")->has_value());  // families are separate
    KvBatch d;
    d.Delete(0, "a");
    d.DeleteRange(1, "aaaa2", "bbbb2");
    REQUIRE(kv->Write(d, true).ok());
    REQUIRE(kv->Close().ok());
    CHECK(kv->Get(0, "a").status().code() == Code::kUnavailable);
  }
  auto kv = Must(KvStore::Open(tmp / "db", TwoFamilies(false)));
  CHECK(!kv->Get(0, "a")->has_value());
  CHECK(**kv->Get(1, "aaaa1") == "x");
  CHECK(!kv->Get(1, "aaaa2")->has_value());
  CHECK(!kv->Get(1, "bbbb1")->has_value());
}

TEST_CASE("kv: iterators honour bounds, prefixes and total order") {
  TempDir tmp;
  auto kv = Must(KvStore::Open(tmp / "db", TwoFamilies(true)));
  KvBatch b;
  for (const char* k : {"aaaa1", "aaaa2", "bbbb1", "cccc1"}) b.Put(1, k, k);
  REQUIRE(kv->Write(b, false).ok());
  auto all = kv->NewIterator(1);
  int n = 0;
  for (all->SeekToFirst(); all->Valid(); all->Next()) ++n;
  CHECK(n == 4);  // Next() crosses prefixes without same_prefix
  auto bounded = kv->NewIterator(1, {.upper_bound = "bbbb2"});
  n = 0;
  for (bounded->Seek("aaaa2"); bounded->Valid(); bounded->Next()) ++n;
  CHECK(n == 2);
  auto prefixed = kv->NewIterator(1, {.upper_bound = "", .same_prefix = true});
  n = 0;
  for (prefixed->Seek("aaaa0"); prefixed->Valid(); prefixed->Next()) ++n;
  CHECK(n == 2);
}

TEST_CASE("kv: a second open of the same store is Unavailable") {
  TempDir tmp;
  auto kv = Must(KvStore::Open(tmp / "db", TwoFamilies(true)));
  CHECK(KvStore::Open(tmp / "db", TwoFamilies(false)).status().code() == Code::kUnavailable);
}

TEST_CASE("kv fault: power cut keeps synced batches and drops unsynced ones whole") {
  uint64_t seed = testing::TestSeed();
  MESSAGE("kv fault seed " << seed);
  TempDir tmp;
  for (int round = 0; round < 10; ++round) {
    KvFaultInjector fi(seed + static_cast<uint64_t>(round));
    uint64_t synced_upto = 0, written = 0;
    {
      auto kv = Must(KvStore::Open(tmp / "db", TwoFamilies(true, &fi)));
      auto prev = *kv->Get(0, "counter");
      written = prev ? std::stoull(*prev) : 0;
      synced_upto = written;
      for (int i = 0; i < 40; ++i) {
        KvBatch b;
        ++written;
        b.Put(0, "counter", std::to_string(written));
        for (int k = 0; k < 20; ++k) b.Put(1, "key" + std::to_string(k), std::to_string(written));
        bool sync = (i % 3 == 0);
        REQUIRE(kv->Write(b, sync).ok());
        if (sync) synced_upto = written;
      }
      fi.PowerCut(round % 2 == 1);
    }
    fi.Revive();
    auto kv = KvStore::Open(tmp / "db", TwoFamilies(false));
    REQUIRE_MESSAGE(kv.ok(), kv.status().ToString());
    uint64_t counter = std::stoull(**(*kv)->Get(0, "counter"));
    CHECK(counter >= synced_upto);
    CHECK(counter <= written);
    for (int k = 0; k < 20; ++k) {  // never a torn batch
      CHECK(**(*kv)->Get(1, "key" + std::to_string(k)) == std::to_string(counter));
    }
  }
}

TEST_CASE("kv fault: injected write and sync errors come back as errors") {
  TempDir tmp;
  KvFaultInjector fi(1);
  auto kv = Must(KvStore::Open(tmp / "db", TwoFamilies(true, &fi)));
  KvBatch b;
  b.Put(0, "k", "v");
  fi.FailNthWrite(1, /*enospc=*/true);
  CHECK(kv->Write(b, true).code() == Code::kResourceExhausted);
  fi.ClearFaults();
  kv.reset();
  auto again = Must(KvStore::Open(tmp / "db", TwoFamilies(false, &fi)));
  fi.FailNthSync(1);
  CHECK(!again->Write(b, true).ok());
}

}  // namespace
}  // namespace blockhaus::core
