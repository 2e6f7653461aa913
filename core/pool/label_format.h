// The pool label (FORMAT VERSION kLabelVersion): who a pool is.
//
// Written once at create into <pool dir>/label and into the first 4 KiB of
// the data vdev, so that a data file or device can be matched to its pool.
// The two must agree on the GUID. LabelPhys, 4096 bytes, little-endian:
//     0  u8[8]  magic "BHPOOL\0\1"
//     8  u32    format version (kLabelVersion)
//    12  u32    ashift (sector size = 1 << ashift)
//    16  u64    pool GUID (random, never 0)
//    24  u64    creation time, seconds since the epoch
//    32  u64    data vdev size in bytes
//    40  u64    data_start: first allocatable byte
//    48  u64    slab size in bytes
//    56  u16    name length, u16 data path length, u32 reserved (0)
//    64  u8[256]   name, NUL padded
//   320  u8[3772]  data path, NUL padded
//  4092  u32    CRC32C of bytes [0, 4092)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace blockhaus::core {

inline constexpr uint32_t kLabelVersion = 1;
inline constexpr size_t kLabelSize = 4096;
inline constexpr size_t kLabelMaxName = 256;
inline constexpr size_t kLabelMaxPath = 3772;
// Bytes at the start of the data vdev kept for the label and future use.
inline constexpr uint64_t kDataReserved = 1 << 20;

struct PoolLabel {
  uint64_t guid = 0;
  uint64_t create_time = 0;
  uint64_t data_size = 0;
  uint64_t data_start = kDataReserved;
  uint64_t slab_size = 0;
  uint32_t ashift = 12;
  std::string name;
  std::string data_path;

  bool operator==(const PoolLabel&) const = default;
};

// REQUIRES: name and path fit (InvalidArgument otherwise).
Result<std::string> EncodeLabel(const PoolLabel& label);
// Errors: Corruption (wrong size, magic, checksum, impossible geometry),
// NotSupported (a newer format version).
Result<PoolLabel> DecodeLabel(std::string_view encoded);

}  // namespace blockhaus::core
