// Theory of operation: text keys and operational negotiation (RFC 7143 §6, §13)
//
// Overview
//   Login and Text PDUs carry "key=value\0" pairs. Parsing is strict and
//   bounded (TESTING.md SR-P2); negotiation implements the result functions
//   of RFC 7143 §13 for the keys the target understands.
//
// Data structures & on-disk format
//   KeyValue pairs in arrival order. The key table below (kKeys) lists each
//   operational key, its kind (numeric minimum/maximum, boolean AND/OR,
//   digest list, declarative) and its RFC range. Nothing is persisted.
//
// Invariants
//   * Every reply value is within the RFC range of its key; a negotiated
//     FirstBurstLength never exceeds MaxBurstLength (clamped in Finish).
//   * A key is negotiated at most once per login (second offer = protocol
//     error, reported by Negotiate() returning false).
//   * Keys irrelevant to discovery sessions are answered "Irrelevant" and
//     leave the defaults in place.
//
// Concurrency & lock order
//   None; values owned by one connection.
//
// Crash consistency
//   Not applicable.
//
// Failure handling
//   Malformed text (TextError) fails the login as an initiator error or
//   rejects the Text PDU. A bad value of a known key answers "Reject"
//   (RFC 7143 §6.2) and keeps the default; that is how D2-20 is handled
//   (MaxRecvDataSegmentLength=0/511/2^24/abc, DefaultTime2Retain=99999).
//
// Tunables
//   Offers (text.h): what the target proposes, bounded by the RFC ranges.

#include "export/iscsi/text.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "export/iscsi/iscsi_spec.h"

namespace blockhaus::iscsi {
namespace {

bool IsKeyChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '-' || c == '+' ||
         c == '@' || c == '_' || c == '#';
}

bool ValidKey(std::string_view key) {
  if (key.empty()) return false;
  if (!(key[0] >= 'A' && key[0] <= 'Z')) return false;
  return std::all_of(key.begin(), key.end(), IsKeyChar);
}

bool IsChapBinaryKey(std::string_view key) { return key == "CHAP_C" || key == "CHAP_R"; }

enum class Kind : uint8_t { kNumMin, kNumMax, kAnd, kOr, kDigest, kDeclarative, kIrrelevant };

struct KeySpec {
  const char* name;
  Kind kind;
  uint32_t lo;
  uint32_t hi;
  bool normal_only;  // Irrelevant in discovery sessions (RFC 7143 §13)
};

constexpr uint32_t k24 = (1u << 24) - 1;
constexpr KeySpec kKeys[] = {
    {"HeaderDigest", Kind::kDigest, 0, 0, false},
    {"DataDigest", Kind::kDigest, 0, 0, false},
    {"MaxConnections", Kind::kNumMin, 1, 65535, true},
    {"InitialR2T", Kind::kOr, 0, 0, true},
    {"ImmediateData", Kind::kAnd, 0, 0, true},
    {"MaxRecvDataSegmentLength", Kind::kDeclarative, 512, k24, false},
    {"MaxBurstLength", Kind::kNumMin, 512, k24, true},
    {"FirstBurstLength", Kind::kNumMin, 512, k24, true},
    {"DefaultTime2Wait", Kind::kNumMax, 0, 3600, false},
    {"DefaultTime2Retain", Kind::kNumMin, 0, 3600, false},
    {"MaxOutstandingR2T", Kind::kNumMin, 1, 65535, true},
    {"DataPDUInOrder", Kind::kOr, 0, 0, true},
    {"DataSequenceInOrder", Kind::kOr, 0, 0, true},
    {"ErrorRecoveryLevel", Kind::kNumMin, 0, 2, false},
    {"OFMarker", Kind::kAnd, 0, 0, false},
    {"IFMarker", Kind::kAnd, 0, 0, false},
    {"OFMarkInt", Kind::kIrrelevant, 0, 0, false},
    {"IFMarkInt", Kind::kIrrelevant, 0, 0, false},
};

const KeySpec* FindSpec(std::string_view key) {
  for (const KeySpec& spec : kKeys) {
    if (key == spec.name) return &spec;
  }
  return nullptr;
}

std::optional<bool> ParseBool(std::string_view v) {
  if (v == "Yes") return true;
  if (v == "No") return false;
  return std::nullopt;
}

const char* YesNo(bool b) { return b ? "Yes" : "No"; }

}  // namespace

