#include "core/checksum/checksum.h"

#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace blockhaus::core {
namespace {

ConstByteSpan Bytes(std::string_view s) {
  return ConstByteSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// A ChecksumValue from hex, zero-padded to 32 bytes.
ChecksumValue FromHex(std::string_view hex) {
  REQUIRE(hex.size() % 2 == 0);
  REQUIRE(hex.size() <= 64);
  ChecksumValue v{};
  auto nibble = [](char ch) -> uint8_t {
    return static_cast<uint8_t>(ch <= '9' ? ch - '0' : ch - 'a' + 10);
  };
  for (size_t i = 0; i < hex.size() / 2; ++i) {
    v[i] = static_cast<uint8_t>(nibble(hex[2 * i]) << 4 | nibble(hex[2 * i + 1]));
  }
  return v;
}

// Bit-at-a-time CRC-32C (reflected polynomial 0x82F63B78), the reference.
uint32_t SlowCrc32c(ConstByteSpan data) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint8_t b : data) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

TEST_CASE("crc32c golden values") {
  CHECK(Crc32c(Bytes("123456789")) == 0xE3069283u);
  CHECK(Crc32c(ConstByteSpan()) == 0u);
  CHECK(ComputeChecksum(ChecksumType::kCrc32c, Bytes("123456789")) ==
        FromHex("839206e3"));  // Little-endian, rest zero.
}

TEST_CASE("crc32c matches a bitwise reference on odd lengths") {
  std::vector<uint8_t> buf(70001);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<uint8_t>(i * 131 + (i >> 9));
  for (size_t len : {size_t{1}, size_t{7}, size_t{63}, size_t{4096}, size_t{70001}}) {
    CAPTURE(len);
    CHECK(Crc32c(ConstByteSpan(buf).first(len)) == SlowCrc32c(ConstByteSpan(buf).first(len)));
  }
}

TEST_CASE("sha256 golden values (FIPS 180-2)") {
  CHECK(ComputeChecksum(ChecksumType::kSha256, Bytes("abc")) ==
        FromHex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  CHECK(ComputeChecksum(ChecksumType::kSha256, ConstByteSpan()) ==
        FromHex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

TEST_CASE("xxh3-128 golden values (canonical order, as xxhsum -H2 prints)") {
  CHECK(ComputeChecksum(ChecksumType::kXxh3_128, ConstByteSpan()) ==
        FromHex("99aa06d3014798d86001c324468d497f"));
  CHECK(ComputeChecksum(ChecksumType::kXxh3_128, Bytes("123456789")) ==
        FromHex("33119477ede5dcd5e9716427681d5860"));
  CHECK(ComputeChecksum(ChecksumType::kXxh3_128, Bytes("abc")) ==
        FromHex("06b05ab6733a618578af5f94892f3950"));
}

TEST_CASE("every checksum notices a single flipped bit") {
  std::vector<uint8_t> data(4096, 0x3C);
  for (ChecksumType t : {ChecksumType::kXxh3_128, ChecksumType::kCrc32c,
                         ChecksumType::kSha256}) {
    CAPTURE(ChecksumTypeName(t));
    const ChecksumValue before = ComputeChecksum(t, data);
    data[2047] ^= 0x10;
    CHECK(ComputeChecksum(t, data) != before);
    data[2047] ^= 0x10;
    CHECK(ComputeChecksum(t, data) == before);
  }
}

TEST_CASE("checksum names, parsing and on-disk values") {
  CHECK(*ParseChecksumType("on") == ChecksumType::kXxh3_128);
  CHECK(*ParseChecksumType("xxh3") == ChecksumType::kXxh3_128);
  CHECK(*ParseChecksumType("crc32c") == ChecksumType::kCrc32c);
  CHECK(*ParseChecksumType("sha256") == ChecksumType::kSha256);
  for (const char* bad : {"", "off", "XXH3", "md5", "sha-256", "crc32"}) {
    CAPTURE(bad);
    CHECK(ParseChecksumType(bad).status().code() == Code::kInvalidArgument);
  }
  for (ChecksumType t : {ChecksumType::kXxh3_128, ChecksumType::kCrc32c,
                         ChecksumType::kSha256}) {
    CHECK(*ParseChecksumType(ChecksumTypeName(t)) == t);
  }
  CHECK(static_cast<int>(ChecksumType::kXxh3_128) == 1);
  CHECK(static_cast<int>(ChecksumType::kCrc32c) == 2);
  CHECK(static_cast<int>(ChecksumType::kSha256) == 3);
  CHECK(!IsValidChecksumType(0));
  CHECK(IsValidChecksumType(1));
  CHECK(IsValidChecksumType(3));
  CHECK(!IsValidChecksumType(4));
  CHECK(!IsValidChecksumType(255));
}

}  // namespace
}  // namespace blockhaus::core
