// The rig shared by the volume kill and power-loss tests: the pool both
// start from, how many rounds they run and how the pool is reopened. Then
// the check of a pool reopened after a kill or power cut against the log
// of volume_crash_ops.h: every acknowledged snapshot and clone exists with
// exactly its content and size, no destroyed one is back, an operation cut
// short left either nothing or the whole object (a rename: the old name or
// the new, never both or neither), the head holds only data some
// operation wrote at a size some operation set, the space tallies equal a
// recount (also across promotes), and the interrupted frees finish with a
// clean scrub.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/pool/pool.h"
#include "tests/crash/volume_crash_ops.h"
#include "tests/test_util.h"
#include "volume/volume_manager.h"

namespace blockhaus::testing {

// Creates the pool "victim" (64 MiB of data) in `dir` with the volume "v"
// of kVolCrashBlocks blocks of kVolCrashBs, and closes it again.
inline void CreateVolumeCrashPool(const std::string& dir) {
  core::PoolCreateOptions o;
  o.name = "victim";
  o.data_size = 64 << 20;
  REQUIRE(core::Pool::Create(dir, o).ok());
  auto pool = core::Pool::Open(dir);
  REQUIRE_MESSAGE(pool.ok(), "open after create: " << pool.status().ToString());
  auto vm = volume::VolumeManager::Open(pool->get());
  REQUIRE_MESSAGE(vm.ok(), "open after create: " << vm.status().ToString());
  volume::VolumeProps p;
  p.volsize = kVolCrashBs * kVolCrashBlocks;
  p.volblocksize = kVolCrashBs;
  REQUIRE((*vm)->CreateVolume("v", p).ok());
}

// Kill or power-cut rounds per run: 30, or 300 with LONG=1.
inline int VolumeCrashRounds() {
  const char* l = std::getenv("LONG");
  return (l != nullptr && l[0] == '1') ? 300 : 30;
}

// How the pool is reopened after a crash: the coalescing worker stays off,
// so VerifyVolumeCrash finds the interrupted frees still pending and
// finishes them itself.
inline volume::VolumeManagerOptions VolumeCrashReopenOptions() {
  volume::VolumeManagerOptions vo;
  vo.start_coalescer = false;
  return vo;
}

// Tag per block: 0 = zeros, kVolCrashBeyond = past the end (the blocks
// that exist come first).
using VolContent = std::vector<uint64_t>;

inline uint64_t VolBlocks(const VolContent& c) {
  return static_cast<uint64_t>(std::find(c.begin(), c.end(), kVolCrashBeyond) - c.begin());
}

// What survived one round. Carried from round to round.
struct VolCrashState {
  VolContent head = VolContent(kVolCrashBlocks, 0);
  std::map<uint64_t, VolContent> snaps;
  std::map<uint64_t, VolContent> clones;  // never written: their origin's content
  // Totals over the rounds, for the test's closing message.
  uint64_t ops = 0, snapshots_checked = 0, clones_checked = 0, frees_finished = 0;
  uint64_t promotes = 0, renames = 0, resizes = 0;  // acknowledged
};

// The totals of a run, for the test's closing MESSAGE.
inline std::string VolCrashSummary(const VolCrashState& s) {
  return std::to_string(s.ops) + " operations logged; " + std::to_string(s.snapshots_checked) +
         " snapshots and " + std::to_string(s.clones_checked) + " clones checked; " +
         std::to_string(s.frees_finished) + " interrupted frees finished; " +
         std::to_string(s.promotes) + " promotes, " + std::to_string(s.renames) +
         " renames and " + std::to_string(s.resizes) + " resizes acknowledged";
}

struct VolCrashExpect {
  std::map<uint64_t, VolContent> must;  // acknowledged and not being destroyed
  std::map<uint64_t, VolContent> may;   // in flight: absent, or exactly this
  std::set<uint64_t> gone;              // destroy acknowledged
  // Every snapshot that existed at some point of the round: a rollback to
  // one that was destroyed afterwards leaves its data in the head.
  std::map<uint64_t, VolContent> ever;
  std::map<uint64_t, VolContent> clones_must, clones_may;
  std::set<uint64_t> clones_gone;
  std::map<uint64_t, uint64_t> renaming;  // old id -> new id, not acknowledged
  std::set<uint64_t> head_sizes;          // block counts v may have now
};

// Replays the log over the snapshots that existed when the round began.
inline VolCrashExpect ReplayVolCrashLog(const std::vector<VolCrashRec>& log,
                                        const VolCrashState& start) {
  VolContent head = start.head;
  VolCrashExpect e;
  e.must = start.snaps;
  e.ever = start.snaps;
  e.clones_must = start.clones;
  e.head_sizes.insert(VolBlocks(head));
  for (const VolCrashRec& r : log) {
    switch (r.op) {
      case 'W': head[r.id] = r.tag; break;
      case 'N': e.may[r.id] = head; e.ever[r.id] = head; break;
      case 'n': e.must[r.id] = e.may[r.id]; e.may.erase(r.id); break;
      case 'D': e.may[r.id] = e.must[r.id]; e.must.erase(r.id); break;
      case 'd': e.may.erase(r.id); e.gone.insert(r.id); break;
      case 'R': e.head_sizes.insert(VolBlocks(e.must.at(r.id))); break;
      case 'r':
        head = e.must.at(r.id);
        e.head_sizes = {VolBlocks(head)};
        break;
      case 'M':
        e.may[r.id] = e.may[r.tag] = e.ever[r.tag] = e.must.at(r.id);
        e.must.erase(r.id);
        e.renaming[r.id] = r.tag;
        break;
      case 'm':
        e.must[r.tag] = e.may.at(r.tag);
        e.may.erase(r.id);
        e.may.erase(r.tag);
        e.gone.insert(r.id);
        e.renaming.erase(r.id);
        break;
      case 'Z': e.head_sizes.insert(r.id); break;
      case 'z':
        e.head_sizes = {r.id};
        for (uint64_t b = 0; b < kVolCrashBlocks; ++b) {
          if (b >= r.id) {
            head[b] = kVolCrashBeyond;
          } else if (head[b] == kVolCrashBeyond) {
            head[b] = 0;  // grown back: zeros
          }
        }
        break;
      case 'P': case 'p': break;  // names change, contents do not
      case 'C': e.clones_may[r.id] = e.ever.at(r.tag); break;
      case 'c': e.clones_must[r.id] = e.clones_may[r.id]; e.clones_may.erase(r.id); break;
      case 'K': e.clones_may[r.id] = e.clones_must[r.id]; e.clones_must.erase(r.id); break;
      case 'k': e.clones_may.erase(r.id); e.clones_gone.insert(r.id); break;
      default: FAIL("unknown log record " << r.op);
    }
  }
  return e;
}

inline bool VolMatches(volume::VolumeManager& vm, const std::string& name,
                       const VolContent& want, uint64_t seed) {
  auto dev = vm.OpenDevice(name);
  if (!dev.ok()) return false;
  const uint64_t blocks = VolBlocks(want);
  if ((*dev)->size() != blocks * kVolCrashBs) return false;
  std::vector<uint8_t> buf(kVolCrashBs);
  for (uint64_t b = 0; b < blocks; ++b) {
    if (!(*dev)->Read(b * kVolCrashBs, buf).ok()) return false;
    std::vector<uint8_t> expect = want[b] == 0 ? std::vector<uint8_t>(kVolCrashBs, 0)
                                               : PatternBlock(kVolCrashBs, seed, want[b]);
    if (buf != expect) return false;
  }
  return true;
}

// Checks the reopened pool (coalescer off) and updates `state` to what is
// on disk now. `ctx` names seed and round.
inline void VerifyVolumeCrash(core::Pool& pool, volume::VolumeManager& vm,
                              const std::vector<VolCrashRec>& log, uint64_t seed,
                              const std::string& ctx, VolCrashState* state) {
  VolCrashExpect e = ReplayVolCrashLog(log, *state);
  std::map<uint64_t, std::string> names;  // snapshot id -> its name now
  std::set<uint64_t> present, clones_present;
  for (const auto& d : vm.List()) {
    if (d.is_snapshot()) {
      present.insert(VolCrashSnapId(d.name));
      names[VolCrashSnapId(d.name)] = d.name;
    } else if (d.name[0] == 'c') {
      clones_present.insert(std::strtoull(d.name.c_str() + 1, nullptr, 10));
    }
  }
  for (const auto& [from, to] : e.renaming) {
    REQUIRE_MESSAGE(present.contains(from) != present.contains(to),
                    ctx << "rename of s" << from << " to s" << to << " left "
                        << (present.contains(from) ? "both names" : "neither name"));
  }
  std::map<uint64_t, VolContent> clones;
  for (const auto& [id, content] : e.clones_must) {
    REQUIRE_MESSAGE(clones_present.contains(id), ctx << "acknowledged clone c" << id << " is missing");
    REQUIRE_MESSAGE(VolMatches(vm, VolCrashCloneName(id), content, seed),
                    ctx << "clone c" << id << " does not hold its origin's data");
    clones[id] = content;
  }
  for (const auto& [id, content] : e.clones_may) {
    if (!clones_present.contains(id)) continue;
    REQUIRE_MESSAGE(VolMatches(vm, VolCrashCloneName(id), content, seed),
                    ctx << "half-made clone c" << id << " is visible");
    clones[id] = content;
  }
  for (uint64_t id : e.clones_gone) {
    REQUIRE_MESSAGE(!clones_present.contains(id), ctx << "destroyed clone c" << id << " is back");
  }
  REQUIRE_MESSAGE(clones_present.size() == clones.size(), ctx << "unexpected clones exist");
  state->clones = std::move(clones);
  state->ops += log.size();
  for (const VolCrashRec& r : log) {
    state->promotes += r.op == 'p';
    state->renames += r.op == 'm';
    state->resizes += r.op == 'z';
  }
  state->clones_checked += state->clones.size();
  std::map<uint64_t, VolContent> snaps;
  for (const auto& [id, content] : e.must) {
    REQUIRE_MESSAGE(present.contains(id), ctx << "acknowledged snapshot s" << id << " is missing");
    REQUIRE_MESSAGE(VolMatches(vm, names[id], content, seed),
                    ctx << "snapshot " << names[id] << " does not hold its data");
    snaps[id] = content;
  }
  for (const auto& [id, content] : e.may) {
    if (!present.contains(id)) continue;
    REQUIRE_MESSAGE(VolMatches(vm, names[id], content, seed),
                    ctx << "half-made snapshot " << names[id] << " is visible");
    snaps[id] = content;
  }
  for (uint64_t id : e.gone) {
    REQUIRE_MESSAGE(!present.contains(id), ctx << "destroyed snapshot s" << id << " is back");
  }
  REQUIRE_MESSAGE(present.size() == snaps.size(), ctx << "unexpected snapshots exist");
  // The head: each block holds its value from the last round, a write of
  // this round, or a snapshot's (rollback); which one is learnt here for
  // the next round's snapshots. Anything else is torn or foreign data.
  auto dev = vm.OpenDevice("v");
  REQUIRE(dev.ok());
  const uint64_t head_blocks = (*dev)->size() / kVolCrashBs;
  REQUIRE_MESSAGE(e.head_sizes.contains(head_blocks),
                  ctx << "v has " << head_blocks << " blocks, a size no operation set");
  std::vector<uint8_t> buf(kVolCrashBs);
  for (uint64_t b = head_blocks; b < kVolCrashBlocks; ++b) state->head[b] = kVolCrashBeyond;
  for (uint64_t b = 0; b < head_blocks; ++b) {
    REQUIRE((*dev)->Read(b * kVolCrashBs, buf).ok());
    std::set<uint64_t> candidates = {0, state->head[b]};
    for (const VolCrashRec& r : log) {
      if (r.op == 'W' && r.id == b) candidates.insert(r.tag);
    }
    for (const auto& [id, c] : e.ever) candidates.insert(c[b]);
    candidates.erase(kVolCrashBeyond);
    bool found = false;
    for (uint64_t t : candidates) {
      std::vector<uint8_t> want = t == 0 ? std::vector<uint8_t>(kVolCrashBs, 0)
                                         : PatternBlock(kVolCrashBs, seed, t);
      if (buf == want) {
        state->head[b] = t;
        found = true;
        break;
      }
    }
    REQUIRE_MESSAGE(found, ctx << "head block " << b << " holds data no operation wrote");
  }
  state->snaps = std::move(snaps);
  state->snapshots_checked += state->snaps.size();
  // The persisted space tallies are exact after the crash: every dataset's
  // properties equal a recount from the block map.
  for (const volume::Dataset& d : vm.List()) {
    auto have = vm.Space(d);
    auto want = volume::RecountDatasetSpace(pool, d);
    REQUIRE(have.ok());
    REQUIRE(want.ok());
    REQUIRE_MESSAGE(*have == *want, ctx << d.name << ": space tallies differ from a recount");
  }
  // Interrupted frees finish, and the pool recounts clean.
  state->frees_finished += vm.coalescer().jobs_pending;
  REQUIRE(vm.DrainCoalescer(100000).ok());
  REQUIRE(vm.coalescer().jobs_pending == 0);
  REQUIRE_MESSAGE(pool.pending_frees().bytes.phys == 0, ctx << "frees left after the drain");
  auto report = pool.Scrub();
  REQUIRE(report.ok());
  for (const auto& p : report->problems) MESSAGE(ctx << p);
  REQUIRE_MESSAGE(report->clean(), ctx << "scrub found problems");
}

}  // namespace blockhaus::testing
