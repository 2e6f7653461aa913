#include "core/pool/label_format.h"

#include <doctest/doctest.h>

namespace blockhaus::core {
namespace {

PoolLabel Sample() {
  PoolLabel l;
  l.guid = 0x1122334455667788;
  l.create_time = 1700000000;
  l.data_size = 64 << 20;
  l.slab_size = 1 << 20;
  l.name = "tank";
  l.data_path = "/srv/tank.dat";
  return l;
}

TEST_CASE("label: round trip and golden header bytes") {
  auto enc = EncodeLabel(Sample());
  REQUIRE(enc.ok());
  REQUIRE(enc->size() == kLabelSize);
  CHECK(enc->substr(0, 8) == std::string("BHPOOL\0\1", 8));
  CHECK(enc->substr(8, 8) == std::string("\x01\x00\x00\x00\x0c\x00\x00\x00", 8));
  CHECK(enc->substr(16, 8) == std::string("\x88\x77\x66\x55\x44\x33\x22\x11", 8));
  CHECK(enc->substr(64, 4) == "tank");
  auto dec = DecodeLabel(*enc);
  REQUIRE(dec.ok());
  CHECK(*dec == Sample());
}

TEST_CASE("label: any flipped byte is caught") {
  std::string enc = *EncodeLabel(Sample());
  for (size_t pos : {0ul, 9ul, 20ul, 70ul, 400ul, 4000ul, 4093ul}) {
    std::string bad = enc;
    bad[pos] ^= 0x40;
    auto dec = DecodeLabel(bad);
    CHECK(!dec.ok());
    CHECK(dec.status().code() == Code::kCorruption);
  }
  CHECK(DecodeLabel(enc.substr(0, 100)).status().code() == Code::kCorruption);
}

TEST_CASE("label: names that do not fit are refused") {
  PoolLabel l = Sample();
  l.name = std::string(300, 'a');
  CHECK(EncodeLabel(l).status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace blockhaus::core
