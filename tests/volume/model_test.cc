// Model-based test (issue 3): random writes, unmaps, snapshots, clones,
// promotes, renames, resizes (grow and shrink), rollbacks, destroys,
// coalescer steps and restarts run in lockstep with a pure in-memory model
// of every volume and snapshot. After every step the
// touched dataset must read exactly as the model says; every 500 steps all
// of them are compared and scrub recounts the pool (no leak, no double
// allocation, every checksum good). Every 5 steps each dataset's space
// properties must equal the model's computation and a recount from the
// block map, and every destroy must free exactly what `destroy -n`
// planned. 10,000 steps; the seed is printed and BH_SEED replays it.

#include <doctest/doctest.h>

#include <map>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>

#include "tests/test_util.h"
#include "volume/space.h"
#include "volume/volume_manager.h"

namespace blockhaus::volume {
namespace {

using testing::PatternBlock;

constexpr uint32_t kBs = 4096;
constexpr uint64_t kBlocks = 24;         // tags per view; blocks past a view's size are 0
constexpr uint64_t kInitialBlocks = 16;  // volsize at create, in blocks

struct ModelVolume {
  std::vector<uint64_t> tags = std::vector<uint64_t>(kBlocks, 0);
  std::string origin;  // snapshot name, for clones
};

struct Model {
  std::map<std::string, ModelVolume> volumes;
  std::map<std::string, std::vector<uint64_t>> snapshots;  // "vol@snap" -> tags
  std::vector<std::string> snap_order;                     // creation order
  std::map<std::string, uint64_t> sizes;                   // volsize in blocks, any view
  std::map<std::string, uint64_t> snap_tag;                // the newest tag when taken

  std::vector<std::string> SnapshotsOf(const std::string& vol) const {
    std::vector<std::string> out;
    for (const auto& s : snap_order) {
      if (s.substr(0, s.find('@')) == vol) out.push_back(s);
    }
    return out;
  }
  bool HasClones(const std::string& snap) const {
    for (const auto& [n, v] : volumes) {
      if (v.origin == snap) return true;
    }
    return false;
  }
  void DropSnapshot(const std::string& s) {
    snapshots.erase(s);
    sizes.erase(s);
    snap_tag.erase(s);
    snap_order.erase(std::find(snap_order.begin(), snap_order.end(), s));
  }
};

class Runner {
 public:
  explicit Runner(uint64_t seed) : seed_(seed), rng_(seed) {
    core::PoolCreateOptions o;
    o.name = "model";
    o.data_size = 64 << 20;
    REQUIRE(core::Pool::Create(tmp_ / "pool", o).ok());
    pool_ = std::move(core::Pool::Open(tmp_ / "pool")).value();
    Restart();
  }

  void Step(int step) {
    step_ = step;
    uint64_t dice = rng_() % 100;
    if (std::getenv("BH_TRACE")) std::fprintf(stderr, "step %d dice %llu\n", step, (unsigned long long)dice);
    if (model_.volumes.empty() || dice < 4) return CreateVolume();
    if (dice < 37) return Write();
    if (dice < 45) return Unmap();
    if (dice < 54) return Snapshot();
    if (dice < 58) return Clone();
    if (dice < 64) return Rollback();
    if (dice < 70) return DestroySnapshot();
    if (dice < 73) return DestroyVolume();
    if (dice < 76) return Promote();
    if (dice < 78) return Rename();
    if (dice < 81) return Resize();
    if (dice < 85) REQUIRE(pool_->Flush().ok());
    else if (dice < 95) REQUIRE(vm_->DrainCoalescer(1).ok());
    else if (dice < 97) Restart();
    else VerifyAll();
  }

  void VerifyAll() {
    for (const auto& [name, v] : model_.volumes) Verify(name, v.tags);
    for (const auto& [name, tags] : model_.snapshots) Verify(name, tags);
    REQUIRE(vm_->List().size() == model_.volumes.size() + model_.snapshots.size());
    auto r = pool_->Scrub();
    REQUIRE(r.ok());
    for (const auto& p : r->problems) MESSAGE(p);
    REQUIRE_MESSAGE(r->clean(), Context() << "scrub found problems");
  }

