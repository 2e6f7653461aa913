// Theory of operation: login (RFC 7143 §6.3, §11.12, §11.13)
//
// Overview
//   A connection starts in login. Each Login Request names its current
//   stage (CSG: 0 security, 1 operational) and, with T=1, the stage it
//   wants next (NSG: 1 or 3 = full feature phase). LoginMachine answers
//   each request with one Login Response; the final one (T=1, NSG=3,
//   status 0) is completed by the connection, which owns session binding.
//
//     kStart --first PDU ok--> kSecurity --T,NSG=1--> kOperational
//        |                        |  \--T,NSG=3 (auth done)--> kDone
//        |                        +--any failure--> kFailed
//        +--CSG=1 (no auth needed)--> kOperational --T,NSG=3--> kDone
//
// Data structures & on-disk format
//   LoginRequestBhs of the first PDU (ISID, TSIH, CID must not change), a
//   TextAccumulator for C-bit continuation, the ChapAuthenticator and the
//   Negotiator. Nothing is persisted.
//
// Invariants
//   * Full feature phase is reached only with auth_ == kAuthenticated when
//     the target requires CHAP (SR-A3): the operational stage refuses entry
//     (0x0201) otherwise, and T=1 out of security without authentication
//     is answered T=0 while CHAP is in progress, 0x0201 when it is not.
//   * Operational keys are honoured only after authentication; before it
//     they are answered "Reject" and keep their defaults.
//   * A key is accepted once per login (RFC 7143 §6.1); again = 0x0200.
//   * result_.initiator_name is an iSCSI name (RFC 7143 §4.2.7, checked
//     by IsValidIscsiName: iqn./eui./naa., <= 223 bytes, ASCII letters in
//     either case, digits, '-', '.', ':', '_'), folded to lower case; ACLs,
//     the session registry and the CHAP backoff only ever see such names.
//   * The target only sets T when the initiator did.
//
// Concurrency & lock order
//   None; confined to the connection's loop thread. The TargetDirectory
//   and ChapLimiter it calls are thread-safe.
//
// Crash consistency
//   Not applicable.
//
// Failure handling
//   Failures answer the RFC 7143 §11.13.5 status and close: 0x0200 for
//   malformed requests (an InitiatorName that is not an iSCSI name among
//   them), 0x0201 for every authentication failure (never saying why;
//   delayed by ChapLimiter), 0x0202 ACL, 0x0203 unknown target, 0x0205
//   version, 0x0207 missing keys, 0x020a unknown TSIH, 0x020b a non-login
//   PDU, 0x0302 text over 64 KiB.
//
// Tunables
//   LoginEnv::offers, cmdsn_window, discovery_chap.

#include "export/iscsi/login.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "core/base/check.h"
#include "core/base/logging.h"

namespace blockhaus::iscsi {
namespace {

// Parses an IPv4 or IPv6 address into 16 bytes; IPv4 becomes ::ffff:a.b.c.d.
bool ParseAddress(const std::string& text, uint8_t out[16]) {
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    std::memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    std::memcpy(out + 12, &v4, 4);
    return true;
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    std::memcpy(out, &v6, 16);
    return true;
  }
  return false;
}

// RFC 7143 §4.2.7: an iSCSI name is at most 223 bytes.
constexpr size_t kMaxIscsiNameBytes = 223;

bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

bool IsAsciiHex(char c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// The bytes a name may hold under our policy (see IsValidIscsiName).
bool IsNameByte(char c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
         c == '.' || c == ':' || c == '_';
}

// `name` starts with the four bytes of `type` ("iqn.", ...), in any case.
bool HasType(std::string_view name, std::string_view type) {
  if (name.size() < type.size()) return false;
  for (size_t i = 0; i < type.size(); ++i) {
    char c = name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != type[i]) return false;
  }
  return true;
}

bool AllHex(std::string_view s) { return std::all_of(s.begin(), s.end(), IsAsciiHex); }

// What follows "iqn.": YYYY-MM.<naming authority>[:<anything>]. The
// authority (a reversed domain name) must not be empty or begin or end
// with a dot; the part after ':' is the owner's business.
bool IsValidIqnRest(std::string_view rest) {
  if (rest.size() < 9) return false;  // "YYYY-MM." and one authority byte
  const std::string_view date = rest.substr(0, 8);
  for (size_t i = 0; i < date.size(); ++i) {
    const bool ok = i == 4 ? date[i] == '-' : i == 7 ? date[i] == '.' : IsAsciiDigit(date[i]);
    if (!ok) return false;
  }
  const int month = (rest[5] - '0') * 10 + (rest[6] - '0');
  if (month < 1 || month > 12) return false;
  std::string_view authority = rest.substr(8);
  authority = authority.substr(0, authority.find(':'));
  return !authority.empty() && authority.front() != '.' && authority.back() != '.';
}

bool IsLoginKey(const std::string& key) {
  return key == "InitiatorName" || key == "TargetName" || key == "SessionType" ||
         key == "InitiatorAlias" || key == "AuthMethod" || key.rfind("CHAP_", 0) == 0;
}

}  // namespace

