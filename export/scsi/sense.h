// Sense data: how a SCSI command says what went wrong (SPC-4 §4.5).
//
// Blockhaus reports fixed-format sense data (response code 70h, current
// errors), which every initiator we are measured against parses.
// Thread safety: functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

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

}  // namespace blockhaus::scsi
