// Rename, holds, inherit, resize, diff and promote (issue 3), through the
// VolumeManager API. Each test ends by destroying everything and checking
// that the pool is empty and scrub is clean, so leaks and double frees of
// the lineage-rewriting operations show up here.

#include <doctest/doctest.h>

#include "tests/test_util.h"
#include "volume/volume_manager.h"

namespace blockhaus::volume {
namespace {

using testing::PatternBlock;
using testing::TempDir;

constexpr uint32_t kBs = 4096;

struct Rig {
  TempDir tmp;
  std::unique_ptr<core::Pool> pool;
  std::unique_ptr<VolumeManager> vm;

  Rig() {
    core::PoolCreateOptions o;
    o.name = "tank";
    o.data_size = 64 << 20;
    REQUIRE(core::Pool::Create(tmp / "pool", o).ok());
    pool = std::move(core::Pool::Open(tmp / "pool")).value();
    Reopen();
  }
  void Reopen() {
    vm.reset();
    VolumeManagerOptions vo;
    vo.start_coalescer = false;
    vo.coalesce_batch = 3;
    auto r = VolumeManager::Open(pool.get(), vo);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    vm = std::move(r).value();
  }
  void Create(const std::string& name, uint64_t blocks) {
    VolumeProps p;
    p.volsize = blocks * kBs;
    p.volblocksize = kBs;
    REQUIRE(vm->CreateVolume(name, p).ok());
  }
  void Ok(const Status& s) { REQUIRE_MESSAGE(s.ok(), s.ToString()); }
  // Writes block b of `name` with pattern `tag` (0: unmap).
  void Put(const std::string& name, uint64_t b, uint64_t tag) {
    auto dev = std::move(vm->OpenDevice(name)).value();
    if (tag == 0) {
      Ok(dev->Unmap(b * kBs, kBs));
    } else {
      Ok(dev->Write(b * kBs, PatternBlock(kBs, 1, tag)));
    }
  }
  // The tags of every block (0: zeros, ~0: unknown contents).
  std::vector<uint64_t> Tags(const std::string& name, uint64_t max_tag = 64) {
    auto dev = std::move(vm->OpenDevice(name)).value();
    std::vector<uint64_t> out;
    std::vector<uint8_t> buf(kBs);
    for (uint64_t b = 0; b < dev->size() / kBs; ++b) {
      Ok(dev->Read(b * kBs, buf));
      uint64_t tag = ~0ull;
      if (buf == std::vector<uint8_t>(kBs, 0)) tag = 0;
      for (uint64_t t = 1; t <= max_tag && tag == ~0ull; ++t) {
        if (buf == PatternBlock(kBs, 1, t)) tag = t;
      }
      out.push_back(tag);
    }
    return out;
  }
  void DestroyAllAndCheckEmpty() {
    for (const Dataset& d : vm->List()) {
      if (d.is_snapshot()) {
        for (const auto& [tag, when] : d.holds) Ok(vm->Release(tag, d.name));
      }
    }
    while (!vm->List().empty()) {
      // Volumes that are not the origin of anything first (-R does the rest).
      Ok(vm->Destroy(vm->List().front().name.substr(0, vm->List().front().name.find('@')),
                     true, true));
    }
    auto steps = vm->DrainCoalescer(100000);
    REQUIRE(steps.ok());
    Ok(pool->Flush().status());
    CHECK(pool->stats().allocated == 0);
    CHECK(pool->ListLineages().empty());
    Scrub();
  }
  void Scrub() {
    auto r = pool->Scrub();
    REQUIRE(r.ok());
    for (const auto& p : r->problems) MESSAGE(p);
    CHECK(r->clean());
  }
};

TEST_CASE("rename: a volume takes its snapshots along; identity stays") {
  Rig rig;
  rig.Create("v", 4);
  rig.Put("v", 0, 1);
  rig.Ok(rig.vm->Snapshot({"v@a"}));
  rig.Ok(rig.vm->Clone("v@a", "c", {}));
  auto dev = std::move(rig.vm->OpenDevice("v")).value();
  uint64_t guid = rig.vm->Get("v")->guid, snap_guid = rig.vm->Get("v@a")->guid;
  rig.Ok(rig.vm->Rename("v", "w"));
  CHECK(rig.vm->Get("v").status().code() == Code::kNotFound);
  CHECK(rig.vm->Get("v@a").status().code() == Code::kNotFound);
  CHECK(rig.vm->Get("w")->guid == guid);
  CHECK(rig.vm->Get("w@a")->guid == snap_guid);
  CHECK(rig.vm->Get("c")->origin_id == rig.vm->Get("w@a")->id);
  rig.Ok(dev->Write(kBs, PatternBlock(kBs, 1, 2)));  // an open device keeps working
  CHECK(rig.Tags("w") == std::vector<uint64_t>{1, 2, 0, 0});
  rig.Ok(rig.vm->Rename("w@a", "w@b"));
  CHECK(rig.Tags("w@b") == std::vector<uint64_t>{1, 0, 0, 0});
  rig.Reopen();
  CHECK(rig.vm->Get("w@b")->guid == snap_guid);
  CHECK(rig.vm->Get("c")->origin_id == rig.vm->Get("w@b")->id);

  CHECK(rig.vm->Rename("w", "c").code() == Code::kAlreadyExists);
  CHECK(rig.vm->Rename("nosuch", "x").code() == Code::kNotFound);
  CHECK(rig.vm->Rename("w@b", "c@b").code() == Code::kInvalidArgument);
  CHECK(rig.vm->Rename("w@b", "x").code() == Code::kInvalidArgument);
  CHECK(rig.vm->Rename("w", "x@y").code() == Code::kInvalidArgument);
  CHECK(rig.vm->Rename("w", "bad name").code() == Code::kInvalidArgument);
  rig.Ok(rig.vm->Snapshot({"w@c"}));
  CHECK(rig.vm->Rename("w@b", "w@c").code() == Code::kAlreadyExists);
  rig.DestroyAllAndCheckEmpty();
}

TEST_CASE("holds: a held snapshot cannot be destroyed, by any route") {
  Rig rig;
  rig.Create("v", 2);
  rig.Ok(rig.vm->Snapshot({"v@a"}));
  rig.Ok(rig.vm->Snapshot({"v@b"}));
  rig.Ok(rig.vm->Clone("v@a", "c", {}));
  rig.Ok(rig.vm->Snapshot({"c@x"}));
  rig.Ok(rig.vm->Hold("keep", "v@b"));
  rig.Ok(rig.vm->Hold("backup", "v@b"));
  rig.Ok(rig.vm->Hold("keep", "c@x"));
  CHECK(rig.vm->Hold("keep", "v@b").code() == Code::kAlreadyExists);
  CHECK(rig.vm->Hold("keep", "v").code() == Code::kInvalidArgument);
  CHECK(rig.vm->Hold("", "v@b").code() == Code::kInvalidArgument);
  CHECK(rig.vm->Hold("t", "v@nosuch").code() == Code::kNotFound);
  CHECK(rig.vm->Release("nosuch", "v@b").code() == Code::kNotFound);
  CHECK(rig.vm->Get("v@b")->holds.size() == 2);

  Status s = rig.vm->Destroy("v@b", false, false);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("held by tag") != std::string::npos);
  CHECK(rig.vm->Destroy("v", true, false).code() == Code::kFailedPrecondition);
  s = rig.vm->Destroy("v", true, true);  // c@x, reached through -R, is held too
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(rig.vm->Rollback("v@a", true).code() == Code::kFailedPrecondition);
  CHECK(rig.vm->List().size() == 5);  // nothing went