bool AddressInNetwork(const std::string& address, const std::string& cidr) {
  const size_t slash = cidr.find('/');
  const std::string net = cidr.substr(0, slash);
  uint8_t a[16];
  uint8_t n[16];
  if (!ParseAddress(address, a) || !ParseAddress(net, n)) return false;
  const bool v4 = net.find(':') == std::string::npos;
  int bits = 128;
  if (slash != std::string::npos) {
    std::optional<uint64_t> b = ParseNumber(cidr.substr(slash + 1));
    if (!b || *b > (v4 ? 32u : 128u)) return false;
    bits = static_cast<int>(*b) + (v4 ? 96 : 0);
  }
  for (int i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a[i] & mask) != (n[i] & mask)) return false;
  }
  return true;
}

bool InitiatorAllowed(const TargetConfig& target, const std::string& initiator,
                      const std::string& peer_address) {
  for (const AllowRule& rule : target.allow) {
    switch (rule.kind) {
      case AllowRule::Kind::kAny: return true;
      case AllowRule::Kind::kInitiator:
        if (rule.initiator == initiator) return true;
        break;
      case AllowRule::Kind::kNetwork:
        if (AddressInNetwork(peer_address, rule.network)) return true;
        break;
    }
  }
  return false;
}

bool IsValidIscsiName(std::string_view name) {
  if (name.empty() || name.size() > kMaxIscsiNameBytes) return false;
  if (!std::all_of(name.begin(), name.end(), IsNameByte)) return false;
  const std::string_view rest = name.substr(std::min<size_t>(4, name.size()));
  if (HasType(name, "iqn.")) return IsValidIqnRest(rest);
  if (HasType(name, "eui.")) return rest.size() == 16 && AllHex(rest);
  if (HasType(name, "naa.")) return (rest.size() == 16 || rest.size() == 32) && AllHex(rest);
  return false;
}

LoginMachine::LoginMachine(LoginEnv env) : env_(std::move(env)) {}
LoginMachine::~LoginMachine() = default;

void LoginMachine::Transition(State to) {
  bool ok = false;
  switch (state_) {
    case State::kStart: ok = to != State::kStart; break;
    case State::kSecurity: ok = to == State::kOperational || to == State::kDone || to == State::kFailed; break;
    case State::kOperational: ok = to == State::kDone || to == State::kFailed; break;
    case State::kDone:
    case State::kFailed: ok = false; break;
  }
  BH_CHECK(ok);
  state_ = to;
}

bool LoginMachine::AuthRequired() const {
  if (result_.type == SessionType::kDiscovery) return env_.discovery_chap.has_value();
  return result_.target != nullptr && result_.target->chap.has_value();
}

LoginStep LoginMachine::Fail(LoginStatus status, Pdu* response, std::chrono::milliseconds delay) {
  if (state_ != State::kFailed) Transition(State::kFailed);
  BH_LOG(kDebug, "iscsi: login from {} failed with status {:04x}", env_.peer_address,
         static_cast<unsigned>(status));
  LoginResponseBhs r;
  r.csg = current_.csg;
  r.nsg = current_.nsg;
  r.isid = current_.isid;
  r.tsih = current_.tsih;
  r.itt = current_.itt;
  r.sn = {statsn_, current_.cmdsn, current_.cmdsn};
  r.status = static_cast<uint16_t>(status);
  EncodeLoginResponse(r, &response->bhs);
  response->data.clear();
  response->ahs.clear();
  return {LoginStepKind::kFail, delay};
}