  // Space accounting (issue 3): every dataset's space properties must equal
  // the model's computation (the model knows which versions exist and who
  // wrote them) and a recount from the block map. Tallies follow commits,
  // so this flushes first.
  void CheckSpace() {
    REQUIRE(pool_->Flush().ok());
    for (const Dataset& d : vm_->List()) {
      DatasetSpace want = ModelSpace(d.name);
      auto have = ComputeSpace(*pool_, d);
      REQUIRE_MESSAGE(have.ok(), Context() << d.name << ": " << have.status().ToString());
      auto recount = RecountDatasetSpace(*pool_, d);
      REQUIRE(recount.ok());
      REQUIRE_MESSAGE(*have == want, Context() << d.name << " space differs from the model: "
                                               << SpaceText(*have) << " vs " << SpaceText(want));
      REQUIRE_MESSAGE(*recount == want, Context() << d.name << " recount differs: "
                                                  << SpaceText(*recount) << " vs "
                                                  << SpaceText(want));
    }
  }

  void DrainAndCheckEmpty() {
    for (const auto& name : std::vector<std::string>(model_.snap_order)) {
      if (!model_.HasClones(name)) {
        REQUIRE(vm_->Destroy(name, false, false).ok());
        model_.DropSnapshot(name);
      }
    }
    while (!model_.volumes.empty()) {
      std::string name = model_.volumes.begin()->first;
      REQUIRE(vm_->Destroy(name, true, true).ok());
      Forget(name);
    }
    // Every job must finish: a job that stops making progress would spin
    // through all these steps (a livelock this check caught once).
    auto steps = vm_->DrainCoalescer(100000);
    REQUIRE(steps.ok());
    CHECK(*steps < 100000);
    REQUIRE(pool_->Flush().ok());
    CHECK(pool_->stats().allocated == 0);
    CHECK(vm_->coalescer().jobs_pending == 0);
    CHECK(pool_->ListLineages().empty());
    auto r = pool_->Scrub();
    REQUIRE(r.ok());
    CHECK(r->clean());
  }

