// The rig shared by the volume kill and power-loss tests: the pool both
// start from, how many rounds they run and how the pool is reopened. Then
// the check of a pool reopened after a kill or power cut against the log
// of volume_crash_ops.h: every acknowledged snapshot and clone exists with
// exactly its content and size, no destroyed one is back, an operation cut
// short left either nothing or the whole object (a rename: the old name or
// the new, never both or neither; a snapshot of v and the clone: both or
// neither; a destroy -r: the clone and all its snapshots, or none of them;
// a rollback -r: all newer snapshots and the head as before, or none of
// them and the head exactly the target's), the head holds only data some
// operation wrote (zeros where it was unmapped) at a size some operation
// set, the space tallies equal a recount (also across promotes), and the
// interrupted frees finish with a clean scrub.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <optional>
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

// How often a run (30 rounds or more) must acknowledge each operation kind
// (RequireVolCrashCoverage). Normal runs acknowledge each dozens of times;
// under ASan on a loaded machine a round may get through a single
// operation (the kill test then starts its clock at the first ack, and the
// first pick is the kind acknowledged least), so the floor is "at least
// once": it still fails a kind the mix no longer reaches.
constexpr uint64_t kVolCrashMinAcked = 1;

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
  // Totals over the rounds, for the test's closing message and coverage.
  uint64_t ops = 0, snapshots_checked = 0, clones_checked = 0, frees_finished = 0;
  std::map<char, uint64_t> acked;  // acknowledged operations by kind (lower case)
  // Operations on several objects cut short by the crash (S, X, B), and
  // how many of them had taken effect.
  std::map<char, uint64_t> cut, cut_done;
};

// What each acknowledged kind is called in messages: every kind the op
// mix acknowledges.
inline const std::map<char, std::string>& VolCrashAckNames() {
  static const std::map<char, std::string> names = {
      {'u', "unmaps"},      {'n', "snapshots"},         {'s', "snapshots of v and the clone"},
      {'d', "destroys"},    {'r', "rollbacks"},         {'b', "rollbacks -r"},
      {'c', "clones"},      {'k', "clone destroys"},    {'x', "clone destroys -r"},
      {'m', "renames"},     {'z', "resizes"},           {'p', "promotes"}};
  return names;
}

// The totals of a run, for the test's closing MESSAGE.
inline std::string VolCrashSummary(const VolCrashState& s) {
  std::string acked;
  for (const auto& [op, name] : VolCrashAckNames()) {
    auto it = s.acked.find(op);
    acked += (acked.empty() ? "" : ", ") + std::to_string(it == s.acked.end() ? 0 : it->second) +
             " " + name;
  }
  std::string cut;
  for (const auto& [op, n] : s.cut) {
    auto it = s.cut_done.find(op);
    cut += " " + std::to_string(n) + " " + op + " (" +
           std::to_string(it == s.cut_done.end() ? 0 : it->second) + " done)";
  }
  return std::to_string(s.ops) + " operations logged; " + std::to_string(s.snapshots_checked) +
         " snapshots and " + std::to_string(s.clones_checked) + " clones checked; " +
         std::to_string(s.frees_finished) + " interrupted frees finished; acknowledged: " + acked +
         "; cut short:" + (cut.empty() ? " none" : cut);
}

// The pick (volume_crash_ops.h) for the kind acknowledged least so far
// (the first such in VolCrashAckNames), for the next round's first
// operation: it keeps every kind covered when a loaded machine gets
// through few operations per round.
inline char VolCrashFavoured(const VolCrashState& s) {
  char least = 0;
  uint64_t least_n = 0;
  for (const auto& [op, name] : VolCrashAckNames()) {
    auto it = s.acked.find(op);
    const uint64_t n = it == s.acked.end() ? 0 : it->second;
    if (least == 0 || n < least_n) {
      least = op;
      least_n = n;
    }
  }
  return static_cast<char>(std::toupper(static_cast<unsigned char>(least)));
}

