// Full-feature-phase bad PDUs (TESTING.md D3), task management (B6),
// command window (B7), reinstatement (D2-22, B4) and resource limits (E1,
// B5) over 127.0.0.1 against the Server and a RAM-backed fake Target.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "export/iscsi/server.h"
#include "tests/export/iscsi_test_util.h"

namespace blockhaus::iscsi {
namespace {

using testing::Cdb10;
using testing::MakeTarget;
using testing::RamTarget;
using testing::RawClient;
using testing::StaticDirectory;

constexpr const char* kIqn = "iqn.2026-11.test:disk";
constexpr const char* kIni = "iqn.2026-11.test:host";

// Holds Execute of matching commands until opened.
class Gate {
 public:
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = false;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> l(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> l(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(l, [&] { return open_; });
    --waiting_;
  }
  bool WaitForWaiters(int n) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::seconds(5), [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int waiting_ = 0;
};

struct Rig {
  StaticDirectory dir;
  std::shared_ptr<RamTarget> ram = std::make_shared<RamTarget>(1 << 20, std::vector<uint64_t>{0, 1});
  Gate gate;
  std::unique_ptr<Server> server;
  uint16_t port = 0;

  explicit Rig(ServerOptions opts = {}) {
    auto t = MakeTarget(kIqn, ram);
    t->multi_session = true;
    dir.Add(t);
    ram->hook = [this](const scsi::Command& c) {
      if (c.cdb[0] == 0x28 || c.cdb[0] == 0x2a) gate.Wait();
    };
    opts.listen = {"127.0.0.1:0"};
    auto s = Server::Start(opts, &dir);
    REQUIRE(s.ok());
    server = std::move(s).value();
    port = server->ports().at(0);
  }
  ~Rig() { gate.Open(); }
  std::unique_ptr<RawClient> Connect(std::vector<KeyValue> extra = {},
                                     uint64_t isid = 0x400001370000ull) {
    auto c = std::make_unique<RawClient>(port);
    REQUIRE(c->connected());
    REQUIRE(c->Login(kIni, kIqn, std::move(extra), isid) == 0);
    return c;
  }
};

uint8_t RecvOpcode(RawClient* c, Pdu* out = nullptr) {
  auto p = c->Recv();
  if (!p) return 0xff;
  if (out != nullptr) *out = *p;
  return BhsOpcode(p->bhs);
}

template <typename F>
bool Eventually(F f) {
  for (int i = 0; i < 300; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

TEST_CASE("D3: unknown and target-only opcodes are rejected, the session goes on") {
  Rig rig;
  auto c = rig.Connect();
  Bhs b{};
  b[0] = 0x1e;  // undefined initiator opcode
  c->Send(b);
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x3f);
  CHECK(DecodeReject(p.bhs).reason == 0x05);
  CHECK(p.data.size() == 48);
  b.fill(0);
  b[0] = 0x21;  // SCSI Response, a target opcode
  c->Send(b);
  REQUIRE(RecvOpcode(c.get(), &p) == 0x3f);
  CHECK(DecodeReject(p.bhs).reason == 0x04);
  // Still alive: TEST UNIT READY.
  c->Command({}, 0, false, false);
  REQUIRE(RecvOpcode(c.get(), &p) == 0x21);
  CHECK(DecodeScsiResponse(p.bhs).status == 0);
}

TEST_CASE("D3: reserved fields are ignored; NOP-Out ping is echoed") {
  Rig rig;
  auto c = rig.Connect();
  NopOutBhs n;
  n.immediate = true;
  n.itt = 0x77;
  n.cmdsn = c->cmdsn;
  Bhs b;
  EncodeNopOut(n, &b);
  b[2] = 0xaa;  // reserved
  c->Send(b, {1, 2, 3, 4, 5});
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x20);
  CHECK(BhsItt(p.bhs) == 0x77);
  CHECK(p.data == std::vector<uint8_t>{1, 2, 3, 4, 5});
}

TEST_CASE("D3: an AHS on a SCSI command is not supported") {
  Rig rig;
  auto c = rig.Connect();
  ScsiCommandBhs s;
  s.itt = 5;
  s.cmdsn = c->cmdsn++;
  s.total_ahs_length = 1;
  Bhs b;
  EncodeScsiCommand(s, &b);
  std::vector<uint8_t> wire(b.begin(), b.end());
  wire.insert(wire.end(), {0, 2, 1, 0});  // 4-byte AHS
  c->SendRaw(wire);
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x3f);
  CHECK(DecodeReject(p.bhs).reason == 0x05);
}

TEST_CASE("D3: header digest error drops the connection; data digest error rejects 0x02") {
  Rig rig;
  {
    auto c = rig.Connect({{"HeaderDigest", "CRC32C"}, {"DataDigest", "CRC32C"}});
    REQUIRE(c->header_digest);
    {
      NopOutBhs g;
      g.immediate = true;
      g.itt = 9;
      Bhs gb;
      EncodeNopOut(g, &gb);
      c->Send(gb);
      Pdu gp;
      REQUIRE(RecvOpcode(c.get(), &gp) == 0x20);  // a good PDU with digests works
    }
    NopOutBhs n;
    n.immediate = true;
    n.itt = 1;
    Bhs b;
    EncodeNopOut(n, &b);
    std::vector<uint8_t> wire;
    AppendPdu(b, {}, true, true, &wire);
    wire[49] ^= 0xff;
    c->SendRaw(wire);
    CHECK(c->Closed());
  }
  {
    auto c = rig.Connect({{"HeaderDigest", "CRC32C"}, {"DataDigest", "CRC32C"}});
    NopOutBhs n;
    n.immediate = true;
    n.itt = 1;
    Bhs b;
    EncodeNopOut(n, &b);
    std::vector<uint8_t> wire;
    AppendPdu(b, std::vector<uint8_t>{9, 9, 9, 9}, true, true, &wire);
    wire[52] ^= 0xff;  // data byte
    c->SendRaw(wire);
    Pdu p;
    REQUIRE(RecvOpcode(c.get(), &p) == 0x3f);
    CHECK(DecodeReject(p.bhs).reason == 0x02);
    CHECK(c->Closed());
  }
}

TEST_CASE("D3: immediate data beyond FirstBurstLength or when not negotiated") {
  Rig rig;
  {
    auto c = rig.Connect({{"FirstBurstLength", "4096"}, {"ImmediateData", "Yes"}});
    c->Command(Cdb10(0x2a, 0, 16), 8192, false, true, std::vector<uint8_t>(8192, 1));
    Pdu p;
    REQUIRE(RecvOpcode(c.get(), &p) == 0x3f);
    CHECK(DecodeReject(p.bhs).reason == 0x04);
  }
  {
    auto c = rig.Connect({{"ImmediateData", "No"}});
    c->Command(Cdb10(0x2a, 0, 1), 512, false, true, std::vector<uint8_t>(512, 1));
    Pdu p;
    REQUIRE(RecvOpcode(c.get(), &p) == 0x3f);
    CHECK(DecodeReject(p.bhs).reason == 0x04);
  }
  CHECK(rig.ram->Snapshot(0)[0] == 0);  // nothing written
}

TEST_CASE("D3: Data-Out with unknown TTT, offset beyond EDTL, repeated DataSN") {
  Rig rig;
  auto c = rig.Connect({{"InitialR2T", "Yes"}, {"ImmediateData", "No"}});
  DataOutBhs d;
  d.itt = 0x999;
  d.ttt = 0x1234;
  Bhs b;
  EncodeDataOut(d, &b);
  c->Send(b, std::vector<uint8_t>(512, 0));
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x3f);
  CHECK(DecodeReject(p.bhs).reason == 0x09);