 private:
  static void Trace(const std::string& what) {
    if (std::getenv("BH_TRACE")) std::fprintf(stderr, "  %s\n", what.c_str());
  }
  std::string Context() const {
    return "seed " + std::to_string(seed_) + " step " + std::to_string(step_) + ": ";
  }
  template <typename Map>
  std::string Pick(const Map& m) {
    auto it = m.begin();
    std::advance(it, static_cast<long>(rng_() % m.size()));
    return it->first;
  }
  std::vector<uint8_t> Data(uint64_t tag) {
    return tag == 0 ? std::vector<uint8_t>(kBs, 0) : PatternBlock(kBs, seed_, tag);
  }
  void Restart() {
    vm_.reset();
    VolumeManagerOptions vo;
    vo.start_coalescer = false;
    vo.coalesce_batch = 7;  // small steps so jobs span restarts
    vm_ = std::move(VolumeManager::Open(pool_.get(), vo)).value();
  }
  void Verify(const std::string& name, const std::vector<uint64_t>& tags) {
    auto dev = vm_->OpenDevice(name);
    REQUIRE_MESSAGE(dev.ok(), Context() << name << ": " << dev.status().ToString());
    const uint64_t blocks = model_.sizes.at(name);
    REQUIRE_MESSAGE((*dev)->size() == blocks * kBs, Context() << name << " has the wrong size");
    for (uint64_t b = blocks; b < kBlocks; ++b) REQUIRE(tags[b] == 0);  // the model's own rule
    std::vector<uint8_t> buf(kBs * blocks);
    Status s = (*dev)->Read(0, buf);
    REQUIRE_MESSAGE(s.ok(), Context() << s.ToString());
    for (uint64_t b = 0; b < blocks; ++b) {
      std::vector<uint8_t> got(buf.begin() + static_cast<long>(b * kBs),
                               buf.begin() + static_cast<long>((b + 1) * kBs));
      REQUIRE_MESSAGE(got == Data(tags[b]), Context() << name << " block " << b
                                                      << " differs from the model (tag "
                                                      << tags[b] << ")");
    }
  }
  void CreateVolume() {
    if (model_.volumes.size() >= 6) return;
    std::string name = "v" + std::to_string(next_++);
    VolumeProps p;
    p.volsize = kBs * kInitialBlocks;
    p.volblocksize = kBs;
    REQUIRE(vm_->CreateVolume(name, p).ok());
    model_.volumes[name] = ModelVolume{};
    model_.sizes[name] = kInitialBlocks;
  }
  void Write() {
    std::string vol = Pick(model_.volumes);
    uint64_t b = rng_() % model_.sizes.at(vol), tag = ++tag_;
    Trace("write " + vol + " " + std::to_string(b));
    auto dev = vm_->OpenDevice(vol);
    REQUIRE((*dev)->Write(b * kBs, Data(tag)).ok());
    model_.volumes[vol].tags[b] = tag;
    owner_[tag] = vol;
    Verify(vol, model_.volumes[vol].tags);
  }
  void Unmap() {
    std::string vol = Pick(model_.volumes);
    uint64_t b = rng_() % model_.sizes.at(vol);
    Trace("unmap " + vol + " " + std::to_string(b));
    REQUIRE((*vm_->OpenDevice(vol))->Unmap(b * kBs, kBs).ok());
    model_.volumes[vol].tags[b] = 0;
  }
  void Snapshot() {
    std::string vol = Pick(model_.volumes);
    std::string name = vol + "@s" + std::to_string(next_++);
    Trace("snapshot " + name);
    REQUIRE(vm_->Snapshot({name}).ok());
    model_.snapshots[name] = model_.volumes[vol].tags;
    model_.snap_order.push_back(name);
    model_.sizes[name] = model_.sizes.at(vol);
    model_.snap_tag[name] = tag_;
    Verify(name, model_.snapshots[name]);
  }
  void Clone() {
    if (model_.snapshots.empty() || model_.volumes.size() >= 6) return;
    std::string snap = Pick(model_.snapshots);
    std::string name = "c" + std::to_string(next_++);
    Trace("clone " + snap + " " + name);
    REQUIRE(vm_->Clone(snap, name, {}).ok());
    model_.volumes[name] = ModelVolume{model_.snapshots[snap], snap};
    model_.sizes[name] = model_.sizes.at(snap);
    Verify(name, model_.volumes[name].tags);
  }
  void Rollback() {
    std::string vol = Pick(model_.volumes);
    auto snaps = model_.SnapshotsOf(vol);
    if (snaps.empty()) return;
    size_t i = rng_() % snaps.size();
    bool newer = i + 1 < snaps.size();
    bool newer_clones = false;
    for (size_t j = i + 1; j < snaps.size(); ++j) newer_clones |= model_.HasClones(snaps[j]);
    Trace("rollback " + snaps[i]);
    Status s = vm_->Rollback(snaps[i], /*destroy_newer=*/true);
    if (newer_clones) {
      REQUIRE_MESSAGE(s.code() == Code::kFailedPrecondition, Context() << s.ToString());
      return;
    }
    REQUIRE_MESSAGE(s.ok(), Context() << s.ToString());
    if (newer) {
      for (size_t j = i + 1; j < snaps.size(); ++j) model_.DropSnapshot(snaps[j]);
    }
    model_.volumes[vol].tags = model_.snapshots[snaps[i]];
    model_.sizes[vol] = model_.sizes.at(snaps[i]);
    Verify(vol, model_.volumes[vol].tags);
  }
  void DestroySnapshot() {
    if (model_.snapshots.empty()) return;
    std::string snap = Pick(model_.snapshots);
    Trace("destroy " + snap);
    Status s = PlannedDestroy(snap, false, false);
    if (model_.HasClones(snap)) {
      REQUIRE(s.code() == Code::kFailedPrecondition);
      return;
    }
    REQUIRE_MESSAGE(s.ok(), Context() << s.ToString());
    model_.DropSnapshot(snap);
  }
  void DestroyVolume() {
    std::string vol = Pick(model_.volumes);
    Trace("destroy -R " + vol);
    REQUIRE_MESSAGE(PlannedDestroy(vol, true, true).ok(), Context() << vol);
    Forget(vol);
  }
  // Removes a volume, its snapshots and (recursively) their clones from the model.
  void Forget(const std::string& vol) {
    for (const auto& s : model_.SnapshotsOf(vol)) {
      std::vector<std::string> clones;
      for (const auto& [n, v] : model_.volumes) {
        if (v.origin == s) clones.push_back(n);
      }
      for (const auto& c : clones) Forget(c);
      model_.DropSnapshot(s);
    }
    model_.volumes.erase(vol);
    model_.sizes.erase(vol);
  }