  rig.Reopen();  // holds are durable
  CHECK(rig.vm->Get("v@b")->holds.contains("backup"));
  rig.Ok(rig.vm->Release("keep", "v@b"));
  CHECK(rig.vm->Destroy("v@b", false, false).code() == Code::kFailedPrecondition);
  rig.Ok(rig.vm->Release("backup", "v@b"));
  rig.Ok(rig.vm->Destroy("v@b", false, false));
  CHECK(rig.vm->Destroy("v", true, true).code() == Code::kFailedPrecondition);  // c@x
  rig.DestroyAllAndCheckEmpty();
}

TEST_CASE("inherit: user properties go, compression and checksum revert") {
  Rig rig;
  rig.Create("v", 2);
  CHECK(PropertySource(*rig.vm->Get("v"), "compression") == "default");
  rig.Ok(rig.vm->SetProperty("v", "compression", "zstd-3"));
  rig.Ok(rig.vm->SetProperty("v", "checksum", "sha256"));
  rig.Ok(rig.vm->SetProperty("v", "org:owner", "ops"));
  Dataset d = *rig.vm->Get("v");
  CHECK(PropertySource(d, "compression") == "local");
  CHECK(PropertySource(d, "checksum") == "local");
  CHECK(PropertySource(d, "org:owner") == "local");
  CHECK(PropertySource(d, "volsize") == "local");
  CHECK(PropertySource(d, "volblocksize") == "-");
  CHECK(PropertySource(d, "guid") == "-");
  rig.Ok(rig.vm->InheritProperty("v", "compression"));
  rig.Ok(rig.vm->InheritProperty("v", "checksum"));
  rig.Ok(rig.vm->InheritProperty("v", "org:owner"));
  rig.Ok(rig.vm->InheritProperty("v", "org:never-set"));  // as zfs: nothing to do
  rig.Reopen();
  d = *rig.vm->Get("v");
  VolumeProps defaults;
  CHECK(d.props.compression == defaults.compression);
  CHECK(d.props.checksum == defaults.checksum);
  CHECK(d.props.user.empty());
  CHECK(PropertySource(d, "compression") == "default");
  CHECK(rig.vm->InheritProperty("v", "volsize").code() == Code::kInvalidArgument);
  CHECK(rig.vm->InheritProperty("v", "used").code() == Code::kInvalidArgument);
  CHECK(rig.vm->InheritProperty("v", "bogus").code() == Code::kInvalidArgument);
  CHECK(rig.vm->InheritProperty("nosuch", "compression").code() == Code::kNotFound);
  rig.Ok(rig.vm->Snapshot({"v@s"}));
  CHECK(rig.vm->InheritProperty("v@s", "compression").code() == Code::kInvalidArgument);
  rig.DestroyAllAndCheckEmpty();
}

TEST_CASE("resize: grow, shrink needs force past data, snapshots keep theirs") {
  Rig rig;
  rig.Create("v", 8);
  for (uint64_t b = 0; b < 8; ++b) rig.Put("v", b, b + 1);
  auto dev = std::move(rig.vm->OpenDevice("v")).value();
  rig.Ok(rig.vm->Snapshot({"v@full"}));
  rig.Put("v", 7, 20);  // head-only version past the new end: freed by the shrink
  Status s = rig.vm->Resize("v", 4 * kBs, false);
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("-f") != std::string::npos);
  CHECK(rig.vm->Get("v")->props.volsize == 8 * kBs);
  CHECK(rig.vm->Resize("v", 3000, true).code() == Code::kInvalidArgument);
  CHECK(rig.vm->Resize("v@full", 4 * kBs, true).code() == Code::kInvalidArgument);
  rig.Ok(rig.vm->Resize("v", 4 * kBs, true));
  CHECK(dev->size() == 4 * kBs);  // an open device follows
  std::vector<uint8_t> buf(kBs);
  CHECK(dev->Read(4 * kBs, buf).code() == Code::kInvalidArgument);
  CHECK(rig.Tags("v") == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(rig.Tags("v@full") == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8});
  rig.Ok(rig.vm->Resize("v", 10 * kBs, false));  // grow: the cut part reads as zeros
  CHECK(rig.Tags("v") == std::vector<uint64_t>{1, 2, 3, 4, 0, 0, 0, 0, 0, 0});
  rig.Ok(rig.vm->Resize("v", 6 * kBs, false));  // nothing written past 6 blocks
  rig.Scrub();