// A normal run must have exercised every operation kind, so the tests
// cannot silently lose coverage when the op mix or the timing changes:
// each kind acknowledged at least `min` times over all rounds, and some
// interrupted frees finished after a reopen.
inline void RequireVolCrashCoverage(const VolCrashState& s, uint64_t min) {
  std::string short_of;
  for (const auto& [op, name] : VolCrashAckNames()) {
    auto it = s.acked.find(op);
    const uint64_t n = it == s.acked.end() ? 0 : it->second;
    if (n < min) short_of += " " + std::to_string(n) + " " + name + ";";
  }
  if (s.frees_finished == 0) short_of += " 0 interrupted frees finished;";
  REQUIRE_MESSAGE(short_of.empty(), "op mix lost coverage (want each kind acknowledged >= "
                                        << min << " times):" << short_of);
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
  // Objects one unacknowledged operation makes or destroys together: after
  // the crash all of them exist or none does (snapshot ids; a clone id in
  // `clone`, 0 for none).
  struct AllOrNone {
    char op;  // S, X or B
    std::string what;
    std::vector<uint64_t> snaps;
    uint64_t clone = 0;
  };
  std::map<uint64_t, AllOrNone> together;  // by the operation's id
  // The target of an unacknowledged rollback -r (its newer snapshots are
  // together[target]): if they are gone, the head is exactly the target,
  // as nothing ran after it.
  std::optional<uint64_t> rolling_back;
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
  std::vector<uint64_t> also;  // Q records: destroyed by the next B or X too
  auto take = [&](const VolCrashRec& r) {
    REQUIRE_MESSAGE(also.size() == r.tag, "log: " << r.op << " after " << also.size() << " Q");
    std::vector<uint64_t> out;
    out.swap(also);
    return out;
  };
  // An operation on several snapshots starts (they may be gone after a
  // crash) or is acknowledged (they are gone).
  auto may_go = [&](const std::vector<uint64_t>& ids) {
    for (uint64_t id : ids) {
      e.may[id] = e.must.at(id);
      e.must.erase(id);
    }
  };
  auto gone = [&](const std::vector<uint64_t>& ids) {
    for (uint64_t id : ids) {
      e.may.erase(id);
      e.gone.insert(id);
    }
  };
  for (const VolCrashRec& r : log) {
    switch (r.op) {
      case 'W': head[r.id] = r.tag; break;
      case 'U':
        for (uint64_t b = r.id; b < r.id + r.tag; ++b) head[b] = 0;
        break;
      case 'u': break;  // like a write: durable with the next txg
      case 'N': e.may[r.id] = head; e.ever[r.id] = head; break;
      case 'n': e.must[r.id] = e.may[r.id]; e.may.erase(r.id); break;
      case 'S': {
        const uint64_t cs = r.id | kVolCrashCloneSnapBit;
        e.may[r.id] = e.ever[r.id] = head;
        e.may[cs] = e.ever[cs] = e.clones_must.at(r.tag);
        e.together[r.id] = {'S', "snapshot of v and c" + std::to_string(r.tag), {r.id, cs}, 0};
        break;
      }
      case 's':
        for (uint64_t id : e.together.at(r.id).snaps) {
          e.must[id] = e.may.at(id);
          e.may.erase(id);
        }
        e.together.erase(r.id);
        break;
      case 'Q': also.push_back(r.id); break;
      case 'X': {
        std::vector<uint64_t> snaps = take(r);
        may_go(snaps);
        e.clones_may[r.id] = e.clones_must.at(r.id);
        e.clones_must.erase(r.id);
        e.together[r.id] = {'X', "destroy -r of c" + std::to_string(r.id), snaps, r.id};
        break;
      }
      case 'x':
        gone(e.together.at(r.id).snaps);
        e.clones_may.erase(r.id);
        e.clones_gone.insert(r.id);
        e.together.erase(r.id);
        break;
      case 'B': {
        std::vector<uint64_t> newer = take(r);
        may_go(newer);
        e.head_sizes.insert(VolBlocks(e.must.at(r.id)));
        e.together[r.id] = {'B', "rollback -r to s" + std::to_string(r.id), newer, 0};
        e.rolling_back = r.id;
        break;
      }
      case 'b':
        gone(e.together.at(r.id).snaps);
        e.together.erase(r.id);
        e.rolling_back.reset();
        head = e.must.at(r.id);
        e.head_sizes = {VolBlocks(head)};
        break;
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
    if (std::islower(static_cast<unsigned char>(r.op))) ++state->acked[r.op];
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
  for (const auto& [op_id, group] : e.together) {
    size_t have = 0, want = group.snaps.size() + (group.clone != 0 ? 1 : 0);
    for (uint64_t id : group.snaps) have += present.contains(id);
    if (group.clone != 0) have += clones_present.contains(group.clone);
    REQUIRE_MESSAGE((have == 0 || have == want),
                    ctx << "interrupted " << group.what << " left " << have << " of its " << want
                        << " objects");
    ++state->cut[group.op];
    // S makes its objects, X and B destroy theirs.
    state->cut_done[group.op] += (group.op == 'S') == (have != 0);
  }
  if (e.rolling_back && !present.contains(e.together.at(*e.rolling_back).snaps.front())) {
    // Rolled back (the newer snapshots are gone): v is exactly the target.
    const uint64_t target = *e.rolling_back;
    REQUIRE_MESSAGE(VolMatches(vm, "v", e.must.at(target), seed),
                    ctx << "interrupted rollback -r to s" << target
                        << " destroyed the newer snapshots but v is not the target");
  }
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

// Reopens the pool in `dir` (worker off), checks it with VerifyVolumeCrash
// and closes it cleanly.
inline void ReopenAndVerifyVolumeCrash(const std::string& dir, const core::PoolOptions& options,
                                       const std::vector<VolCrashRec>& log, uint64_t seed,
                                       const std::string& ctx, VolCrashState* state) {
  auto pool = core::Pool::Open(dir, options);
  REQUIRE_MESSAGE(pool.ok(), ctx << "reopen: " << pool.status().ToString());
  auto vm = volume::VolumeManager::Open(pool->get(), VolumeCrashReopenOptions());
  REQUIRE_MESSAGE(vm.ok(), ctx << "reopen: " << vm.status().ToString());
  VerifyVolumeCrash(**pool, **vm, log, seed, ctx, state);
  vm->reset();
  REQUIRE((*pool)->Close().ok());
}

}  // namespace blockhaus::testing
