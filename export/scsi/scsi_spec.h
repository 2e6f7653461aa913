// SCSI wire constants and big-endian field helpers (SPC-4, SBC-3, SAM-5).
//
// Every byte the command set puts on or takes off the wire goes through the
// Encode/Decode helpers here or in core/base/endian.h; no struct is ever
// cast over a CDB or a parameter list (STYLE.md §2). Offsets are written
// where they are used, next to the section of the standard they come from.
// Thread safety: constants and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/base/endian.h"

namespace blockhaus::scsi {

// Version of the layouts in this file that the command set persists (only
// the APTPL reservation record, persistent_reservations.cc).
inline constexpr uint32_t kScsiSpecFormatVersion = 1;

inline void EncodeBE16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline uint16_t DecodeBE16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
inline uint32_t DecodeBE24(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 16) | (static_cast<uint32_t>(p[1]) << 8) | p[2];
}

// Operation codes (SPC-4 Annex D, SBC-3 §5).
namespace op {
inline constexpr uint8_t kTestUnitReady = 0x00;
inline constexpr uint8_t kRequestSense = 0x03;
inline constexpr uint8_t kRead6 = 0x08;
inline constexpr uint8_t kWrite6 = 0x0a;
inline constexpr uint8_t kInquiry = 0x12;
inline constexpr uint8_t kModeSelect6 = 0x15;
inline constexpr uint8_t kReserve6 = 0x16;
inline constexpr uint8_t kRelease6 = 0x17;
inline constexpr uint8_t kModeSense6 = 0x1a;
inline constexpr uint8_t kStartStopUnit = 0x1b;
inline constexpr uint8_t kPreventAllow = 0x1e;
inline constexpr uint8_t kReadCapacity10 = 0x25;
inline constexpr uint8_t kRead10 = 0x28;
inline constexpr uint8_t kWrite10 = 0x2a;
inline constexpr uint8_t kWriteVerify10 = 0x2e;
inline constexpr uint8_t kVerify10 = 0x2f;
inline constexpr uint8_t kPreFetch10 = 0x34;
inline constexpr uint8_t kReadDefectData10 = 0x37;
inline constexpr uint8_t kSyncCache10 = 0x35;
inline constexpr uint8_t kWriteSame10 = 0x41;
inline constexpr uint8_t kUnmap = 0x42;
inline constexpr uint8_t kModeSelect10 = 0x55;
inline constexpr uint8_t kReserve10 = 0x56;
inline constexpr uint8_t kRelease10 = 0x57;
inline constexpr uint8_t kModeSense10 = 0x5a;
inline constexpr uint8_t kPrIn = 0x5e;
inline constexpr uint8_t kPrOut = 0x5f;
inline constexpr uint8_t kRead16 = 0x88;
inline constexpr uint8_t kCompareAndWrite = 0x89;
inline constexpr uint8_t kWrite16 = 0x8a;
inline constexpr uint8_t kOrWrite16 = 0x8b;
inline constexpr uint8_t kWriteVerify16 = 0x8e;
inline constexpr uint8_t kVerify16 = 0x8f;
inline constexpr uint8_t kPreFetch16 = 0x90;
inline constexpr uint8_t kSyncCache16 = 0x91;
inline constexpr uint8_t kWriteSame16 = 0x93;
inline constexpr uint8_t kServiceActionIn16 = 0x9e;
inline constexpr uint8_t kReportLuns = 0xa0;
inline constexpr uint8_t kMaintenanceIn = 0xa3;
inline constexpr uint8_t kRead12 = 0xa8;
inline constexpr uint8_t kWrite12 = 0xaa;
inline constexpr uint8_t kWriteVerify12 = 0xae;
inline constexpr uint8_t kVerify12 = 0xaf;
inline constexpr uint8_t kReadDefectData12 = 0xb7;
}  // namespace op

// Service actions.
namespace sa {
inline constexpr uint8_t kReadCapacity16 = 0x10;   // SERVICE ACTION IN(16)
inline constexpr uint8_t kGetLbaStatus = 0x12;     // SERVICE ACTION IN(16)
inline constexpr uint8_t kReportSupportedOpcodes = 0x0c;  // MAINTENANCE IN
inline constexpr uint8_t kReportSupportedTmfs = 0x0d;     // MAINTENANCE IN
}  // namespace sa

// Additional sense codes (ASC, ASCQ) used by the command set (SPC-4 Annex D.2).
struct Asc {
  uint8_t asc;
  uint8_t ascq;
};
namespace asc {
inline constexpr Asc kNoAdditional{0x00, 0x00};
inline constexpr Asc kNotReadyCauseNotReportable{0x04, 0x00};
inline constexpr Asc kWriteError{0x0c, 0x00};
inline constexpr Asc kUnrecoveredReadError{0x11, 0x00};
inline constexpr Asc kMiscompareDuringVerify{0x1d, 0x00};
inline constexpr Asc kParameterListLengthError{0x1a, 0x00};
inline constexpr Asc kInvalidOpcode{0x20, 0x00};
inline constexpr Asc kLbaOutOfRange{0x21, 0x00};
inline constexpr Asc kInvalidFieldInCdb{0x24, 0x00};
inline constexpr Asc kLunNotSupported{0x25, 0x00};
inline constexpr Asc kInvalidFieldInParameterList{0x26, 0x00};
inline constexpr Asc kWriteProtected{0x27, 0x00};
inline constexpr Asc kSpaceAllocationFailedWriteProtect{0x27, 0x07};
inline constexpr Asc kPowerOnOrReset{0x29, 0x00};
inline constexpr Asc kItNexusLoss{0x29, 0x07};
inline constexpr Asc kModeParametersChanged{0x2a, 0x01};
inline constexpr Asc kReservationsPreempted{0x2a, 0x03};
inline constexpr Asc kReservationsReleased{0x2a, 0x04};
inline constexpr Asc kRegistrationsPreempted{0x2a, 0x05};
inline constexpr Asc kCapacityDataChanged{0x2a, 0x09};
inline constexpr Asc kSoftThresholdReached{0x38, 0x07};   // THIN PROVISIONING SOFT THRESHOLD REACHED
inline constexpr Asc kSavingParametersNotSupported{0x39, 0x00};
inline constexpr Asc kReportedLunsDataChanged{0x3f, 0x0e};
inline constexpr Asc kInternalTargetFailure{0x44, 0x00};
inline constexpr Asc kInsufficientRegistrationResources{0x55, 0x04};
}  // namespace asc