  for (int variant = 0; variant < 2; ++variant) {
    const uint32_t itt = c->Command(Cdb10(0x2a, 0, 2), 1024, false, true);
    REQUIRE(RecvOpcode(c.get(), &p) == 0x31);
    R2tBhs r = DecodeR2t(p.bhs);
    d = {};
    d.itt = itt;
    d.ttt = r.ttt;
    d.buffer_offset = variant == 0 ? 1024 : 0;  // past EDTL / fine
    d.datasn = 0;
    EncodeDataOut(d, &b);
    c->Send(b, std::vector<uint8_t>(512, 0xee));
    if (variant == 1) {  // then the same DataSN again
      d.buffer_offset = 512;
      EncodeDataOut(d, &b);
      c->Send(b, std::vector<uint8_t>(512, 0xee));
    }
    REQUIRE(RecvOpcode(c.get(), &p) == 0x21);
    CHECK(DecodeScsiResponse(p.bhs).status == scsi::kStatusCheckCondition);
    CHECK(p.data.at(2 + 2) == 0x0b);  // ABORTED COMMAND
  }
  CHECK(rig.ram->Snapshot(0)[0] == 0);  // no data from a violating command
}

TEST_CASE("D3: LBA past the end and residuals") {
  Rig rig;
  auto c = rig.Connect();
  c->Command(Cdb10(0x28, 2047, 2), 1024, true, false);
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x21);
  CHECK(DecodeScsiResponse(p.bhs).status == 2);
  CHECK(p.data.at(2 + 12) == 0x21);
  // READ of 4 blocks with EDTL 1024: overflow 1024, 1024 bytes sent.
  c->Command(Cdb10(0x28, 0, 4), 1024, true, false);
  REQUIRE(RecvOpcode(c.get(), &p) == 0x25);
  DataInBhs d = DecodeDataIn(p.bhs);
  CHECK(p.data.size() == 1024);
  CHECK(d.has_status);
  CHECK(d.overflow);
  CHECK(d.residual == 1024);
  // READ of 1 block with EDTL 4096: underflow 3584.
  c->Command(Cdb10(0x28, 0, 1), 4096, true, false);
  REQUIRE(RecvOpcode(c.get(), &p) == 0x25);
  d = DecodeDataIn(p.bhs);
  CHECK(d.underflow);
  CHECK(d.residual == 3584);
}

TEST_CASE("D3: NOP-Out ping data larger than MRDSL ends the connection") {
  Rig rig;
  auto c = rig.Connect();
  NopOutBhs n;
  n.immediate = true;
  n.itt = 3;
  Bhs b;
  EncodeNopOut(n, &b);
  c->Send(b, std::vector<uint8_t>(262144 + 4, 0));
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x3f);
  CHECK(DecodeReject(p.bhs).reason == 0x04);
  CHECK(c->Closed());
}

