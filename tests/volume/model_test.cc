// Model-based test (issue 3): 10,000 random operations of nine kinds
// (write, unmap, snapshot, clone, promote, rollback, destroy, rename,
// resize) run in lockstep with a pure in-memory model of every volume,
// snapshot and clone. Only a call of one of the nine kinds that reaches the
// VolumeManager counts, refusals the model predicts (destroying a snapshot
// that has clones, renaming onto a taken name, ...) included. Steps that
// issue none (creating a volume, a flush, a coalescer step, a restart of
// the VolumeManager, or an operation with nothing to act on) do not count.
// The test fails if 40,000 steps do not reach 10,000 operations, or if any
// kind ran fewer than 100 times; it prints the count of each kind.
//
// After every step (so after every operation):
//   - List() names exactly the volumes and snapshots of the model (a
//     destroyed or renamed name is gone, nothing else appeared);
//   - the datasets the step touched read exactly as the model says, from
//     open-txg data and again once committed if the step left dirty data.
//     A write or unmap touches its volume; a create, its volume; the other
//     kinds, refused or not, the whole family of the volume they act on
//     (the volumes linked to it by clone origins, and all their snapshots),
//     and for a destroy the survivors of that family;
//   - after a flush, every dataset's space properties equal the model's
//     computation and a recount from the block map (RecountDatasetSpace);
//   - the pool's allocated bytes equal the distinct blocks the model holds
//     plus what the pool reports as pending frees.
// Every destroy must also free exactly what `destroy -n` planned. Every
// 500 operations all datasets are read and compared and scrub recounts the
// pool (no leak, no double allocation, every checksum good). At the end,
// destroying everything and draining the coalescer leaves an empty pool.
// The seed is printed and BH_SEED replays it; BH_TRACE prints each step.
//
// The flush after every step bounds a txg to one step, so steps make their
// own mixes of dirty data: a quarter of the write steps write a burst of
// 2-4 blocks to random volumes (several volumes in one txg), and half the
// snapshot steps first write 1-3 blocks to the volume without committing
// them, so the snapshot is taken of dirty data and must hold it.

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

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

// The nine kinds of operation the test counts.
enum class Op {
  kWrite, kUnmap, kSnapshot, kClone, kPromote, kRollback, kDestroy, kRename, kResize
};
constexpr size_t kOpKinds = 9;
constexpr const char* kOpNames[kOpKinds] = {"write",    "unmap",   "snapshot",
                                            "clone",    "promote", "rollback",
                                            "destroy",  "rename",  "resize"};
