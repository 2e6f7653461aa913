// Limits the command set advertises in the Block Limits VPD page (spc.cc)
// and enforces (sbc.cc). Constants; see the Tunables of sbc.cc.
#pragma once

#include <cstdint>

namespace blockhaus::scsi::internal {

inline constexpr uint32_t kMaxTransferBytes = 8u << 20;      // one READ/WRITE
inline constexpr uint32_t kOptimalTransferBytes = 1u << 20;
inline constexpr uint32_t kMaxUnmapBlocks = 1u << 20;        // LBAs per UNMAP command
inline constexpr uint32_t kMaxUnmapDescriptors = 256;
inline constexpr uint64_t kMaxWriteSameBlocks = 1u << 16;    // LBAs per WRITE SAME
inline constexpr uint8_t kMaxCompareAndWriteBlocks = 128;

// MAXIMUM WRITE SAME LENGTH for a logical block size: kMaxWriteSameBlocks,
// capped at one maximum transfer, because initiators (libiscsi among them)
// write or read back a whole WRITE SAME range with one READ/WRITE.
inline constexpr uint64_t MaxWriteSameBlocks(uint32_t lbs) {
  return kMaxWriteSameBlocks < kMaxTransferBytes / lbs ? kMaxWriteSameBlocks
                                                       : kMaxTransferBytes / lbs;
}

}  // namespace blockhaus::scsi::internal
