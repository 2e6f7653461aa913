#include "export/iscsi/chap.h"

#include <doctest/doctest.h>

#include <set>

namespace blockhaus::iscsi {
namespace {

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("RFC 1994 MD5 CHAP known answer") {
  // MD5(0x01 || "secret" || 16 x 0x00), computed independently:
  // printf '\x01secret\0\0...' | md5sum
  std::vector<uint8_t> challenge(16, 0);
  const auto r = ChapResponse(ChapAlgorithm::kMd5, 1, "secret", challenge);
  CHECK(EncodeChapHex(r) == "0x7570c653cdf4755ccffcaa80f29268d1");
  CHECK(ChapResponse(ChapAlgorithm::kSha256, 1, "secret", challenge).size() == 32);
}

TEST_CASE("the one decoder: hex and base64, bounded, strict") {
  CHECK(DecodeChapBinary("0x0102ff", 16) == std::vector<uint8_t>{1, 2, 0xff});
  CHECK(DecodeChapBinary("0X0A", 16) == std::vector<uint8_t>{10});
  CHECK(DecodeChapBinary("0bAQL/", 16) == std::vector<uint8_t>{1, 2, 0xff});
  CHECK(DecodeChapBinary("0bAQ==", 16) == std::vector<uint8_t>{1});
  CHECK_FALSE(DecodeChapBinary("0x", 16));          // 0x only
  CHECK_FALSE(DecodeChapBinary("0b", 16));          // 0b only
  CHECK_FALSE(DecodeChapBinary("0x123", 16));       // odd nibble
  CHECK_FALSE(DecodeChapBinary("0xzz", 16));        // bad characters
  CHECK_FALSE(DecodeChapBinary("0bAQ=", 16));       // bad padding
  CHECK_FALSE(DecodeChapBinary("0bA===", 16));
  CHECK_FALSE(DecodeChapBinary("0b====", 16));
  CHECK_FALSE(DecodeChapBinary("1234", 16));        // decimal is not binary
  CHECK_FALSE(DecodeChapBinary("", 16));
  // Overlong: 17 bytes into a 16-byte bound, both encodings (CVE-2018-14633,
  // and the 2026 base64 overflow: 127 base64 characters).
  CHECK_FALSE(DecodeChapBinary("0x" + std::string(34, 'a'), 16));
  CHECK_FALSE(DecodeChapBinary("0b" + std::string(124, 'A'), 16));
  CHECK(DecodeChapBinary("0b" + std::string(124, 'A'), 93).has_value());
}

TEST_CASE("CHAP_I range") {
  CHECK(ParseChapIdentifier("0") == 0);
  CHECK(ParseChapIdentifier("255") == 255);
  CHECK_FALSE(ParseChapIdentifier("256"));
  CHECK_FALSE(ParseChapIdentifier("-1"));
  CHECK_FALSE(ParseChapIdentifier("0x100"));
  CHECK_FALSE(ParseChapIdentifier("abc"));
}

struct Exchange {
  ChapCredentials creds{"user", "secret-123456", "", ""};
  std::vector<KeyValue> reply;
  uint8_t id = 0;
  std::vector<uint8_t> challenge;
  int algorithm = 0;

