#include "tests/iscsi/badinput_rig.h"

#include <dirent.h>
#include <fcntl.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "export/iscsi/iscsi_spec.h"
#include "tests/tools/run_volctl.h"

extern char** environ;

namespace blockhaus::testing::badinput {
namespace {

std::string Hex(unsigned v, int width) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%0*x", width, v);
  return buf;
}

}  // namespace

Rig::Rig() {
  Volctl({"pool", "create", "tank", "--size", "512M"});
  // Base pages: the test bounds the daemon's VmRSS growth to 1 MiB.
  daemon_ = std::make_unique<DaemonProcess>(
      home_.path(), std::vector<std::string>{"--login-timeout", std::to_string(kLoginTimeoutS)},
      Pages::kBaseOnly);
  for (const char* v : {"plain", "chap", "mutual", "acl"}) {
    Volctl({"create", "-s", "-V", "16M", std::string("tank/") + v});
  }
  Volctl({"export", "tank/plain", "--allow", "any"});
  Volctl({"export", "tank/chap", "--allow", "any", "--chap-user", kChapUser, "--chap-secret-file",
          WriteSecret("chap", kChapSecret)});
  Volctl({"export", "tank/mutual", "--allow", "any", "--chap-user", kMutualUser,
          "--chap-secret-file", WriteSecret("mutual", kMutualSecret), "--mutual-chap-user",
          kTargetUser, "--mutual-chap-secret-file", WriteSecret("target", kTargetSecret)});
  Volctl({"export", "tank/acl", "--allow", kAllowed, "--chap-user", kAllowedUser,
          "--chap-secret-file", WriteSecret("allowed", kAllowedSecret)});
  visible_ = {kChap, kMutual, kPlain};
  for (int i = 0; i < kSendTargetsVolumes; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "st%02d", i);
    Volctl({"create", "-s", "-V", "1M", std::string("tank/") + name});
    Volctl({"export", std::string("tank/") + name, "--allow", i % 2 == 0 ? kIni : kOther});
    if (i % 2 == 0) visible_.push_back(std::string("iqn.2026-11.io.blockhaus:tank.") + name);
  }
  std::sort(visible_.begin(), visible_.end());
  pattern_ = PatternBlock(kPatternBytes, 4, 1);
  {
    std::ofstream f(home_ / "pattern.raw", std::ios::binary);
    f.write(reinterpret_cast<const char*>(pattern_.data()),
            static_cast<std::streamsize>(pattern_.size()));
  }
  Volctl({"write", "tank/chap", home_ / "pattern.raw"});
}

Rig::~Rig() = default;

void Rig::Volctl(const std::vector<std::string>& args) {
  CommandResult r = RunVolctl(home_.path(), args);
  std::string cmd;
  for (const auto& a : args) cmd += a + " ";
  REQUIRE_MESSAGE(r.exit_code == 0, cmd << ": " << r.err);
}

std::string Rig::WriteSecret(const std::string& name, const std::string& secret) {
  std::string path = home_ / (name + ".secret");
  std::ofstream(path) << secret << "\n";
  return path;
}

std::optional<size_t> Rig::SessionCount() const {
  // posix_spawn, not fork + setenv: other threads of this process may hold
  // malloc's locks (the E1/E2 prober runs beside the cases).
  std::string out_path = home_ / ".sessions.json";
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> env_store = {"VOLCTL_HOME=" + home_.path()};
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "VOLCTL_HOME=", 12) != 0) env_store.emplace_back(*e);
  }
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  char* argv[] = {const_cast<char*>("volctl"), const_cast<char*>("sessions"),
                  const_cast<char*>("-j"), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, BH_VOLCTL, &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return std::nullopt;
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  auto j = nlohmann::json::parse(ReadFile(out_path), nullptr, false);
  if (!j.is_object() || !j.contains("sessions") || !j["sessions"].is_array()) return std::nullopt;
  return j["sessions"].size();
}