TEST_CASE("D3: logout for an unknown CID, then a good logout") {
  Rig rig;
  auto c = rig.Connect();
  LogoutRequestBhs l;
  l.immediate = true;
  l.reason = 1;
  l.cid = 42;
  l.itt = 8;
  l.cmdsn = c->cmdsn;
  Bhs b;
  EncodeLogoutRequest(l, &b);
  c->Send(b);
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x26);
  CHECK(DecodeLogoutResponse(p.bhs).response == 1);
  l.reason = 0;
  EncodeLogoutRequest(l, &b);
  c->Send(b);
  REQUIRE(RecvOpcode(c.get(), &p) == 0x26);
  CHECK(DecodeLogoutResponse(p.bhs).response == 0);
  CHECK(c->Closed());
  CHECK(Eventually([&] { return rig.ram->nexus_lost == 1; }));
}

TEST_CASE("B6: ABORT TASK waits for the running command and sends nothing for it") {
  Rig rig;
  auto c = rig.Connect();
  rig.gate.Close();
  const uint32_t itt = c->Command(Cdb10(0x28, 0, 1), 512, true, false);
  REQUIRE(rig.gate.WaitForWaiters(1));
  TaskMgmtRequestBhs t;
  t.immediate = true;
  t.function = 1;
  t.rtt = itt;
  t.itt = 0x500;
  t.cmdsn = c->cmdsn;
  Bhs b;
  EncodeTaskMgmtRequest(t, &b);
  c->Send(b);
  CHECK_FALSE(c->Recv(200).has_value());  // not before the task left Execute
  rig.gate.Open();
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x22);
  CHECK(DecodeTaskMgmtResponse(p.bhs).response == 0);
  CHECK_FALSE(c->Recv(200).has_value());  // no Data-In for the aborted READ
  // Unknown RTT: task does not exist; unsupported function: 5; target
  // reset: 6 (SR-B5); LUN reset reaches the Target.
  t.rtt = 0xdead;
  t.refcmdsn = c->cmdsn - 1;
  EncodeTaskMgmtRequest(t, &b);
  c->Send(b);
  REQUIRE(RecvOpcode(c.get(), &p) == 0x22);
  CHECK(DecodeTaskMgmtResponse(p.bhs).response == 1);
  for (auto [fn, want] : {std::pair{3, 5}, std::pair{6, 6}, std::pair{7, 6}, std::pair{5, 0}}) {
    t.function = static_cast<uint8_t>(fn);
    EncodeTaskMgmtRequest(t, &b);
    c->Send(b);
    REQUIRE(RecvOpcode(c.get(), &p) == 0x22);
    CHECK(DecodeTaskMgmtResponse(p.bhs).response == want);
  }
  CHECK(rig.ram->resets == 1);
  t.function = 5;
  t.lun = 0x0009000000000000ull;  // LUN 9 is not mapped
  EncodeTaskMgmtRequest(t, &b);
  c->Send(b);
  REQUIRE(RecvOpcode(c.get(), &p) == 0x22);
  CHECK(DecodeTaskMgmtResponse(p.bhs).response == 2);
}

