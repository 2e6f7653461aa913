// The daemon under bad input (TESTING.md D2, D3, E1-E3): a real
// `volctl serve` with the exports the cases need, a raw-socket initiator,
// and the probes that tell whether a bad case left anything behind
// (liveness, `volctl sessions -j`, VmRSS and open sockets of the daemon).
// Used by daemon_badinput_test.cc (the cases live in badinput_cases.cc);
// daemon_thin_test.cc borrows the raw-socket helpers.
#pragma once

#include <spawn.h>
#include <sys/wait.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/export/raw_iscsi_client.h"
#include "tests/iscsi/daemon_process.h"
#include "tests/test_util.h"

namespace blockhaus::testing::badinput {

using iscsi::Bhs;
using iscsi::KeyValue;
using iscsi::Pdu;
using iscsi::testing::RawClient;

inline constexpr const char* kIni = "iqn.2026-11.test.badin:host";
inline constexpr const char* kAllowed = "iqn.2026-11.test.badin:allowed";
inline constexpr const char* kOther = "iqn.2026-11.test.badin:other";
inline constexpr const char* kPlain = "iqn.2026-11.io.blockhaus:tank.plain";
inline constexpr const char* kChap = "iqn.2026-11.io.blockhaus:tank.chap";
inline constexpr const char* kMutual = "iqn.2026-11.io.blockhaus:tank.mutual";
inline constexpr const char* kAcl = "iqn.2026-11.io.blockhaus:tank.acl";
inline constexpr const char* kChapUser = "alice";
inline constexpr const char* kChapSecret = "alice-secret-0001";
inline constexpr const char* kMutualUser = "carol";
inline constexpr const char* kMutualSecret = "carol-secret-0002";
inline constexpr const char* kTargetUser = "tgt";
inline constexpr const char* kTargetSecret = "target-secret-0003";
inline constexpr const char* kAllowedUser = "allowed";
inline constexpr const char* kAllowedSecret = "allowed-secret-04";
inline constexpr uint64_t kIsid = 0x400001370000ull;
inline constexpr uint64_t kVolumeBlocks = (16u << 20) / 512;  // 16M volumes, 512-byte LBAs
inline constexpr uint32_t kPatternBytes = 64 * 1024;          // written to tank/chap at setup
inline constexpr int kSendTargetsVolumes = 16;                // half visible to kIni
inline constexpr int kLoginTimeoutS = 5;                      // --login-timeout (its minimum)

// One daemon for the whole test, with the exports every case needs.
class Rig {
 public:
  Rig();
  ~Rig();

  uint16_t port() const { return static_cast<uint16_t>(daemon_->port()); }
  bool Alive() const { return daemon_->Alive(); }
  std::string log() const { return daemon_->log(); }
  int Stop() { return daemon_->Stop(); }
  // The targets a SendTargets=All from kIni must list, sorted.
  const std::vector<std::string>& visible_targets() const { return visible_; }
  const std::vector<uint8_t>& pattern() const { return pattern_; }

  // `volctl sessions -j` (spawned without fork-after-threads hazards):
  // the number of sessions listed, or nullopt when the command failed.
  std::optional<size_t> SessionCount() const;
  // Polls SessionCount() until it is 0 (at most 3 s).
  bool NoSessionsLeft() const;
  // VmRSS of the daemon in KiB; sockets and all fds it has open.
  uint64_t RssKib() const;
  int SocketCount() const;
  int FdCount() const;

 private:
  void Volctl(const std::vector<std::string>& args);
  std::string WriteSecret(const std::string& name, const std::string& secret);

  TempDir home_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::vector<std::string> visible_;
  std::vector<uint8_t> pattern_;
};

// --- raw-socket helpers shared by the cases ---

// One Login Request with every header field under the test's control.
struct LoginReq {
  LoginReq(std::vector<KeyValue> k = {}, uint8_t c = 0, uint8_t n = 1, bool t = true)
      : keys(std::move(k)), csg(c), nsg(n), transit(t) {}
  std::vector<KeyValue> keys;
  uint8_t csg = 0;
  uint8_t nsg = 1;
  bool transit = true;
  bool cont = false;
  uint64_t isid = kIsid;
  uint16_t tsih = 0;
  uint8_t version_min = 0;
  uint8_t version_max = 0;
  std::optional<std::vector<uint8_t>> raw_data;  // instead of keys
};
std::optional<Pdu> SendLogin(RawClient& c, const LoginReq& r);

// "login XXXX" (status, hex), with "+close" when a failure closed the
// connection and "+open" when it did not; "close" when nothing came back.
std::string LoginResult(RawClient& c, const std::optional<Pdu>& p);

// Logs in to kPlain without CHAP as kIni and clears the first unit
// attention; nullptr (with a FAIL) when that does not work.
std::unique_ptr<RawClient> FullFeature(const Rig& rig, std::vector<KeyValue> extra = {},
                                       uint64_t isid = kIsid);
// Sends TEST UNIT READY until GOOD (unit attentions first); false if not.
bool ClearUnitAttention(RawClient& c);
// "reject RR", "scsi SS" (with " KK/AA/QQ" when there is sense),
// "nop-in", "opcode OO" of one PDU; NextOutcome reads it ("close" when
// none comes).
std::string Outcome(const Pdu& p);
std::string NextOutcome(RawClient& c, int timeout_ms = 3000);
// TEST UNIT READY answered GOOD on this connection: ",alive" or ",dead".
std::string StillAlive(RawClient& c);

// A good CHAP login to kChap as kIni plus a READ of the pattern: the
// daemon still serves (and the CHAP failure backoff is reset).
bool Liveness(const Rig& rig, std::string* why);

struct Case {
  const char* name;
  const char* expected;
  std::string (*run)(Rig& rig);
};
// Every D2 and D3 case, in order (badinput_cases.cc).
std::vector<Case> AllCases();

}  // namespace blockhaus::testing::badinput