const char* TextErrorName(TextError e) {
  switch (e) {
    case TextError::kOk: return "ok";
    case TextError::kMalformed: return "malformed key=value";
    case TextError::kKeyTooLong: return "key longer than 63 bytes";
    case TextError::kValueTooLong: return "value too long";
    case TextError::kDuplicate: return "key given twice";
    case TextError::kTooLarge: return "text longer than 64 KiB";
  }
  return "?";
}

TextError ParseKeyValues(ConstByteSpan text, std::vector<KeyValue>* out) {
  out->clear();
  if (text.size() > kMaxTextTotal) return TextError::kTooLarge;
  const char* p = reinterpret_cast<const char*>(text.data());
  const char* end = p + text.size();
  while (p < end) {
    const char* nul = static_cast<const char*>(std::memchr(p, '\0', static_cast<size_t>(end - p)));
    if (nul == nullptr) return TextError::kMalformed;  // last pair not NUL-terminated
    std::string_view pair(p, static_cast<size_t>(nul - p));
    p = nul + 1;
    if (pair.empty()) continue;  // tolerate padding NULs between pairs
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) return TextError::kMalformed;
    std::string_view key = pair.substr(0, eq);
    std::string_view value = pair.substr(eq + 1);
    if (key.size() > kMaxKeyName) return TextError::kKeyTooLong;
    if (!ValidKey(key)) return TextError::kMalformed;
    const size_t max_value = IsChapBinaryKey(key) ? kMaxChapBinaryValue : kMaxValue;
    if (value.size() > max_value) return TextError::kValueTooLong;
    if (FindKey(*out, key) != nullptr) return TextError::kDuplicate;
    if (out->size() >= 1024) return TextError::kTooLarge;  // bound the O(n^2) duplicate check
    out->push_back({std::string(key), std::string(value)});
  }
  return TextError::kOk;
}

void AppendKeyValue(std::string_view key, std::string_view value, std::vector<uint8_t>* out) {
  out->insert(out->end(), key.begin(), key.end());
  out->push_back('=');
  out->insert(out->end(), value.begin(), value.end());
  out->push_back('\0');
}

std::vector<uint8_t> EncodeKeyValues(const std::vector<KeyValue>& pairs) {
  std::vector<uint8_t> out;
  for (const KeyValue& kv : pairs) AppendKeyValue(kv.key, kv.value, &out);
  return out;
}

const std::string* FindKey(const std::vector<KeyValue>& pairs, std::string_view key) {
  for (const KeyValue& kv : pairs) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

bool TextAccumulator::Append(ConstByteSpan data) {
  if (data.size() > kMaxTextTotal - text_.size()) return false;
  text_.insert(text_.end(), data.begin(), data.end());
  return true;
}

std::optional<uint64_t> ParseNumber(std::string_view text) {
  unsigned base = 10;
  if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    base = 16;
    text.remove_prefix(2);
  }
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    unsigned d;
    if (c >= '0' && c <= '9') {
      d = static_cast<unsigned>(c - '0');
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = static_cast<unsigned>(c - 'a' + 10);
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      d = static_cast<unsigned>(c - 'A' + 10);
    } else {
      return std::nullopt;
    }
    if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v)) {
      return std::nullopt;
    }
  }
  return v;
}

Negotiator::Negotiator(SessionType type, const Offers& offers) : type_(type), offers_(offers) {
  offers_.max_recv_data_segment = std::clamp<uint32_t>(offers_.max_recv_data_segment, 512, k24);
  offers_.max_burst_length = std::clamp<uint32_t>(offers_.max_burst_length, 512, k24);
  offers_.first_burst_length =
      std::clamp<uint32_t>(offers_.first_burst_length, 512, offers_.max_burst_length);
  offers_.max_outstanding_r2t = std::clamp<uint32_t>(offers_.max_outstanding_r2t, 1, 65535);
}

bool Negotiator::IsOperationalKey(std::string_view key) { return FindSpec(key) != nullptr; }

bool Negotiator::Negotiate(const KeyValue& kv, std::vector<KeyValue>* reply) {
  if (!seen_.insert(kv.key).second) return false;
  reply->push_back({kv.key, Answer(kv)});
  return true;
}

