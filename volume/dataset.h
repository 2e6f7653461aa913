// Datasets: the named objects of a pool (volumes and snapshots).
//
// A volume owns a core lineage; its snapshots are views of that lineage at
// txgs; a clone is a volume whose lineage falls through to a snapshot of
// another. Names are pool-relative: "vm101" or "vm101@before-upgrade". The
// pool name is the CLI's business.
//
// Records are stored in core's client column family (dataset_format.h).
// Thread safety: values.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "core/base/status.h"
#include "core/checksum/checksum.h"
#include "core/compress/compress.h"

namespace blockhaus::volume {

enum class DatasetType : uint8_t { kVolume = 1, kSnapshot = 2 };

inline constexpr uint32_t kMinVolBlockSize = 4096;
inline constexpr uint32_t kMaxVolBlockSize = 128 * 1024;
inline constexpr uint32_t kDefaultVolBlockSize = 16 * 1024;

struct VolumeProps {
  uint64_t volsize = 0;                  // bytes, a multiple of volblocksize
  uint32_t volblocksize = kDefaultVolBlockSize;
  core::Compression compression{core::CompressionAlgo::kLz4, 0};
  core::ChecksumType checksum = core::ChecksumType::kXxh3_128;
  uint64_t refreservation = 0;           // bytes; volsize for thick volumes
  bool readonly = false;
  std::map<std::string, std::string> user;  // names contain ':'
  // Native properties set explicitly (create -o, set); the others have
  // their default value. Drives the SOURCE column of get and inherit.
  std::set<std::string> local;

  bool operator==(const VolumeProps&) const = default;
};

struct Dataset {
  uint64_t id = 0;
  DatasetType type = DatasetType::kVolume;
  std::string name;         // "vol" or "vol@snap"
  uint64_t lineage = 0;     // the volume's lineage (snapshots: their volume's)
  uint64_t txg = 0;         // snapshots: the view; volumes: creation txg
  uint64_t volume_id = 0;   // snapshots: the volume they belong to
  uint64_t origin_id = 0;   // clones: the snapshot they were cloned from
  uint64_t creation = 0;    // seconds since the epoch
  uint64_t guid = 0;
  VolumeProps props;        // snapshots: the volume's at snapshot time
  std::map<std::string, uint64_t> holds;  // snapshots: tag -> time placed (zfs hold)

  bool is_snapshot() const { return type == DatasetType::kSnapshot; }
  bool operator==(const Dataset&) const = default;
};

// zfs naming rules for the part after the pool: letters, digits, '_', '-',
// '.', ':'; volume part at most 200 characters, snapshot part at most 200;
// exactly one '@' for snapshots and none for volumes.
// Errors: InvalidArgument naming the rule.
Status ValidateVolumeName(std::string_view name);
Status ValidateSnapshotName(std::string_view name);

// Splits "vol@snap" into ("vol", "snap"); ("vol", "") without '@'.
std::pair<std::string, std::string> SplitSnapshotName(std::string_view name);

// A hold tag: 1 to 256 bytes, no NUL or newline.
// Errors: InvalidArgument.
Status ValidateHoldTag(std::string_view tag);

// Where a property's value comes from, as zfs get shows it for a zvol:
// "local" (set at create or later), "default" (never set), or "-" (fixed
// at create, read-only, or any native property of a snapshot). There is
// no "inherited": volumes have no parent dataset whose values they take.
std::string PropertySource(const Dataset& ds, std::string_view prop);

}  // namespace blockhaus::volume
