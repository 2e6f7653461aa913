// The operation mix of the volume crash tests (kill -9 and power loss):
// writes to volume "v", snapshots "v@s<id>", destroys of the oldest
// snapshot that no clone depends on, rollbacks to the newest, clones
// "c<id>" of a random snapshot (one at a time) and destroys of the clone,
// chosen at random. Every operation is
// logged before it starts (upper-case op) and admin operations again once
// acknowledged (lower-case op), so the checker knows what may and what must
// have survived (volume_crash_check.h).
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
                 // C/c clone, K/k clone destroy
  uint64_t id;   // block (W), snapshot id or clone id
  uint64_t tag;  // pattern tag of a write; the origin snapshot of a clone
};

inline std::string VolCrashSnapName(uint64_t id) { return "v@s" + std::to_string(id); }
inline std::string VolCrashCloneName(uint64_t id) { return "c" + std::to_string(id); }

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
    std::vector<uint64_t> snaps;       // ids of v's snapshots
    std::vector<uint64_t> deletable;   // ... that no clone depends on
    std::map<uint64_t, uint64_t> snap_by_dataset;
    uint64_t clone = 0, clone_origin_dataset = 0;
    for (const auto& d : vm.List()) {
      if (d.is_snapshot()) {
        snaps.push_back(std::strtoull(d.name.c_str() + 3, nullptr, 10));
        snap_by_dataset[d.id] = snaps.back();
      } else if (d.name[0] == 'c') {
        clone = std::strtoull(d.name.c_str() + 1, nullptr, 10);
        clone_origin_dataset = d.origin_id;
      }
    }
    for (uint64_t sid : snaps) {
      if (clone == 0 || snap_by_dataset[clone_origin_dataset] != sid) deletable.push_back(sid);
    }
    Status s;
    if (dice < 70) {
      uint64_t b = rng() % kVolCrashBlocks;
      log(VolCrashRec{'W', b, id});
      auto dev = vm.OpenDevice("v");
      if (!dev.ok()) return dev.status();
      s = (*dev)->Write(b * kVolCrashBs, PatternBlock(kVolCrashBs, seed, id));
    } else if (dice < 76 && clone == 0 && !snaps.empty()) {
      uint64_t origin = snaps[rng() % snaps.size()];
      log(VolCrashRec{'C', id, origin});
      s = vm.Clone(VolCrashSnapName(origin), VolCrashCloneName(id), {});
      if (s.ok()) log(VolCrashRec{'c', id, origin});
    } else if (dice < 79 && clone != 0) {
      log(VolCrashRec{'K', clone, 0});
      s = vm.Destroy(VolCrashCloneName(clone), false, false);
      if (s.ok()) log(VolCrashRec{'k', clone, 0});
    } else if (dice < 87 || deletable.empty()) {
      log(VolCrashRec{'N', id, 0});
      s = vm.Snapshot({VolCrashSnapName(id)});
      if (s.ok()) log(VolCrashRec{'n', id, 0});
    } else if (dice < 95) {
      uint64_t oldest = *std::min_element(deletable.begin(), deletable.end());
      log(VolCrashRec{'D', oldest, 0});
      s = vm.Destroy(VolCrashSnapName(oldest), false, false);
      if (s.ok()) log(VolCrashRec{'d', oldest, 0});
    } else {
      uint64_t newest = *std::max_element(snaps.begin(), snaps.end());
      log(VolCrashRec{'R', newest, 0});
      s = vm.Rollback(VolCrashSnapName(newest), false);
      if (s.ok()) log(VolCrashRec{'r', newest, 0});
    }
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace blockhaus::testing
