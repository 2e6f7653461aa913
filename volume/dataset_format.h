// On-disk form of datasets and coalescer jobs (FORMAT VERSION
// kDatasetFormatVersion), in core's client column family:
//
//   "ds/" + id (u64 BE)   -> dataset record, JSON object, see below
//   "name/" + name        -> id (u64 LE)
//   "gc/" + seq (u64 BE)  -> coalescer job, JSON object
//   "vol/next_id", "vol/next_gc" -> u64 LE counters
//
// Dataset and job records are JSON (nlohmann) with a "v" version field:
// they are small, written only by admin operations, and gain fields over
// time (properties), which JSON absorbs without a format break. Decoding
// checks every field's type and range and reports Corruption otherwise.
// Block-path formats stay binary (core's *_format.h).
#pragma once

#include <string>
#include <string_view>

#include "core/base/status.h"
#include "volume/dataset.h"

namespace blockhaus::volume {

inline constexpr int kDatasetFormatVersion = 1;

std::string DatasetKey(uint64_t id);
std::string NameKey(std::string_view name);
std::string JobKey(uint64_t seq);
inline constexpr std::string_view kDatasetPrefix = "ds/";
inline constexpr std::string_view kJobPrefix = "gc/";
inline constexpr std::string_view kNextIdKey = "vol/next_id";
inline constexpr std::string_view kNextJobKey = "vol/next_gc";

std::string EncodeDataset(const Dataset& ds);
Result<Dataset> DecodeDataset(std::string_view encoded);

// A unit of background freeing. kDeadInterval frees the dead versions of a
// lineage born in (birth_lo, birth_hi] that died in (death_lo, death_hi]
// (a destroyed snapshot); kLineage destroys a whole lineage (a destroyed
// volume or clone).
struct FreeJob {
  enum class Kind : uint8_t { kDeadInterval = 1, kLineage = 2 } kind = Kind::kLineage;
  uint64_t lineage = 0;
  uint64_t birth_lo = 0, birth_hi = 0, death_lo = 0, death_hi = 0;
  uint64_t freed_bytes = 0;  // progress so far
  // kDeadInterval runs in passes over the interval; a pass resumes at
  // `cursor` (a dead-list key, empty at the start of a pass). A pass that
  // freed something is followed by another one, because freeing a version
  // can move its predecessor's entry behind the cursor; the job is done
  // after a pass that freed nothing.
  std::string cursor;
  bool pass_freed = false;

  bool operator==(const FreeJob&) const = default;
};

std::string EncodeJob(const FreeJob& job);
Result<FreeJob> DecodeJob(std::string_view encoded);

std::string EncodeU64(uint64_t v);
Result<uint64_t> DecodeU64(std::string_view v);

}  // namespace blockhaus::volume
