// fuzz_login (TESTING.md C2): sequences of Login Request PDUs through the
// login state machine, against a target that requires CHAP and one that
// does not. The machine must never complete a login to the CHAP target
// (the fuzzer cannot know the fresh challenge's answer), every response
// must be a well-formed Login Response within the login data limit, and
// the total text stays bounded.
//
// Input, repeated: u8 flags (T, C, CSG, NSG), u8 tsih/opcode selector,
// u16 length (big-endian), then that many bytes of text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "export/iscsi/login.h"

namespace {

class Dir : public blockhaus::iscsi::TargetDirectory {
 public:
  Dir() {
    using blockhaus::iscsi::AllowRule;
    auto open = std::make_shared<blockhaus::iscsi::TargetConfig>();
    open->name = "iqn.t:open";
    open->allow = {{AllowRule::Kind::kAny, "", ""}};
    auto chap = std::make_shared<blockhaus::iscsi::TargetConfig>();
    chap->name = "iqn.t:chap";
    chap->allow = {{AllowRule::Kind::kInitiator, "iqn.i", ""}};
    chap->chap = blockhaus::iscsi::ChapCredentials{"user", "secret-123456", "", ""};
    targets_ = {open, chap};
  }
  std::shared_ptr<const blockhaus::iscsi::TargetConfig> Find(const std::string& n) const override {
    for (auto& t : targets_) {
      if (t->name == n) return t;
    }
    return nullptr;
  }
  std::vector<std::shared_ptr<const blockhaus::iscsi::TargetConfig>> List() const override {
    return targets_;
  }

 private:
  std::vector<std::shared_ptr<const blockhaus::iscsi::TargetConfig>> targets_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blockhaus::iscsi;
  static Dir dir;
  LoginEnv env;
  env.directory = &dir;
  env.peer_address = "127.0.0.1";
  env.session_exists = [](uint16_t tsih) { return tsih == 1; };
  LoginMachine m(env);
  size_t off = 0;
  for (int step = 0; step < 32 && off + 4 <= size; ++step) {
    const uint8_t flags = data[off];
    const uint8_t sel = data[off + 1];
    const size_t len = std::min<size_t>((size_t{data[off + 2]} << 8) | data[off + 3], size - off - 4);
    off += 4;
    LoginRequestBhs l;
    l.transit = (flags & 0x80) != 0;
    l.cont = (flags & 0x40) != 0;
    l.csg = (flags >> 2) & 3;
    l.nsg = flags & 3;
    l.tsih = sel & 3;
    l.isid = 0x400001370000ull;
    Pdu req;
    EncodeLoginRequest(l, &req.bhs);
    if ((sel & 0xf0) == 0xf0) req.bhs[0] = sel & 0x3f;  // sometimes not a login PDU
    req.data.assign(data + off, data + off + len);
    off += len;
    Pdu resp;
    const LoginStep s = m.Process(req, &resp);
    if (s.kind == LoginStepKind::kDrop) break;
    if (BhsOpcode(resp.bhs) != static_cast<uint8_t>(Opcode::kLoginResponse)) std::abort();
    if (resp.data.size() > kLoginMaxRecvDataSegment) std::abort();
    if (BhsDataSegmentLength(resp.bhs) != resp.data.size() && s.kind != LoginStepKind::kFail) std::abort();
    if (s.kind == LoginStepKind::kComplete) {
      if (m.result().target && m.result().target->chap) std::abort();  // SR-A3
      break;
    }
    if (s.kind == LoginStepKind::kFail) break;
  }
  return 0;
}
