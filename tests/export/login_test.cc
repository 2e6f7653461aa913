// TESTING.md D2, driven in process against LoginMachine.
#include "export/iscsi/login.h"

#include <doctest/doctest.h>

#include "tests/export/iscsi_test_util.h"

namespace blockhaus::iscsi {
namespace {

using testing::MakeTarget;
using testing::RamTarget;
using testing::StaticDirectory;

constexpr const char* kIqn = "iqn.2026-11.test:disk";
constexpr const char* kIni = "iqn.2026-11.test:host";

struct Rig {
  StaticDirectory dir;
  std::shared_ptr<TargetConfig> target;
  ChapLimiter limiter;
  std::unique_ptr<LoginMachine> m;

  explicit Rig(bool chap = false, std::vector<AllowRule> allow = {{AllowRule::Kind::kAny, "", ""}}) {
    target = MakeTarget(kIqn, std::make_shared<RamTarget>(), std::move(allow));
    if (chap) target->chap = ChapCredentials{"user", "secret-123456", "", ""};
    dir.Add(target);
    LoginEnv env;
    env.directory = &dir;
    env.peer_address = "10.1.2.3";
    env.limiter = &limiter;
    env.session_exists = [](uint16_t tsih) { return tsih == 77; };
    m = std::make_unique<LoginMachine>(env);
  }

