// CDB field decoding (internal/cdb.h).

#include "export/scsi/internal/cdb.h"

#include "export/scsi/scsi_spec.h"

namespace blockhaus::scsi::internal {

BlockRange DecodeBlockRange(const std::array<uint8_t, 16>& cdb) {
  const uint8_t* c = cdb.data();
  BlockRange r;
  switch (c[0] >> 5) {
    case 0:  // SBC-3 §5.14 READ(6): 21-bit LBA, 0 blocks means 256
      r.lba = DecodeBE24(c + 1) & 0x1fffff;
      r.blocks = c[4] == 0 ? 256 : c[4];
      break;
    case 1:
    case 2:  // 10-byte
      r.flags = c[1];
      r.lba = DecodeBE32(c + 2);
      r.blocks = DecodeBE16(c + 7);
      break;
    case 4:  // 16-byte
      r.flags = c[1];
      r.lba = DecodeBE64(c + 2);
      r.blocks = c[0] == op::kCompareAndWrite ? c[13] : DecodeBE32(c + 10);
      break;
    case 5:  // 12-byte
      r.flags = c[1];
      r.lba = DecodeBE32(c + 2);
      r.blocks = DecodeBE32(c + 6);
      break;
    default:
      break;
  }
  return r;
}

uint8_t CdbLengthForOpcode(uint8_t opcode) {
  switch (opcode >> 5) {
    case 0: return 6;
    case 1:
    case 2: return 10;
    case 4: return 16;
    case 5: return 12;
    default: return 0;
  }
}

}  // namespace blockhaus::scsi::internal
