// Decoding of the fields a block command's CDB carries (SBC-3 §5), shared by
// sbc.cc and the unit's fast path. Pure functions over the 16-byte CDB the
// transport hands over (shorter CDBs are zero-padded).
// Thread safety: pure.
#pragma once

#include <array>
#include <cstdint>

namespace blockhaus::scsi::internal {

// The addressing part of a READ/WRITE/VERIFY/WRITE SAME/PRE-FETCH/COMPARE
// AND WRITE CDB.
struct BlockRange {
  uint64_t lba = 0;
  uint32_t blocks = 0;   // as the CDB says it (READ(6) 0 already means 256)
  uint8_t flags = 0;     // byte 1 of 10/12/16-byte CDBs (RDPROTECT/WRPROTECT, DPO, FUA, BYTCHK...)
};

// Decodes the LBA and transfer length of a block command by CDB group
// (opcode bits 7..5): 6-byte (group 0), 10-byte (1, 2), 16-byte (4), 12-byte (5).
// COMPARE AND WRITE keeps its NUMBER OF LOGICAL BLOCKS in byte 13.
BlockRange DecodeBlockRange(const std::array<uint8_t, 16>& cdb);

// Byte 1 flag bits of SBC-3 block CDBs.
inline constexpr uint8_t kFlagFua = 0x08;
inline constexpr uint8_t kFlagDpo = 0x10;
inline constexpr uint8_t kFlagBytchk = 0x02;   // VERIFY/WRITE AND VERIFY: BYTCHK (bits 2..1, low bit used)
inline constexpr uint8_t kProtectMask = 0xe0;  // RDPROTECT/WRPROTECT/VRPROTECT

// The CDB length implied by the opcode's group code (SPC-4 §4.2.5.1), 0 for
// vendor-specific groups.
uint8_t CdbLengthForOpcode(uint8_t opcode);

}  // namespace blockhaus::scsi::internal