TEST_CASE("SR-B5: a TMF naming another session's task gets task does not exist") {
  Rig rig;
  auto a = rig.Connect({}, 0x400001370001ull);
  auto b2 = rig.Connect({}, 0x400001370002ull);
  rig.gate.Close();
  const uint32_t itt = a->Command(Cdb10(0x28, 0, 1), 512, true, false);
  REQUIRE(rig.gate.WaitForWaiters(1));
  TaskMgmtRequestBhs t;
  t.immediate = true;
  t.function = 1;
  t.rtt = itt;
  t.itt = 0x600;
  t.refcmdsn = 0;
  Bhs b;
  EncodeTaskMgmtRequest(t, &b);
  b2->Send(b);
  Pdu p;
  REQUIRE(RecvOpcode(b2.get(), &p) == 0x22);
  CHECK(DecodeTaskMgmtResponse(p.bhs).response == 1);
  rig.gate.Open();
  REQUIRE(RecvOpcode(a.get(), &p) == 0x25);  // A's READ completes untouched
}

TEST_CASE("B7: commands outside the CmdSN window are ignored") {
  Rig rig;
  auto c = rig.Connect();
  c->cmdsn += 1000;  // far beyond MaxCmdSN
  c->Command({}, 0, false, false);
  CHECK_FALSE(c->Recv(200).has_value());
  c->cmdsn -= 1001;  // back to ExpCmdSN
  c->Command({}, 0, false, false);
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x21);
  ScsiResponseBhs r = DecodeScsiResponse(p.bhs);
  CHECK(r.sn.maxcmdsn - r.sn.expcmdsn + 1 == 64);
}

TEST_CASE("D2-22: reinstatement closes the old session before the new one starts") {
  Rig rig;
  auto old = rig.Connect();
  rig.gate.Close();
  old->Command(Cdb10(0x2a, 0, 1), 512, false, true, std::vector<uint8_t>(512, 0xaa));
  REQUIRE(rig.gate.WaitForWaiters(1));
  // Same ISID and InitiatorName, TSIH 0: the login waits for the old
  // session's write to leave Execute and for NexusLost.
  RawClient fresh(rig.port);
  std::thread opener([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(rig.ram->nexus_lost == 0);
    rig.gate.Open();
  });
  CHECK(fresh.Login(kIni, kIqn) == 0);
  opener.join();
  CHECK(rig.ram->nexus_lost == 1);
  CHECK(old->Closed());
  CHECK(Eventually([&] { return rig.server->Sessions().size() == 1; }));
  fresh.Command({}, 0, false, false);
  Pdu p;
  REQUIRE(RecvOpcode(&fresh, &p) == 0x21);
}