// The RFC 7143 §13 result function of one key, applied to params_.
std::string Negotiator::Answer(const KeyValue& kv) {
  const KeySpec* spec = FindSpec(kv.key);
  if (spec == nullptr) return "NotUnderstood";
  if (spec->normal_only && type_ == SessionType::kDiscovery) return "Irrelevant";
  const std::string& v = kv.value;
  switch (spec->kind) {
    case Kind::kIrrelevant: return "Irrelevant";
    case Kind::kDigest: {
      // Take the first value of the initiator's list that we accept.
      size_t start = 0;
      while (start <= v.size()) {
        size_t comma = v.find(',', start);
        if (comma == std::string::npos) comma = v.size();
        std::string_view item(v.data() + start, comma - start);
        const bool crc = item == "CRC32C" && offers_.allow_digests;
        if (crc || item == "None") {
          (kv.key == "HeaderDigest" ? params_.header_digest : params_.data_digest) = crc;
          return std::string(item);
        }
        start = comma + 1;
      }
      return "Reject";
    }
    case Kind::kAnd:
    case Kind::kOr: {
      std::optional<bool> b = ParseBool(v);
      if (!b) return "Reject";
      bool result = false;
      if (kv.key == "ImmediateData") {
        result = params_.immediate_data = *b && offers_.immediate_data;
      } else if (kv.key == "InitialR2T") {
        result = params_.initial_r2t = *b || offers_.initial_r2t;
      } else if (kv.key == "DataPDUInOrder") {
        result = params_.data_pdu_in_order = true;   // we only do in-order (OR with Yes)
      } else if (kv.key == "DataSequenceInOrder") {
        result = params_.data_sequence_in_order = true;
      } else {
        result = false;                              // markers: AND with No
      }
      return YesNo(result);
    }
    case Kind::kNumMin:
    case Kind::kNumMax:
    case Kind::kDeclarative: {
      std::optional<uint64_t> n = ParseNumber(v);
      if (!n || *n < spec->lo || *n > spec->hi) return "Reject";
      const uint32_t x = static_cast<uint32_t>(*n);
      if (kv.key == "MaxRecvDataSegmentLength") {
        params_.initiator_max_recv_data_segment = x;
        // Declarative: our own value goes out as a declaration.
        return std::to_string(offers_.max_recv_data_segment);
      }
      uint32_t result = 0;
      if (kv.key == "MaxConnections") result = params_.max_connections = std::min(x, 1u);
      if (kv.key == "MaxBurstLength")
        result = params_.max_burst_length = std::min(x, offers_.max_burst_length);
      if (kv.key == "FirstBurstLength") {
        // RFC 7143 §13.14: at most MaxBurstLength, when that came first.
        // What we answer is what the connection enforces (Finish).
        result = params_.first_burst_length =
            std::min({x, offers_.first_burst_length, params_.max_burst_length});
      }
      if (kv.key == "DefaultTime2Wait")
        result = params_.default_time2wait = std::max(x, kDefaultTime2Wait);
      if (kv.key == "DefaultTime2Retain")
        result = params_.default_time2retain = std::min(x, kDefaultTime2Retain);
      if (kv.key == "MaxOutstandingR2T")
        result = params_.max_outstanding_r2t = std::min(x, offers_.max_outstanding_r2t);
      if (kv.key == "ErrorRecoveryLevel") {
        params_.error_recovery_level = 0;
        result = 0;
      }
      return std::to_string(result);
    }
  }
  return "NotUnderstood";
}

void Negotiator::AppendDeclarations(std::vector<KeyValue>* reply) {
  if (declared_) return;
  declared_ = true;
  if (seen_.count("MaxRecvDataSegmentLength") == 0) {
    reply->push_back({"MaxRecvDataSegmentLength", std::to_string(offers_.max_recv_data_segment)});
  }
}

SessionParams Negotiator::Finish() const {
  SessionParams p = params_;
  p.target_max_recv_data_segment = offers_.max_recv_data_segment;
  // FirstBurstLength never exceeds MaxBurstLength (RFC 7143 §13.14: MUST
  // NOT). An answer given after MaxBurstLength already respects it; the
  // default (65536) gives way to a smaller MaxBurstLength; and an
  // initiator that proposed FirstBurstLength first and then a smaller
  // MaxBurstLength agreed to both, so the smaller bounds its unsolicited
  // data (fuzz_text_keys found the session parameters breaking the rule).
  p.first_burst_length = std::min(p.first_burst_length, p.max_burst_length);
  return p;
}

}  // namespace blockhaus::iscsi