  struct Out {
    LoginStepKind kind;
    LoginResponseBhs r;
    std::vector<KeyValue> keys;
  };
  Out Step(const std::vector<KeyValue>& keys, uint8_t csg, uint8_t nsg, bool transit,
           uint16_t tsih = 0, bool cont = false, uint8_t vmin = 0, uint8_t vmax = 0) {
    LoginRequestBhs l;
    l.transit = transit;
    l.cont = cont;
    l.csg = csg;
    l.nsg = nsg;
    l.isid = 0x400001370000ull;
    l.tsih = tsih;
    l.version_min = vmin;
    l.version_max = vmax;
    Pdu req;
    EncodeLoginRequest(l, &req.bhs);
    req.data = EncodeKeyValues(keys);
    Pdu resp;
    LoginStep s = m->Process(req, &resp);
    Out o{s.kind, DecodeLoginResponse(resp.bhs), {}};
    (void)ParseKeyValues(resp.data, &o.keys);
    return o;
  }
  Out First(std::vector<KeyValue> extra = {}, bool transit = true, uint8_t nsg = 1) {
    std::vector<KeyValue> keys = {{"InitiatorName", kIni}, {"TargetName", kIqn}};
    keys.insert(keys.end(), extra.begin(), extra.end());
    return Step(keys, 0, nsg, transit);
  }
};

std::string Answer(const Rig::Out& challenge, const std::string& secret) {
  return testing::ChapAnswerHex(challenge.keys, secret);
}

}  // namespace

TEST_CASE("login without CHAP reaches full feature phase") {
  Rig rig;
  auto a = rig.First({{"AuthMethod", "None"}});
  CHECK(a.kind == LoginStepKind::kRespond);
  CHECK(a.r.transit);
  CHECK(a.r.nsg == 1);
  CHECK(*FindKey(a.keys, "AuthMethod") == "None");
  CHECK(*FindKey(a.keys, "TargetPortalGroupTag") == "1");
  auto b = rig.Step({{"MaxRecvDataSegmentLength", "65536"}, {"ImmediateData", "Yes"}}, 1, 3, true);
  CHECK(b.kind == LoginStepKind::kComplete);
  CHECK(b.r.nsg == 3);
  CHECK(*FindKey(b.keys, "MaxRecvDataSegmentLength") == "262144");
  CHECK(rig.m->result().params.initiator_max_recv_data_segment == 65536);
}

TEST_CASE("login with CHAP") {
  Rig rig(true);
  auto a = rig.First({{"AuthMethod", "CHAP,None"}}, false, 0);
  CHECK(*FindKey(a.keys, "AuthMethod") == "CHAP");
  auto c = rig.Step({{"CHAP_A", "5"}}, 0, 0, false);
  REQUIRE(FindKey(c.keys, "CHAP_C") != nullptr);
  auto d = rig.Step({{"CHAP_N", "user"}, {"CHAP_R", Answer(c, "secret-123456")}}, 0, 1, true);
  CHECK(d.kind == LoginStepKind::kRespond);
  CHECK(d.r.transit);
  auto e = rig.Step({}, 1, 3, true);
  CHECK(e.kind == LoginStepKind::kComplete);
}

TEST_CASE("D2-1: a non-login PDU first fails with 0x020b") {
  Rig rig;
  Pdu req;
  NopOutBhs n;
  n.itt = 5;
  EncodeNopOut(n, &req.bhs);
  Pdu resp;
  CHECK(rig.m->Process(req, &resp).kind == LoginStepKind::kFail);
  CHECK(DecodeLoginResponse(resp.bhs).status == 0x020b);
  CHECK(rig.m->Process(req, &resp).kind == LoginStepKind::kDrop);
}

TEST_CASE("D2-2: skipping security while CHAP is required fails 0x0201") {
  {
    Rig rig(true);
    auto a = rig.Step({{"InitiatorName", kIni}, {"TargetName", kIqn}}, 1, 3, true);
    CHECK(a.kind == LoginStepKind::kFail);
    CHECK(a.r.status == 0x0201);
  }
  {
    Rig rig(true);  // T=1 NSG=3 from security without any AuthMethod
    auto a = rig.First({}, true, 3);
    CHECK(a.kind == LoginStepKind::kFail);
    CHECK(a.r.status == 0x0201);
  }
  {
    Rig rig(true);  // CHAP chosen, then jump to operational without answering
    rig.First({{"AuthMethod", "CHAP"}}, true, 1);
    auto b = rig.Step({}, 1, 3, true);
    CHECK(b.kind == LoginStepKind::kFail);
  }
  {
    Rig rig(true);  // CHAP in progress: T=1 is answered T=0, never FFP
    auto a = rig.First({{"AuthMethod", "CHAP"}}, true, 3);
    CHECK(a.kind == LoginStepKind::kRespond);
    CHECK_FALSE(a.r.transit);
    auto b = rig.Step({{"CHAP_A", "5"}}, 0, 3, true);
    CHECK_FALSE(b.r.transit);
    CHECK_FALSE(rig.m->complete());
  }
}

TEST_CASE("D2-3: AuthMethod None or Foo when CHAP required fails 0x0201") {
  for (const char* m : {"None", "Foo"}) {
    Rig rig(true);
    auto a = rig.First({{"AuthMethod", m}});
    CHECK(a.kind == LoginStepKind::kFail);
    CHECK(a.r.status == 0x0201);
  }
}

TEST_CASE("D2-4: missing InitiatorName or TargetName fails 0x0207") {
  Rig rig;
  CHECK(rig.Step({{"TargetName", kIqn}}, 0, 1, true).r.status == 0x0207);
  Rig rig2;
  CHECK(rig2.Step({{"InitiatorName", kIni}}, 0, 1, true).r.status == 0x0207);
}

TEST_CASE("IsValidIscsiName: the RFC 7143 §4.2.7 formats, in any case, ASCII only") {
  const std::string longest = "iqn.2026-11.com.example:" + std::string(223 - 24, 'x');
  REQUIRE(longest.size() == 223);
  for (const std::string& good : std::vector<std::string>{
           kIni,
           "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test",  // libiscsi's test tools
           "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2",
           "iqn.1993-08.org.debian:01:8a3b4c5d6e7f",                // open-iscsi on Debian
           "iqn.1991-05.com.microsoft:WIN-7QH2J0K1.corp.example.com",  // Windows, upper case
           "IQN.2001-04.COM.EXAMPLE:STORAGE.DISK2",
           "iqn.2026-11.com.example",  // no unique part
           "iqn.2026-11.com.example:",
           "iqn.2008-11.org.linux-kvm:my_vm",  // '_': lenient, as LIO
           "eui.02004567A425678D",
           "EUI.02004567a425678d",
           "naa.52004567BA64678D",
           "naa.62004567BA64678D0123456789ABCDEF",
           longest,
       }) {
    CAPTURE(good);
    CHECK(IsValidIscsiName(good));
  }
  for (const std::string& bad : std::vector<std::string>{
           "",
           longest + "x",  // 224 bytes
           // iqn: the date, then a naming authority
           "iqn.", "iqn.2026-11", "iqn.2026-11.", "iqn.2026-1.com.example",
           "iqn.26-11.com.example", "iqn.2026-13.com.example", "iqn.2026-00.com.example",
           "iqn.2026_11.com.example", "iqn.2026-11:com.example", "iqn.2026-11.:host",
           "iqn.2026-11..com.example", "iqn.2026-11.com.example.:host",
           // bytes outside letters, digits and - . : _
           "iqn.2026-11.com.example:host name", "iqn.2026-11.com.example:host\tname",
           "iqn.2026-11.com.example:a/b", "iqn.2026-11.com.example:a@b",
           "iqn.2026-11.com.example:a,b",
           "iqn.2026-11.com.example:a\x01" "b", "iqn.2026-11.com.example:\x7f",
           std::string("iqn.2026-11.com.example:a") + '\0' + "b",
           "iqn.2026-11.com.ex\xc3\xa4mple", "iqn.2026-11.com.example:\xff",
           // eui and naa: exact hex lengths
           "eui.02004567A425678", "eui.02004567A425678D0", "eui.02004567A425678G", "eui.",
           "naa.52004567BA64678D0123", "naa.62004567BA64678D0123456789ABCDE",
           "naa.62004567BA64678D0123456789ABCDEF0",
           // no known type
           "host", "iqn2026-11.com.example", "iqm.2026-11.com.example", "foo.02004567A425678D",
       }) {
    CAPTURE(bad);
    CHECK_FALSE(IsValidIscsiName(bad));
  }
}

TEST_CASE("InitiatorName that is not an iSCSI name fails 0x0200, even where anyone may log in") {
  for (const char* bad : {"iqn.2026-11.test:host name", "host", "iqn.2026-11.test:a/b@c",
                          "eui.0123"}) {
    CAPTURE(bad);
    Rig rig;  // the ACL admits any initiator
    auto a = rig.Step({{"InitiatorName", bad}, {"TargetName", kIqn}, {"AuthMethod", "None"}}, 0,
                      1, true);
    CHECK(a.kind == LoginStepKind::kFail);
    CHECK(a.r.status == 0x0200);
    CHECK_FALSE(rig.m->complete());
  }
  Rig rig;  // discovery sessions too
  auto d = rig.Step(
      {{"InitiatorName", "iqn.2026-11.test:bad name"}, {"SessionType", "Discovery"},
       {"AuthMethod", "None"}},
      0, 3, true);
  CHECK(d.r.status == 0x0200);
}

TEST_CASE("an upper-case InitiatorName matches its lower-case ACL entry") {
  const char* name = "IQN.1991-05.COM.MICROSOFT:WIN-HOST";
  Rig rig(false, {{AllowRule::Kind::kInitiator, "iqn.1991-05.com.microsoft:win-host", ""}});
  auto a = rig.Step({{"InitiatorName", name}, {"TargetName", kIqn}, {"AuthMethod", "None"}}, 0,
                    1, true);
  CHECK(a.kind == LoginStepKind::kRespond);
  auto b = rig.Step({}, 1, 3, true);
  CHECK(b.kind == LoginStepKind::kComplete);
  CHECK(rig.m->result().initiator_name == "iqn.1991-05.com.microsoft:win-host");
}

TEST_CASE("D2-5: unknown target fails 0x0203") {
  Rig rig;
  CHECK(rig.Step({{"InitiatorName", kIni}, {"TargetName", "iqn.nope"}}, 0, 1, true).r.status ==
        0x0203);
}

TEST_CASE("D2-6: ACL by initiator name and network") {
  {
    Rig rig(false, {{AllowRule::Kind::kInitiator, "iqn.other", ""}});
    CHECK(rig.First({{"AuthMethod", "None"}}).r.status == 0x0202);
  }
  {
    Rig rig(false, {});  // empty ACL: default deny
    CHECK(rig.First({{"AuthMethod", "None"}}).r.status == 0x0202);
  }
  {
    Rig rig(false, {{AllowRule::Kind::kNetwork, "", "10.1.0.0/16"}});
    CHECK(rig.First({{"AuthMethod", "None"}}).r.status == 0);
  }
  {
    Rig rig(false, {{AllowRule::Kind::kNetwork, "", "10.2.0.0/16"}});
    CHECK(rig.First({{"AuthMethod", "None"}}).r.status == 0x0202);
  }
  {
    Rig rig(true, {{AllowRule::Kind::kInitiator, kIni, ""}});  // spoofed name, no secret
    rig.First({{"AuthMethod", "CHAP"}}, false, 0);
    auto c = rig.Step({{"CHAP_A", "5"}}, 0, 0, false);
    CHECK(rig.Step({{"CHAP_N", "user"}, {"CHAP_R", Answer(c, "guess-guess-1")}}, 0, 1, true)
              .r.status == 0x0201);
  }
  CHECK(AddressInNetwork("::ffff:10.1.2.3", "10.0.0.0/8"));
  CHECK(AddressInNetwork("::1", "::1/128"));
  CHECK_FALSE(AddressInNetwork("::2", "::1/128"));
  CHECK_FALSE(AddressInNetwork("10.1.2.3", "10.0.0.0/33"));
  CHECK(AddressInNetwork("10.1.2.3", "10.1.2.3"));
}

TEST_CASE("D2-7: unsupported version fails 0x0205") {
  Rig rig;
  CHECK(rig.Step({{"InitiatorName", kIni}, {"TargetName", kIqn}}, 0, 1, true, 0, false, 1, 1)
            .r.status == 0x0205);
  Rig rig2;
  CHECK(rig2.Step({{"InitiatorName", kIni}, {"TargetName", kIqn}}, 0, 1, true, 0, false, 2, 0)
            .r.status == 0x0205);
}

TEST_CASE("D2-8: unknown TSIH fails 0x020a; a known one cannot add a connection") {
  Rig rig;
  CHECK(rig.Step({{"InitiatorName", kIni}, {"TargetName", kIqn}}, 0, 1, true, 5).r.status ==
        0x020a);
  Rig rig2;
  CHECK(rig2.Step({{"InitiatorName", kIni}, {"TargetName", kIqn}}, 0, 1, true, 77).r.status ==
        0x0206);
}

TEST_CASE("D2-9/10/13: CHAP_A junk, repeated CHAP_N, CHAP_R before CHAP_C") {
  {
    Rig rig(true);
    rig.First({{"AuthMethod", "CHAP"}}, false, 0);
    CHECK(rig.Step({{"CHAP_A", "6,99"}}, 0, 0, false).r.status == 0x0201);
  }
  {
    Rig rig(true);
    rig.First({{"AuthMethod", "CHAP"}}, false, 0);
    std::string many;
    for (int i = 0; i < 60; ++i) many += "1,";
    many += "5";
    CHECK(rig.Step({{"CHAP_A", many}}, 0, 0, false).r.status == 0);  // bounded, still works
  }
  {
    Rig rig(true);
    rig.First({{"AuthMethod", "CHAP"}}, false, 0);
    CHECK(rig.Step({{"CHAP_N", "user"}, {"CHAP_R", "0x00"}}, 0, 0, false).r.status == 0x0200);
  }
  {
    Rig rig(true);
    rig.First({{"AuthMethod", "CHAP"}}, false, 0);
    auto c = rig.Step({{"CHAP_A", "5"}}, 0, 0, false);
    auto d = rig.Step({{"CHAP_N", "user"}, {"CHAP_R", Answer(c, "secret-123456")}}, 0, 0, false);
    CHECK(d.r.status == 0);
    // CHAP_N again after auth completed: a repeated key.
    CHECK(rig.Step({{"CHAP_N", "user"}}, 0, 1, true).r.status == 0x0200);
  }
}

TEST_CASE("D2-17/18: malformed text and oversized continuation") {
  {
    Rig rig;
    LoginRequestBhs l;
    l.csg = 0;
    Pdu req;
    EncodeLoginRequest(l, &req.bhs);
    req.data = {'I', 'n', 'i'};  // no '=' and no NUL
    Pdu resp;
    CHECK(rig.m->Process(req, &resp).kind == LoginStepKind::kFail);
    CHECK(DecodeLoginResponse(resp.bhs).status == 0x0200);
  }
  {
    Rig rig;
    LoginStepKind k = LoginStepKind::kRespond;
    int steps = 0;
    while (k == LoginStepKind::kRespond && steps < 100) {
      LoginRequestBhs l;
      l.cont = true;
      Pdu req;
      EncodeLoginRequest(l, &req.bhs);
      req.data.assign(8192, 'A');
      Pdu resp;
      k = rig.m->Process(req, &resp).kind;
      ++steps;
      if (k == LoginStepKind::kFail) CHECK(DecodeLoginResponse(resp.bhs).status == 0x0302);
    }
    CHECK(k == LoginStepKind::kFail);
    CHECK(steps == 9);
  }
}

TEST_CASE("D2-20: bad operational values get Reject in the login") {
  Rig rig;
  rig.First({{"AuthMethod", "None"}});
  auto b = rig.Step({{"MaxRecvDataSegmentLength", "abc"}, {"DefaultTime2Retain", "99999"},
                     {"FirstBurstLength", "999999999"}},
                    1, 3, true);
  CHECK(b.kind == LoginStepKind::kComplete);
  CHECK(*FindKey(b.keys, "MaxRecvDataSegmentLength") == "Reject");
  CHECK(*FindKey(b.keys, "DefaultTime2Retain") == "Reject");
  CHECK(*FindKey(b.keys, "FirstBurstLength") == "Reject");
  CHECK(rig.m->result().params.initiator_max_recv_data_segment == 8192);
}

TEST_CASE("SR-A3: operational keys before authentication are not honoured") {
  Rig rig(true);
  auto a = rig.First({{"AuthMethod", "CHAP"}, {"MaxBurstLength", "4096"}}, false, 0);
  CHECK(*FindKey(a.keys, "MaxBurstLength") == "Reject");
}

TEST_CASE("discovery session logs in without a target") {
  Rig rig;
  auto a = rig.Step({{"InitiatorName", kIni}, {"SessionType", "Discovery"}, {"AuthMethod", "None"}},
                    0, 3, true);
  CHECK(a.kind == LoginStepKind::kComplete);
  CHECK(rig.m->result().type == SessionType::kDiscovery);
  Rig rig2;
  CHECK(rig2.Step({{"InitiatorName", kIni}, {"SessionType", "Bogus"}}, 0, 1, true).r.status ==
        0x0209);
}

TEST_CASE("the stage cannot move without an agreed transition") {
  Rig rig;
  rig.First({{"AuthMethod", "None"}}, false, 0);  // stays in security
  CHECK(rig.Step({}, 1, 3, true).r.status == 0x0200);
  Rig rig2;
  CHECK(rig2.First({{"AuthMethod", "None"}}, true, 2).r.status == 0x0200);  // NSG 2 reserved
}

}  // namespace blockhaus::iscsi

