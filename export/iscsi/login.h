// The login phase of one connection (RFC 7143 §6.3, §11.12): stages,
// security (CHAP) and operational negotiation, ACL checks, and the Login
// Response for each Login Request.
//
// LoginMachine is pure protocol: it is fed decoded PDUs and produces
// response PDUs, with no socket and no session registry, so tests drive it
// in process (TESTING.md D2) and fuzz_login drives it with random input.
// When it reports kComplete, the caller (the connection) binds the session
// (reinstatement, TSIH, limits), writes TSIH and sequence numbers into the
// final response and sends it.
//
// Thread safety: thread-compatible; one per connection, on its loop thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "export/iscsi/chap.h"
#include "export/iscsi/iscsi_spec.h"
#include "export/iscsi/pdu.h"
#include "export/iscsi/target_directory.h"
#include "export/iscsi/text.h"

namespace blockhaus::iscsi {

// What a login needs to know about its surroundings.
struct LoginEnv {
  const TargetDirectory* directory = nullptr;   // never null
  std::string peer_address;                     // "127.0.0.1", "::1" (no port)
  ChapLimiter* limiter = nullptr;               // may be null (no backoff)
  std::optional<ChapCredentials> discovery_chap;  // set: discovery sessions need CHAP
  Offers offers;
  uint32_t cmdsn_window = 64;
  // True when a session with this TSIH exists (adding a connection).
  std::function<bool(uint16_t)> session_exists;
};

// Everything the session needs once login is complete.
struct LoginResult {
  SessionType type = SessionType::kNormal;
  std::string initiator_name;
  std::string initiator_alias;
  std::shared_ptr<const TargetConfig> target;   // null for discovery
  uint64_t isid = 0;
  uint16_t cid = 0;
  uint32_t cmdsn = 0;       // ExpCmdSN at the start of full feature phase
  uint32_t statsn = 0;      // StatSN of the final login response
  SessionParams params;
};

enum class LoginStepKind : uint8_t {
  kRespond,   // send *response, wait for the next request
  kComplete,  // bind the session, set TSIH, send *response, enter FFP
  kFail,      // send *response (a failure status) after `delay`, then close
  kDrop,      // close without answering
};

struct LoginStep {
  LoginStepKind kind = LoginStepKind::kRespond;
  std::chrono::milliseconds delay{0};
};

// True when `address` lies in `cidr` ("10.0.0.0/8", "::1/128", "10.1.2.3").
// IPv4-mapped IPv6 addresses match IPv4 networks.
bool AddressInNetwork(const std::string& address, const std::string& cidr);
// TargetConfig::allow semantics: any matching rule admits; empty admits none.
bool InitiatorAllowed(const TargetConfig& target, const std::string& initiator,
                      const std::string& peer_address);

// True when `name` is an iSCSI name in one of the RFC 7143 §4.2.7 formats:
// iqn.YYYY-MM.<reversed domain>[:<anything>], eui.<16 hex digits> or
// naa.<16 or 32 hex digits>, at most 223 bytes. The policy is lenient about
// case (initiators such as Windows send upper case; RFC 3722 folds it) and
// strict about bytes: only ASCII letters, digits, '-', '.', ':' and '_'
// pass, so spaces, control characters, '/', '@' and every non-ASCII byte
// fail. '_' is outside RFC 3722's set but real initiators send it (qemu
// appends the VM name) and Linux LIO admits it.
bool IsValidIscsiName(std::string_view name);

class LoginMachine {
 public:
  explicit LoginMachine(LoginEnv env);
  ~LoginMachine();

  // Handles one PDU received during login. Fills response->bhs and
  // response->data (the caller sets TSIH on kComplete).
  LoginStep Process(const Pdu& request, Pdu* response);

  // Valid after kComplete.
  const LoginResult& result() const { return result_; }
  bool complete() const { return state_ == State::kDone; }

 private:
  enum class State : uint8_t { kStart, kSecurity, kOperational, kDone, kFailed };
  enum class Auth : uint8_t { kNone, kChapChosen, kChallenged, kAuthenticated };
  void Transition(State to);

  LoginStep Fail(LoginStatus status, Pdu* response, std::chrono::milliseconds delay = {});
  LoginStep Respond(Pdu* response, bool transit, uint8_t nsg, const std::vector<KeyValue>& reply);
  std::optional<LoginStatus> CheckHeader(const LoginRequestBhs& req);
  std::optional<LoginStatus> Leading(const std::vector<KeyValue>& keys);
  std::optional<LoginStatus> Security(const LoginRequestBhs& req, const std::vector<KeyValue>& keys,
                                      std::vector<KeyValue>* reply);
  std::optional<LoginStatus> Operational(const std::vector<KeyValue>& keys,
                                         std::vector<KeyValue>* reply);
  std::optional<LoginStatus> ChooseAuthMethod(const std::string& offer,
                                              std::vector<KeyValue>* reply);
  std::optional<LoginStatus> Chap(const std::vector<KeyValue>& keys, std::vector<KeyValue>* reply);
  bool AuthRequired() const;
  LoginStep ChapFailure(Pdu* response);

  LoginEnv env_;
  State state_ = State::kStart;
  Auth auth_ = Auth::kNone;
  LoginRequestBhs first_;
  LoginRequestBhs current_;
  TextAccumulator text_;
  std::optional<ChapAuthenticator> chap_;
  std::optional<Negotiator> negotiator_;
  std::vector<KeyValue> login_keys_seen_;  // non-operational keys, for duplicates
  bool first_response_sent_ = false;
  uint32_t statsn_ = 0;
  LoginResult result_;
};

}  // namespace blockhaus::iscsi