  // A clone: what shows through from the origin is cut too.
  rig.Ok(rig.vm->Clone("v@full", "c", {}));
  CHECK(rig.vm->Resize("c", 2 * kBs, false).code() == Code::kFailedPrecondition);
  rig.Ok(rig.vm->Resize("c", 2 * kBs, true));
  rig.Ok(rig.vm->SetProperty("c", "volsize", std::to_string(8 * kBs)));
  CHECK(rig.Tags("c") == std::vector<uint64_t>{1, 2, 0, 0, 0, 0, 0, 0});
  // Rollback restores the snapshot's size and contents.
  rig.Ok(rig.vm->Rollback("v@full", false));
  CHECK(rig.Tags("v") == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8});
  rig.Scrub();
  rig.DestroyAllAndCheckEmpty();
}

std::vector<VolumeManager::ByteRange> Ranges(std::initializer_list<std::pair<uint64_t, uint64_t>> blocks) {
  std::vector<VolumeManager::ByteRange> out;
  for (auto [first, n] : blocks) out.push_back({first * kBs, n * kBs});
  return out;
}

TEST_CASE("diff: changed ranges between views, coalesced") {
  Rig rig;
  rig.Create("v", 16);
  for (uint64_t b : {0, 1, 2, 8}) rig.Put("v", b, b + 1);
  rig.Ok(rig.vm->Snapshot({"v@a"}));
  for (uint64_t b : {2, 3, 4}) rig.Put("v", b, 30 + b);
  rig.Put("v", 8, 0);   // unmapped: changed
  rig.Put("v", 12, 0);  // unmap of a never-written block: not a change
  rig.Ok(rig.vm->Snapshot({"v@b"}));
  rig.Put("v", 15, 9);
  auto d = rig.vm->Diff("v@a", "v@b");
  REQUIRE(d.ok());
  CHECK(*d == Ranges({{2, 3}, {8, 1}}));
  d = rig.vm->Diff("v@a", "v");  // the head, dirty data included
  REQUIRE(d.ok());
  CHECK(*d == Ranges({{2, 3}, {8, 1}, {15, 1}}));
  d = rig.vm->Diff("v@b", "v");
  CHECK(*d == Ranges({{15, 1}}));
  rig.Ok(rig.vm->Clone("v@a", "c", {}));
  rig.Put("c", 5, 40);
  rig.Put("c", 6, 41);
  rig.Put("c", 0, 0);
  d = rig.vm->Diff("v@a", "c");
  REQUIRE(d.ok());
  CHECK(*d == Ranges({{0, 1}, {5, 2}}));
  CHECK(rig.vm->Diff("v@b", "v@a").status().code() == Code::kInvalidArgument);
  CHECK(rig.vm->Diff("v@b", "c").status().code() == Code::kInvalidArgument);
  CHECK(rig.vm->Diff("v", "v@a").status().code() == Code::kInvalidArgument);
  CHECK(rig.vm->Diff("v@zz", "v").status().code() == Code::kNotFound);
  rig.DestroyAllAndCheckEmpty();
}

