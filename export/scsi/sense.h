// Sense data: how a SCSI command says what went wrong (SPC-4 §4.5).
//
// Blockhaus reports fixed-format sense data (response code 70h, current
// errors), which every initiator we are measured against parses.
// Thread safety: functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/base/status.h"

namespace blockhaus::scsi {

enum class SenseKey : uint8_t {
  kNoSense = 0x0,
  kRecoveredError = 0x1,
  kNotReady = 0x2,
  kMediumError = 0x3,
  kHardwareError = 0x4,
  kIllegalRequest = 0x5,
  kUnitAttention = 0x6,
  kDataProtect = 0x7,
  kAbortedCommand = 0xb,
  kMiscompare = 0xe,
};

inline constexpr size_t kFixedSenseLength = 18;

// Fixed-format sense: 70h, key, ASC/ASCQ, additional length 10.
std::vector<uint8_t> FixedSense(SenseKey key, uint8_t asc, uint8_t ascq);

// As FixedSense, with the INFORMATION field (bytes 3..6) set and VALID (bit 7
// of byte 0) on, e.g. the offset of the first miscompare of COMPARE AND WRITE.
std::vector<uint8_t> FixedSenseWithInfo(SenseKey key, uint8_t asc, uint8_t ascq, uint32_t info);

// A sense key with its additional sense code and qualifier.
struct SenseData {
  SenseKey key = SenseKey::kNoSense;
  uint8_t asc = 0;
  uint8_t ascq = 0;
};

// The one mapping of a Status (from volume::BlockDevice) to SCSI sense
// (STYLE.md §3). `writing` picks WRITE ERROR over UNRECOVERED READ ERROR
// for device failures. Ok maps to NO SENSE.
//   InvalidArgument    05h/21h/00h LOGICAL BLOCK ADDRESS OUT OF RANGE
//   PermissionDenied   07h/27h/00h WRITE PROTECTED
//   ResourceExhausted  07h/27h/07h SPACE ALLOCATION FAILED WRITE PROTECT
//   Corruption         03h/11h/00h UNRECOVERED READ ERROR
//   IOError            03h/11h/00h, or 03h/0Ch/00h WRITE ERROR when writing
//   Unavailable        02h/04h/00h NOT READY (rollback fence, suspended pool)
//   Aborted            0Bh/00h/00h ABORTED COMMAND
//   NotSupported       05h/24h/00h INVALID FIELD IN CDB
//   anything else      04h/44h/00h INTERNAL TARGET FAILURE
SenseData StatusToSense(const Status& status, bool writing);

}  // namespace blockhaus::scsi
