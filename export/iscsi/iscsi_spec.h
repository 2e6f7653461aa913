// iSCSI wire format (RFC 7143 §11): opcodes, the 48-byte Basic Header
// Segment of every PDU type, login status codes, reject reasons, task
// management codes and the limits the target negotiates.
//
// Every PDU type has a plain struct holding its decoded fields and a pair
// of explicit Encode/Decode functions over a 48-byte big-endian buffer: no
// struct is ever cast over wire bytes. Decode never fails (every 48-byte
// pattern decodes); the reader and the handlers validate fields.
//
// Thread safety: pure functions and constants.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "core/base/endian.h"

namespace blockhaus::iscsi {

// The only iSCSI version there is (RFC 7143 §11.12.4: Version-max/min 0x00).
inline constexpr uint8_t kIscsiVersion = 0x00;

inline constexpr size_t kBhsSize = 48;
inline constexpr size_t kDigestSize = 4;
inline constexpr uint32_t kReservedTag = 0xffffffffu;  // ITT/TTT "none" (RFC 7143 §11.18)
inline constexpr uint32_t kMaxDataSegmentLength = (1u << 24) - 1;  // 24-bit field

using Bhs = std::array<uint8_t, kBhsSize>;
static_assert(sizeof(Bhs) == 48);

// RFC 7143 §11.2.1.2. Initiator opcodes 0x00-0x1f, target opcodes 0x20-0x3f.
enum class Opcode : uint8_t {
  kNopOut = 0x00,
  kScsiCommand = 0x01,
  kTaskMgmtRequest = 0x02,
  kLoginRequest = 0x03,
  kTextRequest = 0x04,
  kDataOut = 0x05,
  kLogoutRequest = 0x06,
  kSnackRequest = 0x10,
  kNopIn = 0x20,
  kScsiResponse = 0x21,
  kTaskMgmtResponse = 0x22,
  kLoginResponse = 0x23,
  kTextResponse = 0x24,
  kDataIn = 0x25,
  kLogoutResponse = 0x26,
  kR2t = 0x31,
  kAsyncMessage = 0x32,
  kReject = 0x3f,
};

// True for the opcodes an initiator may send (the reader refuses the rest).
constexpr bool IsInitiatorOpcode(uint8_t op) {
  return op <= 0x06 || op == 0x10;
}

// Login status class/detail (RFC 7143 §11.13.5), as one 16-bit value.
enum class LoginStatus : uint16_t {
  kSuccess = 0x0000,
  kInitiatorError = 0x0200,
  kAuthenticationFailure = 0x0201,
  kAuthorizationFailure = 0x0202,
  kNotFound = 0x0203,
  kTargetRemoved = 0x0204,
  kUnsupportedVersion = 0x0205,
  kTooManyConnections = 0x0206,
  kMissingParameter = 0x0207,
  kCantIncludeInSession = 0x0208,
  kSessionTypeNotSupported = 0x0209,
  kSessionDoesNotExist = 0x020a,
  kInvalidDuringLogin = 0x020b,
  kTargetError = 0x0300,
  kServiceUnavailable = 0x0301,
  kOutOfResources = 0x0302,
};

// Reject reasons (RFC 7143 §11.17.1).
enum class RejectReason : uint8_t {
  kDataDigestError = 0x02,
  kSnackReject = 0x03,
  kProtocolError = 0x04,
  kCommandNotSupported = 0x05,
  kImmediateCommandReject = 0x06,
  kTaskInProgress = 0x07,
  kInvalidDataAck = 0x08,
  kInvalidPduField = 0x09,
  kLongOperationReject = 0x0a,
  kWaitingForLogout = 0x0c,
};

// Task management functions and responses (RFC 7143 §11.5.1, §11.6.1).
enum class TmfFunction : uint8_t {
  kAbortTask = 1,
  kAbortTaskSet = 2,
  kClearAca = 3,
  kClearTaskSet = 4,
  kLogicalUnitReset = 5,
  kTargetWarmReset = 6,
  kTargetColdReset = 7,
  kTaskReassign = 8,
};
enum class TmfResponse : uint8_t {
  kComplete = 0,
  kTaskDoesNotExist = 1,
  kLunDoesNotExist = 2,
  kTaskStillAllegiant = 3,
  kReassignNotSupported = 4,
  kNotSupported = 5,
  kAuthorizationFailed = 6,
  kRejected = 255,
};

// Logout reasons and responses (RFC 7143 §11.14.1, §11.15.1).
enum class LogoutReason : uint8_t { kCloseSession = 0, kCloseConnection = 1, kRemoveForRecovery = 2 };
enum class LogoutResponse : uint8_t {
  kSuccess = 0,
  kCidNotFound = 1,
  kRecoveryNotSupported = 2,
  kCleanupFailed = 3,
};

// Login stages (CSG/NSG, RFC 7143 §11.12.3).
enum class Stage : uint8_t { kSecurity = 0, kOperational = 1, kFullFeature = 3 };

// --- Text key limits (RFC 7143 §6.1, TESTING.md SR-P2) ---
inline constexpr size_t kMaxKeyName = 63;
inline constexpr size_t kMaxValue = 255;
inline constexpr size_t kMaxChapBinaryValue = 2 + 2 * 1024;  // "0x" + 1024 bytes in hex
inline constexpr size_t kMaxTextTotal = 64 * 1024;           // C-bit reassembly cap
inline constexpr uint32_t kLoginMaxRecvDataSegment = 8192;   // both sides, until declared

// --- Values the target offers (RFC 7143 §13, TESTING.md SR-L5) ---
inline constexpr uint32_t kOfferedMaxRecvDataSegment = 262144;
inline constexpr uint32_t kOfferedMaxBurstLength = 1024 * 1024;
inline constexpr uint32_t kOfferedFirstBurstLength = 256 * 1024;
inline constexpr uint32_t kOfferedMaxOutstandingR2t = 4;
inline constexpr uint32_t kDefaultTime2Wait = 2;
inline constexpr uint32_t kDefaultTime2Retain = 20;
inline constexpr uint16_t kTargetPortalGroupTag = 1;

// --- Fields common to every BHS (RFC 7143 §11.2.1) ---
inline uint8_t BhsOpcode(const Bhs& b) { return b[0] & 0x3f; }
inline bool BhsImmediate(const Bhs& b) { return (b[0] & 0x40) != 0; }
inline bool BhsFinal(const Bhs& b) { return (b[1] & 0x80) != 0; }
inline uint8_t BhsTotalAhsLength(const Bhs& b) { return b[4]; }  // in 4-byte words
inline uint32_t BhsDataSegmentLength(const Bhs& b) {
  return (uint32_t{b[5]} << 16) | (uint32_t{b[6]} << 8) | b[7];
}
inline uint32_t BhsItt(const Bhs& b) { return DecodeBE32(&b[16]); }
void SetBhsDataSegmentLength(Bhs* b, uint32_t length);
// Padding that follows a data segment of `length` bytes (RFC 7143 §11.2.3).
inline uint32_t PadLength(uint32_t length) { return (4 - (length & 3)) & 3; }

// --- Initiator PDUs ---

struct ScsiCommandBhs {  // RFC 7143 §11.3
  bool immediate = false;
  bool final = true;
  bool read = false;
  bool write = false;
  uint8_t attr = 0;             // scsi::TaskAttr values
  uint8_t total_ahs_length = 0;
  uint32_t data_segment_length = 0;
  uint64_t lun = 0;             // the raw 8-byte LUN field
  uint32_t itt = 0;
  uint32_t edtl = 0;            // Expected Data Transfer Length
  uint32_t cmdsn = 0;
  uint32_t expstatsn = 0;
  std::array<uint8_t, 16> cdb{};
};
void EncodeScsiCommand(const ScsiCommandBhs& v, Bhs* out);
ScsiCommandBhs DecodeScsiCommand(const Bhs& b);

struct DataOutBhs {  // RFC 7143 §11.7
  bool final = false;
  uint32_t data_segment_length = 0;
  uint64_t lun = 0;
  uint32_t itt = 0;
  uint32_t ttt = kReservedTag;
  uint32_t expstatsn = 0;
  uint32_t datasn = 0;
  uint32_t buffer_offset = 0;
};
void EncodeDataOut(const DataOutBhs& v, Bhs* out);
DataOutBhs DecodeDataOut(const Bhs& b);

struct NopOutBhs {  // RFC 7143 §11.18
  bool immediate = false;
  uint32_t data_segment_length = 0;
  uint64_t lun = 0;
  uint32_t itt = kReservedTag;
  uint32_t ttt = kReservedTag;
  uint32_t cmdsn = 0;
  uint32_t expstatsn = 0;
};
void EncodeNopOut(const NopOutBhs& v, Bhs* out);
NopOutBhs DecodeNopOut(const Bhs& b);

struct TaskMgmtRequestBhs {  // RFC 7143 §11.5
  bool immediate = false;
  uint8_t function = 0;         // TmfFunction
  uint64_t lun = 0;
  uint32_t itt = 0;
  uint32_t rtt = kReservedTag;  // Referenced Task Tag
  uint32_t cmdsn = 0;
  uint32_t expstatsn = 0;
  uint32_t refcmdsn = 0;
  uint32_t expdatasn = 0;
};
void EncodeTaskMgmtRequest(const TaskMgmtRequestBhs& v, Bhs* out);
TaskMgmtRequestBhs DecodeTaskMgmtRequest(const Bhs& b);

struct LoginRequestBhs {  // RFC 7143 §11.12
  bool transit = false;
  bool cont = false;
  uint8_t csg = 0;
  uint8_t nsg = 0;
  uint8_t version_max = 0;
  uint8_t version_min = 0;
  uint32_t data_segment_length = 0;
  uint64_t isid = 0;            // 48 bits
  uint16_t tsih = 0;
  uint32_t itt = 0;
  uint16_t cid = 0;
  uint32_t cmdsn = 0;
  uint32_t expstatsn = 0;
};
void EncodeLoginRequest(const LoginRequestBhs& v, Bhs* out);
LoginRequestBhs DecodeLoginRequest(const Bhs& b);

struct TextRequestBhs {  // RFC 7143 §11.10
  bool immediate = false;
  bool final = true;
  bool cont = false;
  uint32_t data_segment_length = 0;
  uint64_t lun = 0;
  uint32_t itt = 0;
  uint32_t ttt = kReservedTag;
  uint32_t cmdsn = 0;
  uint32_t expstatsn = 0;
};
void EncodeTextRequest(const TextRequestBhs& v, Bhs* out);
TextRequestBhs DecodeTextRequest(const Bhs& b);

struct LogoutRequestBhs {  // RFC 7143 §11.14
  bool immediate = false;
  uint8_t reason = 0;           // LogoutReason
  uint32_t itt = 0;
  uint16_t cid = 0;
  uint32_t cmdsn = 0;
  uint32_t expstatsn = 0;
};
void EncodeLogoutRequest(const LogoutRequestBhs& v, Bhs* out);
LogoutRequestBhs DecodeLogoutRequest(const Bhs& b);

// --- Target PDUs. StatSN/ExpCmdSN/MaxCmdSN are filled in by the sender. ---

struct SequenceNumbers {
  uint32_t statsn = 0;
  uint32_t expcmdsn = 0;
  uint32_t maxcmdsn = 0;
};

struct ScsiResponseBhs {  // RFC 7143 §11.4
  bool bidi_overflow = false;
  bool bidi_underflow = false;
  bool overflow = false;
  bool underflow = false;
  uint8_t response = 0;         // 0x00 command completed at target
  uint8_t status = 0;           // SAM status
  uint32_t data_segment_length = 0;
  uint32_t itt = 0;
  SequenceNumbers sn;
  uint32_t expdatasn = 0;
  uint32_t bidi_residual = 0;
  uint32_t residual = 0;
};
void EncodeScsiResponse(const ScsiResponseBhs& v, Bhs* out);
ScsiResponseBhs DecodeScsiResponse(const Bhs& b);

struct DataInBhs {  // RFC 7143 §11.7
  bool final = false;
  bool acknowledge = false;
  bool overflow = false;
  bool underflow = false;
  bool has_status = false;      // S bit: phase-collapsed status
  uint8_t status = 0;
  uint32_t data_segment_length = 0;
  uint64_t lun = 0;
  uint32_t itt = 0;
  uint32_t ttt = kReservedTag;
  SequenceNumbers sn;
  uint32_t datasn = 0;
  uint32_t buffer_offset = 0;
  uint32_t residual = 0;
};
void EncodeDataIn(const DataInBhs& v, Bhs* out);
DataInBhs DecodeDataIn(const Bhs& b);

struct R2tBhs {  // RFC 7143 §11.8
  uint64_t lun = 0;
  uint32_t itt = 0;
  uint32_t ttt = 0;
  SequenceNumbers sn;
  uint32_t r2tsn = 0;
  uint32_t buffer_offset = 0;
  uint32_t desired_length = 0;
};
void EncodeR2t(const R2tBhs& v, Bhs* out);
R2tBhs DecodeR2t(const Bhs& b);

struct NopInBhs {  // RFC 7143 §11.19
  uint32_t data_segment_length = 0;
  uint64_t lun = 0;
  uint32_t itt = kReservedTag;
  uint32_t ttt = kReservedTag;
  SequenceNumbers sn;
};
void EncodeNopIn(const NopInBhs& v, Bhs* out);
NopInBhs DecodeNopIn(const Bhs& b);

struct TaskMgmtResponseBhs {  // RFC 7143 §11.6
  uint8_t response = 0;         // TmfResponse
  uint32_t itt = 0;
  SequenceNumbers sn;
};
void EncodeTaskMgmtResponse(const TaskMgmtResponseBhs& v, Bhs* out);
TaskMgmtResponseBhs DecodeTaskMgmtResponse(const Bhs& b);

struct LoginResponseBhs {  // RFC 7143 §11.13
  bool transit = false;
  bool cont = false;
  uint8_t csg = 0;
  uint8_t nsg = 0;
  uint8_t version_max = kIscsiVersion;
  uint8_t version_active = kIscsiVersion;
  uint32_t data_segment_length = 0;
  uint64_t isid = 0;
  uint16_t tsih = 0;
  uint32_t itt = 0;
  SequenceNumbers sn;
  uint16_t status = 0;          // LoginStatus: class << 8 | detail
};
void EncodeLoginResponse(const LoginResponseBhs& v, Bhs* out);
LoginResponseBhs DecodeLoginResponse(const Bhs& b);

struct TextResponseBhs {  // RFC 7143 §11.11
  bool final = true;
  bool cont = false;
  uint32_t data_segment_length = 0;
  uint64_t lun = 0;
  uint32_t itt = 0;
  uint32_t ttt = kReservedTag;
  SequenceNumbers sn;
};
void EncodeTextResponse(const TextResponseBhs& v, Bhs* out);
TextResponseBhs DecodeTextResponse(const Bhs& b);

struct LogoutResponseBhs {  // RFC 7143 §11.15
  uint8_t response = 0;         // LogoutResponse
  uint32_t itt = 0;
  SequenceNumbers sn;
  uint16_t time2wait = 0;
  uint16_t time2retain = 0;
};
void EncodeLogoutResponse(const LogoutResponseBhs& v, Bhs* out);
LogoutResponseBhs DecodeLogoutResponse(const Bhs& b);

struct RejectBhs {  // RFC 7143 §11.17; the data segment is the rejected BHS
  uint8_t reason = 0;           // RejectReason
  uint32_t data_segment_length = kBhsSize;
  SequenceNumbers sn;
  uint32_t datasn = 0;
};
void EncodeReject(const RejectBhs& v, Bhs* out);
RejectBhs DecodeReject(const Bhs& b);

}  // namespace blockhaus::iscsi
