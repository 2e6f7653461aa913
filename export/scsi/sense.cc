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

SenseData StatusToSense(const Status& status, bool writing) {
  switch (status.code()) {
    case Code::kOk:
      return {SenseKey::kNoSense, 0x00, 0x00};
    case Code::kInvalidArgument:
      return {SenseKey::kIllegalRequest, 0x21, 0x00};
    case Code::kPermissionDenied:
      return {SenseKey::kDataProtect, 0x27, 0x00};
    case Code::kResourceExhausted:
      return {SenseKey::kDataProtect, 0x27, 0x07};
    case Code::kCorruption:
      return {SenseKey::kMediumError, 0x11, 0x00};
    case Code::kIOError:
      return writing ? SenseData{SenseKey::kMediumError, 0x0c, 0x00}
                     : SenseData{SenseKey::kMediumError, 0x11, 0x00};
    case Code::kUnavailable:
    case Code::kWouldBlock:  // never reaches an initiator (Response::would_block)
      return {SenseKey::kNotReady, 0x04, 0x00};
    case Code::kAborted:
      return {SenseKey::kAbortedCommand, 0x00, 0x00};
    case Code::kNotSupported:
      return {SenseKey::kIllegalRequest, 0x24, 0x00};
    case Code::kNotFound:
    case Code::kAlreadyExists:
    case Code::kFailedPrecondition:
    case Code::kInternal:
      return {SenseKey::kHardwareError, 0x44, 0x00};
  }
  return {SenseKey::kHardwareError, 0x44, 0x00};
}

}  // namespace blockhaus::scsi