TEST_CASE("E1/SR-L1: pre-login limits and the login timeout") {
  ServerOptions o;
  o.max_prelogin_per_address = 2;
  o.login_timeout = std::chrono::milliseconds(300);
  Rig rig(o);
  RawClient a(rig.port);
  RawClient b(rig.port);
  RawClient c(rig.port);
  CHECK(c.Closed(2000));   // third idle connection from 127.0.0.1 refused
  CHECK(a.Closed(3000));   // idle ones closed at the login timeout
  CHECK(b.Closed(3000));
  auto ok = rig.Connect();  // a real login still works
}

TEST_CASE("B5/SR-L6: NOP-In keepalive drops a silent initiator") {
  ServerOptions o;
  o.nop_interval = std::chrono::milliseconds(200);
  o.nop_timeout = std::chrono::milliseconds(300);
  Rig rig(o);
  auto c = rig.Connect();
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x20);
  NopInBhs n = DecodeNopIn(p.bhs);
  CHECK(n.ttt != kReservedTag);
  CHECK(n.itt == kReservedTag);
  // Answer once: the session stays.
  NopOutBhs r;
  r.immediate = true;
  r.itt = kReservedTag;
  r.ttt = n.ttt;
  r.cmdsn = c->cmdsn;
  Bhs b;
  EncodeNopOut(r, &b);
  c->Send(b);
  REQUIRE(RecvOpcode(c.get(), &p) == 0x20);  // the next ping
  CHECK(c->Closed(3000));                     // unanswered: dropped
  CHECK(Eventually([&] { return rig.server->Sessions().empty(); }));
}

}  // namespace blockhaus::iscsi

namespace blockhaus::iscsi {

TEST_CASE("E5/SR-L3: session limits per initiator and in total") {
  ServerOptions o;
  o.max_sessions_per_initiator = 1;
  o.max_sessions = 2;
  Rig rig(o);
  auto a = rig.Connect({}, 0x400001370001ull);
  RawClient b(rig.port);
  CHECK(b.Login(kIni, kIqn, {}, 0x400001370002ull) == 0x0206);
  RawClient c(rig.port);
  CHECK(c.Login("iqn.2026-11.test:other", kIqn, {}, 0x1) == 0);
  RawClient d(rig.port);
  CHECK(d.Login("iqn.2026-11.test:third", kIqn, {}, 0x1) == 0x0302);
  // a's session is unaffected.
  a->Command({}, 0, false, false);
  Pdu p;
  REQUIRE(RecvOpcode(a.get(), &p) == 0x21);
}

TEST_CASE("SR-L9: the buffer memory cap answers TASK SET FULL") {
  ServerOptions o;
  o.max_buffer_bytes = 4096;
  Rig rig(o);
  auto c = rig.Connect({{"InitialR2T", "Yes"}});
  c->Command(Cdb10(0x2a, 0, 16), 8192, false, true);
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x21);
  CHECK(DecodeScsiResponse(p.bhs).status == scsi::kStatusTaskSetFull);
  CHECK(rig.server->Sessions().size() == 1);
}

TEST_CASE("SR-L7: a write whose Data-Out never comes ends the connection") {
  ServerOptions o;
  o.data_out_timeout = std::chrono::milliseconds(300);
  Rig rig(o);
  auto c = rig.Connect({{"InitialR2T", "Yes"}});
  c->Command(Cdb10(0x2a, 0, 1), 512, false, true);
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x31);  // the R2T we never answer
  CHECK(c->Closed(3000));
  CHECK(Eventually([&] { return rig.server->Sessions().empty(); }));
  CHECK(rig.ram->Snapshot(0)[0] == 0);
}

}  // namespace blockhaus::iscsi