  static std::string Short(const std::string& snap) { return snap.substr(snap.find('@') + 1); }
  static std::string VolumeOf(const std::string& snap) { return snap.substr(0, snap.find('@')); }
  // Renames a snapshot in the model, and the origin of its clones.
  void RenameSnapshot(const std::string& from, const std::string& to) {
    model_.snapshots[to] = model_.snapshots.at(from);
    model_.sizes[to] = model_.sizes.at(from);
    model_.snap_tag[to] = model_.snap_tag.at(from);
    model_.snapshots.erase(from);
    model_.sizes.erase(from);
    model_.snap_tag.erase(from);
    *std::find(model_.snap_order.begin(), model_.snap_order.end(), from) = to;
    for (auto& [n, v] : model_.volumes) {
      if (v.origin == from) v.origin = to;
    }
  }
  // zfs promote: the clone takes over its origin snapshot and the older
  // snapshots of the origin's volume, and the blocks they were written in
  // (the model's owner of each tag written up to the origin snapshot).
  void Promote() {
    std::vector<std::string> clones;
    for (const auto& [n, v] : model_.volumes) {
      if (!v.origin.empty()) clones.push_back(n);
    }
    if (clones.empty()) return;
    std::string c = clones[rng_() % clones.size()];
    std::string origin = model_.volumes.at(c).origin, o = VolumeOf(origin);
    std::vector<std::string> moved;
    bool conflict = false;
    for (const auto& snap : model_.SnapshotsOf(o)) {
      moved.push_back(snap);
      conflict |= model_.snapshots.contains(c + "@" + Short(snap));
      if (snap == origin) break;
    }
    Trace("promote " + c);
    Status s = vm_->Promote(c);
    if (conflict) {
      REQUIRE_MESSAGE(s.code() == Code::kFailedPrecondition, Context() << s.ToString());
      return;
    }
    REQUIRE_MESSAGE(s.ok(), Context() << "promote " << c << ": " << s.ToString());
    for (auto& [tag, owner] : owner_) {
      if (owner == o && tag <= model_.snap_tag.at(origin)) owner = c;
    }
    for (const auto& snap : moved) RenameSnapshot(snap, c + "@" + Short(snap));
    model_.volumes[c].origin = model_.volumes[o].origin;
    model_.volumes[o].origin = c + "@" + Short(origin);
    Verify(c, model_.volumes[c].tags);
    Verify(o, model_.volumes[o].tags);
    for (const auto& snap : moved) {
      std::string now = c + "@" + Short(snap);
      Verify(now, model_.snapshots.at(now));
    }
  }
  void Rename() {
    if (rng_() % 2 == 0 || model_.snapshots.empty()) {
      std::string vol = Pick(model_.volumes);
      std::string to = rng_() % 5 == 0 ? Pick(model_.volumes) : "r" + std::to_string(next_++);
      Trace("rename " + vol + " " + to);
      Status s = vm_->Rename(vol, to);
      if (model_.volumes.contains(to)) {
        REQUIRE_MESSAGE(s.code() == Code::kAlreadyExists, Context() << s.ToString());
        return;
      }
      REQUIRE_MESSAGE(s.ok(), Context() << s.ToString());
      for (const auto& snap : model_.SnapshotsOf(vol)) RenameSnapshot(snap, to + "@" + Short(snap));
      model_.volumes[to] = model_.volumes.at(vol);
      model_.sizes[to] = model_.sizes.at(vol);
      model_.volumes.erase(vol);
      model_.sizes.erase(vol);
      for (auto& [tag, owner] : owner_) {
        if (owner == vol) owner = to;
      }
      Verify(to, model_.volumes.at(to).tags);
      return;
    }
    std::string snap = Pick(model_.snapshots);
    // Sometimes another snapshot's short name: a clash, or a name that a
    // later promote finds in both volumes.
    std::string to = VolumeOf(snap) + "@" +
                     (rng_() % 3 == 0 ? Short(Pick(model_.snapshots)) : "r" + std::to_string(next_++));
    Trace("rename " + snap + " " + to);
    Status s = vm_->Rename(snap, to);
    if (model_.snapshots.contains(to)) {
      REQUIRE_MESSAGE(s.code() == Code::kAlreadyExists, Context() << s.ToString());
      return;
    }
    REQUIRE_MESSAGE(s.ok(), Context() << s.ToString());
    RenameSnapshot(snap, to);
    Verify(to, model_.snapshots.at(to));
  }
  // volsize: grow, or shrink (refused without force past written data).
  void Resize() {
    std::string vol = Pick(model_.volumes);
    uint64_t blocks = 1 + rng_() % kBlocks, old = model_.sizes.at(vol);
    bool force = rng_() % 2 == 0;
    auto& tags = model_.volumes.at(vol).tags;
    bool data_beyond = false;
    for (uint64_t b = blocks; b < old; ++b) data_beyond |= tags[b] != 0;
    Trace("resize " + vol + " " + std::to_string(blocks) + (force ? " -f" : ""));
    Status s = vm_->Resize(vol, blocks * kBs, force);
    if (data_beyond && !force) {
      REQUIRE_MESSAGE(s.code() == Code::kFailedPrecondition, Context() << s.ToString());
      return;
    }
    REQUIRE_MESSAGE(s.ok(), Context() << s.ToString());
    for (uint64_t b = blocks; b < kBlocks; ++b) tags[b] = 0;
    model_.sizes[vol] = blocks;
    Verify(vol, tags);
  }

