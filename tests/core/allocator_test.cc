#include "core/alloc/allocator.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>

#include "core/alloc/allocator_format.h"

namespace blockhaus::core {
namespace {

AllocatorGeometry SmallGeometry() {
  // 4 slabs of 1 MiB after a 1 MiB reserved area, 4 KiB sectors.
  return AllocatorGeometry{1 << 20, 5 << 20, 12, 1 << 20};
}

TEST_CASE("allocator: fresh state is all free, allocations are contiguous") {
  Allocator a(SmallGeometry());
  CHECK(a.slab_count() == 4);
  CHECK(a.capacity() == (4u << 20));
  CHECK(a.free_bytes() == a.capacity());
  auto e1 = a.Allocate(10000);
  REQUIRE(e1.ok());
  CHECK(e1->offset == (1u << 20));
  CHECK(e1->length == 12288);  // rounded up to sectors
  auto e2 = a.Allocate(4096);
  REQUIRE(e2.ok());
  CHECK(e2->offset == e1->end());
  CHECK(a.allocated_bytes() == 16384);
}

TEST_CASE("allocator: ReserveHigh takes the top, Reserve the bottom, and they meet") {
  Allocator a(SmallGeometry());
  const uint64_t end = 5u << 20;
  auto top = a.ReserveHigh(16384, 16384);
  REQUIRE(top.ok());
  CHECK(top->end() == end);  // the last slab's last sectors
  CHECK(top->length == 16384);
  auto next = a.ReserveHigh(16384, 16384);
  REQUIRE(next.ok());
  CHECK(next->end() == top->offset);
  auto low = a.Reserve(16384, 16384);
  REQUIRE(low.ok());
  CHECK(low->offset == (1u << 20));  // the lowest, as ever
  CHECK(a.reserved_bytes() == 3 * 16384);
  // Given back, the top is the top again.
  a.Unreserve(*top);
  auto again = a.ReserveHigh(16384, 16384);
  REQUIRE(again.ok());
  CHECK(*again == *top);
  // Everything reserved from the top, up to and around the low one: no
  // overlap, and then nothing is left.
  a.Unreserve(*again);
  a.Unreserve(*next);
  std::vector<Extent> got{*low};
  for (;;) {
    auto e = a.ReserveHigh(4096, 1 << 20);
    if (!e.ok()) {
      CHECK(e.status().code() == Code::kResourceExhausted);
      break;
    }
    got.push_back(*e);
  }
  CHECK(a.free_bytes() == 0);
  std::sort(got.begin(), got.end(),
            [](const Extent& x, const Extent& y) { return x.offset < y.offset; });
  uint64_t total = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    total += got[i].length;
    if (i > 0) CHECK(got[i - 1].end() <= got[i].offset);
  }
  CHECK(total == a.capacity());
}

TEST_CASE("allocator: frees are deferred until their txg is released") {
  Allocator a(SmallGeometry());
  auto e = a.Allocate(1 << 20);  // a whole slab
  REQUIRE(e.ok());
  a.Free(7, *e);
  CHECK(a.deferred_bytes() == (1u << 20));
  CHECK(a.free_bytes() == (3u << 20));
  a.ReleaseDeferred(6);
  CHECK(a.deferred_bytes() == (1u << 20));
  a.ReleaseDeferred(7);
  CHECK(a.deferred_bytes() == 0);
  CHECK(a.free_bytes() == (4u << 20));
  CHECK(a.AllocatedExtents().empty());
}

TEST_CASE("allocator: deferred frees can be released a slice at a time") {
  Allocator a(SmallGeometry());
  std::vector<Extent> held;
  for (int i = 0; i < 10; ++i) held.push_back(*a.Allocate(4096));
  for (int i = 0; i < 4; ++i) a.Free(3, held[i]);
  for (int i = 4; i < 10; ++i) a.Free(5, held[i]);
  const uint64_t free_before = a.free_bytes();
  // txg 3's four extents, and txg 5's wait: at most three per call.
  CHECK_FALSE(a.ReleaseDeferred(4, 3));
  CHECK(a.free_bytes() == free_before + 3 * 4096);
  CHECK(a.ReleaseDeferred(4, 3));
  CHECK(a.free_bytes() == free_before + 4 * 4096);
  CHECK(a.deferred_bytes() == 6 * 4096);
  CHECK(a.ReleaseDeferred(4, 3));  // nothing left at or below txg 4
  // Exactly a slice's worth: done in one call.
  CHECK(a.ReleaseDeferred(5, 6));
  CHECK(a.deferred_bytes() == 0);
  CHECK(a.free_bytes() == free_before + 10 * 4096);
  CHECK(a.ReleaseDeferred(5, 0));
  CHECK(a.AllocatedExtents().empty());
}

TEST_CASE("allocator: exhaustion is ResourceExhausted, never a wrong extent") {
  Allocator a(SmallGeometry());
  for (int i = 0; i < 4; ++i) REQUIRE(a.Allocate(1 << 20).ok());
  auto e = a.Allocate(4096);
  CHECK(!e.ok());
  CHECK(e.status().code() == Code::kResourceExhausted);
}

TEST_CASE("allocator: an extent larger than any free run fails even with enough total") {
  Allocator a(SmallGeometry());
  std::vector<Extent> held;
  for (int i = 0; i < 256 * 4; ++i) held.push_back(*a.Allocate(4096));
  for (size_t i = 0; i < held.size(); i += 2) a.Free(1, held[i]);
  a.ReleaseDeferred(1);
  CHECK(a.free_bytes() == (2u << 20));
  CHECK(a.Allocate(8192).status().code() == Code::kResourceExhausted);
  CHECK(a.Allocate(4096).ok());
}

// Loads records as the pool does: maps, then each slab's logs in txg order
// (the order of their keys).
void Load(Allocator& b, std::vector<Allocator::SlabRecord> records) {
  std::stable_sort(records.begin(), records.end(), [](const auto& x, const auto& y) {
    return std::pair(x.slab, x.txg) < std::pair(y.slab, y.txg);
  });
  for (const auto& r : records) {
    if (r.txg == 0) {
      REQUIRE(b.LoadSlab(r.slab, r.value).ok());
    } else {
      REQUIRE(b.LoadSlabLog(r.slab, r.value).ok());
    }
  }
}

TEST_CASE("allocator: dirty slabs persist and reload to the same state") {
  Allocator a(SmallGeometry());
  auto first = a.TakeDirtySlabs(1);
  CHECK(first.size() == 4);  // a fresh allocator writes every slab's map once
  for (const auto& r : first) CHECK(r.txg == 0);
  auto e1 = *a.Allocate(64 << 10);
  auto e2 = *a.Allocate(64 << 10);
  a.Free(3, e1);
  auto logs = a.TakeDirtySlabs(3);
  REQUIRE(logs.size() == 1);  // only the slab that changed, as a log record
  CHECK(logs[0].txg == 3);
  CHECK(a.TakeDirtySlabs(4).empty());

  Allocator b(SmallGeometry());
  first.insert(first.end(), logs.begin(), logs.end());
  Load(b, first);
  // The persisted form counts the deferred free as free (after a crash at
  // txg 3 that block is unreferenced).
  CHECK(b.allocated_bytes() == e2.length);
  CHECK(b.AllocatedExtents() == std::vector<Extent>{e2});
}

TEST_CASE("allocator: a slab's log is condensed into its map") {
  Allocator a(SmallGeometry());
  std::vector<Allocator::SlabRecord> disk = a.TakeDirtySlabs(1);
  std::mt19937_64 rng(7);
  std::vector<Extent> held;
  size_t maps = 0, logs = 0;
  for (uint64_t txg = 2; txg < 400; ++txg) {
    for (int i = 0; i < 8; ++i) {
      if (!held.empty() && rng() % 2 == 0) {
        size_t k = rng() % held.size();
        a.Free(txg, held[k]);
        held.erase(held.begin() + static_cast<long>(k));
      } else if (auto e = a.Allocate(4096 * (1 + rng() % 4)); e.ok()) {
        held.push_back(*e);
      }
    }
    for (auto& r : a.TakeDirtySlabs(txg)) {
      if (r.txg == 0) {
        ++maps;
        // The map replaces every log record of its slab.
        std::erase_if(disk, [&](const auto& d) { return d.slab == r.slab; });
      } else {
        ++logs;
      }
      disk.push_back(std::move(r));
    }
    a.ReleaseDeferred(txg);
    if (txg % 50 == 0) {
      Allocator b(SmallGeometry());
      Load(b, disk);
      CHECK(b.AllocatedExtents() == a.AllocatedExtents());
      CHECK(b.free_bytes() == a.free_bytes() + a.deferred_bytes());
    }
  }
  CHECK(logs > maps);
  CHECK(maps > 0);  // the logs were condensed at least once
  size_t ops_on_disk = 0;
  for (const auto& r : disk) {
    if (r.txg != 0) ops_on_disk += (r.value.size() - kSlabMapHeaderSize) / kSlabMapEntrySize;
  }
  CHECK(ops_on_disk <= 4 * 2 * 256 + 4 * 8);  // bounded by the condensing rule
}

// The commit builds the slab records a slab or two at a time, letting
// writers reserve and unreserve in between (D40): the records must be the
// ones a single call makes.
TEST_CASE("allocator: slab records built in steps equal those of one call") {
  Allocator whole(SmallGeometry()), steps(SmallGeometry());
  std::mt19937_64 rng(11);
  std::vector<Extent> held;
  size_t maps = 0, step_calls = 0;
  for (uint64_t txg = 1; txg < 300; ++txg) {
    for (int i = 0; i < 8; ++i) {
      if (!held.empty() && rng() % 2 == 0) {
        size_t k = rng() % held.size();
        whole.Free(txg, held[k]);
        steps.Free(txg, held[k]);
        held.erase(held.begin() + static_cast<long>(k));
      } else {
        const uint64_t len = 4096 * (1 + rng() % 4);
        auto e = whole.Allocate(len);
        auto f = steps.Allocate(len);
        REQUIRE(e.ok() == f.ok());
        if (e.ok()) {
          REQUIRE(*e == *f);
          held.push_back(*e);
        }
      }
    }
    // A reservation held over the whole commit, beside the parked frees.
    auto r1 = whole.Reserve(8192, 8192);
    auto r2 = steps.Reserve(8192, 8192);
    REQUIRE(r1.ok());
    REQUIRE(r2.ok());
    REQUIRE(*r1 == *r2);
    std::vector<Allocator::SlabRecord> one = whole.TakeDirtySlabs(txg);
    Allocator::SlabRecordCursor c = steps.BeginSlabRecords(txg);
    for (bool done = false; !done; ++step_calls) {
      // Writers between the steps: a reservation made and given back.
      auto w = steps.Reserve(4096, 4096);
      done = steps.StepSlabRecords(c, 1);
      if (w.ok()) steps.Unreserve(*w);
    }
    REQUIRE(c.records.size() == one.size());
    for (size_t k = 0; k < one.size(); ++k) {
      CHECK(c.records[k].slab == one[k].slab);
      CHECK(c.records[k].txg == one[k].txg);
      CHECK(c.records[k].value == one[k].value);
      if (one[k].txg == 0) ++maps;
    }
    whole.Unreserve(*r1);
    steps.Unreserve(*r2);
    whole.ReleaseDeferred(txg);
    steps.ReleaseDeferred(txg);
  }
  CHECK(maps > 4);  // full maps were built, not only logs
  CHECK(step_calls > 300);  // and in more than one step a txg
}

TEST_CASE("allocator: reservations are free on disk until committed") {
  Allocator a(SmallGeometry());
  std::vector<Allocator::SlabRecord> disk = a.TakeDirtySlabs(1);
  auto apply = [&](std::vector<Allocator::SlabRecord> records) {
    for (auto& r : records) {
      if (r.txg == 0) std::erase_if(disk, [&](const auto& d) { return d.slab == r.slab; });
      disk.push_back(std::move(r));
    }
  };
  // What a crash now would reopen: the reservations are free there.
  auto check_disk = [&] {
    Allocator b(SmallGeometry());
    Load(b, disk);
    CHECK(b.AllocatedExtents() == a.AllocatedExtents());
    CHECK(b.free_bytes() == a.free_bytes() + a.deferred_bytes() + a.reserved_bytes());
  };
  // One run for three blocks: the first committed, the second given back,
  // the third still reserved across a txg boundary.
  auto run = a.Reserve(4096, 3 * 4096);
  REQUIRE(run.ok());
  CHECK(run->length == 3 * 4096);
  CHECK(a.reserved_bytes() == 3 * 4096);
  CHECK(a.allocated_bytes() == 0);
  CHECK(a.AllocatedExtents().empty());
  // Another reservation never overlaps it.
  auto other = a.Reserve(4096, 4096);
  REQUIRE(other.ok());
  CHECK(other->offset >= run->end());
  a.Commit(Extent{run->offset, 4096});
  a.Unreserve(Extent{run->offset + 4096, 4096});
  CHECK(a.reserved_bytes() == 2 * 4096);
  CHECK(a.allocated_bytes() == 4096);
  CHECK(a.AllocatedExtents() == std::vector<Extent>{Extent{run->offset, 4096}});
  apply(a.TakeDirtySlabs(2));
  check_disk();
  // The space given back is reused first (lowest address).
  auto again = a.Reserve(4096, 4096);
  REQUIRE(again.ok());
  CHECK(again->offset == run->offset + 4096);
  a.Unreserve(*again);
  // Many txgs of random traffic, slabs condensed into maps while
  // reservations are out: every state on disk matches the committed one.
  std::mt19937_64 rng(11);
  std::vector<Extent> reserved{Extent{run->offset + 2 * 4096, 4096}, *other};
  std::vector<Extent> committed{Extent{run->offset, 4096}};
  for (uint64_t txg = 3; txg < 300; ++txg) {
    for (int i = 0; i < 12; ++i) {
      uint64_t op = rng() % 4;
      if (op == 0 && !reserved.empty()) {
        size_t k = rng() % reserved.size();
        a.Commit(reserved[k]);
        committed.push_back(reserved[k]);
        reserved.erase(reserved.begin() + static_cast<long>(k));
      } else if (op == 1 && !reserved.empty()) {
        size_t k = rng() % reserved.size();
        a.Unreserve(reserved[k]);
        reserved.erase(reserved.begin() + static_cast<long>(k));
      } else if (op == 2 && !committed.empty()) {
        size_t k = rng() % committed.size();
        a.Free(txg, committed[k]);
        committed.erase(committed.begin() + static_cast<long>(k));
      } else if (auto e = a.Reserve(4096, 4096 * (1 + rng() % 4)); e.ok()) {
        // Blocks of one sector each, as the pool cuts a run.
        for (uint64_t off = e->offset; off < e->end(); off += 4096) {
          reserved.push_back(Extent{off, 4096});
        }
      }
    }
    apply(a.TakeDirtySlabs(txg));
    a.ReleaseDeferred(txg);  // on disk, this txg's frees are free
    check_disk();
  }
  uint64_t held = 0;
  for (const Extent& e : reserved) held += e.length;
  CHECK(a.reserved_bytes() == held);
}

TEST_CASE("allocator: a log that contradicts its map is corruption") {
  Allocator a(SmallGeometry());
  auto maps = a.TakeDirtySlabs(1);
  Allocator b(SmallGeometry());
  Load(b, maps);
  // Frees space that is free; allocates space that is not free.
  CHECK(b.LoadSlabLog(0, EncodeSlabLog({{true, 0, 1}})).code() == Code::kCorruption);
  REQUIRE(b.LoadSlabLog(0, EncodeSlabLog({{false, 0, 4}})).ok());
  CHECK(b.LoadSlabLog(0, EncodeSlabLog({{false, 2, 1}})).code() == Code::kCorruption);
  CHECK(b.LoadSlabLog(0, EncodeSlabLog({{true, 1, 1}})).ok());
  CHECK(b.LoadSlabLog(9, EncodeSlabLog({})).code() == Code::kInvalidArgument);
}

TEST_CASE("allocator format: golden bytes and strict decoding") {
  SectorRanges r = {{0, 2}, {10, 5}};
  std::string enc = EncodeSlabMap(r);
  const std::string golden("\x01\x00\x00\x00\x02\x00\x00\x00"
                           "\x00\x00\x00\x00\x02\x00\x00\x00"
                           "\x0a\x00\x00\x00\x05\x00\x00\x00", 24);
  CHECK(enc == golden);
  auto dec = DecodeSlabMap(enc, 256);
  REQUIRE(dec.ok());
  CHECK(*dec == r);
  CHECK(DecodeSlabMap(enc, 12).status().code() == Code::kCorruption);  // beyond slab
  CHECK(DecodeSlabMap(enc.substr(0, 20), 256).status().code() == Code::kCorruption);
  SectorRanges overlap = {{0, 5}, {3, 5}};
  CHECK(DecodeSlabMap(EncodeSlabMap(overlap), 256).status().code() == Code::kCorruption);
  std::string bad = enc;
  bad[0] = 9;
  CHECK(DecodeSlabMap(bad, 256).status().code() == Code::kCorruption);
}

TEST_CASE("allocator format: slab log golden bytes and strict decoding") {
  std::vector<SlabOp> ops = {{false, 3, 2}, {true, 16, 1}};
  std::string enc = EncodeSlabLog(ops);
  const std::string golden("\x01\x00\x00\x00\x02\x00\x00\x00"
                           "\x03\x00\x00\x00\x02\x00\x00\x00"
                           "\x10\x00\x00\x00\x01\x00\x00\x80", 24);
  CHECK(enc == golden);
  auto dec = DecodeSlabLog(enc, 256);
  REQUIRE(dec.ok());
  CHECK(*dec == ops);
  CHECK(DecodeSlabLog(enc, 16).status().code() == Code::kCorruption);  // beyond slab
  CHECK(DecodeSlabLog(enc.substr(0, 20), 256).status().code() == Code::kCorruption);
  CHECK(DecodeSlabLog(EncodeSlabLog({{true, 0, 0}}), 256).status().code() == Code::kCorruption);
  std::string bad = enc;
  bad[0] = 9;
  CHECK(DecodeSlabLog(bad, 256).status().code() == Code::kCorruption);
}

TEST_CASE("allocator: LoadSlab rejects unknown slabs") {
  Allocator a(SmallGeometry());
  CHECK(a.LoadSlab(99, EncodeSlabMap({})).code() == Code::kInvalidArgument);
}

TEST_CASE("allocator: runs are cut to what is wanted and unused tails come back") {
  Allocator a(SmallGeometry());
  auto run = a.AllocateRun(4096, 3 << 20);  // no slab holds 3 MiB
  REQUIRE(run.ok());
  CHECK(run->length == (1u << 20));  // the first slab, whole
  a.Return(Extent{run->offset + 8192, run->length - 8192});
  CHECK(a.allocated_bytes() == 8192);
  auto next = a.AllocateRun(4096, 4096);
  REQUIRE(next.ok());
  CHECK(next->offset == run->offset + 8192);  // the returned tail, at once
  CHECK(a.AllocateRun(2 << 20, 2 << 20).status().code() == Code::kResourceExhausted);
}

TEST_CASE("allocator: low space first, and whole runs before small holes") {
  Allocator a(SmallGeometry());
  const uint64_t base = 1 << 20;
  // Fill the first two slabs, then free two 8K holes in the first and a
  // 512K stretch in the second.
  std::vector<Extent> held;
  for (int i = 0; i < 512; ++i) held.push_back(*a.Allocate(4096));
  a.Free(1, Extent{held[10].offset, 8192});
  a.Free(1, Extent{held[300].offset, 128 * 4096});
  a.ReleaseDeferred(1);
  // One block goes into the lowest hole, not into the fresh third slab.
  auto one = a.AllocateRun(4096, 4096);
  REQUIRE(one.ok());
  CHECK(one->offset == held[10].offset);
  // A 256K run skips the 4K left of that hole and takes the 512K stretch
  // whole: it holds the run, so the run stays one write.
  auto run = a.AllocateRun(4096, 256 << 10);
  REQUIRE(run.ok());
  CHECK(run->offset == held[300].offset);
  CHECK(run->length == (256u << 10));
  // 2 MiB wanted, no extent that long: the lowest 1 MiB extent (the fresh
  // third slab: the rest of the stretch is 256K), whole.
  auto big = a.AllocateRun(4096, 2 << 20);
  REQUIRE(big.ok());
  CHECK(big->offset == base + (2u << 20));
  CHECK(big->length == (1u << 20));
  // With nothing of a good length left below, the next block fills holes
  // from the bottom again: the 4K left of the first hole.
  REQUIRE(a.AllocateRun(4096, 4096).ok());
  auto low = a.AllocateRun(4096, 1 << 20);
  REQUIRE(low.ok());
  CHECK(low->offset == base + (3u << 20));  // the last slab holds 1 MiB
  auto hole = a.AllocateRun(4096, 4096);
  REQUIRE(hole.ok());
  CHECK(hole->offset == held[300].offset + (256u << 10));  // the stretch's rest
}

}  // namespace
}  // namespace blockhaus::core