bool Rig::NoSessionsLeft() const {
  for (int i = 0; i < 30; ++i) {
    std::optional<size_t> n = SessionCount();
    if (n && *n == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

uint64_t Rig::RssKib() const {
  std::ifstream f("/proc/" + std::to_string(daemon_->pid()) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

int Rig::SocketCount() const {
  const std::string dir = "/proc/" + std::to_string(daemon_->pid()) + "/fd";
  int n = 0;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    char target[256] = {};
    const std::string link = dir + "/" + e->d_name;
    if (::readlink(link.c_str(), target, sizeof(target) - 1) > 0 &&
        std::strncmp(target, "socket:", 7) == 0) {
      ++n;
    }
  }
  ::closedir(d);
  return n;
}

int Rig::FdCount() const {
  const std::string dir = "/proc/" + std::to_string(daemon_->pid()) + "/fd";
  int n = 0;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

// --- raw-socket helpers ---

std::optional<Pdu> SendLogin(RawClient& c, const LoginReq& r) {
  iscsi::LoginRequestBhs l;
  l.transit = r.transit;
  l.cont = r.cont;
  l.csg = r.csg;
  l.nsg = r.nsg;
  l.isid = r.isid;
  l.tsih = r.tsih;
  l.version_min = r.version_min;
  l.version_max = r.version_max;
  l.itt = c.itt;
  l.cmdsn = c.cmdsn;
  l.expstatsn = c.expstatsn;
  Bhs b;
  iscsi::EncodeLoginRequest(l, &b);
  if (!c.Send(b, r.raw_data ? *r.raw_data : iscsi::EncodeKeyValues(r.keys))) return std::nullopt;
  return c.Recv();
}

std::string LoginResult(RawClient& c, const std::optional<Pdu>& p) {
  if (!p) return "close";
  const uint8_t op = iscsi::BhsOpcode(p->bhs);
  if (op != 0x23) return "opcode " + Hex(op, 2);
  const uint16_t status = iscsi::DecodeLoginResponse(p->bhs).status;
  std::string s = "login " + Hex(status, 4);
  if (status != 0) s += c.Closed(3000) ? "+close" : "+open";
  return s;
}

bool ClearUnitAttention(RawClient& c) {
  for (int i = 0; i < 4; ++i) {
    c.Command({}, 0, false, false);
    auto p = c.Recv();
    if (!p || iscsi::BhsOpcode(p->bhs) != 0x21) return false;
    if (iscsi::DecodeScsiResponse(p->bhs).status == 0) return true;
  }
  return false;
}

std::unique_ptr<RawClient> FullFeature(const Rig& rig, std::vector<KeyValue> extra, uint64_t isid) {
  auto c = std::make_unique<RawClient>(rig.port());
  if (!c->connected()) {
    FAIL("cannot connect to the daemon");
    return nullptr;
  }
  const uint16_t status = c->Login(kIni, kPlain, std::move(extra), isid);
  if (status != 0 || !ClearUnitAttention(*c)) {
    FAIL("login to " << kPlain << " failed: status " << std::hex << status);
    return nullptr;
  }
  return c;
}

std::string Outcome(const Pdu& p) {
  const uint8_t op = iscsi::BhsOpcode(p.bhs);
  switch (op) {
    case 0x3f:
      return "reject " + Hex(iscsi::DecodeReject(p.bhs).reason, 2);
    case 0x20:
      return "nop-in";
    case 0x21: {
      const iscsi::ScsiResponseBhs r = iscsi::DecodeScsiResponse(p.bhs);
      std::string s = "scsi " + Hex(r.status, 2);
      if (p.data.size() >= 2 + 14) {
        s += " " + Hex(p.data[2 + 2] & 0x0f, 2) + "/" + Hex(p.data[2 + 12], 2) + "/" +
             Hex(p.data[2 + 13], 2);
      }
      return s;
    }
    default:
      return "opcode " + Hex(op, 2);
  }
}

std::string NextOutcome(RawClient& c, int timeout_ms) {
  auto p = c.Recv(timeout_ms);
  return p ? Outcome(*p) : "close";
}

std::string StillAlive(RawClient& c) {
  c.Command({}, 0, false, false);
  return NextOutcome(c) == "scsi 00" ? ",alive" : ",dead";
}

bool Liveness(const Rig& rig, std::string* why) {
  auto fail = [why](std::string text) {
    *why = std::move(text);
    return false;
  };
  RawClient c(rig.port());
  if (!c.connected()) return fail("connect failed");
  const uint16_t st = c.LoginChap(kIni, kChap, kChapUser, kChapSecret);
  if (st != 0) return fail("CHAP login status " + Hex(st, 4));
  if (!ClearUnitAttention(c)) return fail("TEST UNIT READY never GOOD");
  const uint16_t blocks = kPatternBytes / 512;
  c.Command(iscsi::testing::Cdb10(0x28, 0, blocks), kPatternBytes, true, false);
  std::vector<uint8_t> got;
  for (int pdus = 0; pdus < 64; ++pdus) {
    auto p = c.Recv();
    if (!p || iscsi::BhsOpcode(p->bhs) != 0x25) return fail("READ: no Data-In");
    got.insert(got.end(), p->data.begin(), p->data.end());
    if (iscsi::DecodeDataIn(p->bhs).has_status) break;
  }
  if (got != rig.pattern()) return fail("READ returned other data");
  iscsi::LogoutRequestBhs l;
  l.immediate = true;
  l.itt = ++c.itt;
  l.cmdsn = c.cmdsn;
  Bhs b;
  iscsi::EncodeLogoutRequest(l, &b);
  c.Send(b);
  auto r = c.Recv();
  if (!r || iscsi::BhsOpcode(r->bhs) != 0x26) return fail("no Logout Response");
  if (!c.Closed()) return fail("connection open after logout");
  return true;
}

}  // namespace blockhaus::testing::badinput