  bool Start(ChapAuthenticator* a, const std::string& algs = "5") {
    reply.clear();
    if (!a->Challenge(algs, &reply)) return false;
    algorithm = std::stoi(*FindKey(reply, "CHAP_A"));
    id = static_cast<uint8_t>(std::stoi(*FindKey(reply, "CHAP_I")));
    challenge = *DecodeChapBinary(*FindKey(reply, "CHAP_C"), 1024);
    return true;
  }
  std::string Answer(const std::string& secret) {
    return EncodeChapHex(
        ChapResponse(static_cast<ChapAlgorithm>(algorithm), id, secret, challenge));
  }
};

TEST_CASE("CHAP exchange: good, wrong secret, wrong user, replay") {
  Exchange x;
  ChapAuthenticator a(x.creds);
  REQUIRE(x.Start(&a, "7,5"));
  CHECK(x.algorithm == 7);  // SHA-256 preferred
  CHECK(x.challenge.size() >= 16);
  std::vector<KeyValue> out;
  CHECK(a.Verify({{"CHAP_N", "user"}, {"CHAP_R", x.Answer("secret-123456")}}, &out));

  ChapAuthenticator b(x.creds);
  REQUIRE(x.Start(&b));
  CHECK(x.algorithm == 5);
  CHECK_FALSE(b.Verify({{"CHAP_N", "user"}, {"CHAP_R", x.Answer("wrong-secret")}}, &out));

  ChapAuthenticator c(x.creds);
  REQUIRE(x.Start(&c));
  const std::string good = x.Answer("secret-123456");
  CHECK_FALSE(c.Verify({{"CHAP_N", "other"}, {"CHAP_R", good}}, &out));
  // D2-15: the same answer on a fresh login fails (fresh challenge).
  ChapAuthenticator d(x.creds);
  REQUIRE(x.Start(&d));
  CHECK_FALSE(d.Verify({{"CHAP_N", "user"}, {"CHAP_R", good}}, &out));
}

TEST_CASE("D2-9: unsupported algorithms are refused") {
  Exchange x;
  ChapAuthenticator a(x.creds);
  std::vector<KeyValue> out;
  CHECK_FALSE(a.Challenge("6,8,99", &out));
  ChapAuthenticator b(x.creds);
  CHECK_FALSE(b.Challenge("", &out));
}

TEST_CASE("D2-11/12: wrong-length responses fail in both encodings") {
  Exchange x;
  for (std::string bad : {std::string("0x"), std::string("0x") + std::string(30, 'a'),
                          std::string("0x") + std::string(34, 'a'), std::string("0x") + std::string(1000, 'a'),
                          std::string("0b") + std::string(127, 'A'), std::string("0b")}) {
    ChapAuthenticator a(x.creds);
    REQUIRE(x.Start(&a));
    std::vector<KeyValue> out;
    CHECK_FALSE(a.Verify({{"CHAP_N", "user"}, {"CHAP_R", bad}}, &out));
  }
}

TEST_CASE("D2-16 and SR-A5: mutual CHAP, reflection and same secret") {
  Exchange x;
  x.creds.mutual_user = "target";
  x.creds.mutual_secret = "target-secret-1";
  std::vector<KeyValue> out;
  {
    ChapAuthenticator a(x.creds);
    REQUIRE(x.Start(&a));
    CHECK(a.Verify({{"CHAP_N", "user"}, {"CHAP_R", x.Answer("secret-123456")},
                    {"CHAP_I", "7"}, {"CHAP_C", "0x00112233445566778899aabbccddeeff"}},
                   &out));
    const std::vector<uint8_t> c = *DecodeChapBinary("0x00112233445566778899aabbccddeeff", 16);
    CHECK(*FindKey(out, "CHAP_R") ==
          EncodeChapHex(ChapResponse(ChapAlgorithm::kMd5, 7, "target-secret-1", c)));
  }
  {
    ChapAuthenticator a(x.creds);
    REQUIRE(x.Start(&a));
    // Reflection: our own challenge sent back.
    CHECK_FALSE(a.Verify({{"CHAP_N", "user"}, {"CHAP_R", x.Answer("secret-123456")},
                          {"CHAP_I", "7"}, {"CHAP_C", EncodeChapHex(x.challenge)}},
                         &out));
  }
  for (const char* id : {"256", "-1", "0x100", "abc"}) {  // D2-14
    ChapAuthenticator a(x.creds);
    REQUIRE(x.Start(&a));
    CHECK_FALSE(a.Verify({{"CHAP_N", "user"}, {"CHAP_R", x.Answer("secret-123456")},
                          {"CHAP_I", id}, {"CHAP_C", "0x0011"}},
                         &out));
  }
  {
    Exchange same;
    same.creds.mutual_user = "target";
    same.creds.mutual_secret = same.creds.secret;
    ChapAuthenticator a(same.creds);
    REQUIRE(same.Start(&a));
    CHECK_FALSE(a.Verify({{"CHAP_N", "user"}, {"CHAP_R", same.Answer("secret-123456")},
                          {"CHAP_I", "7"}, {"CHAP_C", "0x0011223344"}},
                         &out));
  }
}

TEST_CASE("SR-A4: challenges are fresh") {
  std::set<std::vector<uint8_t>> seen;
  Exchange x;
  for (int i = 0; i < 1000; ++i) {
    ChapAuthenticator a(x.creds);
    REQUIRE(x.Start(&a));
    CHECK(seen.insert(x.challenge).second);
  }
}

TEST_CASE("limiter backs off after five failures") {
  ChapLimiter::Options o;
  o.base = std::chrono::milliseconds(100);
  ChapLimiter l(o);
  for (int i = 0; i < 5; ++i) {
    CHECK(l.Delay("10.0.0.1", "iqn.a").count() == 0);
    l.RecordFailure("10.0.0.1", "iqn.a");
  }
  CHECK(l.Delay("10.0.0.1", "iqn.b").count() == 100);  // same source
  CHECK(l.Delay("10.0.0.2", "iqn.a").count() == 100);  // same initiator
  l.RecordFailure("10.0.0.1", "iqn.a");
  CHECK(l.Delay("10.0.0.1", "iqn.a").count() == 200);
  CHECK(l.Delay("10.0.0.9", "iqn.z").count() == 0);
  (void)Bytes;
}

}  // namespace blockhaus::iscsi
