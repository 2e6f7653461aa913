// The operation mix of the volume crash tests (kill -9 and power loss):
// writes to volume "v" and unmaps of a block range of it, snapshots
// "v@s<id>", atomic snapshots of v and the clone together ("v@s<id>" and
// "c<clone>@s<id | kVolCrashCloneSnapBit>"), destroys of the oldest
// snapshot that no clone depends on, rollbacks to v's newest and rollbacks
// -r to an older snapshot of v (the newer ones go), clones "c<id>" of a
// random snapshot (one at a time), destroys of the clone (with -r when it
// has snapshots), renames of a snapshot ("...@s<old>" -> "...@s<id>"),
// resizes of v (shrink with force, grow back), and promotes of the clone
// (its snapshots then live under "c<id>@s...") and back, chosen at random.
// A snapshot is known by its id whatever its name. Every operation is
// logged before it starts (upper-case op) and again once acknowledged
// (lower-case op; writes are not), so the checker knows what may and what
// must have survived (volume_crash_check.h).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "tests/test_util.h"
#include "volume/volume_manager.h"

namespace blockhaus::testing {

constexpr uint32_t kVolCrashBs = 4096;
constexpr uint64_t kVolCrashBlocks = 32;

struct VolCrashRec {
  char op;       // W write, U/u unmap, N/n snapshot, S/s snapshot of v and
                 // the clone, D/d destroy, R/r rollback, B/b rollback -r,
                 // C/c clone, K/k clone destroy, X/x clone destroy -r,
                 // Q a snapshot the next B or X destroys too, M/m snapshot
                 // rename, Z/z resize of v, P/p promote (of the clone, or of
                 // v back)
  uint64_t id;   // block (W), first block (U), snapshot id (N S D R B M Q),
                 // clone id (C K X P; 0 for v in P), or v's new size in
                 // blocks (Z)
  uint64_t tag;  // pattern tag of a write; blocks of an unmap; the clone of
                 // S; the origin snapshot of a clone; the new snapshot id of
                 // a rename; the number of Q records before B or X
};

// A block beyond the end of a volume or snapshot (it has no such block).
constexpr uint64_t kVolCrashBeyond = ~uint64_t{0};
// The clone's snapshot of an S record has the id of v's plus this bit (a
// round's op counter never reaches it), so the two ids differ.
constexpr uint64_t kVolCrashCloneSnapBit = uint64_t{1} << 31;

inline std::string VolCrashSnapName(uint64_t id) { return "v@s" + std::to_string(id); }
inline std::string VolCrashCloneName(uint64_t id) { return "c" + std::to_string(id); }
// The id of a snapshot named "<volume>@s<id>".
inline uint64_t VolCrashSnapId(const std::string& name) {
  return std::strtoull(name.c_str() + name.find('@') + 2, nullptr, 10);
}

// How often each operation is picked, in percent. Writes and unmaps are
// cheap; the admin operations, each a synced txg, take most of a round, so
// their weights are kept close to each other: the rarest one still gets
// acknowledged many times in a normal run (the tests require it:
// RequireVolCrashCoverage). A pick that cannot run now falls back (see
// RunVolumeCrashOps), always ending at a snapshot.
struct VolCrashWeight {
  char op;
  uint64_t percent;
};
inline constexpr VolCrashWeight kVolCrashMix[] = {
    {'W', 50},  // write a block of v
    {'U', 4},   // unmap a block range of v
    {'C', 6},   // clone a snapshot of v (with a clone: snapshot both)
    {'K', 8},   // destroy the clone (X, with -r, when it has snapshots)
    {'P', 4},   // promote the clone, or v back
    {'S', 3},   // snapshot v and the clone in one call
    {'M', 3},   // rename a snapshot
    {'Z', 3},   // shrink v, or grow it back
    {'N', 4},   // snapshot v
    {'D', 7},   // destroy the oldest snapshot no clone depends on
    {'R', 3},   // roll v back to its newest snapshot
    {'B', 5},   // roll v back to an older snapshot with -r
};
static_assert([] {
  uint64_t sum = 0;
  for (const VolCrashWeight& w : kVolCrashMix) sum += w.percent;
  return sum == 100;
}());

// Runs operations until one fails (returned: after a kill or power cut that
// is expected) or `stop` is set. `log(rec)` must record before returning.
// `first`, if not 0, is the pick for the round's first operation (one of
// kVolCrashMix's, or X), before the fallbacks: the tests pass the kind
// acknowledged least so far (VolCrashFavoured), because how many
// operations a round gets through depends on the machine's load.
template <typename LogFn>
Status RunVolumeCrashOps(volume::VolumeManager& vm, uint64_t seed, uint64_t round, LogFn log,
                         const std::atomic<bool>* stop = nullptr, char first = 0) {
  std::mt19937_64 rng(seed ^ (round * 7777));
  for (uint64_t counter = 1; stop == nullptr || !stop->load(std::memory_order_acquire);
       ++counter) {
    uint64_t dice = rng() % 100;
    char op = 'N';
    for (const VolCrashWeight& w : kVolCrashMix) {
      if (dice < w.percent) {
        op = w.op;
        break;
      }
      dice -= w.percent;
    }
    if (counter == 1 && first != 0) op = first;
    uint64_t id = (round << 32) | counter;
    std::map<uint64_t, std::string> snaps;     // id -> current name
    std::map<uint64_t, uint64_t> snap_txg;     // id -> txg (renames reorder ids)
    std::vector<uint64_t> v_snaps;             // ids of snapshots named "v@..."
    std::vector<uint64_t> clone_snaps;         // ids of snapshots named "c...@..."
    std::map<uint64_t, uint64_t> snap_by_dataset;
    uint64_t clone = 0, clone_origin_dataset = 0, v_origin_dataset = 0, v_blocks = 0;
    for (const auto& d : vm.List()) {
      if (d.is_snapshot()) {
        uint64_t sid = VolCrashSnapId(d.name);
        snaps[sid] = d.name;
        snap_txg[sid] = d.txg;
        snap_by_dataset[d.id] = sid;
        (d.name[0] == 'v' ? v_snaps : clone_snaps).push_back(sid);
      } else if (d.name[0] == 'c') {
        clone = std::strtoull(d.name.c_str() + 1, nullptr, 10);
        clone_origin_dataset = d.origin_id;
      } else {
        v_origin_dataset = d.origin_id;
        v_blocks = d.props.volsize / kVolCrashBs;
      }
    }
    // Promoted: v is the clone of one of c's snapshots.
    const bool promoted = v_origin_dataset != 0;
    const uint64_t pinned = snap_by_dataset[promoted ? v_origin_dataset : clone_origin_dataset];
    std::vector<uint64_t> deletable;  // snapshots no clone depends on
    for (const auto& [sid, name] : snaps) {
      if (clone == 0 || sid != pinned) deletable.push_back(sid);
    }
    auto by_txg = [&](uint64_t a, uint64_t b) { return snap_txg[a] < snap_txg[b]; };
    // Targets of a rollback -r: snapshots of v with a newer one, none of
    // the newer ones the origin of the clone (rollback -r refuses that).
    std::vector<uint64_t> older;
    for (uint64_t sid : v_snaps) {
      bool has_newer = false, newer_pinned = false;
      for (uint64_t o : v_snaps) {
        if (snap_txg[o] <= snap_txg[sid]) continue;
        has_newer = true;
        newer_pinned |= clone != 0 && !promoted && o == pinned;
      }
      if (has_newer && !newer_pinned) older.push_back(sid);
    }
    std::sort(older.begin(), older.end());
    // Fall back until the pick can run: with a clone, a clone becomes a
    // snapshot of both; without one, the clone operations make one; a
    // promoted clone is promoted back before it is destroyed (its origin
    // is then v's); the rest become a plain snapshot.
    auto fallback = [&](char o) {
      if (o == 'C') return clone != 0 ? 'S' : v_snaps.empty() ? 'N' : o;
      if (o == 'K') return clone == 0 ? 'C' : promoted ? 'P' : o;
      if (o == 'X') return clone == 0 ? 'C' : promoted ? 'P' : clone_snaps.empty() ? 'S' : o;
      if (o == 'P' || o == 'S') return clone == 0 ? 'C' : o;
      if (o == 'M') return snaps.empty() ? 'N' : o;
      if (o == 'D') return deletable.empty() ? 'N' : o;
      if (o == 'B') return older.empty() ? 'R' : o;
      if (o == 'R') return v_snaps.empty() ? 'N' : o;
      return o;
    };
    for (char o = fallback(op); o != op; o = fallback(op)) op = o;
    if (op == 'K' && !clone_snaps.empty()) op = 'X';
    Status s;
    switch (op) {
      case 'W': {
        uint64_t b = rng() % v_blocks;
        log(VolCrashRec{'W', b, id});
        auto dev = vm.OpenDevice("v");
        if (!dev.ok()) return dev.status();
        s = (*dev)->Write(b * kVolCrashBs, PatternBlock(kVolCrashBs, seed, id));
        break;
      }
      case 'U': {
        // Whole blocks: they become holes, which read as zeros.
        uint64_t b = rng() % v_blocks;
        uint64_t n = 1 + rng() % std::min<uint64_t>(8, v_blocks - b);
        log(VolCrashRec{'U', b, n});
        auto dev = vm.OpenDevice("v");
        if (!dev.ok()) return dev.status();
        s = (*dev)->Unmap(b * kVolCrashBs, n * kVolCrashBs);
        if (s.ok()) log(VolCrashRec{'u', b, n});
        break;
      }
      case 'C': {
        uint64_t origin = v_snaps[rng() % v_snaps.size()];
        log(VolCrashRec{'C', id, origin});
        s = vm.Clone(snaps[origin], VolCrashCloneName(id), {});
        if (s.ok()) log(VolCrashRec{'c', id, origin});
        break;
      }
      case 'K':
        log(VolCrashRec{'K', clone, 0});
        s = vm.Destroy(VolCrashCloneName(clone), false, false);
        if (s.ok()) log(VolCrashRec{'k', clone, 0});
        break;
      case 'X':
        // Not promoted, so no clone depends on c's snapshots: -r is enough.
        for (uint64_t sid : clone_snaps) log(VolCrashRec{'Q', sid, 0});
        log(VolCrashRec{'X', clone, clone_snaps.size()});
        s = vm.Destroy(VolCrashCloneName(clone), /*recursive=*/true, false);
        if (s.ok()) log(VolCrashRec{'x', clone, clone_snaps.size()});
        break;
      case 'P': {
        const uint64_t which = promoted ? 0 : clone;  // promote back, or the clone
        log(VolCrashRec{'P', which, 0});
        s = vm.Promote(promoted ? std::string("v") : VolCrashCloneName(clone));
        if (s.ok()) log(VolCrashRec{'p', which, 0});
        break;
      }
      case 'M': {
        auto it = std::next(snaps.begin(), static_cast<long>(rng() % snaps.size()));
        const std::string& from = it->second;
        log(VolCrashRec{'M', it->first, id});
        s = vm.Rename(from, from.substr(0, from.find('@')) + "@s" + std::to_string(id));
        if (s.ok()) log(VolCrashRec{'m', it->first, id});
        break;
      }
      case 'Z': {
        // Shrink (dropping written blocks: force) or grow back to full size.
        uint64_t blocks = v_blocks == kVolCrashBlocks
                              ? kVolCrashBlocks / 2 + rng() % (kVolCrashBlocks / 2)
                              : kVolCrashBlocks;
        log(VolCrashRec{'Z', blocks, 0});
        s = vm.Resize("v", blocks * kVolCrashBs, /*force=*/true);
        if (s.ok()) log(VolCrashRec{'z', blocks, 0});
        break;
      }
      case 'S':
        // One txg for both: after a crash both exist or neither.
        log(VolCrashRec{'S', id, clone});
        s = vm.Snapshot({VolCrashSnapName(id), VolCrashCloneName(clone) + "@s" +
                                                   std::to_string(id | kVolCrashCloneSnapBit)});
        if (s.ok()) log(VolCrashRec{'s', id, clone});
        break;
      case 'N':
        log(VolCrashRec{'N', id, 0});
        s = vm.Snapshot({VolCrashSnapName(id)});
        if (s.ok()) log(VolCrashRec{'n', id, 0});
        break;
      case 'D': {
        uint64_t oldest = *std::min_element(deletable.begin(), deletable.end(), by_txg);
        log(VolCrashRec{'D', oldest, 0});
        s = vm.Destroy(snaps[oldest], false, false);
        if (s.ok()) log(VolCrashRec{'d', oldest, 0});
        break;
      }
      case 'R': {
        uint64_t newest = *std::max_element(v_snaps.begin(), v_snaps.end(), by_txg);
        log(VolCrashRec{'R', newest, 0});
        s = vm.Rollback(snaps[newest], false);
        if (s.ok()) log(VolCrashRec{'r', newest, 0});
        break;
      }
      case 'B': {
        // rollback -r destroys every snapshot of v newer than the target.
        uint64_t target = older[rng() % older.size()];
        std::vector<uint64_t> newer;
        for (uint64_t o : v_snaps) {
          if (snap_txg[o] > snap_txg[target]) newer.push_back(o);
        }
        for (uint64_t sid : newer) log(VolCrashRec{'Q', sid, 0});
        log(VolCrashRec{'B', target, newer.size()});
        s = vm.Rollback(snaps[target], /*destroy_newer=*/true);
        if (s.ok()) log(VolCrashRec{'b', target, newer.size()});
        break;
      }
      default: return Status::Ok();  // not reached: every pick is handled
    }
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace blockhaus::testing
