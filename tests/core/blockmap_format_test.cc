#include "core/blockmap/blockmap_format.h"

#include <doctest/doctest.h>

namespace blockhaus::core {
namespace {

std::string Hex(std::string_view s) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

TEST_CASE("block key: golden bytes, newest version sorts first") {
  CHECK(Hex(EncodeBlockKey(1, 2, 3)) ==
        "0000000000000001" "0000000000000002" "fffffffffffffffc");
  CHECK(EncodeBlockKey(1, 2, 9) < EncodeBlockKey(1, 2, 3));
  CHECK(EncodeBlockKey(1, 2, 3) < EncodeBlockKey(1, 3, 9));
  BlockKey k = DecodeBlockKey(EncodeBlockKey(7, 8, 9));
  CHECK(k.lineage == 7);
  CHECK(k.blkno == 8);
  CHECK(k.birth == 9);
}

TEST_CASE("dead and birth keys: golden bytes and round trip") {
  CHECK(Hex(EncodeDeadKey(1, 5, 2, 3)) ==
        "0000000000000001" "0000000000000005" "0000000000000002" "0000000000000003");
  DeadKey d = DecodeDeadKey(EncodeDeadKey(1, 5, 2, 3));
  CHECK((d.lineage == 1 && d.death == 5 && d.blkno == 2 && d.birth == 3));
  CHECK(Hex(EncodeBirthKey(1, 4, 2)) ==
        "0000000000000001" "0000000000000004" "0000000000000002");
  BirthKey b = DecodeBirthKey(EncodeBirthKey(1, 4, 2));
  CHECK((b.lineage == 1 && b.birth == 4 && b.blkno == 2));
}

TEST_CASE("block pointer: golden bytes") {
  BlockPtr p;
  p.compression = {CompressionAlgo::kZstd, 3};
  p.checksum_type = ChecksumType::kCrc32c;
  p.lsize = 16384;
  p.psize = 5000;
  p.offset = 0x123456789a;
  p.checksum[0] = 0xaa;
  p.checksum[31] = 0xbb;
  std::string enc = EncodeBlockPtr(p);
  REQUIRE(enc.size() == kBlockPtrSize);
  CHECK(Hex(enc) ==
        "0100020302000000"  // version, flags, zstd, level 3, crc32c, reserved
        "0040000088130000"  // lsize 16384, psize 5000
        "9a78563412000000"  // offset
        "aa" "000000000000000000000000000000000000000000000000000000000000" "bb");
  auto dec = DecodeBlockPtr(enc);
  REQUIRE(dec.ok());
  CHECK(*dec == p);
}

TEST_CASE("block pointer: corrupt values are Corruption, not crashes") {
  BlockPtr p;
  p.lsize = 4096;
  p.psize = 4096;
  std::string enc = EncodeBlockPtr(p);
  CHECK(DecodeBlockPtr(enc.substr(1)).status().code() == Code::kCorruption);
  std::string bad = enc;
  bad[0] = 2;  // version
  CHECK(DecodeBlockPtr(bad).status().code() == Code::kCorruption);
  bad = enc;
  bad[1] = 4;  // unknown flag
  CHECK(DecodeBlockPtr(bad).status().code() == Code::kCorruption);
  bad = enc;
  bad[2] = 9;  // unknown compression
  CHECK(DecodeBlockPtr(bad).status().code() == Code::kCorruption);
  bad = enc;
  bad[4] = 77;  // unknown checksum
  CHECK(DecodeBlockPtr(bad).status().code() == Code::kCorruption);
  p.psize = 8192;  // larger than lsize
  CHECK(DecodeBlockPtr(EncodeBlockPtr(p)).status().code() == Code::kCorruption);
}

TEST_CASE("lineage record: golden bytes and round trip") {
  LineageInfo info{true, 3, 40, 50};
  std::string enc = EncodeLineage(info);
  CHECK(Hex(enc) ==
        "0101000000000000" "0300000000000000" "2800000000000000" "3200000000000000");
  auto dec = DecodeLineage(enc);
  REQUIRE(dec.ok());
  CHECK(*dec == info);
  CHECK(DecodeLineage(enc.substr(2)).status().code() == Code::kCorruption);
}

}  // namespace
}  // namespace blockhaus::core