LoginStep LoginMachine::Respond(Pdu* response, bool transit, uint8_t nsg,
                                const std::vector<KeyValue>& reply) {
  LoginResponseBhs r;
  r.transit = transit;
  r.csg = current_.csg;
  r.nsg = transit ? nsg : 0;
  r.isid = current_.isid;
  r.tsih = 0;
  r.itt = current_.itt;
  r.sn = {statsn_++, current_.cmdsn, current_.cmdsn};
  response->data = EncodeKeyValues(reply);
  response->ahs.clear();
  first_response_sent_ = true;
  const bool done = transit && nsg == static_cast<uint8_t>(Stage::kFullFeature);
  if (done) {
    Transition(State::kDone);
    result_.cmdsn = current_.cmdsn;
    result_.statsn = r.sn.statsn;
    result_.params = negotiator_->Finish();
    r.sn.maxcmdsn = current_.cmdsn + env_.cmdsn_window - 1;
  } else if (transit && nsg == static_cast<uint8_t>(Stage::kOperational) &&
             state_ == State::kSecurity) {
    Transition(State::kOperational);
  }
  r.data_segment_length = static_cast<uint32_t>(response->data.size());
  EncodeLoginResponse(r, &response->bhs);
  return {done ? LoginStepKind::kComplete : LoginStepKind::kRespond, {}};
}

std::optional<LoginStatus> LoginMachine::CheckHeader(const LoginRequestBhs& req) {
  if (state_ == State::kStart) {
    if (req.version_min > kIscsiVersion || req.version_max < req.version_min) {
      return LoginStatus::kUnsupportedVersion;
    }
  } else if (req.isid != first_.isid || req.tsih != first_.tsih || req.cid != first_.cid) {
    return LoginStatus::kInitiatorError;
  }
  if (req.transit && req.cont) return LoginStatus::kInitiatorError;
  if (req.csg != 0 && req.csg != 1) return LoginStatus::kInitiatorError;
  if (req.transit && (req.nsg <= req.csg || req.nsg == 2)) return LoginStatus::kInitiatorError;
  // The stage may only move forward through a transition we agreed to.
  const uint8_t stage = state_ == State::kOperational ? 1 : 0;
  if (state_ != State::kStart && req.csg != stage) return LoginStatus::kInitiatorError;
  return std::nullopt;
}

LoginStep LoginMachine::Process(const Pdu& request, Pdu* response) {
  if (state_ == State::kDone || state_ == State::kFailed) return {LoginStepKind::kDrop, {}};
  if (BhsOpcode(request.bhs) != static_cast<uint8_t>(Opcode::kLoginRequest)) {
    current_.itt = BhsItt(request.bhs);  // D2-1: anything but a login first
    return Fail(LoginStatus::kInvalidDuringLogin, response);
  }
  const LoginRequestBhs req = DecodeLoginRequest(request.bhs);
  current_ = req;
  if (state_ == State::kStart) statsn_ = req.expstatsn;
  if (std::optional<LoginStatus> bad = CheckHeader(req)) return Fail(*bad, response);
  if (!text_.Append(request.data)) return Fail(LoginStatus::kOutOfResources, response);
  if (req.cont) return Respond(response, false, 0, {});  // ask for the rest (RFC 7143 §11.12.2)

  std::vector<KeyValue> keys;
  const TextError err = ParseKeyValues(text_.text(), &keys);
  text_.Clear();
  if (err != TextError::kOk) return Fail(LoginStatus::kInitiatorError, response);
  if (LogEnabled(LogLevel::kDebug)) {
    std::string text;
    for (const KeyValue& kv : keys) {
      text += kv.key.rfind("CHAP_", 0) == 0 ? kv.key + "=<hidden> " : kv.key + "=" + kv.value + " ";
    }
    BH_LOG(kDebug, "iscsi: login csg={} nsg={} t={}: {}", req.csg, req.nsg, req.transit,
           LogEscape(text, 512));
  }
  for (const KeyValue& kv : keys) {
    if (!IsLoginKey(kv.key)) continue;
    auto seen = std::find_if(login_keys_seen_.begin(), login_keys_seen_.end(),
                             [&](const KeyValue& s) { return s.key == kv.key; });
    if (seen == login_keys_seen_.end()) {
      login_keys_seen_.push_back(kv);
      continue;
    }
    // libiscsi repeats InitiatorName and SessionType in every stage; the
    // same declaration again is harmless. Anything else offered twice
    // (CHAP_N, AuthMethod, a changed name) is a protocol error (D2-10).
    const bool declarative = kv.key == "InitiatorName" || kv.key == "TargetName" ||
                             kv.key == "SessionType" || kv.key == "InitiatorAlias";
    if (!declarative || seen->value != kv.value) return Fail(LoginStatus::kInitiatorError, response);
  }

  if (state_ == State::kStart) {
    first_ = req;
    if (std::optional<LoginStatus> bad = Leading(keys)) return Fail(*bad, response);
    Transition(req.csg == 0 ? State::kSecurity : State::kOperational);
    if (req.csg == 1 && AuthRequired()) return ChapFailure(response);  // skipped security (D2-2)
  }

  std::vector<KeyValue> reply;
  if (!first_response_sent_ && result_.type == SessionType::kNormal) {
    reply.push_back({"TargetPortalGroupTag", std::to_string(kTargetPortalGroupTag)});
  }
  std::optional<LoginStatus> bad = state_ == State::kSecurity ? Security(req, keys, &reply)
                                                              : Operational(keys, &reply);
  if (bad) {
    if (*bad == LoginStatus::kAuthenticationFailure) return ChapFailure(response);
    return Fail(*bad, response);
  }
  bool transit = req.transit;
  if (state_ == State::kSecurity && auth_ != Auth::kAuthenticated) transit = false;
  if (transit && req.nsg == static_cast<uint8_t>(Stage::kFullFeature)) {
    negotiator_->AppendDeclarations(&reply);
  }
  return Respond(response, transit, req.nsg, reply);
}