  // Destroy, after checking that `destroy -n` predicts it exactly: the
  // pending frees grow by the bytes the plan lists.
  Status PlannedDestroy(const std::string& name, bool recursive, bool clones) {
    REQUIRE(pool_->Flush().ok());
    auto plan = vm_->PlanDestroy(name, recursive, clones);
    uint64_t before = pool_->pending_frees().bytes.phys;
    Status s = vm_->Destroy(name, recursive, clones);
    REQUIRE(plan.ok() == s.ok());
    if (!s.ok()) return s;
    uint64_t predicted = 0;
    for (const DestroyItem& item : *plan) predicted += item.bytes;
    REQUIRE_MESSAGE(pool_->pending_frees().bytes.phys == before + predicted,
                    Context() << "destroy " << name << " planned " << predicted << " bytes, "
                              << "pending frees went from " << before << " to "
                              << pool_->pending_frees().bytes.phys);
    return s;
  }

  static std::string SpaceText(const DatasetSpace& s) {
    return "used " + std::to_string(s.used) + " referenced " + std::to_string(s.referenced) +
           " written " + std::to_string(s.written) + " usedbysnapshots " +
           std::to_string(s.usedbysnapshots) + " usedbydataset " +
           std::to_string(s.usedbydataset) + " logicalused " + std::to_string(s.logicalused);
  }
  bool Own(uint64_t tag, const std::string& vol) const {
    auto it = owner_.find(tag);
    return tag != 0 && it != owner_.end() && it->second == vol;
  }
  // The tags a view's "previous" view holds: the snapshot before it, else a
  // clone's origin, else nothing written.
  std::vector<uint64_t> Base(const std::string& vol, const std::vector<std::string>& snaps,
                             size_t i) const {
    if (i > 0) return model_.snapshots.at(snaps[i - 1]);
    const std::string& origin = model_.volumes.at(vol).origin;
    if (!origin.empty()) return model_.snapshots.at(origin);
    return std::vector<uint64_t>(kBlocks, 0);
  }
  // zfsprops(7) numbers from the model; every block is 4 KiB logical and
  // (compressed or not) 4 KiB allocated.
  DatasetSpace ModelSpace(const std::string& name) const {
    DatasetSpace s;
    std::string vol = name.substr(0, name.find('@'));
    auto snaps = model_.SnapshotsOf(vol);
    const auto& head = model_.volumes.at(vol).tags;
    bool is_snap = name.find('@') != std::string::npos;
    size_t idx = is_snap ? static_cast<size_t>(std::find(snaps.begin(), snaps.end(), name) -
                                               snaps.begin())
                         : snaps.size();
    const auto& view = is_snap ? model_.snapshots.at(name) : head;
    std::vector<uint64_t> base = Base(vol, snaps, idx);
    for (uint64_t b = 0; b < kBlocks; ++b) {
      if (view[b] != 0) s.referenced += kBs;
      if (Own(view[b], vol) && view[b] != base[b]) s.written += kBs;
    }
    if (is_snap) {
      const auto& next = idx + 1 < snaps.size() ? model_.snapshots.at(snaps[idx + 1]) : head;
      for (uint64_t b = 0; b < kBlocks; ++b) {
        uint64_t t = view[b];
        if (Own(t, vol) && t != base[b] && t != next[b]) s.used += kBs;
      }
    } else {
      std::set<std::pair<uint64_t, uint64_t>> held;
      for (const auto& sn : snaps) {
        const auto& tags = model_.snapshots.at(sn);
        for (uint64_t b = 0; b < kBlocks; ++b) {
          if (Own(tags[b], vol) && tags[b] != head[b]) held.insert({b, tags[b]});
        }
      }
      s.usedbysnapshots = held.size() * kBs;
      for (uint64_t b = 0; b < kBlocks; ++b) {
        if (Own(head[b], vol)) s.usedbydataset += kBs;
      }
      s.used = s.usedbydataset + s.usedbysnapshots;
    }
    s.logicalused = s.used;
    s.logicalreferenced = s.referenced;
    return s;
  }

  std::map<uint64_t, std::string> owner_;  // tag -> the volume that wrote it
  uint64_t seed_;
  std::mt19937_64 rng_;
  testing::TempDir tmp_;
  std::unique_ptr<core::Pool> pool_;
  std::unique_ptr<VolumeManager> vm_;
  Model model_;
  uint64_t next_ = 1, tag_ = 0;
  int step_ = 0;
};

TEST_CASE("volume model: 10,000 random operations in lockstep with the model") {
  uint64_t seed = testing::TestSeed();
  MESSAGE("model seed " << seed << " (replay with BH_SEED=" << seed << ")");
  Runner runner(seed);
  for (int step = 1; step <= 10000; ++step) {
    runner.Step(step);
    if (step % 5 == 0) runner.CheckSpace();
    if (step % 500 == 0 || std::getenv("BH_TRACE")) runner.VerifyAll();
  }
  runner.DrainAndCheckEmpty();
}

}  // namespace
}  // namespace blockhaus::volume