TEST_CASE("promote: the clone takes the history, the origin becomes its clone") {
  Rig rig;
  rig.Create("o", 8);
  rig.Put("o", 0, 1);
  rig.Put("o", 1, 2);
  rig.Ok(rig.vm->Snapshot({"o@s1"}));
  rig.Put("o", 1, 3);
  rig.Put("o", 2, 4);
  rig.Ok(rig.vm->Snapshot({"o@s2"}));
  rig.Put("o", 2, 5);
  rig.Ok(rig.vm->Snapshot({"o@s3"}));
  rig.Put("o", 3, 6);
  rig.Put("o", 0, 0);
  rig.Ok(rig.vm->Clone("o@s2", "c", {}));
  rig.Put("c", 1, 7);
  rig.Ok(rig.vm->Snapshot({"c@c1"}));
  rig.Put("c", 1, 8);
  rig.Put("c", 4, 9);
  rig.Ok(rig.vm->Clone("o@s3", "d", {}));  // a clone of a snapshot that stays with o
  rig.Ok(rig.vm->Clone("c@c1", "e", {}));  // a clone of the promoted volume's snapshot
  auto before_names = std::vector<std::string>{"o", "o@s1", "o@s2", "o@s3", "c", "c@c1", "d", "e"};
  std::map<std::string, std::vector<uint64_t>> before;
  for (const auto& n : before_names) before[n] = rig.Tags(n);
  auto c_dev = std::move(rig.vm->OpenDevice("c")).value();
  auto o_dev = std::move(rig.vm->OpenDevice("o")).value();
  uint64_t s2_guid = rig.vm->Get("o@s2")->guid;

  CHECK(rig.vm->Promote("o").code() == Code::kFailedPrecondition);
  CHECK(rig.vm->Promote("nosuch").code() == Code::kNotFound);
  rig.Ok(rig.vm->Promote("c"));
  std::map<std::string, std::string> renamed = {{"o@s1", "c@s1"}, {"o@s2", "c@s2"}};
  auto check_views = [&] {
    for (const auto& n : before_names) {
      std::string now = renamed.contains(n) ? renamed[n] : n;
      CHECK_MESSAGE(rig.Tags(now) == before[n], now);
    }
  };
  check_views();
  CHECK(rig.vm->Get("o@s1").status().code() == Code::kNotFound);
  CHECK(rig.vm->Get("c@s2")->guid == s2_guid);
  CHECK(rig.vm->Get("c")->origin_id == 0);
  CHECK(rig.vm->Get("o")->origin_id == rig.vm->Get("c@s2")->id);
  CHECK(rig.vm->Get("o@s3").ok());
  CHECK(rig.vm->Promote("c").code() == Code::kFailedPrecondition);
  // Open devices write to the right lineages.
  rig.Ok(c_dev->Write(5 * kBs, PatternBlock(kBs, 1, 10)));
  rig.Ok(o_dev->Write(5 * kBs, PatternBlock(kBs, 1, 11)));
  CHECK(rig.Tags("c")[5] == 10);
  CHECK(rig.Tags("o")[5] == 11);
  CHECK(rig.Tags("c@s2") == before["o@s2"]);
  rig.Scrub();
  rig.Reopen();
  CHECK(rig.Tags("c@s1") == before["o@s1"]);

  // Promote back: the names and origins swap back, contents stay.
  rig.Ok(rig.vm->Promote("o"));
  CHECK(rig.vm->Get("o@s1").ok());
  CHECK(rig.vm->Get("c")->origin_id == rig.vm->Get("o@s2")->id);
  CHECK(rig.Tags("o@s1") == before["o@s1"]);
  CHECK(rig.Tags("c@c1") == before["c@c1"]);
  rig.Ok(rig.vm->Promote("c"));
  rig.Scrub();

  // The former origin is now an ordinary clone: destroying it frees only
  // what it changed since c@s2, and the history stays readable.
  rig.Ok(rig.vm->Destroy("d", false, false));
  rig.Ok(rig.vm->Destroy("o", true, false));
  rig.Ok(rig.vm->DrainCoalescer(100000).status());
  CHECK(rig.Tags("c@s1") == before["o@s1"]);
  CHECK(rig.Tags("c@s2") == before["o@s2"]);
  rig.Ok(rig.vm->Destroy("c@s2", false, false));
  rig.Ok(rig.vm->DrainCoalescer(100000).status());
  CHECK(rig.Tags("c@s1") == before["o@s1"]);
  CHECK(rig.Tags("c@c1") == before["c@c1"]);
  rig.Scrub();
  rig.DestroyAllAndCheckEmpty();
}