// INQUIRY VPD page codes (SPC-4 §7.8, SBC-3 §6.5).
namespace vpd {
inline constexpr uint8_t kSupportedPages = 0x00;
inline constexpr uint8_t kUnitSerialNumber = 0x80;
inline constexpr uint8_t kDeviceIdentification = 0x83;
inline constexpr uint8_t kBlockLimits = 0xb0;
inline constexpr uint8_t kBlockDeviceCharacteristics = 0xb1;
inline constexpr uint8_t kLogicalBlockProvisioning = 0xb2;
}  // namespace vpd

// Mode pages (SPC-4 §7.5, SBC-3 §6.4).
namespace mode {
inline constexpr uint8_t kCachingPage = 0x08;
inline constexpr uint8_t kControlPage = 0x0a;
inline constexpr uint8_t kInformationalExceptionsPage = 0x1c;
inline constexpr uint8_t kLogicalBlockProvisioningSubpage = 0x02;   // of 1Ch (SBC-3 §6.4.6)
inline constexpr uint8_t kAllPages = 0x3f;
inline constexpr uint8_t kAllSubpages = 0xff;
inline constexpr uint8_t kSubpageFormat = 0x40;                     // SPF bit of byte 0
inline constexpr uint8_t kCachingPageLength = 0x12;                // SBC-3 §6.4.5
inline constexpr uint8_t kControlPageLength = 0x0a;                // SPC-4 §7.5.7
inline constexpr uint8_t kInformationalExceptionsPageLength = 0x0a;  // SPC-4 §7.5.13
// SBC-3 §6.4.6 Logical Block Provisioning: a 16-byte header (SITUA in byte
// 4) and 8-byte threshold descriptors.
inline constexpr size_t kLbpPageHeaderLength = 16;
inline constexpr size_t kThresholdDescriptorLength = 8;
inline constexpr uint8_t kThresholdEnabled = 0x80;          // descriptor byte 0
inline constexpr uint8_t kThresholdTypeSoft = 0x00;         // bits 5..3
inline constexpr uint8_t kThresholdArmingDecreasing = 0x00; // bits 2..0
inline constexpr uint8_t kResourceAvailableLbaMapping = 0x01;
inline constexpr size_t kShortBlockDescriptorLength = 8;
inline constexpr size_t kLongBlockDescriptorLength = 16;
}  // namespace mode

// Persistent reservation types (SPC-4 §6.15.2 table 172).
enum class PrType : uint8_t {
  kNone = 0,
  kWriteExclusive = 1,
  kExclusiveAccess = 3,
  kWriteExclusiveRegistrantsOnly = 5,
  kExclusiveAccessRegistrantsOnly = 6,
  kWriteExclusiveAllRegistrants = 7,
  kExclusiveAccessAllRegistrants = 8,
};

// PERSISTENT RESERVE IN / OUT service actions (SPC-4 §6.14, §6.15).
namespace prin {
inline constexpr uint8_t kReadKeys = 0x00;
inline constexpr uint8_t kReadReservation = 0x01;
inline constexpr uint8_t kReportCapabilities = 0x02;
inline constexpr uint8_t kReadFullStatus = 0x03;
}  // namespace prin
namespace prout {
inline constexpr uint8_t kRegister = 0x00;
inline constexpr uint8_t kReserve = 0x01;
inline constexpr uint8_t kRelease = 0x02;
inline constexpr uint8_t kClear = 0x03;
inline constexpr uint8_t kPreempt = 0x04;
inline constexpr uint8_t kPreemptAndAbort = 0x05;
inline constexpr uint8_t kRegisterAndIgnore = 0x06;
inline constexpr uint8_t kRegisterAndMove = 0x07;
inline constexpr size_t kBasicParameterListLength = 24;  // SPC-4 §6.15.3
}  // namespace prout

// Fixed sizes of the data the command set returns.
inline constexpr size_t kStandardInquiryLength = 96;       // SPC-4 §6.4.2 with 8 version descriptors
inline constexpr size_t kReadCapacity10Length = 8;          // SBC-3 §5.15.2
inline constexpr size_t kReadCapacity16Length = 32;         // SBC-3 §5.16.2
inline constexpr size_t kBlockLimitsPageLength = 0x3c;      // SBC-3 §6.5.3
inline constexpr size_t kUnmapDescriptorLength = 16;        // SBC-3 §5.28.2
inline constexpr size_t kUnmapHeaderLength = 8;
inline constexpr size_t kLbaStatusDescriptorLength = 16;    // SBC-3 §5.8.2

}  // namespace blockhaus::scsi