namespace blockhaus::iscsi {

TEST_CASE("libiscsi repeats InitiatorName/SessionType per stage: same value ok, changed fails") {
  Rig rig;
  rig.First({{"AuthMethod", "None"}});
  auto b = rig.Step({{"InitiatorName", kIni}, {"TargetName", kIqn}}, 1, 3, true);
  CHECK(b.kind == LoginStepKind::kComplete);
  Rig rig2;
  rig2.First({{"AuthMethod", "None"}});
  CHECK(rig2.Step({{"InitiatorName", "iqn.someone-else"}}, 1, 3, true).r.status == 0x0200);
}

}  // namespace blockhaus::iscsi

namespace blockhaus::iscsi {

TEST_CASE("SR-A2: discovery sessions can require CHAP of their own") {
  StaticDirectory dir;
  LoginEnv env;
  env.directory = &dir;
  env.peer_address = "127.0.0.1";
  env.discovery_chap = ChapCredentials{"disc", "disc-secret-1234", "", ""};
  LoginMachine m(env);
  LoginRequestBhs l;
  l.transit = true;
  l.nsg = 3;
  Pdu req;
  EncodeLoginRequest(l, &req.bhs);
  req.data = EncodeKeyValues(
      {{"InitiatorName", kIni}, {"SessionType", "Discovery"}, {"AuthMethod", "None"}});
  Pdu resp;
  CHECK(m.Process(req, &resp).kind == LoginStepKind::kFail);
  CHECK(DecodeLoginResponse(resp.bhs).status == 0x0201);
}

}  // namespace blockhaus::iscsi