constexpr size_t kMaxVolumes = 6;  // CreateVolume stops here
constexpr size_t kMaxClones = 8;   // volumes of any kind; Clone stops here

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

  // Runs one step and the checks that follow every step; returns whether
  // it issued an operation of the nine kinds.
  bool Step(int step) {
    step_ = step;
    touched_.clear();
    refused_ = false;
    uint64_t dice = rng_() % 100;
    if (std::getenv("BH_TRACE")) {
      std::fprintf(stderr, "step %d dice %llu\n", step, static_cast<unsigned long long>(dice));
    }
    std::optional<Op> op = Dispatch(dice);
    CheckStep();
    if (!op) return false;
    auto kind = static_cast<size_t>(*op);
    ++issued_[kind];
    if (refused_) ++refused_counts_[kind];
    if (++ops_ % 500 == 0 || std::getenv("BH_TRACE")) VerifyAll();
    return true;
  }

  uint64_t ops() const { return ops_; }
  uint64_t issued(size_t kind) const { return issued_[kind]; }
  std::string CountsText() const {
    std::string out;
    for (size_t k = 0; k < kOpKinds; ++k) {
      out += std::string(k == 0 ? "" : ", ") + kOpNames[k] + " " + std::to_string(issued_[k]);
      if (refused_counts_[k] != 0) out += " (" + std::to_string(refused_counts_[k]) + " refused)";
    }
    return out;
  }

  void VerifyAll() {
    for (const auto& [name, v] : model_.volumes) Verify(name, v.tags);
    for (const auto& [name, tags] : model_.snapshots) Verify(name, tags);
    CheckNames();
    auto r = pool_->Scrub();
    REQUIRE(r.ok());
    for (const auto& p : r->problems) MESSAGE(p);
    REQUIRE_MESSAGE(r->clean(), Context() << "scrub found problems");
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
  // Performs the step the dice chose; returns the operation it issued.
  std::optional<Op> Dispatch(uint64_t dice) {
    if (model_.volumes.empty() || dice < 4) {
      CreateVolume();
      return std::nullopt;
    }
    if (dice < 37) return If(Write(), Op::kWrite);
    if (dice < 45) return If(Unmap(), Op::kUnmap);
    if (dice < 54) return If(Snapshot(), Op::kSnapshot);
    if (dice < 58) return If(Clone(), Op::kClone);
    if (dice < 64) return If(Rollback(), Op::kRollback);
    if (dice < 70) return If(DestroySnapshot(), Op::kDestroy);
    if (dice < 73) return If(DestroyVolume(), Op::kDestroy);
    if (dice < 76) return If(Promote(), Op::kPromote);
    if (dice < 78) return If(Rename(), Op::kRename);
    if (dice < 81) return If(Resize(), Op::kResize);
    if (dice < 85) REQUIRE(pool_->Flush().ok());
    else if (dice < 95) REQUIRE(vm_->DrainCoalescer(1).ok());
    else if (dice < 97) Restart();
    else VerifyAll();
    return std::nullopt;
  }
  static std::optional<Op> If(bool issued, Op op) {
    return issued ? std::optional<Op>(op) : std::nullopt;
  }

  // The checks after every step: names, the touched datasets' contents
  // (open txg, then committed), every dataset's space, the pool's total.
  void CheckStep() {
    CheckNames();
    VerifyTouched();
    uint64_t synced = pool_->stats().synced_txg;
    REQUIRE(pool_->Flush().ok());
    if (pool_->stats().synced_txg != synced) VerifyTouched();
    CheckSpace();
    CheckAllocated();
  }
  void VerifyTouched() {
    for (const auto& name : touched_) {
      if (model_.volumes.contains(name)) Verify(name, model_.volumes.at(name).tags);
      if (model_.snapshots.contains(name)) Verify(name, model_.snapshots.at(name));
    }
  }
  // List() must name exactly the model's volumes and snapshots.
  void CheckNames() {
    std::set<std::string> want, have;
    for (const auto& [name, v] : model_.volumes) want.insert(name);
    for (const auto& [name, tags] : model_.snapshots) want.insert(name);
    for (const Dataset& d : vm_->List()) REQUIRE(have.insert(d.name).second);
    REQUIRE_MESSAGE(have == want, Context() << "List() names " << Join(have)
                                            << ", the model " << Join(want));
  }
  static std::string Join(const std::set<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
    return "{" + out + "}";
  }
  // Space accounting (issue 3): every dataset's space properties must equal
  // the model's computation (the model knows which versions exist and who
  // wrote them) and a recount from the block map. Tallies follow commits:
  // REQUIRES: nothing dirty (CheckStep flushes first).
  void CheckSpace() {
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
  // The pool holds one block per distinct tag some view of the model sees
  // (a clone shares its origin's), plus what destroys, rollbacks and
  // shrinks released that the coalescer has not freed yet (pending frees,
  // checked against `destroy -n` at each destroy and drained to 0 at the
  // end). REQUIRES: nothing dirty.
  void CheckAllocated() {
    std::set<uint64_t> live;
    for (const auto& [name, v] : model_.volumes) live.insert(v.tags.begin(), v.tags.end());
    for (const auto& [name, tags] : model_.snapshots) live.insert(tags.begin(), tags.end());
    live.erase(0);
    uint64_t want = live.size() * kBs + pool_->pending_frees().bytes.phys;
    uint64_t have = pool_->stats().allocated;
    REQUIRE_MESSAGE(have == want, Context() << "pool allocated " << have << " bytes, the model "
                                            << live.size() * kBs << " + pending frees "
                                            << pool_->pending_frees().bytes.phys);
  }

  static void Trace(const std::string& what) {
    if (std::getenv("BH_TRACE")) std::fprintf(stderr, "  %s\n", what.c_str());
  }
  std::string Context() const {
    return "seed " + std::to_string(seed_) + " step " + std::to_string(step_) + " (" +
           std::to_string(ops_) + " operations before it): ";
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
  // The volumes linked to `vol` by clone origins, either way and
  // transitively, and all their snapshots: what a change to vol's lineage
  // could disturb.
  std::set<std::string> Family(const std::string& vol) const {
    std::set<std::string> vols{vol};
    std::vector<std::string> todo{vol};
    while (!todo.empty()) {
      std::string v = todo.back();
      todo.pop_back();
      const std::string& origin = model_.volumes.at(v).origin;
      for (const auto& [n, mv] : model_.volumes) {
        bool linked = (!origin.empty() && VolumeOf(origin) == n) ||
                      (!mv.origin.empty() && VolumeOf(mv.origin) == v);
        if (linked && vols.insert(n).second) todo.push_back(n);
      }
    }
    std::set<std::string> out = vols;
    for (const auto& v : vols) {
      for (const auto& s : model_.SnapshotsOf(v)) out.insert(s);
    }
    return out;
  }
  void TouchFamily(const std::string& vol) {
    auto f = Family(vol);
    touched_.insert(f.begin(), f.end());
  }
  // Notes an operation the model expects to be refused: it must fail with
  // `code` and change nothing.
  void Refused(const Status& s, Code code) {
    REQUIRE_MESSAGE(s.code() == code, Context() << "expected a refusal, got " << s.ToString());
    refused_ = true;
  }

  void CreateVolume() {
    if (model_.volumes.size() >= kMaxVolumes) return;
    std::string name = "v" + std::to_string(next_++);
    Trace("create " + name);
    VolumeProps p;
    p.volsize = kBs * kInitialBlocks;
    p.volblocksize = kBs;
    REQUIRE(vm_->CreateVolume(name, p).ok());
    model_.volumes[name] = ModelVolume{};
    model_.sizes[name] = kInitialBlocks;
    touched_.insert(name);
  }
  // One block, or (one time in four) a burst of 2-4 blocks to random
  // volumes, so that a txg holds several volumes' dirty blocks.
  bool Write() {
    int blocks = rng_() % 4 == 0 ? 2 + static_cast<int>(rng_() % 3) : 1;
    for (int i = 0; i < blocks; ++i) WriteBlock(Pick(model_.volumes));
    return true;
  }
  void WriteBlock(const std::string& vol) {
    uint64_t b = rng_() % model_.sizes.at(vol), tag = ++tag_;
    Trace("write " + vol + " " + std::to_string(b));
    auto dev = vm_->OpenDevice(vol);
    REQUIRE((*dev)->Write(b * kBs, Data(tag)).ok());
    model_.volumes[vol].tags[b] = tag;
    owner_[tag] = vol;
    touched_.insert(vol);
  }
  bool Unmap() {
    std::string vol = Pick(model_.volumes);
    uint64_t b = rng_() % model_.sizes.at(vol);
    Trace("unmap " + vol + " " + std::to_string(b));
    REQUIRE((*vm_->OpenDevice(vol))->Unmap(b * kBs, kBs).ok());
    model_.volumes[vol].tags[b] = 0;
    touched_.insert(vol);
    return true;
  }
  // Half the time the volume has dirty blocks when the snapshot is taken
  // (written in this step, not yet committed): the snapshot must hold them.
  bool Snapshot() {
    std::string vol = Pick(model_.volumes);
    if (rng_() % 2 == 0) {
      int blocks = 1 + static_cast<int>(rng_() % 3);
      for (int i = 0; i < blocks; ++i) WriteBlock(vol);
      issued_[static_cast<size_t>(Op::kWrite)] += blocks;
    }
    std::string name = vol + "@s" + std::to_string(next_++);
    Trace("snapshot " + name);
    REQUIRE(vm_->Snapshot({name}).ok());
    model_.snapshots[name] = model_.volumes[vol].tags;
    model_.snap_order.push_back(name);
    model_.sizes[name] = model_.sizes.at(vol);
    model_.snap_tag[name] = tag_;
    TouchFamily(vol);
    return true;
  }
  bool Clone() {
    if (model_.snapshots.empty() || model_.volumes.size() >= kMaxClones) return false;
    std::string snap = Pick(model_.snapshots);
    std::string name = "c" + std::to_string(next_++);
    Trace("clone " + snap + " " + name);
    REQUIRE(vm_->Clone(snap, name, {}).ok());
    model_.volumes[name] = ModelVolume{model_.snapshots[snap], snap};
    model_.sizes[name] = model_.sizes.at(snap);
    TouchFamily(name);
    return true;
  }
  // Rolls back a volume that has snapshots to one of them.
  bool Rollback() {
    std::vector<std::string> vols;
    for (const auto& [n, v] : model_.volumes) {
      if (!model_.SnapshotsOf(n).empty()) vols.push_back(n);
    }
    if (vols.empty()) return false;
    std::string vol = vols[rng_() % vols.size()];
    auto snaps = model_.SnapshotsOf(vol);
    size_t i = rng_() % snaps.size();
    bool newer_clones = false;
    for (size_t j = i + 1; j < snaps.size(); ++j) newer_clones |= model_.HasClones(snaps[j]);
    Trace("rollback " + snaps[i]);
    TouchFamily(vol);
    Status s = vm_->Rollback(snaps[i], /*destroy_newer=*/true);
    if (newer_clones) {
      Refused(s, Code::kFailedPrecondition);
      return true;
    }
    REQUIRE_MESSAGE(s.ok(), Context() << s.ToString());
    for (size_t j = i + 1; j < snaps.size(); ++j) model_.DropSnapshot(snaps[j]);
    model_.volumes[vol].tags = model_.snapshots[snaps[i]];
    model_.sizes[vol] = model_.sizes.at(snaps[i]);
    return true;
  }
  bool DestroySnapshot() {
    if (model_.snapshots.empty()) return false;
    std::string snap = Pick(model_.snapshots);
    Trace("destroy " + snap);
    TouchFamily(VolumeOf(snap));
    Status s = PlannedDestroy(snap, false, false);
    if (model_.HasClones(snap)) {
      Refused(s, Code::kFailedPrecondition);
      return true;
    }
    REQUIRE_MESSAGE(s.ok(), Context() << s.ToString());
    model_.DropSnapshot(snap);
    return true;
  }
  // destroy -R: the volume, its snapshots and their clones, recursively.
  // The rest of its family (its origin's volume, ...) must read as before.
  bool DestroyVolume() {
    std::string vol = Pick(model_.volumes);
    Trace("destroy -R " + vol);
    TouchFamily(vol);
    REQUIRE_MESSAGE(PlannedDestroy(vol, true, true).ok(), Context() << vol);
    Forget(vol);
    return true;
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
  bool Promote() {
    std::vector<std::string> clones;
    for (const auto& [n, v] : model_.volumes) {
      if (!v.origin.empty()) clones.push_back(n);
    }
    if (clones.empty()) return false;
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
      Refused(s, Code::kFailedPrecondition);
      TouchFamily(c);
      return true;
    }
    REQUIRE_MESSAGE(s.ok(), Context() << "promote " << c << ": " << s.ToString());
    for (auto& [tag, owner] : owner_) {
      if (owner == o && tag <= model_.snap_tag.at(origin)) owner = c;
    }
    for (const auto& snap : moved) RenameSnapshot(snap, c + "@" + Short(snap));
    model_.volumes[c].origin = model_.volumes[o].origin;
    model_.volumes[o].origin = c + "@" + Short(origin);
    TouchFamily(c);
    return true;
  }
  bool Rename() {
    if (rng_() % 2 == 0 || model_.snapshots.empty()) return RenameVolume();
    std::string snap = Pick(model_.snapshots);
    // Sometimes another snapshot's short name: a clash, or a name that a
    // later promote finds in both volumes.
    std::string to = VolumeOf(snap) + "@" + (rng_() % 3 == 0 ? Short(Pick(model_.snapshots))
                                                             : "r" + std::to_string(next_++));
    Trace("rename " + snap + " " + to);
    Status s = vm_->Rename(snap, to);
    if (model_.snapshots.contains(to)) {
      Refused(s, Code::kAlreadyExists);
    } else {
      REQUIRE_MESSAGE(s.ok(), Context() << s.ToString());
      RenameSnapshot(snap, to);
    }
    TouchFamily(VolumeOf(snap));
    return true;
  }
  bool RenameVolume() {
    std::string vol = Pick(model_.volumes);
    std::string to = rng_() % 5 == 0 ? Pick(model_.volumes) : "r" + std::to_string(next_++);
    Trace("rename " + vol + " " + to);
    Status s = vm_->Rename(vol, to);
    if (model_.volumes.contains(to)) {
      Refused(s, Code::kAlreadyExists);
      TouchFamily(vol);
      return true;
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
    TouchFamily(to);
    return true;
  }
  // volsize: grow, or shrink (refused without force past written data).
  bool Resize() {
    std::string vol = Pick(model_.volumes);
    uint64_t blocks = 1 + rng_() % kBlocks, old = model_.sizes.at(vol);
    bool force = rng_() % 2 == 0;
    auto& tags = model_.volumes.at(vol).tags;
    bool data_beyond = false;
    for (uint64_t b = blocks; b < old; ++b) data_beyond |= tags[b] != 0;
    Trace("resize " + vol + " " + std::to_string(blocks) + (force ? " -f" : ""));
    TouchFamily(vol);
    Status s = vm_->Resize(vol, blocks * kBs, force);
    if (data_beyond && !force) {
      Refused(s, Code::kFailedPrecondition);
      return true;
    }
    REQUIRE_MESSAGE(s.ok(), Context() << s.ToString());
    for (uint64_t b = blocks; b < kBlocks; ++b) tags[b] = 0;
    model_.sizes[vol] = blocks;
    return true;
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
  uint64_t ops_ = 0;  // operations of the nine kinds issued so far
  std::array<uint64_t, kOpKinds> issued_{}, refused_counts_{};
  std::set<std::string> touched_;  // datasets the current step must read back
  bool refused_ = false;           // the current operation was refused
};

TEST_CASE("volume model: 10,000 random operations in lockstep with the model") {
  constexpr uint64_t kOps = 10000, kMinPerKind = 100;
  constexpr int kMaxSteps = 40000;
  uint64_t seed = testing::TestSeed();
  MESSAGE("model seed " << seed << " (replay with BH_SEED=" << seed << ")");
  Runner runner(seed);
  int step = 0;
  while (runner.ops() < kOps) {
    REQUIRE_MESSAGE(++step <= kMaxSteps, "seed " << seed << ": " << kMaxSteps << " steps ran only "
                                                 << runner.ops() << " operations");
    runner.Step(step);
  }
  MESSAGE("seed " << seed << ": " << runner.ops() << " operations in " << step
                  << " steps: " << runner.CountsText());
  for (size_t k = 0; k < kOpKinds; ++k) {
    CHECK_MESSAGE(runner.issued(k) >= kMinPerKind,
                  "seed " << seed << ": only " << runner.issued(k) << " "
                          << std::string(kOpNames[k]));
  }
  runner.DrainAndCheckEmpty();
}

}  // namespace
}  // namespace blockhaus::volume
