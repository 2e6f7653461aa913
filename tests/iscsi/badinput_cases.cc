// TESTING.md D2 (login-phase bad input) and D3 (full-feature bad PDUs), one
// function per case, each returning what the daemon did in a short form
// ("login 0201+close", "reject 05,alive", "scsi 02 05/21/00"...) that the
// test compares with the expected outcome. Every case starts from a fresh
// TCP connection; the test checks liveness, sessions and resources after
// each one.
#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/base/endian.h"
#include "export/iscsi/chap.h"
#include "tests/iscsi/badinput_rig.h"

namespace blockhaus::testing::badinput {
namespace {

using iscsi::testing::Cdb10;

std::vector<KeyValue> Names(const char* target, const char* initiator = kIni) {
  return {{"InitiatorName", initiator}, {"TargetName", target}};
}

std::vector<KeyValue> With(std::vector<KeyValue> a, const std::vector<KeyValue>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Security stage up to the target's challenge (AuthMethod=CHAP, CHAP_A=5);
// the challenge keys, or empty when the target refused.
std::vector<KeyValue> Challenge(RawClient& c, const char* target, const char* initiator = kIni) {
  auto a = SendLogin(c, {With(Names(target, initiator), {{"AuthMethod", "CHAP"}}), 0, 0, false});
  if (!a || iscsi::DecodeLoginResponse(a->bhs).status != 0) return {};
  auto b = SendLogin(c, {{{"CHAP_A", "5"}}, 0, 0, false});
  if (!b || iscsi::DecodeLoginResponse(b->bhs).status != 0) return {};
  std::vector<KeyValue> keys;
  (void)iscsi::ParseKeyValues(b->data, &keys);
  return keys;
}

// CHAP answer step (T=1 to operational) with `keys`; the login outcome.
std::string Answer(RawClient& c, const std::vector<KeyValue>& keys) {
  return LoginResult(c, SendLogin(c, {keys, 0, 1, true}));
}

// The target's CHAP with the right answer, plus `extra` keys.
std::string ChapWith(Rig& rig, const char* target, const char* user, const char* secret,
                     const std::vector<KeyValue>& extra) {
  RawClient c(rig.port());
  auto ch = Challenge(c, target);
  if (ch.empty()) return "no challenge";
  return Answer(
      c, With({{"CHAP_N", user}, {"CHAP_R", iscsi::testing::ChapAnswerHex(ch, secret)}}, extra));
}

// CHAP_R (or another answer) to kChap as kIni.
std::string ChapResponse(Rig& rig, const std::string& response) {
  RawClient c(rig.port());
  if (Challenge(c, kChap).empty()) return "no challenge";
  return Answer(c, {{"CHAP_N", kChapUser}, {"CHAP_R", response}});
}

std::string First(Rig& rig, const Bhs& bhs, std::vector<uint8_t> data = {}) {
  RawClient c(rig.port());
  c.Send(bhs, data);
  return LoginResult(c, c.Recv());
}

// --- D2-1: a non-login PDU first (SPDK #3927) ---

std::string D2_1_ScsiFirst(Rig& rig) {
  iscsi::ScsiCommandBhs s;
  s.itt = 7;
  s.read = true;
  s.edtl = 512;
  s.cdb = Cdb10(0x28, 0, 1);
  Bhs b;
  iscsi::EncodeScsiCommand(s, &b);
  return First(rig, b);
}

std::string D2_1_NopFirst(Rig& rig) {
  iscsi::NopOutBhs n;
  n.itt = 7;
  n.immediate = true;
  Bhs b;
  iscsi::EncodeNopOut(n, &b);
  return First(rig, b);
}

std::string D2_1_TextFirst(Rig& rig) {
  iscsi::TextRequestBhs t;
  t.itt = 7;
  Bhs b;
  iscsi::EncodeTextRequest(t, &b);
  std::vector<uint8_t> kv;
  iscsi::AppendKeyValue("SendTargets", "All", &kv);
  return First(rig, b, kv);
}

std::string D2_1_LogoutFirst(Rig& rig) {
  iscsi::LogoutRequestBhs l;
  l.itt = 7;
  l.immediate = true;
  Bhs b;
  iscsi::EncodeLogoutRequest(l, &b);
  return First(rig, b);
}

// --- D2-2/3: skipping authentication on a CHAP target ---

std::string D2_2_OperationalFirst(Rig& rig) {
  RawClient c(rig.port());
  return LoginResult(c, SendLogin(c, {Names(kChap), 1, 3, true}));
}

std::string D2_2_StraightToFfp(Rig& rig) {
  RawClient c(rig.port());
  return LoginResult(c, SendLogin(c, {Names(kChap), 0, 3, true}));
}

std::string D2_2_ChapThenOperational(Rig& rig) {
  RawClient c(rig.port());
  auto a = SendLogin(c, {With(Names(kChap), {{"AuthMethod", "CHAP"}}), 0, 1, true});
  if (!a) return "close";
  std::string s = iscsi::DecodeLoginResponse(a->bhs).transit ? "t1," : "t0,";
  return s + LoginResult(c, SendLogin(c, {{}, 1, 3, true}));
}

// While CHAP is in progress every T=1 is answered T=0; a wrong answer fails.
std::string D2_2_NeverFfpWithoutAnswer(Rig& rig) {
  RawClient c(rig.port());
  std::string s;
  auto a = SendLogin(c, {With(Names(kChap), {{"AuthMethod", "CHAP"}}), 0, 3, true});
  if (!a) return "close";
  s += iscsi::DecodeLoginResponse(a->bhs).transit ? "t1," : "t0,";
  auto b = SendLogin(c, {{{"CHAP_A", "5"}}, 0, 3, true});
  if (!b) return s + "close";
  s += iscsi::DecodeLoginResponse(b->bhs).transit ? "t1," : "t0,";
  return s +
         LoginResult(
             c,
             SendLogin(
                 c,
                 {{{"CHAP_N", kChapUser}, {"CHAP_R", "0x" + std::string(32, '0')}}, 0, 3, true}));
}

std::string AuthMethod(Rig& rig, const char* target, const char* method) {
  RawClient c(rig.port());
  return LoginResult(c, SendLogin(c, {With(Names(target), {{"AuthMethod", method}}), 0, 1, true}));
}
std::string D2_3_NoneOnChap(Rig& rig) { return AuthMethod(rig, kChap, "None"); }
std::string D2_3_FooOnChap(Rig& rig) { return AuthMethod(rig, kChap, "Foo"); }
std::string D2_3_FooOnPlain(Rig& rig) { return AuthMethod(rig, kPlain, "Foo"); }

// --- D2-4..8: names, ACL, version, TSIH ---

std::string D2_4_NoInitiatorName(Rig& rig) {
  RawClient c(rig.port());
  return LoginResult(c, SendLogin(c, {{{"TargetName", kPlain}, {"AuthMethod", "None"}}}));
}

std::string D2_4_NoTargetName(Rig& rig) {
  RawClient c(rig.port());
  return LoginResult(c, SendLogin(c, {{{"InitiatorName", kIni}, {"AuthMethod", "None"}}}));
}

// A name that is not an iSCSI name (RFC 7143 §4.2.7), to a target that
// admits any initiator: the syntax check, not the ACL, must refuse it.
std::string D2_4_MalformedInitiatorName(Rig& rig) {
  RawClient c(rig.port());
  return LoginResult(c, SendLogin(c, {With(Names(kPlain, "iqn.2026-11.test.badin:host name"),
                                           {{"AuthMethod", "None"}})}));
}

std::string D2_5_UnknownTarget(Rig& rig) {
  RawClient c(rig.port());
  return LoginResult(
      c,
      SendLogin(c, {With(Names("iqn.2026-11.io.blockhaus:tank.nope"), {{"AuthMethod", "None"}})}));
}

std::string D2_6_NotInAcl(Rig& rig) {
  RawClient c(rig.port());
  return LoginResult(c, SendLogin(c, {With(Names(kAcl), {{"AuthMethod", "CHAP"}})}));
}

// The ACL'd initiator name, without its secret.
std::string D2_6_SpoofedName(Rig& rig) {
  RawClient c(rig.port());
  auto ch = Challenge(c, kAcl, kAllowed);
  if (ch.empty()) return "no challenge";
  return Answer(c, {{"CHAP_N", kAllowedUser},
                    {"CHAP_R", iscsi::testing::ChapAnswerHex(ch, "guessed-secret-1")}});
}

std::string Version(Rig& rig, uint8_t min, uint8_t max) {
  RawClient c(rig.port());
  LoginReq r{With(Names(kPlain), {{"AuthMethod", "None"}})};
  r.version_min = min;
  r.version_max = max;
  return LoginResult(c, SendLogin(c, r));
}
std::string D2_7_Version1(Rig& rig) { return Version(rig, 1, 1); }
std::string D2_7_MinAboveMax(Rig& rig) { return Version(rig, 2, 0); }

std::string D2_8_UnknownTsih(Rig& rig) {
  RawClient c(rig.port());
  LoginReq r{With(Names(kPlain), {{"AuthMethod", "None"}})};
  r.tsih = 0x7777;
  return LoginResult(c, SendLogin(c, r));
}

// A second connection for a live session (MaxConnections is 1).
std::string D2_8_LiveTsih(Rig& rig) {
  auto live = FullFeature(rig);
  if (!live) return "no session";
  RawClient c(rig.port());
  LoginReq r{With(Names(kPlain), {{"AuthMethod", "None"}})};
  r.tsih = live->tsih;
  std::string s = LoginResult(c, SendLogin(c, r));
  return s + StillAlive(*live);
}

// --- D2-9..16: CHAP ---

// Sends `data` as one login request in C-bit pieces of at most 8192 bytes
// (the login MaxRecvDataSegmentLength); the answer to the last piece, or
// the first failure.
std::optional<Pdu> SendLoginSplit(RawClient& c, const LoginReq& r,
                                  const std::vector<uint8_t>& data) {
  for (size_t off = 0;; off += iscsi::kLoginMaxRecvDataSegment) {
    const size_t n = std::min<size_t>(iscsi::kLoginMaxRecvDataSegment, data.size() - off);
    const bool last = off + n == data.size();
    LoginReq piece = r;
    piece.raw_data = std::vector<uint8_t>(data.begin() + static_cast<ptrdiff_t>(off),
                                          data.begin() + static_cast<ptrdiff_t>(off + n));
    piece.cont = !last;
    piece.transit = last && r.transit;
    auto p = SendLogin(c, piece);
    if (last || !p || iscsi::DecodeLoginResponse(p->bhs).status != 0) return p;
  }
}

std::string ChapA(Rig& rig, const std::string& list) {
  RawClient c(rig.port());
  auto a = SendLogin(c, {With(Names(kChap), {{"AuthMethod", "CHAP"}}), 0, 0, false});
  if (!a) return "close";
  auto b = SendLoginSplit(c, {{}, 0, 0, false}, iscsi::EncodeKeyValues({{"CHAP_A", list}}));
  std::string s = LoginResult(c, b);
  if (b && s == "login 0000") {
    std::vector<KeyValue> keys;
    (void)iscsi::ParseKeyValues(b->data, &keys);
    const std::string* ch = iscsi::FindKey(keys, "CHAP_C");
    s += ch != nullptr && ch->size() == 2 + 2 * iscsi::kChapChallengeBytes ? " challenge" : " none";
  }
  return s;
}
std::string D2_9_UnsupportedAlgorithms(Rig& rig) { return ChapA(rig, "6,99"); }
std::string D2_9_EmptyAlgorithms(Rig& rig) { return ChapA(rig, ""); }
std::string D2_9_HugeList(Rig& rig) {
  std::string list;
  for (int i = 0; i < 10000; ++i) list += "6,";
  return ChapA(rig, list + "5");
}
std::string D2_9_LongListBounded(Rig& rig) {
  std::string list;
  for (int i = 0; i < 60; ++i) list += "1,";
  return ChapA(rig, list + "5");
}

std::string D2_10_OtherUser(Rig& rig) { return ChapWith(rig, kChap, "bob", kChapSecret, {}); }

std::string D2_10_UserTwice(Rig& rig) {
  RawClient c(rig.port());
  auto ch = Challenge(c, kChap);
  if (ch.empty()) return "no challenge";
  std::vector<uint8_t> data;
  iscsi::AppendKeyValue("CHAP_N", kChapUser, &data);
  iscsi::AppendKeyValue("CHAP_N", kChapUser, &data);
  iscsi::AppendKeyValue("CHAP_R", iscsi::testing::ChapAnswerHex(ch, kChapSecret), &data);
  LoginReq r{{}, 0, 1, true};
  r.raw_data = data;
  return LoginResult(c, SendLogin(c, r));
}

std::string D2_11_Hex31(Rig& rig) { return ChapResponse(rig, "0x" + std::string(31, 'a')); }
std::string D2_11_Hex33(Rig& rig) { return ChapResponse(rig, "0x" + std::string(33, 'a')); }
std::string D2_11_Hex34(Rig& rig) { return ChapResponse(rig, "0x" + std::string(34, 'a')); }
std::string D2_11_HexEmpty(Rig& rig) { return ChapResponse(rig, "0x"); }
std::string D2_11_Hex1000(Rig& rig) { return ChapResponse(rig, "0x" + std::string(1000, 'a')); }
std::string D2_11_BadHexChars(Rig& rig) { return ChapResponse(rig, "0x" + std::string(32, 'z')); }
std::string D2_12_Base64_127(Rig& rig) { return ChapResponse(rig, "0b" + std::string(127, 'A')); }
std::string D2_12_Base64_96Bytes(Rig& rig) {
  return ChapResponse(rig, "0b" + std::string(128, 'A'));
}
std::string D2_12_BadPadding(Rig& rig) { return ChapResponse(rig, "0bA==="); }
std::string D2_12_Base64Empty(Rig& rig) { return ChapResponse(rig, "0b"); }

std::string D2_13_ResponseBeforeChallenge(Rig& rig) {
  RawClient c(rig.port());
  auto a = SendLogin(c, {With(Names(kChap), {{"AuthMethod", "CHAP"}}), 0, 0, false});
  if (!a) return "close";
  return LoginResult(
      c, SendLogin(
             c, {{{"CHAP_N", kChapUser}, {"CHAP_R", "0x" + std::string(32, 'a')}}, 0, 0, false}));
}

std::string D2_13_ResponseAfterAuth(Rig& rig) {
  RawClient c(rig.port());
  auto ch = Challenge(c, kChap);
  if (ch.empty()) return "no challenge";
  const std::string good = iscsi::testing::ChapAnswerHex(ch, kChapSecret);
  auto d = SendLogin(c, {{{"CHAP_N", kChapUser}, {"CHAP_R", good}}, 0, 0, false});
  if (!d || iscsi::DecodeLoginResponse(d->bhs).status != 0) return "auth failed";
  return LoginResult(c, SendLogin(c, {{{"CHAP_N", kChapUser}, {"CHAP_R", good}}, 0, 1, true}));
}

// Mutual CHAP with the initiator's part right and the target's challenge
// (CHAP_I, CHAP_C) as given.
std::string Mutual(Rig& rig, const std::string& id, const std::string& challenge) {
  return ChapWith(rig, kMutual, kMutualUser, kMutualSecret,
                  {{"CHAP_I", id}, {"CHAP_C", challenge}});
}
const std::string kGoodChallenge = "0x" + std::string(32, '7');
std::string D2_14_Id256(Rig& rig) { return Mutual(rig, "256", kGoodChallenge); }
std::string D2_14_IdMinus1(Rig& rig) { return Mutual(rig, "-1", kGoodChallenge); }
std::string D2_14_IdHex100(Rig& rig) { return Mutual(rig, "0x100", kGoodChallenge); }
std::string D2_14_IdAbc(Rig& rig) { return Mutual(rig, "abc", kGoodChallenge); }
std::string D2_14_Challenge1025Base64(Rig& rig) {
  std::string b64 = "0b";  // 1025 bytes: 341 groups of 3 plus 2 more ("AAA=")
  for (int i = 0; i < 342; ++i) b64 += "AAAA";
  b64.replace(b64.size() - 1, 1, "=");
  return Mutual(rig, "1", b64);
}
std::string D2_14_Challenge1025Hex(Rig& rig) {
  return Mutual(rig, "1", "0x" + std::string(2050, '7'));
}
std::string D2_14_ChallengeEmpty(Rig& rig) { return Mutual(rig, "1", ""); }

// Control: mutual CHAP done right completes and the target proves itself.
std::string D2_14_ValidMutual(Rig& rig) {
  RawClient c(rig.port());
  auto ch = Challenge(c, kMutual);
  if (ch.empty()) return "no challenge";
  std::vector<uint8_t> mine(16);
  for (size_t i = 0; i < mine.size(); ++i) mine[i] = static_cast<uint8_t>(0x30 + i);
  auto d = SendLogin(c, {{{"CHAP_N", kMutualUser},
                          {"CHAP_R", iscsi::testing::ChapAnswerHex(ch, kMutualSecret)},
                          {"CHAP_I", "9"},
                          {"CHAP_C", iscsi::EncodeChapHex(mine)}},
                         0,
                         1,
                         true});
  std::string s = LoginResult(c, d);
  if (s != "login 0000") return s;
  std::vector<KeyValue> keys;
  (void)iscsi::ParseKeyValues(d->data, &keys);
  const std::string want =
      iscsi::EncodeChapHex(iscsi::ChapResponse(iscsi::ChapAlgorithm::kMd5, 9, kTargetSecret, mine));
  const std::string* r = iscsi::FindKey(keys, "CHAP_R");
  const std::string* n = iscsi::FindKey(keys, "CHAP_N");
  s += r != nullptr && *r == want && n != nullptr && *n == kTargetUser ? " target-proven"
                                                                       : " target-unproven";
  auto e = SendLogin(c, {{}, 1, 3, true});
  return s + (e && iscsi::DecodeLoginResponse(e->bhs).status == 0 ? ",ffp" : ",no-ffp");
}

std::string D2_15_Replay(Rig& rig) {
  std::string captured;
  {
    RawClient first(rig.port());
    if (first.LoginChap(kIni, kChap, kChapUser, kChapSecret, kIsid, &captured) != 0) {
      return "first login failed";
    }
  }
  return ChapResponse(rig, captured);
}

std::string D2_16_Reflection(Rig& rig) {
  RawClient c(rig.port());
  auto ch = Challenge(c, kMutual);
  if (ch.empty()) return "no challenge";
  return Answer(c, {{"CHAP_N", kMutualUser},
                    {"CHAP_R", iscsi::testing::ChapAnswerHex(ch, kMutualSecret)},
                    {"CHAP_I", *iscsi::FindKey(ch, "CHAP_I")},
                    {"CHAP_C", *iscsi::FindKey(ch, "CHAP_C")}});
}

// --- D2-17..20: malformed text, continuation, lengths, operational values ---

std::string RawText(Rig& rig, const std::vector<uint8_t>& data) {
  RawClient c(rig.port());
  LoginReq r;
  r.raw_data = data;
  return LoginResult(c, SendLogin(c, r));
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::string D2_17_LongKey(Rig& rig) {
  return RawText(rig, Bytes("InitiatorName=" + std::string(kIni) + '\0' + "X" +
                            std::string(63, 'k') + "=1" + '\0'));
}
std::string D2_17_LongValue(Rig& rig) {
  return RawText(rig, Bytes("InitiatorName=" + std::string(kIni) + '\0' +
                            "InitiatorAlias=" + std::string(256, 'v') + '\0'));
}
std::string D2_17_NoTrailingNul(Rig& rig) {
  return RawText(rig, Bytes("InitiatorName=" + std::string(kIni)));
}
std::string D2_17_NulInKey(Rig& rig) {
  return RawText(rig, Bytes(std::string("Initiator") + '\0' + "Name=" + kIni + '\0'));
}
std::string D2_17_NoEquals(Rig& rig) {
  return RawText(rig, Bytes(std::string("InitiatorName") + '\0'));
}
// Bytes that are not UTF-8 in a key nobody knows: NotUnderstood, login goes on.
std::string D2_17_InvalidUtf8(Rig& rig) {
  RawClient c(rig.port());
  auto p = SendLogin(c, {With(Names(kPlain), {{"AuthMethod", "None"}, {"XBad", "\xff\xfe\xc0"}})});
  std::string s = LoginResult(c, p);
  if (s != "login 0000") return s;
  std::vector<KeyValue> keys;
  (void)iscsi::ParseKeyValues(p->data, &keys);
  const std::string* v = iscsi::FindKey(keys, "XBad");
  return s + " XBad=" + (v != nullptr ? *v : "(missing)");
}

// C=1 continuation without end: answered until the text passes 64 KiB.
std::string D2_18_EndlessContinuation(Rig& rig) {
  RawClient c(rig.port());
  int continued = 0;
  for (int i = 0; i < 20; ++i) {
    LoginReq r;
    r.transit = false;
    r.cont = true;
    r.raw_data = std::vector<uint8_t>(8192, 'A');
    auto p = SendLogin(c, r);
    if (!p) return std::to_string(continued) + " continue,close";
    const iscsi::LoginResponseBhs lr = iscsi::DecodeLoginResponse(p->bhs);
    if (lr.status != 0) return std::to_string(continued) + " continue," + LoginResult(c, p);
    ++continued;
  }
  return "never ended";
}

// DataSegmentLength 16 MiB - 1 with 10 bytes behind it: closed at once,
// nothing allocated for the claim.
std::string D2_19_HugeLength(Rig& rig) {
  RawClient c(rig.port());
  iscsi::LoginRequestBhs l;
  l.data_segment_length = iscsi::kMaxDataSegmentLength;
  Bhs b;
  iscsi::EncodeLoginRequest(l, &b);
  iscsi::SetBhsDataSegmentLength(&b, iscsi::kMaxDataSegmentLength);
  std::vector<uint8_t> wire(b.begin(), b.end());
  wire.insert(wire.end(), 10, 'x');
  c.SendRaw(wire);
  const auto t0 = std::chrono::steady_clock::now();
  if (!c.Closed(3000)) return "open";
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  return ms < 1000 ? "close" : "close (late)";
}

// One login to kPlain with operational keys; the answers to `watch`.
std::string Operational(Rig& rig, const std::vector<KeyValue>& keys,
                        const std::vector<std::string>& watch) {
  RawClient c(rig.port());
  auto a = SendLogin(c, {With(Names(kPlain), {{"AuthMethod", "None"}}), 0, 1, true});
  if (!a || iscsi::DecodeLoginResponse(a->bhs).status != 0) return LoginResult(c, a);
  auto b = SendLogin(c, {keys, 1, 3, true});
  std::string s = LoginResult(c, b);
  if (s != "login 0000") return s;
  std::vector<KeyValue> reply;
  (void)iscsi::ParseKeyValues(b->data, &reply);
  for (const std::string& k : watch) {
    const std::string* v = iscsi::FindKey(reply, k);
    s += " " + k + "=" + (v != nullptr ? *v : "(missing)");
  }
  return s;
}
std::string D2_20_BadValues(Rig& rig) {
  return Operational(
      rig,
      {{"MaxRecvDataSegmentLength", "0"}, {"MaxConnections", "0"}, {"DefaultTime2Retain", "99999"}},
      {"MaxRecvDataSegmentLength", "MaxConnections", "DefaultTime2Retain"});
}
std::string D2_20_Mrdsl511(Rig& rig) {
  return Operational(rig, {{"MaxRecvDataSegmentLength", "511"}}, {"MaxRecvDataSegmentLength"});
}
std::string D2_20_Mrdsl2p24(Rig& rig) {
  return Operational(rig, {{"MaxRecvDataSegmentLength", "16777216"}}, {"MaxRecvDataSegmentLength"});
}
std::string D2_20_MrdslAbc(Rig& rig) {
  return Operational(rig, {{"MaxRecvDataSegmentLength", "abc"}}, {"MaxRecvDataSegmentLength"});
}

// FirstBurstLength proposed above a later, smaller MaxBurstLength: the
// initiator agreed to both, and MaxBurstLength bounds the unsolicited data
// (RFC 7143 §13.14). 16 KiB of immediate data is within it and must be
// accepted (32 KiB gets Reject 0x04, as in the D3 case below).
std::string D2_20_FirstBurstAboveMaxBurst(Rig& rig) {
  RawClient c(rig.port());
  const uint16_t st = c.Login(kIni, kPlain,
                              {{"FirstBurstLength", "65536"},
                               {"MaxBurstLength", "16384"},
                               {"ImmediateData", "Yes"},
                               {"InitialR2T", "Yes"}});
  if (st != 0) return "login failed";
  if (!ClearUnitAttention(c)) return "no TUR";
  c.Command(Cdb10(0x2a, 100, 32), 16384, false, true, std::vector<uint8_t>(16384, 0x5a));
  return NextOutcome(c);
}

// --- D2-21/22: SendTargets with a small MRDSL, reinstatement ---

std::string D2_21_SendTargets(Rig& rig) {
  RawClient c(rig.port());
  if (c.Login(kIni, "", {{"MaxRecvDataSegmentLength", "512"}}) != 0)
    return "discovery login failed";
  iscsi::TextRequestBhs t;
  t.itt = 99;
  t.cmdsn = c.cmdsn++;
  Bhs b;
  iscsi::EncodeTextRequest(t, &b);
  std::vector<uint8_t> kv;
  iscsi::AppendKeyValue("SendTargets", "All", &kv);
  c.Send(b, kv);
  std::vector<uint8_t> all;
  int pdus = 0;
  while (pdus < 100) {
    auto p = c.Recv();
    ++pdus;
    if (!p || iscsi::BhsOpcode(p->bhs) != 0x24) return "no Text Response";
    if (p->data.size() > 512) return "piece over MRDSL";
    all.insert(all.end(), p->data.begin(), p->data.end());
    const iscsi::TextResponseBhs r = iscsi::DecodeTextResponse(p->bhs);
    if (r.final) {
      if (r.ttt != iscsi::kReservedTag || r.cont) return "bad final piece";
      break;
    }
    if (!r.cont || r.ttt == iscsi::kReservedTag) return "bad continuation";
    iscsi::TextRequestBhs more;
    more.itt = 99;
    more.ttt = r.ttt;
    more.cmdsn = c.cmdsn++;
    iscsi::EncodeTextRequest(more, &b);
    c.Send(b);
  }
  std::vector<std::string> names;
  const std::string s(all.begin(), all.end());
  for (size_t pos = 0; (pos = s.find("TargetName=", pos)) != std::string::npos; ++pos) {
    names.push_back(s.substr(pos + 11, s.find('\0', pos) - pos - 11));
  }
  std::sort(names.begin(), names.end());
  const std::string address = "TargetAddress=127.0.0.1:" + std::to_string(rig.port()) + ",1";
  if (s.find(address) == std::string::npos) return "no TargetAddress";
  if (names != rig.visible_targets()) return "wrong targets (" + std::to_string(names.size()) + ")";
  return pdus >= 2 ? "split, exactly the visible targets"
                   : "not split (" + std::to_string(all.size()) + " bytes)";
}

std::string D2_22_Reinstatement(Rig& rig) {
  auto old = FullFeature(rig);
  if (!old) return "no session";
  RawClient fresh(rig.port());
  const uint16_t st = fresh.Login(kIni, kPlain);
  std::string s = "new " + std::to_string(st);
  s += old->Closed() ? ", old closed" : ", old open";
  return s + (ClearUnitAttention(fresh) ? ", new serves" : ", new dead");
}

// --- D3: full feature phase ---

// The answer to what was just sent, then whether the session still serves
// (in that order: the operands of + are not sequenced).
std::string OutcomeThenAlive(RawClient& c) {
  const std::string s = NextOutcome(c);
  return s + StillAlive(c);
}

std::string Ffp(Rig& rig, const Bhs& bhs, std::vector<uint8_t> data = {},
                std::vector<KeyValue> extra = {}) {
  auto c = FullFeature(rig, std::move(extra));
  if (!c) return "no session";
  c->Send(bhs, data);
  return OutcomeThenAlive(*c);
}

std::string D3_UnknownOpcode(Rig& rig) {
  Bhs b{};
  b[0] = 0x1e;
  return Ffp(rig, b);
}
std::string D3_TargetOpcode(Rig& rig) {
  Bhs b{};
  b[0] = 0x21;
  return Ffp(rig, b);
}
std::string D3_LoginInFfp(Rig& rig) {
  iscsi::LoginRequestBhs l;
  l.csg = 1;
  Bhs b;
  iscsi::EncodeLoginRequest(l, &b);
  return Ffp(rig, b);
}
std::string D3_Snack(Rig& rig) {
  Bhs b{};
  b[0] = 0x10;
  b[1] = 0x80;
  return Ffp(rig, b);
}

std::string D3_ReservedField(Rig& rig) {
  auto c = FullFeature(rig);
  if (!c) return "no session";
  iscsi::NopOutBhs n;
  n.immediate = true;
  n.itt = 0x77;
  n.cmdsn = c->cmdsn;
  Bhs b;
  iscsi::EncodeNopOut(n, &b);
  b[2] = 0xaa;  // reserved
  c->Send(b, {1, 2, 3, 4, 5});
  auto p = c->Recv();
  if (!p || iscsi::BhsOpcode(p->bhs) != 0x20) return "no NOP-In";
  const bool echo = p->data == std::vector<uint8_t>{1, 2, 3, 4, 5} && iscsi::BhsItt(p->bhs) == 0x77;
  return (echo ? "nop-in echo" : "nop-in wrong") + StillAlive(*c);
}

// A SCSI Command carrying one 4-byte AHS whose own AHSLength is `ahs_length`.
std::string Ahs(Rig& rig, uint16_t ahs_length) {
  auto c = FullFeature(rig);
  if (!c) return "no session";
  iscsi::ScsiCommandBhs s;
  s.itt = 0x55;
  s.cmdsn = c->cmdsn++;
  s.total_ahs_length = 1;
  Bhs b;
  iscsi::EncodeScsiCommand(s, &b);
  std::vector<uint8_t> wire(b.begin(), b.end());
  wire.insert(wire.end(), {static_cast<uint8_t>(ahs_length >> 8), static_cast<uint8_t>(ahs_length),
                           1, 0});
  c->SendRaw(wire);
  return OutcomeThenAlive(*c);
}
std::string D3_Ahs(Rig& rig) { return Ahs(rig, 2); }
// TotalAHSLength says 4 bytes, the AHS inside claims 65535: framing goes
// by TotalAHSLength, the AHS is refused unread.
std::string D3_AhsLengthInconsistent(Rig& rig) { return Ahs(rig, 0xffff); }

std::string D3_HeaderDigest(Rig& rig) {
  auto c = FullFeature(rig, {{"HeaderDigest", "CRC32C"}, {"DataDigest", "CRC32C"}});
  if (!c || !c->header_digest || !c->data_digest) return "digests not negotiated";
  iscsi::NopOutBhs n;
  n.immediate = true;
  n.itt = 1;
  Bhs b;
  iscsi::EncodeNopOut(n, &b);
  std::vector<uint8_t> wire;
  iscsi::AppendPdu(b, {}, true, true, &wire);
  wire[49] ^= 0xff;  // a header digest byte
  c->SendRaw(wire);
  return NextOutcome(*c);
}

std::string D3_DataDigest(Rig& rig) {
  auto c = FullFeature(rig, {{"HeaderDigest", "CRC32C"}, {"DataDigest", "CRC32C"}});
  if (!c || !c->data_digest) return "digests not negotiated";
  iscsi::NopOutBhs n;
  n.immediate = true;
  n.itt = 1;
  Bhs b;
  iscsi::EncodeNopOut(n, &b);
  std::vector<uint8_t> wire;
  iscsi::AppendPdu(b, std::vector<uint8_t>{9, 9, 9, 9}, true, true, &wire);
  wire[52] ^= 0xff;  // a data byte
  c->SendRaw(wire);
  const std::string s = NextOutcome(*c);
  return s + (c->Closed() ? "+close" : "+open");
}

std::string D3_DataOutUnknownTtt(Rig& rig) {
  iscsi::DataOutBhs d;
  d.itt = 0x999;
  d.ttt = 0x1234;
  d.final = true;
  Bhs b;
  iscsi::EncodeDataOut(d, &b);
  return Ffp(rig, b, std::vector<uint8_t>(512, 0),
             {{"InitialR2T", "Yes"}, {"ImmediateData", "No"}});
}

// A solicited write whose Data-Out breaks the rules: past EDTL, or a
// DataSN repeated.
std::string DataOutViolation(Rig& rig, bool repeat_datasn) {
  auto c = FullFeature(rig, {{"InitialR2T", "Yes"}, {"ImmediateData", "No"}});
  if (!c) return "no session";
  const uint32_t itt = c->Command(Cdb10(0x2a, 0, 2), 1024, false, true);
  auto r2t = c->Recv();
  if (!r2t || iscsi::BhsOpcode(r2t->bhs) != 0x31) return "no R2T";
  iscsi::DataOutBhs d;
  d.itt = itt;
  d.ttt = iscsi::DecodeR2t(r2t->bhs).ttt;
  d.buffer_offset = repeat_datasn ? 0 : 1024;
  Bhs b;
  iscsi::EncodeDataOut(d, &b);
  c->Send(b, std::vector<uint8_t>(512, 0xee));
  if (repeat_datasn) {
    d.buffer_offset = 512;  // the next offset, but DataSN 0 again
    d.final = true;
    iscsi::EncodeDataOut(d, &b);
    c->Send(b, std::vector<uint8_t>(512, 0xee));
  }
  return OutcomeThenAlive(*c);
}
std::string D3_DataOutBeyondEdtl(Rig& rig) { return DataOutViolation(rig, false); }
std::string D3_DataOutRepeatedDataSn(Rig& rig) { return DataOutViolation(rig, true); }

std::string Immediate(Rig& rig, std::vector<KeyValue> keys, uint32_t bytes) {
  auto c = FullFeature(rig, std::move(keys));
  if (!c) return "no session";
  c->Command(Cdb10(0x2a, 0, static_cast<uint16_t>(bytes / 512)), bytes, false, true,
             std::vector<uint8_t>(bytes, 1));
  return OutcomeThenAlive(*c);
}
std::string D3_ImmediateOverFirstBurst(Rig& rig) {
  return Immediate(rig, {{"FirstBurstLength", "4096"}, {"ImmediateData", "Yes"}}, 8192);
}
std::string D3_ImmediateNotNegotiated(Rig& rig) {
  return Immediate(rig, {{"ImmediateData", "No"}}, 512);
}

std::string Scsi(Rig& rig, const std::array<uint8_t, 16>& cdb, uint32_t edtl, bool read,
                 bool write = false) {
  auto c = FullFeature(rig);
  if (!c) return "no session";
  c->Command(cdb, edtl, read, write);
  return OutcomeThenAlive(*c);
}
std::string D3_LbaPastEnd(Rig& rig) {
  return Scsi(rig, Cdb10(0x28, static_cast<uint32_t>(kVolumeBlocks - 1), 2), 1024, true);
}
std::string D3_InvalidOpcode(Rig& rig) {
  std::array<uint8_t, 16> cdb{};
  cdb[0] = 0x02;
  return Scsi(rig, cdb, 0, false);
}
std::string D3_InvalidFieldInCdb(Rig& rig) {
  std::array<uint8_t, 16> cdb{0x12, 0x00, 0x83, 0x00, 0xff};  // page code without EVPD
  return Scsi(rig, cdb, 255, true);
}
std::string D3_Bidirectional(Rig& rig) { return Scsi(rig, Cdb10(0x28, 0, 1), 512, true, true); }

// READ with EDTL unlike the CDB: residual overflow and underflow.
std::string D3_Residuals(Rig& rig) {
  auto c = FullFeature(rig);
  if (!c) return "no session";
  std::string s;
  c->Command(Cdb10(0x28, 0, 4), 1024, true, false);
  auto p = c->Recv();
  if (!p || iscsi::BhsOpcode(p->bhs) != 0x25) return "no Data-In";
  iscsi::DataInBhs d = iscsi::DecodeDataIn(p->bhs);
  s += "data " + std::to_string(p->data.size()) + (d.overflow ? " overflow " : " ? ") +
       std::to_string(d.residual);
  c->Command(Cdb10(0x28, 0, 1), 4096, true, false);
  p = c->Recv();
  if (!p || iscsi::BhsOpcode(p->bhs) != 0x25) return s + ", no Data-In";
  d = iscsi::DecodeDataIn(p->bhs);
  s += ", data " + std::to_string(p->data.size()) + (d.underflow ? " underflow " : " ? ") +
       std::to_string(d.residual);
  return s + StillAlive(*c);
}

std::string D3_PingOverMrdsl(Rig& rig) {
  auto c = FullFeature(rig);
  if (!c) return "no session";
  iscsi::NopOutBhs n;
  n.immediate = true;
  n.itt = 3;
  Bhs b;
  iscsi::EncodeNopOut(n, &b);
  c->Send(b, std::vector<uint8_t>(iscsi::kOfferedMaxRecvDataSegment + 4, 0));
  const std::string s = NextOutcome(*c);
  return s + (c->Closed() ? "+close" : "+open");
}

std::string D3_LogoutUnknownCid(Rig& rig) {
  auto c = FullFeature(rig);
  if (!c) return "no session";
  iscsi::LogoutRequestBhs l;
  l.immediate = true;
  l.reason = 1;
  l.cid = 42;
  l.itt = 8;
  l.cmdsn = c->cmdsn;
  Bhs b;
  iscsi::EncodeLogoutRequest(l, &b);
  c->Send(b);
  auto p = c->Recv();
  if (!p || iscsi::BhsOpcode(p->bhs) != 0x26) return "no Logout Response";
  std::string s = "logout " + std::to_string(iscsi::DecodeLogoutResponse(p->bhs).response);
  l.reason = 0;
  iscsi::EncodeLogoutRequest(l, &b);
  c->Send(b);
  p = c->Recv();
  if (!p || iscsi::BhsOpcode(p->bhs) != 0x26) return s + ", no second response";
  s += ", then " + std::to_string(iscsi::DecodeLogoutResponse(p->bhs).response);
  return s + (c->Closed() ? "+close" : "+open");
}

// Session B names session A's task (a write waiting for its Data-Out):
// "task does not exist", and A's write still completes.
std::string D3_TmfOtherSession(Rig& rig) {
  auto a = FullFeature(rig, {{"InitialR2T", "Yes"}, {"ImmediateData", "No"}}, kIsid + 1);
  auto b = FullFeature(rig, {}, kIsid + 2);
  if (!a || !b) return "no sessions";
  const uint32_t itt = a->Command(Cdb10(0x2a, 200, 1), 512, false, true);
  auto r2t = a->Recv();
  if (!r2t || iscsi::BhsOpcode(r2t->bhs) != 0x31) return "no R2T";
  iscsi::TaskMgmtRequestBhs t;
  t.immediate = true;
  t.function = 1;
  t.rtt = itt;
  t.itt = 0x600;
  t.cmdsn = b->cmdsn;
  t.refcmdsn = b->cmdsn - 1;  // already received by B: no "not yet arrived" answer
  Bhs bhs;
  iscsi::EncodeTaskMgmtRequest(t, &bhs);
  b->Send(bhs);
  auto tmf = b->Recv();
  if (!tmf || iscsi::BhsOpcode(tmf->bhs) != 0x22) return "no TMF response";
  std::string s = "tmf " + std::to_string(iscsi::DecodeTaskMgmtResponse(tmf->bhs).response);
  iscsi::DataOutBhs d;
  d.itt = itt;
  d.ttt = iscsi::DecodeR2t(r2t->bhs).ttt;
  d.final = true;
  iscsi::EncodeDataOut(d, &bhs);
  a->Send(bhs, std::vector<uint8_t>(512, 0x3c));
  return s + ", write " + NextOutcome(*a);
}

// Operational keys cannot be renegotiated in a Text Request.
std::string D3_TextRenegotiation(Rig& rig) {
  auto c = FullFeature(rig);
  if (!c) return "no session";
  iscsi::TextRequestBhs t;
  t.itt = 0x31;
  t.cmdsn = c->cmdsn++;
  Bhs b;
  iscsi::EncodeTextRequest(t, &b);
  std::vector<uint8_t> kv;
  iscsi::AppendKeyValue("MaxBurstLength", "512", &kv);
  c->Send(b, kv);
  auto p = c->Recv();
  if (!p || iscsi::BhsOpcode(p->bhs) != 0x24) return "no Text Response";
  std::vector<KeyValue> keys;
  (void)iscsi::ParseKeyValues(p->data, &keys);
  const std::string* v = iscsi::FindKey(keys, "MaxBurstLength");
  return "MaxBurstLength=" + (v != nullptr ? *v : std::string("(missing)")) + StillAlive(*c);
}

}  // namespace

std::vector<Case> AllCases() {
  return {
      {"D2-1 SCSI Command first", "login 020b+close", D2_1_ScsiFirst},
      {"D2-1 NOP-Out first", "login 020b+close", D2_1_NopFirst},
      {"D2-1 Text first", "login 020b+close", D2_1_TextFirst},
      {"D2-1 Logout first", "login 020b+close", D2_1_LogoutFirst},
      {"D2-2 CHAP target, CSG=1 first", "login 0201+close", D2_2_OperationalFirst},
      {"D2-2 CHAP target, T=1 NSG=3 without AuthMethod", "login 0201+close", D2_2_StraightToFfp},
      {"D2-2 CHAP chosen, then CSG=1", "t0,login 0200+close", D2_2_ChapThenOperational},
      {"D2-2 CHAP in progress, T=1 NSG=3 each step", "t0,t0,login 0201+close",
       D2_2_NeverFfpWithoutAnswer},
      {"D2-3 AuthMethod=None on CHAP target", "login 0201+close", D2_3_NoneOnChap},
      {"D2-3 AuthMethod=Foo on CHAP target", "login 0201+close", D2_3_FooOnChap},
      {"D2-3 AuthMethod=Foo on plain target", "login 0201+close", D2_3_FooOnPlain},
      {"D2-4 InitiatorName missing", "login 0207+close", D2_4_NoInitiatorName},
      {"D2-4 TargetName missing", "login 0207+close", D2_4_NoTargetName},
      {"D2-4 InitiatorName not an iSCSI name, target open to any", "login 0200+close",
       D2_4_MalformedInitiatorName},
      {"D2-5 unknown TargetName", "login 0203+close", D2_5_UnknownTarget},
      {"D2-6 InitiatorName not in ACL", "login 0202+close", D2_6_NotInAcl},
      {"D2-6 ACL'd name spoofed without its secret", "login 0201+close", D2_6_SpoofedName},
      {"D2-7 Version-min/max 1", "login 0205+close", D2_7_Version1},
      {"D2-7 Version-min > Version-max", "login 0205+close", D2_7_MinAboveMax},
      {"D2-8 unknown TSIH", "login 020a+close", D2_8_UnknownTsih},
      {"D2-8 TSIH of a live session", "login 0206+close,alive", D2_8_LiveTsih},
      {"D2-9 CHAP_A=6,99", "login 0201+close", D2_9_UnsupportedAlgorithms},
      {"D2-9 CHAP_A empty", "login 0201+close", D2_9_EmptyAlgorithms},
      {"D2-9 CHAP_A with 10,001 entries (C-bit pieces)", "login 0200+close", D2_9_HugeList},
      {"D2-9 CHAP_A with 61 entries (bounded, works)", "login 0000 challenge",
       D2_9_LongListBounded},
      {"D2-10 CHAP_N of another user", "login 0201+close", D2_10_OtherUser},
      {"D2-10 CHAP_N twice", "login 0200+close", D2_10_UserTwice},
      {"D2-11 CHAP_R 31 hex digits", "login 0201+close", D2_11_Hex31},
      {"D2-11 CHAP_R 33 hex digits", "login 0201+close", D2_11_Hex33},
      {"D2-11 CHAP_R 34 hex digits", "login 0201+close", D2_11_Hex34},
      {"D2-11 CHAP_R 0x only", "login 0201+close", D2_11_HexEmpty},
      {"D2-11 CHAP_R 1000 hex digits", "login 0201+close", D2_11_Hex1000},
      {"D2-11 CHAP_R invalid hex", "login 0201+close", D2_11_BadHexChars},
      {"D2-12 CHAP_R base64 127 chars", "login 0201+close", D2_12_Base64_127},
      {"D2-12 CHAP_R base64 of 96 bytes", "login 0201+close", D2_12_Base64_96Bytes},
      {"D2-12 CHAP_R base64 bad padding", "login 0201+close", D2_12_BadPadding},
      {"D2-12 CHAP_R 0b only", "login 0201+close", D2_12_Base64Empty},
      {"D2-13 CHAP_R before CHAP_C", "login 0200+close", D2_13_ResponseBeforeChallenge},
      {"D2-13 CHAP_R again after authentication", "login 0200+close", D2_13_ResponseAfterAuth},
      {"D2-14 mutual CHAP_I=256", "login 0201+close", D2_14_Id256},
      {"D2-14 mutual CHAP_I=-1", "login 0201+close", D2_14_IdMinus1},
      {"D2-14 mutual CHAP_I=0x100", "login 0201+close", D2_14_IdHex100},
      {"D2-14 mutual CHAP_I=abc", "login 0201+close", D2_14_IdAbc},
      {"D2-14 mutual CHAP_C of 1025 bytes (base64)", "login 0201+close", D2_14_Challenge1025Base64},
      {"D2-14 mutual CHAP_C of 1025 bytes (hex, over the text limit)", "login 0200+close",
       D2_14_Challenge1025Hex},
      {"D2-14 mutual CHAP_C empty", "login 0201+close", D2_14_ChallengeEmpty},
      {"D2-14 control: valid mutual CHAP", "login 0000 target-proven,ffp", D2_14_ValidMutual},
      {"D2-15 replayed CHAP_R", "login 0201+close", D2_15_Replay},
      {"D2-16 reflected challenge", "login 0201+close", D2_16_Reflection},
      {"D2-17 key name of 64 bytes", "login 0200+close", D2_17_LongKey},
      {"D2-17 value of 256 bytes", "login 0200+close", D2_17_LongValue},
      {"D2-17 no trailing NUL", "login 0200+close", D2_17_NoTrailingNul},
      {"D2-17 NUL inside a key", "login 0200+close", D2_17_NulInKey},
      {"D2-17 key without '='", "login 0200+close", D2_17_NoEquals},
      {"D2-17 invalid UTF-8 in an unknown key", "login 0000 XBad=NotUnderstood", D2_17_InvalidUtf8},
      {"D2-18 endless C-bit continuation", "8 continue,login 0302+close",
       D2_18_EndlessContinuation},
      {"D2-19 DataSegmentLength 16 MiB-1, 10 bytes sent", "close", D2_19_HugeLength},
      {"D2-20 MRDSL=0, MaxConnections=0, DefaultTime2Retain=99999",
       "login 0000 MaxRecvDataSegmentLength=Reject MaxConnections=Reject DefaultTime2Retain=Reject",
       D2_20_BadValues},
      {"D2-20 MRDSL=511", "login 0000 MaxRecvDataSegmentLength=Reject", D2_20_Mrdsl511},
      {"D2-20 MRDSL=2^24", "login 0000 MaxRecvDataSegmentLength=Reject", D2_20_Mrdsl2p24},
      {"D2-20 MRDSL=abc", "login 0000 MaxRecvDataSegmentLength=Reject", D2_20_MrdslAbc},
      {"D2-20 FirstBurstLength > MaxBurstLength, immediate data within it", "scsi 00",
       D2_20_FirstBurstAboveMaxBurst},
      {"D2-21 SendTargets=All, MRDSL=512", "split, exactly the visible targets", D2_21_SendTargets},
      {"D2-22 reinstatement (same ISID, TSIH 0)", "new 0, old closed, new serves",
       D2_22_Reinstatement},
      {"D3 unknown opcode", "reject 05,alive", D3_UnknownOpcode},
      {"D3 target opcode (SCSI Response)", "reject 04,alive", D3_TargetOpcode},
      {"D3 Login Request in full feature phase", "reject 04,alive", D3_LoginInFfp},
      {"D3 SNACK at ERL 0", "reject 05,alive", D3_Snack},
      {"D3 reserved field set (NOP-Out)", "nop-in echo,alive", D3_ReservedField},
      {"D3 AHS on a SCSI command", "reject 05,alive", D3_Ahs},
      {"D3 AHSLength beyond TotalAHSLength", "reject 05,alive", D3_AhsLengthInconsistent},
      {"D3 header digest error", "close", D3_HeaderDigest},
      {"D3 data digest error", "reject 02+close", D3_DataDigest},
      {"D3 Data-Out with unknown TTT", "reject 09,alive", D3_DataOutUnknownTtt},
      {"D3 Data-Out beyond EDTL", "scsi 02 0b/4b/00,alive", D3_DataOutBeyondEdtl},
      {"D3 Data-Out with a repeated DataSN", "scsi 02 0b/4b/00,alive", D3_DataOutRepeatedDataSn},
      {"D3 immediate data beyond FirstBurstLength", "reject 04,alive", D3_ImmediateOverFirstBurst},
      {"D3 immediate data with ImmediateData=No", "reject 04,alive", D3_ImmediateNotNegotiated},
      {"D3 LBA + length past the end", "scsi 02 05/21/00,alive", D3_LbaPastEnd},
      {"D3 invalid operation code", "scsi 02 05/20/00,alive", D3_InvalidOpcode},
      {"D3 invalid field in CDB", "scsi 02 05/24/00,alive", D3_InvalidFieldInCdb},
      {"D3 bidirectional command", "scsi 02 05/24/00,alive", D3_Bidirectional},
      {"D3 transfer length != EDTL (residuals)",
       "data 1024 overflow 1024, data 512 underflow 3584,alive", D3_Residuals},
      {"D3 NOP-Out ping data over MRDSL", "reject 04+close", D3_PingOverMrdsl},
      {"D3 Logout for an unknown CID, then a good one", "logout 1, then 0+close",
       D3_LogoutUnknownCid},
      {"D3 TMF naming another session's task", "tmf 1, write scsi 00", D3_TmfOtherSession},
      {"D3 operational key in a Text Request", "MaxBurstLength=NotUnderstood,alive",
       D3_TextRenegotiation},
  };
}

}  // namespace blockhaus::testing::badinput
