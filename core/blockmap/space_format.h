// Space accounting of lineages: the tallies and their on-disk form
// (FORMAT VERSION kSpaceVersion; pool metadata format 2).
//
// Column family "space" (all keys big-endian):
//   lineage u64                          -> LineageSpacePhys (104 bytes)
//   lineage u64 | 0x01 | snapshot txg u64 -> SnapshotSpacePhys (56 bytes)
//   lineage u64 | 0x02 | death_lo u64 | birth_hi u64 -> SpaceTallyPhys (16)
//
// A tally is {phys, logical}: phys is the allocated bytes (psize rounded up
// to the pool's sector), logical the block size; holes count zero.
//
// LineageSpacePhys: u8 version, u8 reserved[7], then tallies of two
//   u64 LE each (five): total (every version in "blocks"), head (versions the head
//   sees), head_new (of those, born after the newest snapshot), shadowed
//   (origin bytes the head hides: clones), freeing (dead versions no
//   snapshot sees, waiting for a free job), and u64 reservation + u64 0.
// SnapshotSpacePhys: u8 version, u8 reserved[7], referenced (own versions
//   visible at the snapshot), written (of those, born after the previous
//   snapshot), shadowed (origin bytes hidden at the snapshot).
// SpaceTallyPhys: the bytes of dead versions whose death lies in
//   (death_lo, next snapshot after death_lo] and whose birth lies in
//   (snapshot before birth_hi, birth_hi]; death_lo and birth_hi are
//   snapshot txgs of the lineage (ZFS deadlist buckets).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "core/base/status.h"

namespace blockhaus::core {

inline constexpr uint8_t kSpaceVersion = 1;
inline constexpr size_t kLineageSpaceSize = 104;
inline constexpr size_t kSnapshotSpaceSize = 56;
inline constexpr size_t kSpaceTallySize = 16;
inline constexpr uint8_t kSpaceKeySnapshot = 0x01;
inline constexpr uint8_t kSpaceKeyDead = 0x02;

struct SpaceTally {
  uint64_t phys = 0;
  uint64_t logical = 0;

  bool zero() const { return phys == 0 && logical == 0; }
  SpaceTally& operator+=(const SpaceTally& o) {
    phys += o.phys;
    logical += o.logical;
    return *this;
  }
  // REQUIRES: o <= *this in both fields (else the accounting is broken; the
  // caller checks).
  SpaceTally& operator-=(const SpaceTally& o) {
    phys -= o.phys;
    logical -= o.logical;
    return *this;
  }
  bool covers(const SpaceTally& o) const { return phys >= o.phys && logical >= o.logical; }
  bool operator==(const SpaceTally&) const = default;
};

struct SnapshotSpace {
  SpaceTally referenced;  // own versions visible at the snapshot (fixed)
  SpaceTally written;     // of those, born after the previous snapshot
  SpaceTally shadowed;    // origin bytes its own versions hide (clones; fixed)
  bool operator==(const SnapshotSpace&) const = default;
};

// The space of one lineage. Dead versions a snapshot sees are kept in
// buckets keyed (death_lo, birth_hi); see space_format.h's top comment.
struct LineageSpace {
  SpaceTally total;
  SpaceTally head;
  SpaceTally head_new;
  SpaceTally shadowed;
  SpaceTally freeing;
  uint64_t reservation = 0;  // bytes, set by the layer above
  std::map<uint64_t, SnapshotSpace> snapshots;                  // by txg
  std::map<std::pair<uint64_t, uint64_t>, SpaceTally> dead;     // (death_lo, birth_hi)

  // The bytes only snapshot `txg` sees: its (txg, txg) bucket.
  SpaceTally Unique(uint64_t txg) const {
    auto it = dead.find({txg, txg});
    return it == dead.end() ? SpaceTally{} : it->second;
  }
  // The bytes the snapshots hold beyond the head (sum of all buckets).
  SpaceTally Snapshots() const {
    SpaceTally t;
    for (const auto& [k, v] : dead) t += v;
    return t;
  }
  bool operator==(const LineageSpace&) const = default;
};

std::string SpaceLineageKey(uint64_t lineage);
std::string SpaceSnapshotKey(uint64_t lineage, uint64_t txg);
std::string SpaceDeadKey(uint64_t lineage, uint64_t death_lo, uint64_t birth_hi);

// The lineage record carries everything but the snapshots and buckets.
std::string EncodeLineageSpace(const LineageSpace& s);
// Errors: Corruption (size, version).
Status DecodeLineageSpace(std::string_view encoded, LineageSpace* s);
std::string EncodeSnapshotSpace(const SnapshotSpace& s);
Result<SnapshotSpace> DecodeSnapshotSpace(std::string_view encoded);
std::string EncodeSpaceTally(const SpaceTally& t);
Result<SpaceTally> DecodeSpaceTally(std::string_view encoded);

// Decodes any key of the "space" family: the lineage, and for snapshot keys
// the txg, for dead keys the bucket. Errors: Corruption.
struct SpaceKey {
  uint64_t lineage = 0;
  uint8_t kind = 0;  // 0 lineage record, kSpaceKeySnapshot, kSpaceKeyDead
  uint64_t a = 0;    // snapshot txg or death_lo
  uint64_t b = 0;    // birth_hi
};
Result<SpaceKey> DecodeSpaceKey(std::string_view key);

}  // namespace blockhaus::core
