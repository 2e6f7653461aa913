#include "export/scsi/sense.h"

namespace blockhaus::scsi {

std::vector<uint8_t> FixedSense(SenseKey key, uint8_t asc, uint8_t ascq) {
  std::vector<uint8_t> sense(kFixedSenseLength, 0);
  sense[0] = 0x70;                            // current error, fixed format
  sense[2] = static_cast<uint8_t>(key);
  sense[7] = kFixedSenseLength - 8;           // additional sense length
  sense[12] = asc;
  sense[13] = ascq;
  return sense;
}

std::vector<uint8_t> FixedSenseWithInfo(SenseKey key, uint8_t asc, uint8_t ascq, uint32_t info) {
  std::vector<uint8_t> sense = FixedSense(key, asc, ascq);
  sense[0] |= 0x80;                           // VALID: INFORMATION is meaningful
  sense[3] = static_cast<uint8_t>(info >> 24);
  sense[4] = static_cast<uint8_t>(info >> 16);
  sense[5] = static_cast<uint8_t>(info >> 8);
  sense[6] = static_cast<uint8_t>(info);
  return sense;
}

}  // namespace blockhaus::scsi
