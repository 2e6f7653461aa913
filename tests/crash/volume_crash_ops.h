// The operation mix of the volume crash tests (kill -9 and power loss):
// writes to volume "v", snapshots "v@s<id>", destroys of the oldest
// snapshot that no clone depends on, rollbacks to v's newest, clones
// "c<id>" of a random snapshot (one at a time), destroys of the clone,
// renames of a snapshot ("...@s<old>" -> "...@s<id>"), resizes of v (shrink
// with force, grow back), and promotes of the clone (its snapshots then
// live under "c<id>@s...") and back, chosen at random. A snapshot is known
// by its id whatever its name. Every operation is logged before it starts
// (upper-case op) and admin operations again once acknowledged (lower-case
// op), so the checker knows what may and what must have survived
// (volume_crash_check.h).
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
  char op;       // W write, N/n snapshot, D/d destroy, R/r rollback,
                 // C/c clone, K/k clone destroy, M/m snapshot rename,
                 // Z/z resize of v, P/p promote (of the clone, or of v back)
  uint64_t id;   // block (W), snapshot id (N D R M), clone id (C K P; 0 for
                 // v in P), or v's new size in blocks (Z)
  uint64_t tag;  // pattern tag of a write; the origin snapshot of a clone;
                 // the new snapshot id of a rename
};

// A block beyond the end of a volume or snapshot (it has no such block).
constexpr uint64_t kVolCrashBeyond = ~uint64_t{0};

inline std::string VolCrashSnapName(uint64_t id) { return "v@s" + std::to_string(id); }
inline std::string VolCrashCloneName(uint64_t id) { return "c" + std::to_string(id); }
// The id of a snapshot named "<volume>@s<id>".
inline uint64_t VolCrashSnapId(const std::string& name) {
  return std::strtoull(name.c_str() + name.find('@') + 2, nullptr, 10);
}

// Runs operations until one fails (returned: after a kill or power cut that
// is expected) or `stop` is set. `log(rec)` must record before returning.
template <typename LogFn>
Status RunVolumeCrashOps(volume::VolumeManager& vm, uint64_t seed, uint64_t round, LogFn log,
                         const std::atomic<bool>* stop = nullptr) {
  std::mt19937_64 rng(seed ^ (round * 7777));
  for (uint64_t counter = 1; stop == nullptr || !stop->load(std::memory_order_acquire);
       ++counter) {
    uint64_t dice = rng() % 100;
    uint64_t id = (round << 32) | counter;
    std::map<uint64_t, std::string> snaps;     // id -> current name
    std::map<uint64_t, uint64_t> snap_txg;     // id -> txg (renames reorder ids)
    std::vector<uint64_t> v_snaps;             // ids of snapshots named "v@..."
    std::map<uint64_t, uint64_t> snap_by_dataset;
    uint64_t clone = 0, clone_origin_dataset = 0, v_origin_dataset = 0, v_blocks = 0;
    for (const auto& d : vm.List()) {
      if (d.is_snapshot()) {
        uint64_t sid = VolCrashSnapId(d.name);
        snaps[sid] = d.name;
        snap_txg[sid] = d.txg;
        snap_by_dataset[d.id] = sid;
        if (d.name[0] == 'v') v_snaps.push_back(sid);
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
    Status s;
    if (dice < 66) {
      uint64_t b = rng() % v_blocks;
      log(VolCrashRec{'W', b, id});
      auto dev = vm.OpenDevice("v");
      if (!dev.ok()) return dev.status();
      s = (*dev)->Write(b * kVolCrashBs, PatternBlock(kVolCrashBs, seed, id));
    } else if (dice < 71 && clone == 0 && !v_snaps.empty()) {
      uint64_t origin = v_snaps[rng() % v_snaps.size()];
      log(VolCrashRec{'C', id, origin});
      s = vm.Clone(snaps[origin], VolCrashCloneName(id), {});
      if (s.ok()) log(VolCrashRec{'c', id, origin});
    } else if (dice < 74 && clone != 0 && !promoted) {
      log(VolCrashRec{'K', clone, 0});
      s = vm.Destroy(VolCrashCloneName(clone), false, false);
      if (s.ok()) log(VolCrashRec{'k', clone, 0});
    } else if (dice < 76 && clone != 0) {
      const uint64_t which = promoted ? 0 : clone;  // promote back, or the clone
      log(VolCrashRec{'P', which, 0});
      s = vm.Promote(promoted ? std::string("v") : VolCrashCloneName(clone));
      if (s.ok()) log(VolCrashRec{'p', which, 0});
    } else if (dice < 78 && !snaps.empty()) {
      auto it = std::next(snaps.begin(), static_cast<long>(rng() % snaps.size()));
      const std::string& from = it->second;
      log(VolCrashRec{'M', it->first, id});
      s = vm.Rename(from, from.substr(0, from.find('@')) + "@s" + std::to_string(id));
      if (s.ok()) log(VolCrashRec{'m', it->first, id});
    } else if (dice < 80) {
      // Shrink (dropping written blocks: force) or grow back to full size.
      uint64_t blocks = v_blocks == kVolCrashBlocks
                            ? kVolCrashBlocks / 2 + rng() % (kVolCrashBlocks / 2)
                            : kVolCrashBlocks;
      log(VolCrashRec{'Z', blocks, 0});
      s = vm.Resize("v", blocks * kVolCrashBs, /*force=*/true);
      if (s.ok()) log(VolCrashRec{'z', blocks, 0});
    } else if (dice < 87 || deletable.empty()) {
      log(VolCrashRec{'N', id, 0});
      s = vm.Snapshot({VolCrashSnapName(id)});
      if (s.ok()) log(VolCrashRec{'n', id, 0});
    } else if (dice < 95 || v_snaps.empty()) {
      uint64_t oldest = *std::min_element(deletable.begin(), deletable.end(), by_txg);
      log(VolCrashRec{'D', oldest, 0});
      s = vm.Destroy(snaps[oldest], false, false);
      if (s.ok()) log(VolCrashRec{'d', oldest, 0});
    } else {
      uint64_t newest = *std::max_element(v_snaps.begin(), v_snaps.end(), by_txg);
      log(VolCrashRec{'R', newest, 0});
      s = vm.Rollback(snaps[newest], false);
      if (s.ok()) log(VolCrashRec{'r', newest, 0});
    }
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace blockhaus::testing