TEST_CASE("promote: pending free jobs follow their versions") {
  Rig rig;
  rig.Create("o", 6);
  for (uint64_t b = 0; b < 6; ++b) rig.Put("o", b, b + 1);
  rig.Ok(rig.vm->Snapshot({"o@s1"}));
  rig.Put("o", 0, 10);
  rig.Ok(rig.vm->Snapshot({"o@s2"}));
  rig.Put("o", 1, 11);
  rig.Ok(rig.vm->Snapshot({"o@t"}));
  rig.Put("o", 1, 12);
  rig.Put("o", 2, 13);
  rig.Ok(rig.vm->Snapshot({"o@u"}));
  rig.Put("o", 2, 14);
  rig.Ok(rig.vm->Clone("o@s2", "c", {}));
  rig.Ok(rig.vm->Snapshot({"c@x"}));
  rig.Put("c", 3, 15);
  rig.Put("c", 3, 16);
  rig.Ok(rig.vm->Snapshot({"c@y"}));
  rig.Put("c", 3, 17);
  // Queue jobs on both lineages, then promote before the worker runs them.
  // c@x is the clone's first snapshot: its job's birth range starts at 0
  // and must not reach the origin's versions once they share a lineage.
  std::map<std::string, std::vector<uint64_t>> before;
  for (const char* n : {"o", "o@s2", "o@u", "c", "c@x"}) before[n] = rig.Tags(n);
  rig.Ok(rig.vm->Destroy("o@t", false, false));
  rig.Ok(rig.vm->Destroy("c@y", false, false));
  rig.Ok(rig.vm->Destroy("o@s1", false, false));
  rig.Ok(rig.vm->Snapshot({"c@z"}));
  rig.Ok(rig.vm->Destroy("c@x", false, false));
  CHECK(rig.vm->coalescer().jobs_pending == 4);
  rig.Ok(rig.vm->Promote("c"));
  rig.Ok(rig.vm->DrainCoalescer(100000).status());
  CHECK(rig.vm->coalescer().jobs_pending == 0);
  CHECK(rig.Tags("o") == before["o"]);
  CHECK(rig.Tags("c@s2") == before["o@s2"]);
  CHECK(rig.Tags("o@u") == before["o@u"]);
  CHECK(rig.Tags("c") == before["c"]);
  CHECK(rig.Tags("c@z") == before["c"]);
  rig.Scrub();
  rig.DestroyAllAndCheckEmpty();
}

TEST_CASE("promote: a snapshot name taken in both refuses, changing nothing") {
  Rig rig;
  rig.Create("o", 2);
  rig.Ok(rig.vm->Snapshot({"o@s"}));
  rig.Ok(rig.vm->Clone("o@s", "c", {}));
  rig.Ok(rig.vm->Snapshot({"c@s"}));
  auto before = rig.vm->List();
  Status s = rig.vm->Promote("c");
  CHECK(s.code() == Code::kFailedPrecondition);
  CHECK(s.message().find("exists in both") != std::string::npos);
  CHECK(rig.vm->List() == before);
  rig.DestroyAllAndCheckEmpty();
}

}  // namespace
}  // namespace blockhaus::volume