// The first PDU: who is logging in, to what, and may they.
std::optional<LoginStatus> LoginMachine::Leading(const std::vector<KeyValue>& keys) {
  result_.isid = first_.isid;
  result_.cid = first_.cid;
  const std::string* initiator = FindKey(keys, "InitiatorName");
  if (initiator == nullptr || initiator->empty()) return LoginStatus::kMissingParameter;
  // A name that is there but is not an iSCSI name makes the request
  // malformed, not incomplete: 0x0200 "Initiator error", as every other
  // malformed key gets here. RFC 7143 §11.13.5 gives 0x0207 to missing
  // parameters (the case above) and 0x0201 to failed authentication, which
  // would send the user looking for a CHAP problem. LIO is no guide: it
  // answers 0x0207 only when the key is absent and checks no syntax at all
  // (it lowercases the name for its ACL lookup).
  if (!IsValidIscsiName(*initiator)) return LoginStatus::kInitiatorError;
  // iSCSI names compare without case (RFC 3722 folds them to lower case),
  // and volctl stores --allow names folded: fold here too, so a Windows
  // host sending upper case matches its ACL entry and its sessions.
  result_.initiator_name = *initiator;
  for (char& c : result_.initiator_name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (const std::string* alias = FindKey(keys, "InitiatorAlias")) result_.initiator_alias = *alias;
  const std::string* type = FindKey(keys, "SessionType");
  if (type != nullptr && *type == "Discovery") {
    result_.type = SessionType::kDiscovery;
  } else if (type != nullptr && *type != "Normal") {
    return LoginStatus::kSessionTypeNotSupported;
  }
  negotiator_.emplace(result_.type, env_.offers);
  if (first_.tsih != 0) {
    // MaxConnections is 1: a second connection never joins a session.
    const bool exists = env_.session_exists && env_.session_exists(first_.tsih);
    return exists ? LoginStatus::kTooManyConnections : LoginStatus::kSessionDoesNotExist;
  }
  if (result_.type == SessionType::kDiscovery) return std::nullopt;
  const std::string* target = FindKey(keys, "TargetName");
  if (target == nullptr || target->empty()) return LoginStatus::kMissingParameter;
  result_.target = env_.directory->Find(*target);
  if (result_.target == nullptr) return LoginStatus::kNotFound;
  if (!InitiatorAllowed(*result_.target, result_.initiator_name, env_.peer_address)) {
    return LoginStatus::kAuthorizationFailure;
  }
  return std::nullopt;
}

std::optional<LoginStatus> LoginMachine::Security(const LoginRequestBhs& req,
                                                  const std::vector<KeyValue>& keys,
                                                  std::vector<KeyValue>* reply) {
  for (const KeyValue& kv : keys) {
    if (kv.key == "AuthMethod") {
      if (std::optional<LoginStatus> bad = ChooseAuthMethod(kv.value, reply)) return bad;
    } else if (Negotiator::IsOperationalKey(kv.key)) {
      // SR-A3: nothing operational is honoured before authentication.
      if (AuthRequired() && auth_ != Auth::kAuthenticated) {
        reply->push_back({kv.key, "Reject"});
      } else if (!negotiator_->Negotiate(kv, reply)) {
        return LoginStatus::kInitiatorError;
      }
    } else if (!IsLoginKey(kv.key)) {
      reply->push_back({kv.key, "NotUnderstood"});
    }
  }
  if (std::optional<LoginStatus> bad = Chap(keys, reply)) return bad;
  if (req.transit && auth_ != Auth::kAuthenticated) {
    // Leaving security without a method chosen: only when none is needed.
    if (AuthRequired() && auth_ == Auth::kNone) return LoginStatus::kAuthenticationFailure;
    if (!AuthRequired() && auth_ == Auth::kNone) auth_ = Auth::kAuthenticated;
  }
  return std::nullopt;
}

std::optional<LoginStatus> LoginMachine::ChooseAuthMethod(const std::string& offer,
                                                          std::vector<KeyValue>* reply) {
  bool chap = false;
  bool none = false;
  size_t start = 0;
  while (start <= offer.size()) {
    size_t comma = offer.find(',', start);
    if (comma == std::string::npos) comma = offer.size();
    const std::string item = offer.substr(start, comma - start);
    chap = chap || item == "CHAP";
    none = none || item == "None";
    start = comma + 1;
  }
  if (AuthRequired()) {
    if (!chap) {
      reply->push_back({"AuthMethod", "Reject"});
      return LoginStatus::kAuthenticationFailure;
    }
    const ChapCredentials& creds = result_.type == SessionType::kDiscovery
                                       ? *env_.discovery_chap
                                       : *result_.target->chap;
    chap_.emplace(creds);
    auth_ = Auth::kChapChosen;
    reply->push_back({"AuthMethod", "CHAP"});
    return std::nullopt;
  }
  if (!none) {
    reply->push_back({"AuthMethod", "Reject"});
    return LoginStatus::kAuthenticationFailure;
  }
  auth_ = Auth::kAuthenticated;
  reply->push_back({"AuthMethod", "None"});
  return std::nullopt;
}

std::optional<LoginStatus> LoginMachine::Chap(const std::vector<KeyValue>& keys,
                                              std::vector<KeyValue>* reply) {
  const std::string* a = FindKey(keys, "CHAP_A");
  const bool answer = FindKey(keys, "CHAP_N") != nullptr || FindKey(keys, "CHAP_R") != nullptr;
  if (a != nullptr) {
    if (auth_ != Auth::kChapChosen || answer) return LoginStatus::kInitiatorError;
    if (!chap_->Challenge(*a, reply)) return LoginStatus::kAuthenticationFailure;
    auth_ = Auth::kChallenged;
    return std::nullopt;
  }
  if (answer) {
    if (auth_ != Auth::kChallenged) return LoginStatus::kInitiatorError;  // D2-13
    if (!chap_->Verify(keys, reply)) return LoginStatus::kAuthenticationFailure;
    auth_ = Auth::kAuthenticated;
    if (env_.limiter != nullptr) env_.limiter->RecordSuccess(env_.peer_address, result_.initiator_name);
    return std::nullopt;
  }
  if (FindKey(keys, "CHAP_I") != nullptr || FindKey(keys, "CHAP_C") != nullptr) {
    return LoginStatus::kInitiatorError;  // mutual keys without an answer
  }
  return std::nullopt;
}

LoginStep LoginMachine::ChapFailure(Pdu* response) {
  std::chrono::milliseconds delay{0};
  if (env_.limiter != nullptr) {
    delay = env_.limiter->Delay(env_.peer_address, result_.initiator_name);
    env_.limiter->RecordFailure(env_.peer_address, result_.initiator_name);
  }
  return Fail(LoginStatus::kAuthenticationFailure, response, delay);
}

std::optional<LoginStatus> LoginMachine::Operational(const std::vector<KeyValue>& keys,
                                                     std::vector<KeyValue>* reply) {
  if (AuthRequired() && auth_ != Auth::kAuthenticated) return LoginStatus::kAuthenticationFailure;
  for (const KeyValue& kv : keys) {
    if (kv.key == "AuthMethod" || kv.key.rfind("CHAP_", 0) == 0) {
      return LoginStatus::kInitiatorError;  // security keys after security
    }
    if (Negotiator::IsOperationalKey(kv.key)) {
      if (!negotiator_->Negotiate(kv, reply)) return LoginStatus::kInitiatorError;
    } else if (!IsLoginKey(kv.key)) {
      reply->push_back({kv.key, "NotUnderstood"});
    }
  }
  negotiator_->AppendDeclarations(reply);
  return std::nullopt;
}

}  // namespace blockhaus::iscsi