namespace blockhaus::iscsi {

TEST_CASE("two event loops: I/O on both, reinstatement across loops, Stop") {
  ServerOptions o;
  o.event_loops = 2;
  o.io_threads = 2;
  Rig rig(o);
  std::vector<std::unique_ptr<RawClient>> clients;
  for (uint64_t i = 0; i < 4; ++i) clients.push_back(rig.Connect({}, 0x400001370100ull + i));
  for (auto& c : clients) {
    c->Command(Cdb10(0x28, 0, 1), 512, true, false);
    Pdu p;
    REQUIRE(RecvOpcode(c.get(), &p) == 0x25);
  }
  CHECK(rig.server->Sessions().size() == 4);
  // Reinstate each: the new connection lands on the other loop half the time.
  for (uint64_t i = 0; i < 4; ++i) {
    RawClient again(rig.port);
    CHECK(again.Login(kIni, kIqn, {}, 0x400001370100ull + i) == 0);
    CHECK(clients[i]->Closed());
  }
  CHECK(Eventually([&] { return rig.server->Sessions().empty(); }));
  CHECK(rig.ram->nexus_lost == 8);
  rig.server->Stop();
}

}  // namespace blockhaus::iscsi

namespace blockhaus::iscsi {

TEST_CASE("B6: ABORT TASK for a command not yet received answers complete and drops it") {
  Rig rig;
  auto c = rig.Connect();
  TaskMgmtRequestBhs t;
  t.immediate = true;
  t.function = 1;
  t.rtt = 0x4242;
  t.itt = 0x700;
  t.cmdsn = c->cmdsn;
  t.refcmdsn = c->cmdsn;  // the next command, not sent yet
  Bhs b;
  EncodeTaskMgmtRequest(t, &b);
  c->Send(b);
  Pdu p;
  REQUIRE(RecvOpcode(c.get(), &p) == 0x22);
  CHECK(DecodeTaskMgmtResponse(p.bhs).response == 0);
  const int before = rig.ram->executed;
  c->Command({}, 0, false, false);  // carries that CmdSN: ignored
  CHECK_FALSE(c->Recv(200).has_value());
  CHECK(rig.ram->executed == before);
  c->Command({}, 0, false, false);  // the next one runs
  REQUIRE(RecvOpcode(c.get(), &p) == 0x21);
}

}  // namespace blockhaus::iscsi

namespace blockhaus::iscsi {

TEST_CASE("B6: LUN RESET ends the other sessions' tasks on the LUN first") {
  ServerOptions o;
  o.event_loops = 2;
  Rig rig(o);
  auto a = rig.Connect({}, 0x400001370001ull);
  auto b = rig.Connect({}, 0x400001370002ull);
  rig.gate.Close();
  b->Command(Cdb10(0x28, 0, 1), 512, true, false);  // B's READ blocks in Execute
  REQUIRE(rig.gate.WaitForWaiters(1));
  TaskMgmtRequestBhs t;
  t.immediate = true;
  t.function = 5;
  t.itt = 0x800;
  t.cmdsn = a->cmdsn;
  Bhs bhs;
  EncodeTaskMgmtRequest(t, &bhs);
  a->Send(bhs);
  CHECK_FALSE(a->Recv(300).has_value());  // waits for B's task
  CHECK(rig.ram->resets == 0);
  rig.gate.Open();
  Pdu p;
  REQUIRE(RecvOpcode(a.get(), &p) == 0x22);
  CHECK(DecodeTaskMgmtResponse(p.bhs).response == 0);
  CHECK(rig.ram->resets == 1);
  CHECK_FALSE(b->Recv(300).has_value());  // B's READ was aborted silently
  b->Command({}, 0, false, false);         // B's session lives on
  REQUIRE(RecvOpcode(b.get(), &p) == 0x21);
}

}  // namespace blockhaus::iscsi
