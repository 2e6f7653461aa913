// Text keys (RFC 7143 §6, §13): key=value parsing and the operational
// parameter negotiation of login.
//
// ParseKeyValues splits a reassembled text segment into pairs and enforces
// the limits of TESTING.md SR-P2: every pair NUL-terminated, key 1..63
// characters of the RFC's standard-label alphabet, value at most 255 bytes
// (CHAP_C/CHAP_R up to 1024 binary bytes), no key twice. TextAccumulator
// gathers C-bit continuations up to 64 KiB.
//
// Negotiator answers the initiator's operational keys with the target's
// offers (RFC 7143 §13 result functions) and keeps the resulting
// SessionParams. Values out of range or malformed get "Reject" and keep
// their default; unknown keys get "NotUnderstood".
//
// Thread safety: thread-compatible values.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/endian.h"

namespace blockhaus::iscsi {

struct KeyValue {
  std::string key;
  std::string value;
};

enum class TextError : uint8_t {
  kOk,
  kMalformed,     // no '=', empty or invalid key, missing final NUL
  kKeyTooLong,
  kValueTooLong,
  kDuplicate,
  kTooLarge,      // continuation beyond kMaxTextTotal
};
const char* TextErrorName(TextError e);

// Appends the pairs of `text` to *out (cleared first).
TextError ParseKeyValues(ConstByteSpan text, std::vector<KeyValue>* out);
// "k=v\0k=v\0" for a list of pairs.
std::vector<uint8_t> EncodeKeyValues(const std::vector<KeyValue>& pairs);
void AppendKeyValue(std::string_view key, std::string_view value, std::vector<uint8_t>* out);

// Looks `key` up in `pairs`; nullptr when absent.
const std::string* FindKey(const std::vector<KeyValue>& pairs, std::string_view key);

// Gathers the data segments of a C-bit sequence (RFC 7143 §11.10.2).
class TextAccumulator {
 public:
  // False when the total would pass kMaxTextTotal (the caller fails the
  // login with Out of resources / rejects the Text request).
  bool Append(ConstByteSpan data);
  ConstByteSpan text() const { return text_; }
  void Clear() { text_.clear(); }
  bool empty() const { return text_.empty(); }

 private:
  std::vector<uint8_t> text_;
};

// Parses an RFC 7143 §5.1 numeric value: decimal, or hex with 0x. Empty,
// junk and values above 2^64-1 give nullopt.
std::optional<uint64_t> ParseNumber(std::string_view text);

enum class SessionType : uint8_t { kNormal, kDiscovery };

// Negotiated parameters of a session (RFC 7143 §13). Defaults are the RFC's.
struct SessionParams {
  bool header_digest = false;
  bool data_digest = false;
  uint32_t initiator_max_recv_data_segment = 8192;   // what we may send
  uint32_t target_max_recv_data_segment = 8192;      // what we accept (declared)
  uint32_t max_burst_length = 262144;
  uint32_t first_burst_length = 65536;
  bool immediate_data = true;
  bool initial_r2t = true;
  uint32_t max_outstanding_r2t = 1;
  uint32_t default_time2wait = 2;
  uint32_t default_time2retain = 20;
  uint8_t error_recovery_level = 0;
  bool data_pdu_in_order = true;
  bool data_sequence_in_order = true;
  uint32_t max_connections = 1;
};

// The target's side of the table (TESTING.md SR-L5); clamped to the RFC.
struct Offers {
  uint32_t max_recv_data_segment = 262144;
  uint32_t max_burst_length = 1024 * 1024;
  uint32_t first_burst_length = 256 * 1024;
  uint32_t max_outstanding_r2t = 4;
  bool immediate_data = true;
  bool initial_r2t = false;      // OR: the initiator decides
  bool allow_digests = true;     // offer CRC32C
};

class Negotiator {
 public:
  Negotiator(SessionType type, const Offers& offers);
  // True for the keys this negotiator handles (operational keys).
  static bool IsOperationalKey(std::string_view key);
  // Answers one initiator key; appends the reply pair to *reply. A key the
  // initiator already negotiated in this login returns false (protocol
  // error, RFC 7143 §6.1).
  bool Negotiate(const KeyValue& kv, std::vector<KeyValue>* reply);
  // The target's declarations (MaxRecvDataSegmentLength), once.
  void AppendDeclarations(std::vector<KeyValue>* reply);
  // The session's parameters: every answered value as answered, except
  // that FirstBurstLength never exceeds MaxBurstLength (RFC 7143 §13.14).
  SessionParams Finish() const;
  const SessionParams& params() const { return params_; }

 private:
  std::string Answer(const KeyValue& kv);
  SessionType type_;
  Offers offers_;
  SessionParams params_;
  std::set<std::string> seen_;
  bool declared_ = false;
};

}  // namespace blockhaus::iscsi
