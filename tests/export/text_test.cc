#include "export/iscsi/text.h"

#include <doctest/doctest.h>

#include <string>

namespace blockhaus::iscsi {
namespace {

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

std::string Negotiate(Negotiator* n, const std::string& key, const std::string& value) {
  std::vector<KeyValue> reply;
  if (!n->Negotiate({key, value}, &reply)) return "<dup>";
  return reply.at(0).value;
}

}  // namespace

TEST_CASE("key=value parsing") {
  std::vector<KeyValue> kv;
  CHECK(ParseKeyValues(Bytes(std::string("A=1\0B=two\0", 10)), &kv) == TextError::kOk);
  REQUIRE(kv.size() == 2);
  CHECK(kv[1].value == "two");
  CHECK(ParseKeyValues({}, &kv) == TextError::kOk);
  CHECK(kv.empty());
}

TEST_CASE("D2-17: bad keys and values are refused, bounded") {
  std::vector<KeyValue> kv;
  CHECK(ParseKeyValues(Bytes(std::string("A=1", 3)), &kv) == TextError::kMalformed);  // no NUL
  CHECK(ParseKeyValues(Bytes(std::string("NoEquals\0", 9)), &kv) == TextError::kMalformed);
  CHECK(ParseKeyValues(Bytes(std::string("=v\0", 3)), &kv) == TextError::kMalformed);
  CHECK(ParseKeyValues(Bytes(std::string("lower=v\0", 8)), &kv) == TextError::kMalformed);
  std::string long_key(64, 'K');
  CHECK(ParseKeyValues(Bytes(long_key + "=v" + std::string(1, '\0')), &kv) == TextError::kKeyTooLong);
  std::string ok_key(63, 'K');
  CHECK(ParseKeyValues(Bytes(ok_key + "=v" + std::string(1, '\0')), &kv) == TextError::kOk);
  std::string long_value(256, 'v');
  CHECK(ParseKeyValues(Bytes("A=" + long_value + std::string(1, '\0')), &kv) ==
        TextError::kValueTooLong);
  // CHAP binaries may be longer (1024 bytes in hex).
  std::string chap = "CHAP_C=0x" + std::string(2048, 'a') + std::string(1, '\0');
  CHECK(ParseKeyValues(Bytes(chap), &kv) == TextError::kOk);
  CHECK(ParseKeyValues(Bytes(std::string("A=1\0A=2\0", 8)), &kv) == TextError::kDuplicate);
  // Embedded NUL splits a pair: "A=x" then "y" (no '=').
  CHECK(ParseKeyValues(Bytes(std::string("A=x\0y\0", 6)), &kv) == TextError::kMalformed);
}

TEST_CASE("D2-18: continuation is capped at 64 KiB") {
  TextAccumulator acc;
  std::vector<uint8_t> piece(8192, 'x');
  int pieces = 0;
  while (acc.Append(piece)) ++pieces;
  CHECK(pieces == 8);
  CHECK(acc.text().size() == 65536);
}

TEST_CASE("numbers") {
  CHECK(ParseNumber("0") == 0u);
  CHECK(ParseNumber("262144") == 262144u);
  CHECK(ParseNumber("0x10") == 16u);
  CHECK(ParseNumber("18446744073709551615") == ~0ull);
  CHECK_FALSE(ParseNumber("18446744073709551616"));
  CHECK_FALSE(ParseNumber(""));
  CHECK_FALSE(ParseNumber("abc"));
  CHECK_FALSE(ParseNumber("-1"));
  CHECK_FALSE(ParseNumber("0x"));
}

TEST_CASE("negotiation: numeric ranges and result functions") {
  Negotiator n(SessionType::kNormal, Offers{});
  CHECK(Negotiate(&n, "MaxBurstLength", "16776192") == "1048576");
  CHECK(Negotiate(&n, "FirstBurstLength", "65536") == "65536");
  CHECK(Negotiate(&n, "MaxOutstandingR2T", "16") == "4");
  CHECK(Negotiate(&n, "DefaultTime2Wait", "0") == "2");
  CHECK(Negotiate(&n, "ErrorRecoveryLevel", "2") == "0");
  CHECK(Negotiate(&n, "MaxConnections", "8") == "1");
  CHECK(Negotiate(&n, "ImmediateData", "Yes") == "Yes");
  CHECK(Negotiate(&n, "InitialR2T", "No") == "No");
  CHECK(Negotiate(&n, "HeaderDigest", "CRC32C,None") == "CRC32C");
  CHECK(Negotiate(&n, "DataDigest", "None,CRC32C") == "None");
  CHECK(Negotiate(&n, "MaxRecvDataSegmentLength", "65536") == "262144");
  CHECK(Negotiate(&n, "X-com.example.Foo", "1") == "NotUnderstood");
  CHECK(Negotiate(&n, "MaxBurstLength", "512") == "<dup>");
  const SessionParams p = n.Finish();
  CHECK(p.max_burst_length == 1048576);
  CHECK(p.initiator_max_recv_data_segment == 65536);
  CHECK(p.target_max_recv_data_segment == 262144);
  CHECK(p.header_digest);
  CHECK_FALSE(p.data_digest);
  CHECK_FALSE(p.initial_r2t);
}

TEST_CASE("D2-20: out-of-range values are rejected and keep defaults") {
  for (const char* v : {"0", "511", "16777216", "abc", "", "99999999999999999999"}) {
    Negotiator n(SessionType::kNormal, Offers{});
    CHECK(Negotiate(&n, "MaxRecvDataSegmentLength", v) == "Reject");
    CHECK(n.Finish().initiator_max_recv_data_segment == 8192);
  }
  Negotiator n(SessionType::kNormal, Offers{});
  CHECK(Negotiate(&n, "MaxConnections", "0") == "Reject");
  CHECK(Negotiate(&n, "DefaultTime2Retain", "99999") == "Reject");
  CHECK(Negotiate(&n, "ImmediateData", "maybe") == "Reject");
  CHECK(Negotiate(&n, "HeaderDigest", "MD5") == "Reject");
}

TEST_CASE("FirstBurstLength: the answer is what is enforced") {
  // After MaxBurstLength: answered no larger than it.
  Negotiator m(SessionType::kNormal, Offers{});
  CHECK(Negotiate(&m, "MaxBurstLength", "4096") == "4096");
  CHECK(Negotiate(&m, "FirstBurstLength", "65536") == "4096");
  CHECK(m.Finish().first_burst_length == 4096);
  // Before it (the initiator proposes FirstBurstLength and then a smaller
  // MaxBurstLength): it agreed to both, and RFC 7143 §13.14 bounds
  // FirstBurstLength by MaxBurstLength.
  Negotiator f(SessionType::kNormal, Offers{});
  CHECK(Negotiate(&f, "FirstBurstLength", "65536") == "65536");
  CHECK(Negotiate(&f, "MaxBurstLength", "16384") == "16384");
  CHECK(f.Finish().first_burst_length == 16384);
  // Not negotiated: the default gives way to a smaller MaxBurstLength.
  Negotiator d(SessionType::kNormal, Offers{});
  CHECK(Negotiate(&d, "MaxBurstLength", "16384") == "16384");
  CHECK(d.Finish().first_burst_length == 16384);
  // Refused: as if not negotiated.
  Negotiator r(SessionType::kNormal, Offers{});
  CHECK(Negotiate(&r, "FirstBurstLength", "999999999") == "Reject");
  CHECK(Negotiate(&r, "MaxBurstLength", "8192") == "8192");
  CHECK(r.Finish().first_burst_length == 8192);
}

TEST_CASE("discovery sessions answer session-data keys Irrelevant") {
  Negotiator n(SessionType::kDiscovery, Offers{});
  CHECK(Negotiate(&n, "MaxBurstLength", "4096") == "Irrelevant");
  CHECK(Negotiate(&n, "InitialR2T", "No") == "Irrelevant");
  CHECK(Negotiate(&n, "HeaderDigest", "None") == "None");
  CHECK(Negotiate(&n, "OFMarkInt", "1-2") == "Irrelevant");
}

}  // namespace blockhaus::iscsi
