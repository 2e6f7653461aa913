// SBC-3 commands over the in-memory device: data paths, every sense path,
// FUA and SYNCHRONIZE CACHE, UNMAP, WRITE SAME, GET LBA STATUS, COMPARE
// AND WRITE, VERIFY, residual handling.

#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "export/scsi/scsi_spec.h"
#include "tests/export/scsi_rig.h"

namespace blockhaus::testing {
namespace {

using scsi::kStatusGood;

constexpr uint32_t kBlocks = (8 << 20) / 512;

TEST_CASE("scsi: WRITE/READ 6, 10, 12, 16 round trip") {
  ScsiRig rig;
  std::vector<uint8_t> a = Pattern(2 * 512, 1);
  CHECK(rig.Run(Cdb10(0x2a, 10, 2), a).status == kStatusGood);
  scsi::Response r = rig.Run(Cdb10(0x28, 10, 2));
  REQUIRE(r.status == kStatusGood);
  CHECK(r.data_in == a);
  CHECK(r.transfer_length == 1024);
  std::vector<uint8_t> b = Pattern(512, 2);
  CHECK(rig.Run(Cdb16(0x8a, 100, 1), b).status == kStatusGood);
  CHECK(rig.Run(Cdb16(0x88, 100, 1)).data_in == b);
  CHECK(rig.Run(Cdb12(0xaa, 200, 1), b).status == kStatusGood);
  CHECK(rig.Run(Cdb12(0xa8, 200, 1)).data_in == b);
  CHECK(rig.Run(Cdb6(0x0a, 300, 1), b).status == kStatusGood);
  CHECK(rig.Run(Cdb6(0x08, 300, 1)).data_in == b);
  // READ(6) with 0 blocks reads 256.
  CHECK(rig.Run(Cdb6(0x08, 0, 0)).data_in.size() == 256 * 512);
  // 0 blocks otherwise: nothing transferred, GOOD.
  scsi::Response z = rig.Run(Cdb10(0x28, 0, 0));
  CHECK(z.status == kStatusGood);
  CHECK(z.data_in.empty());
  CHECK(rig.dev->bytes()[10 * 512] == a[0]);
}

// What an event loop may run itself (Target::TryExecute): a READ whose data
// is in memory or a WRITE the device takes at once, on the fast path.
// Anything else is declined with no state touched, and the command then
// runs as usual.
TEST_CASE("scsi: TryExecute runs only reads and writes that need no wait") {
  ScsiRig rig;
  std::vector<uint8_t> a = Pattern(4 * 512, 3);
  CHECK(rig.Run(Cdb10(0x2a, 8, 4), a).status == kStatusGood);
  bool ran = false;
  scsi::Response r = rig.TryRun(rig.nexus, Cdb10(0x28, 8, 4), &ran);
  CHECK(ran);
  CHECK(r.status == kStatusGood);
  CHECK(r.data_in == a);
  r = rig.TryRun(rig.nexus, Cdb16(0x88, 8, 4), &ran);
  CHECK(ran);
  CHECK(r.data_in == a);
  // Out of range ends in CHECK CONDITION without touching the device.
  r = rig.TryRun(rig.nexus, Cdb10(0x28, kBlocks, 1), &ran);
  CHECK(ran);
  CHECK(SenseOf(r) == kLbaOutOfRange);
  // Not in memory: declined.
  rig.dev->cached = false;
  rig.TryRun(rig.nexus, Cdb10(0x28, 8, 4), &ran);
  CHECK_FALSE(ran);
  rig.dev->cached = true;
  // A write the device takes at once runs; one that would wait, or that
  // asks for FUA (a flush waits for a commit), is declined untouched.
  const std::vector<uint8_t> b = Pattern(4 * 512, 4);
  int writes = rig.dev->writes;
  r = rig.TryRun(rig.nexus, Cdb10(0x2a, 8, 4), &ran, b);
  CHECK(ran);
  CHECK(r.status == kStatusGood);
  CHECK(rig.dev->writes == writes + 1);
  CHECK(rig.Run(Cdb10(0x28, 8, 4)).data_in == b);
  r = rig.TryRun(rig.nexus, Cdb16(0x8a, 8, 4), &ran, a);
  CHECK(ran);
  CHECK(rig.Run(Cdb10(0x28, 8, 4)).data_in == a);
  writes = rig.dev->writes;
  const int flushes = rig.dev->flushes;
  rig.TryRun(rig.nexus, Cdb10(0x2a, 8, 4, /*FUA*/ 0x08), &ran, b);
  CHECK_FALSE(ran);
  rig.dev->write_ready = false;
  rig.TryRun(rig.nexus, Cdb10(0x2a, 8, 4), &ran, b);
  CHECK_FALSE(ran);
  rig.dev->write_ready = true;
  CHECK(rig.dev->writes == writes);
  CHECK(rig.dev->flushes == flushes);
  CHECK(rig.Run(Cdb10(0x28, 8, 4)).data_in == a);
  // Other commands and unmapped LUNs are declined and change nothing.
  rig.TryRun(rig.nexus, {0x00, 0, 0, 0, 0, 0}, &ran);  // TEST UNIT READY
  CHECK_FALSE(ran);
  rig.TryRun(rig.nexus, {0x12, 0, 0, 0, 96, 0}, &ran);  // INQUIRY
  CHECK_FALSE(ran);
  rig.TryRun(rig.nexus, Cdb10(0x28, 8, 4), &ran, {}, /*lun=*/5);
  CHECK_FALSE(ran);
  // A new nexus has a unit attention pending: declined, and the attention
  // is still there for the real command.
  scsi::Nexus other = MakeNexus(2, "iqn.2026-01.test:host2");
  rig.TryRun(other, Cdb10(0x28, 8, 4), &ran);
  CHECK_FALSE(ran);
  CHECK(SenseOf(rig.Run(other, Cdb10(0x28, 8, 4))).key == 0x06);
}

TEST_CASE("scsi: LBA out of range and overflow") {
  ScsiRig rig;
  CHECK(SenseOf(rig.Run(Cdb10(0x28, kBlocks, 1))) == kLbaOutOfRange);
  CHECK(SenseOf(rig.Run(Cdb10(0x28, kBlocks - 1, 2))) == kLbaOutOfRange);
  CHECK(rig.Run(Cdb10(0x28, kBlocks - 1, 1)).status == kStatusGood);
  CHECK(rig.Run(Cdb10(0x28, kBlocks, 0)).status == kStatusGood);
  CHECK(SenseOf(rig.Run(Cdb10(0x28, kBlocks + 1, 0))) == kLbaOutOfRange);
  CHECK(SenseOf(rig.Run(Cdb16(0x88, ~uint64_t{0}, 1))) == kLbaOutOfRange);        // wraps
  CHECK(SenseOf(rig.Run(Cdb16(0x88, ~uint64_t{0} - 1, 4))) == kLbaOutOfRange);
  CHECK(SenseOf(rig.Run(Cdb16(0x8a, ~uint64_t{0}, 1), Pattern(512, 0))) == kLbaOutOfRange);
  CHECK(SenseOf(rig.Run(Cdb12(0xa8, 0, 0xffffffff))) == kLbaOutOfRange);
  // Over the maximum transfer length (but in range) is an invalid field.
  ScsiRig big(16 << 20);
  CHECK(SenseOf(big.Run(Cdb16(0x88, 0, (8u << 20) / 512 + 1))) == kInvalidField);
  CHECK(big.Run(Cdb16(0x88, 0, (8u << 20) / 512)).status == kStatusGood);
}

TEST_CASE("scsi: protection fields are refused") {
  ScsiRig rig;
  CHECK(SenseOf(rig.Run(Cdb10(0x28, 0, 1, 0x20))) == kInvalidField);
  CHECK(SenseOf(rig.Run(Cdb16(0x8a, 0, 1, 0x40), Pattern(512, 0))) == kInvalidField);
  CHECK(SenseOf(rig.Run(Cdb10(0x2f, 0, 1, 0x20))) == kInvalidField);
  // DPO, FUA, FUA_NV are accepted.
  CHECK(rig.Run(Cdb10(0x28, 0, 1, 0x1a)).status == kStatusGood);
}

TEST_CASE("scsi: a read-only unit is write protected") {
  ScsiRig rig(8 << 20, 512, true);
  std::vector<uint8_t> b = Pattern(512, 3);
  CHECK(SenseOf(rig.Run(Cdb10(0x2a, 0, 1), b)) == kWriteProtected);   // fast path
  CHECK(SenseOf(rig.Run(Cdb12(0xaa, 0, 1), b)) == kWriteProtected);
  CHECK(SenseOf(rig.Run(Cdb10(0x41, 0, 1), b)) == kWriteProtected);
  CHECK(SenseOf(rig.Run({0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, std::vector<uint8_t>(24, 0))) ==
        kWriteProtected);
  CHECK(rig.Run(Cdb10(0x28, 0, 1)).status == kStatusGood);
  CHECK(rig.dev->writes == 0);
}

TEST_CASE("scsi: device errors map through StatusToSense") {
  ScsiRig rig;
  rig.dev->fail_writes = BH_ERROR(kResourceExhausted, "pool full");
  CHECK(SenseOf(rig.Run(Cdb10(0x2a, 0, 1), Pattern(512, 4))) == kSpaceAllocationFailed);
  CHECK(SenseOf(rig.Run(Cdb10(0x41, 0, 4), Pattern(512, 4))) == kSpaceAllocationFailed);
  rig.dev->fail_writes = BH_ERROR(kIOError, "disk");
  CHECK(SenseOf(rig.Run(Cdb10(0x2a, 0, 1), Pattern(512, 4))) == SenseTriple{0x03, 0x0c, 0x00});
  rig.dev->fail_writes = Status::Ok();
  rig.dev->fail_flush = BH_ERROR(kUnavailable, "suspended");
  CHECK(SenseOf(rig.Run(Cdb10(0x35, 0, 0))) == SenseTriple{0x02, 0x04, 0x00});
}

TEST_CASE("scsi: StatusToSense covers every code") {
  using scsi::StatusToSense;
  CHECK(StatusToSense(BH_ERROR(kInvalidArgument, "x"), false).asc == 0x21);
  CHECK(StatusToSense(BH_ERROR(kPermissionDenied, "x"), true).asc == 0x27);
  CHECK(StatusToSense(BH_ERROR(kResourceExhausted, "x"), true).ascq == 0x07);
  CHECK(StatusToSense(BH_ERROR(kCorruption, "x"), false).key == scsi::SenseKey::kMediumError);
  CHECK(StatusToSense(BH_ERROR(kIOError, "x"), false).asc == 0x11);
  CHECK(StatusToSense(BH_ERROR(kAborted, "x"), false).key == scsi::SenseKey::kAbortedCommand);
  CHECK(StatusToSense(BH_ERROR(kNotSupported, "x"), false).asc == 0x24);
  CHECK(StatusToSense(BH_ERROR(kInternal, "x"), false).asc == 0x44);
  CHECK(StatusToSense(BH_ERROR(kNotFound, "x"), false).asc == 0x44);
  CHECK(StatusToSense(Status::Ok(), false).key == scsi::SenseKey::kNoSense);
}

TEST_CASE("scsi: FUA and SYNCHRONIZE CACHE flush; plain writes do not") {
  ScsiRig rig;
  std::vector<uint8_t> b = Pattern(512, 5);
  CHECK(rig.Run(Cdb10(0x2a, 0, 1), b).status == kStatusGood);
  CHECK(rig.dev->flushes == 0);
  CHECK(rig.Run(Cdb10(0x2a, 0, 1, 0x08), b).status == kStatusGood);   // FUA
  CHECK(rig.dev->flushes == 1);
  CHECK(rig.Run(Cdb16(0x8a, 0, 1, 0x02), b).status == kStatusGood);   // FUA_NV
  CHECK(rig.dev->flushes == 2);
  CHECK(rig.Run(Cdb10(0x35, 0, 0)).status == kStatusGood);
  CHECK(rig.Run(Cdb16(0x91, 0, 8)).status == kStatusGood);
  CHECK(rig.dev->flushes == 4);
  CHECK(SenseOf(rig.Run(Cdb10(0x35, kBlocks, 1))) == kLbaOutOfRange);
  CHECK(rig.Run(Cdb10(0x2e, 0, 1), b).status == kStatusGood);   // WRITE AND VERIFY
  CHECK(rig.dev->flushes == 5);
}

TEST_CASE("scsi: PRE-FETCH answers CONDITION MET") {
  ScsiRig rig;
  CHECK(rig.Run(Cdb10(0x34, 0, 8)).status == scsi::kStatusConditionMet);
  CHECK(rig.Run(Cdb16(0x90, 0, 8)).status == scsi::kStatusConditionMet);
  CHECK(SenseOf(rig.Run(Cdb16(0x90, kBlocks, 1))) == kLbaOutOfRange);
}

TEST_CASE("scsi: data-out shorter than the transfer length writes whole blocks received") {
  ScsiRig rig;
  std::vector<uint8_t> a(1024, 'a');
  CHECK(rig.Run(Cdb10(0x2a, 0, 2), a).status == kStatusGood);
  // Two blocks asked, one block (and a half) sent: only the first is written.
  std::vector<uint8_t> b(768, 'b');
  scsi::Response r = rig.Run(Cdb10(0x2a, 0, 2), b);
  CHECK(r.status == kStatusGood);
  CHECK(r.transfer_length == 1024);
  std::vector<uint8_t> back = Bytes(rig.Run(Cdb10(0x28, 0, 2)).data_in);
  CHECK(back[0] == 'b');
  CHECK(back[511] == 'b');
  CHECK(back[512] == 'a');
  // More data than asked: only the transfer length is written.
  CHECK(rig.Run(Cdb10(0x2a, 0, 1), std::vector<uint8_t>(1024, 'c')).status == kStatusGood);
  back = Bytes(rig.Run(Cdb10(0x28, 0, 2)).data_in);
  CHECK(back[0] == 'c');
  CHECK(back[512] == 'a');
  // None at all.
  CHECK(rig.Run(Cdb10(0x2a, 0, 1)).status == kStatusGood);
}

std::vector<uint8_t> UnmapList(std::initializer_list<std::pair<uint64_t, uint32_t>> ranges) {
  std::vector<uint8_t> d(8 + 16 * ranges.size(), 0);
  scsi::EncodeBE16(&d[0], static_cast<uint16_t>(d.size() - 2));
  scsi::EncodeBE16(&d[2], static_cast<uint16_t>(16 * ranges.size()));
  size_t off = 8;
  for (auto [lba, n] : ranges) {
    EncodeBE64(&d[off], lba);
    EncodeBE32(&d[off + 8], n);
    off += 16;
  }
  return d;
}

scsi::Response Unmap(ScsiRig& rig, const std::vector<uint8_t>& list, uint16_t plen) {
  return rig.Run({0x42, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(plen >> 8),
                  static_cast<uint8_t>(plen), 0},
                 list);
}

TEST_CASE("scsi: UNMAP zeroes ranges and checks every descriptor first") {
  ScsiRig rig;
  std::vector<uint8_t> a(64 * 512, 'a');
  REQUIRE(rig.Run(Cdb10(0x2a, 0, 64), a).status == kStatusGood);
  auto list = UnmapList({{0, 8}, {32, 4}});
  CHECK(Unmap(rig, list, static_cast<uint16_t>(list.size())).status == kStatusGood);
  std::vector<uint8_t> back = Bytes(rig.Run(Cdb10(0x28, 0, 64)).data_in);
  CHECK(back[0] == 0);
  CHECK(back[8 * 512 - 1] == 0);
  CHECK(back[8 * 512] == 'a');
  CHECK(back[32 * 512] == 0);
  CHECK(back[36 * 512] == 'a');
  // One bad descriptor: nothing is unmapped.
  auto bad = UnmapList({{40, 4}, {kBlocks - 1, 2}});
  CHECK(SenseOf(Unmap(rig, bad, static_cast<uint16_t>(bad.size()))) == kLbaOutOfRange);
  CHECK(rig.dev->bytes()[40 * 512] == 'a');
  auto wrap = UnmapList({{~uint64_t{0}, 2}});
  CHECK(SenseOf(Unmap(rig, wrap, static_cast<uint16_t>(wrap.size()))) == kLbaOutOfRange);
  // Parameter list checks.
  CHECK(Unmap(rig, {}, 0).status == kStatusGood);
  CHECK(SenseOf(Unmap(rig, std::vector<uint8_t>(4, 0), 4)) == kParameterLength);
  CHECK(SenseOf(Unmap(rig, list, 200)) == kParameterLength);   // less data than the length says
  CHECK(SenseOf(rig.Run({0x42, 1, 0, 0, 0, 0, 0, 0, 24, 0}, UnmapList({{0, 1}}))) == kInvalidField);
  // A descriptor length larger than the list: only whole descriptors present count.
  auto lying = UnmapList({{48, 1}});
  scsi::EncodeBE16(&lying[2], 0xfff0);
  CHECK(Unmap(rig, lying, static_cast<uint16_t>(lying.size())).status == kStatusGood);
  CHECK(rig.dev->bytes()[48 * 512] == 0);
  // Too many descriptors, too many blocks.
  std::vector<uint8_t> many(8 + 16 * 257, 0);
  scsi::EncodeBE16(&many[2], 16 * 257);
  CHECK(SenseOf(Unmap(rig, many, static_cast<uint16_t>(many.size()))) == kInvalidParameter);
  // 256 descriptors of 4097 LBAs, each in range, 1 Mi + 256 LBAs in all.
  std::vector<uint8_t> lots(8 + 16 * 256, 0);
  scsi::EncodeBE16(&lots[2], 16 * 256);
  for (size_t i = 0; i < 256; ++i) EncodeBE32(&lots[8 + 16 * i + 8], 4097);
  CHECK(SenseOf(Unmap(rig, lots, static_cast<uint16_t>(lots.size()))) == kInvalidParameter);
  CHECK(rig.dev->bytes()[36 * 512] == 'a');
}

scsi::Response WriteSame10(ScsiRig& rig, uint32_t lba, uint16_t n, uint8_t flags,
                           std::vector<uint8_t> block) {
  return rig.Run(Cdb10(0x41, lba, n, flags), std::move(block));
}

TEST_CASE("scsi: WRITE SAME writes a pattern, unmaps zeros, refuses 0 blocks and ANCHOR") {
  ScsiRig rig;
  std::vector<uint8_t> x(512, 'x');
  CHECK(WriteSame10(rig, 10, 5, 0, x).status == kStatusGood);
  std::vector<uint8_t> back = Bytes(rig.Run(Cdb10(0x28, 10, 5)).data_in);
  CHECK(back == std::vector<uint8_t>(5 * 512, 'x'));
  int unmaps = rig.dev->unmaps;
  CHECK(WriteSame10(rig, 10, 5, 0x08, std::vector<uint8_t>(512, 0)).status == kStatusGood);
  CHECK(rig.dev->unmaps == unmaps + 1);
  CHECK(rig.Run(Cdb10(0x28, 10, 5)).data_in == std::vector<uint8_t>(5 * 512, 0));
  // UNMAP bit with non-zero data still unmaps: the LBAs read as zeros.
  CHECK(WriteSame10(rig, 10, 2, 0, x).status == kStatusGood);
  CHECK(WriteSame10(rig, 10, 2, 0x08, x).status == kStatusGood);
  CHECK(rig.Run(Cdb10(0x28, 10, 2)).data_in == std::vector<uint8_t>(2 * 512, 0));
  CHECK(WriteSame10(rig, 10, 1, 0, x).status == kStatusGood);
  CHECK(rig.Run(Cdb10(0x28, 10, 1)).data_in == x);
  // WRITE SAME(16) NDOB: zeros, no data-out.
  scsi::Response ndob = rig.Run(Cdb16(0x93, 10, 2, 0x09));
  CHECK(ndob.status == kStatusGood);
  CHECK(ndob.transfer_length == 0);
  CHECK(rig.Run(Cdb10(0x28, 10, 1)).data_in == std::vector<uint8_t>(512, 0));
  CHECK(SenseOf(WriteSame10(rig, 0, 0, 0, x)) == kInvalidField);            // WSNZ
  CHECK(SenseOf(WriteSame10(rig, kBlocks + 1, 0, 0, x)) == kLbaOutOfRange);  // range first
  CHECK(SenseOf(WriteSame10(rig, 0, 1, 0x10, x)) == kInvalidField);         // ANCHOR
  CHECK(SenseOf(WriteSame10(rig, kBlocks - 1, 2, 0, x)) == kLbaOutOfRange);
  CHECK(SenseOf(WriteSame10(rig, 0, 1, 0, {1, 2, 3})) == kInvalidField);    // short data
  ScsiRig big(40 << 20);
  CHECK(SenseOf(big.Run(Cdb16(0x93, 0, 16385), x)) == kInvalidField);     // over the maximum
  CHECK(big.Run(Cdb16(0x93, 0, 16384), x).status == kStatusGood);
}

struct LbaStatus {
  uint64_t lba;
  uint32_t count;
  uint8_t status;
};

std::vector<LbaStatus> GetLbaStatus(ScsiRig& rig, uint64_t lba, uint32_t alloc = 4096) {
  std::vector<uint8_t> cdb(16, 0);
  cdb[0] = 0x9e;
  cdb[1] = 0x12;
  EncodeBE64(&cdb[2], lba);
  EncodeBE32(&cdb[10], alloc);
  scsi::Response r = rig.Run(cdb);
  REQUIRE(r.status == kStatusGood);
  REQUIRE(r.data_in.size() >= 8);
  CHECK(DecodeBE32(&r.data_in[0]) + 4 >= r.data_in.size());
  std::vector<LbaStatus> out;
  for (size_t off = 8; off + 16 <= r.data_in.size(); off += 16) {
    out.push_back({DecodeBE64(&r.data_in[off]), DecodeBE32(&r.data_in[off + 8]),
                   static_cast<uint8_t>(r.data_in[off + 12] & 0x0f)});
  }
  return out;
}

TEST_CASE("scsi: GET LBA STATUS reports mapped and deallocated runs") {
  ScsiRig rig(1 << 20, 512, false, 4096);   // 8 LBAs per device block
  REQUIRE(rig.Run(Cdb10(0x2a, 16, 16), std::vector<uint8_t>(16 * 512, 'm')).status == kStatusGood);
  std::vector<LbaStatus> s = GetLbaStatus(rig, 0);
  REQUIRE(s.size() == 3);
  CHECK(s[0].lba == 0);
  CHECK(s[0].count == 16);
  CHECK(s[0].status == 1);
  CHECK(s[1].lba == 16);
  CHECK(s[1].count == 16);
  CHECK(s[1].status == 0);
  CHECK(s[2].lba == 32);
  CHECK(s[2].status == 1);
  CHECK(s[2].lba + s[2].count == 2048);
  // Starting inside a run.
  s = GetLbaStatus(rig, 20);
  REQUIRE(!s.empty());
  CHECK(s[0].lba == 20);
  CHECK(s[0].count == 12);
  CHECK(s[0].status == 0);
  // A 24-byte allocation gets exactly one descriptor.
  CHECK(GetLbaStatus(rig, 0, 24).size() == 1);
  std::vector<uint8_t> cdb(16, 0);
  cdb[0] = 0x9e;
  cdb[1] = 0x12;
  EncodeBE64(&cdb[2], 2048);
  cdb[13] = 24;
  CHECK(SenseOf(rig.Run(cdb)) == kLbaOutOfRange);
}

std::vector<uint8_t> CawCdb(uint64_t lba, uint8_t n, uint8_t flags = 0) {
  std::vector<uint8_t> c(16, 0);
  c[0] = 0x89;
  c[1] = flags;
  EncodeBE64(&c[2], lba);
  c[13] = n;
  return c;
}

TEST_CASE("scsi: COMPARE AND WRITE writes on match, reports the miscompare offset otherwise") {
  ScsiRig rig;
  std::vector<uint8_t> old_data = Pattern(2 * 512, 9);
  REQUIRE(rig.Run(Cdb10(0x2a, 4, 2), old_data).status == kStatusGood);
  std::vector<uint8_t> new_data = Pattern(2 * 512, 77);
  std::vector<uint8_t> out = old_data;
  out.insert(out.end(), new_data.begin(), new_data.end());
  scsi::Response ok = rig.Run(CawCdb(4, 2, 0x08), out);
  CHECK(ok.status == kStatusGood);
  CHECK(ok.transfer_length == 2048);
  CHECK(rig.dev->flushes == 1);   // FUA
  CHECK(rig.Run(Cdb10(0x28, 4, 2)).data_in == new_data);
  // The medium now holds new_data: comparing against old_data fails at the
  // first differing byte, and nothing is written.
  scsi::Response mis = rig.Run(CawCdb(4, 2), out);
  REQUIRE(SenseOf(mis) == SenseTriple{0x0e, 0x1d, 0x00});
  size_t first = 0;
  while (old_data[first] == new_data[first]) ++first;
  CHECK((mis.sense[0] & 0x80) == 0x80);
  CHECK(DecodeBE32(&mis.sense[3]) == first);
  CHECK(rig.Run(Cdb10(0x28, 4, 2)).data_in == new_data);
  // A difference in the second block reports its offset in the buffer.
  std::vector<uint8_t> probe = new_data;
  probe[700] ^= 0xff;
  probe.insert(probe.end(), new_data.begin(), new_data.end());
  CHECK(DecodeBE32(&rig.Run(CawCdb(4, 2), probe).sense[3]) == 700);
  // Sizes and ranges.
  CHECK(rig.Run(CawCdb(4, 0)).status == kStatusGood);
  // 0 blocks with data: a 256-block request that overflowed the count byte.
  CHECK(SenseOf(rig.Run(CawCdb(4, 0), std::vector<uint8_t>(256 * 1024, 0))) == kInvalidField);
  CHECK(SenseOf(rig.Run(CawCdb(4, 2), std::vector<uint8_t>(1024, 0))) == kInvalidField);
  CHECK(SenseOf(rig.Run(CawCdb(kBlocks - 1, 2), std::vector<uint8_t>(2048, 0))) == kLbaOutOfRange);
  CHECK(SenseOf(rig.Run(CawCdb(0, 129), std::vector<uint8_t>(129 * 1024, 0))) == kInvalidField);
}

TEST_CASE("scsi: VERIFY with and without byte compare") {
  ScsiRig rig;
  std::vector<uint8_t> d = Pattern(4 * 512, 11);
  REQUIRE(rig.Run(Cdb10(0x2a, 0, 4), d).status == kStatusGood);
  CHECK(rig.Run(Cdb10(0x2f, 0, 4)).status == kStatusGood);                  // BYTCHK 0
  CHECK(rig.Run(Cdb10(0x2f, 0, 4, 0x02), d).status == kStatusGood);          // BYTCHK 1
  std::vector<uint8_t> wrong = d;
  wrong[1500] ^= 1;
  scsi::Response mis = rig.Run(Cdb16(0x8f, 0, 4, 0x02), wrong);
  CHECK(SenseOf(mis) == SenseTriple{0x0e, 0x1d, 0x00});
  CHECK(DecodeBE32(&mis.sense[3]) == 1500);
  CHECK(rig.Run(Cdb12(0xaf, 0, 4, 0x00), wrong).status == kStatusGood);      // no compare
  CHECK(SenseOf(rig.Run(Cdb10(0x2f, 0, 4, 0x04))) == kInvalidField);          // BYTCHK 10b
  // BYTCHK 11b: every block against the one sent.
  REQUIRE(rig.Run(Cdb10(0x41, 8, 3), std::vector<uint8_t>(512, 's')).status == kStatusGood);
  CHECK(rig.Run(Cdb10(0x2f, 8, 3, 0x06), std::vector<uint8_t>(512, 's')).status == kStatusGood);
  CHECK(SenseOf(rig.Run(Cdb10(0x2f, 0, 4, 0x02), {1, 2})) == kInvalidField);
  CHECK(SenseOf(rig.Run(Cdb10(0x2f, kBlocks, 1))) == kLbaOutOfRange);
}

TEST_CASE("scsi: ReplaceDevice swaps the backing device and raises the unit attention") {
  ScsiRig rig;
  auto bigger = std::make_unique<MemBlockDevice>(16 << 20, 16384);
  rig.unit->ReplaceDevice(std::move(bigger), 0x2a, 0x09);
  CHECK(SenseOf(rig.Run(Cdb10(0x28, 0, 1))) == SenseTriple{0x06, 0x2a, 0x09});
  scsi::Response r = rig.Run(Cdb10(0x25, 0, 0));
  CHECK(DecodeBE32(&r.data_in[0]) == (16u << 20) / 512 - 1);
}

}  // namespace
}  // namespace blockhaus::testing

namespace blockhaus::testing {
namespace {

// COMPARE AND WRITE must be atomic against other writes: threads increment
// a counter in block 0 with read + COMPARE AND WRITE; a lost update would
// leave the counter below the number of successful CAWs.
TEST_CASE("scsi: concurrent COMPARE AND WRITE increments never lose an update") {
  ScsiRig rig;
  constexpr int kThreads = 4, kIncrements = 50;
  std::vector<std::thread> threads;
  std::atomic<int> successes{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      scsi::Nexus n = MakeNexus(100 + static_cast<uint64_t>(t), "iqn.2026-01.test:t" + std::to_string(t));
      auto run = [&](const std::vector<uint8_t>& cdb, std::vector<uint8_t> data) {
        scsi::Command cmd;
        cmd.nexus_id = n.id;
        std::copy(cdb.begin(), cdb.end(), cmd.cdb.begin());
        cmd.data_out = data;
        scsi::Response r;
        rig.map.Execute(n, cmd, &r);
        return r;
      };
      while (run({0, 0, 0, 0, 0, 0}, {}).status != kStatusGood) {
      }
      for (int done = 0; done < kIncrements;) {
        scsi::Response cur = run(Cdb10(0x28, 0, 1), {});
        if (cur.status != kStatusGood) continue;
        std::vector<uint8_t> out = Bytes(cur.data_in);
        std::vector<uint8_t> next = Bytes(cur.data_in);
        EncodeBE32(next.data(), DecodeBE32(next.data()) + 1);
        out.insert(out.end(), next.begin(), next.end());
        if (run(CawCdb(0, 1), out).status == kStatusGood) {
          ++done;
          successes.fetch_add(1, std::memory_order_relaxed);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(successes.load() == kThreads * kIncrements);
  CHECK(DecodeBE32(rig.dev->bytes().data()) == static_cast<uint32_t>(kThreads * kIncrements));
}

}  // namespace
}  // namespace blockhaus::testing

namespace blockhaus::testing {
namespace {

TEST_CASE("scsi: ORWRITE ORs into the medium; READ DEFECT DATA is empty") {
  ScsiRig rig;
  REQUIRE(rig.Run(Cdb10(0x2a, 0, 2), std::vector<uint8_t>(1024, 0x0f)).status == kStatusGood);
  CHECK(rig.Run(Cdb16(0x8b, 0, 2, 0x08), std::vector<uint8_t>(1024, 0xf0)).status == kStatusGood);
  CHECK(rig.dev->flushes == 1);
  CHECK(rig.Run(Cdb10(0x28, 0, 2)).data_in == std::vector<uint8_t>(1024, 0xff));
  CHECK(SenseOf(rig.Run(Cdb16(0x8b, kBlocks, 1), std::vector<uint8_t>(512, 1))) == kLbaOutOfRange);
  CHECK(SenseOf(rig.Run(Cdb16(0x8b, 0, 1, 0x20), std::vector<uint8_t>(512, 1))) == kInvalidField);
  CHECK(rig.Run(Cdb16(0x8b, 0, 0)).status == kStatusGood);
  scsi::Response d10 = rig.Run({0x37, 0, 0x1d, 0, 0, 0, 0, 0, 255, 0});
  CHECK(d10.data_in == std::vector<uint8_t>{0, 0x1d, 0, 0});
  scsi::Response d12 = rig.Run({0xb7, 0x0c, 0, 0, 0, 0, 0, 0, 0, 255, 0, 0});
  CHECK(d12.data_in == std::vector<uint8_t>{0, 0x0c, 0, 0, 0, 0, 0, 0});
}

}  // namespace
}  // namespace blockhaus::testing

namespace blockhaus::testing {
namespace {

// ReplaceDevice (live rollback, resize) while another nexus does I/O of
// every kind: commands finish on the device they started on; nothing
// touches a device after it is swapped out (run under TSan/ASan).
TEST_CASE("scsi: ReplaceDevice during I/O") {
  ScsiRig rig;
  scsi::Nexus other = MakeNexus(9, "iqn.2026-01.test:io");
  rig.ClearUnitAttention(other);
  std::atomic<bool> stop{false};
  std::thread io([&] {
    scsi::Command cmd;
    cmd.nexus_id = other.id;
    std::vector<uint8_t> data(4096, 7);
    uint8_t ops[] = {0x28, 0x2a, 0x41, 0x89, 0x8b, 0x35};
    for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      std::vector<uint8_t> cdb = Cdb10(ops[i % 6], static_cast<uint32_t>(i % 64), 1);
      if (ops[i % 6] >= 0x80) cdb = Cdb16(ops[i % 6], static_cast<uint64_t>(i % 64), 1);
      if (ops[i % 6] == 0x89) cdb[13] = 1;
      std::copy(cdb.begin(), cdb.end(), cmd.cdb.begin());
      cmd.data_out = ConstByteSpan(data.data(), ops[i % 6] == 0x89 ? 1024 : 512);
      scsi::Response r;
      rig.map.Execute(other, cmd, &r);
    }
  });
  for (int i = 0; i < 50; ++i) {
    rig.unit->ReplaceDevice(std::make_unique<MemBlockDevice>(8 << 20, 16384, i % 2 == 1), 0x2a,
                            0x09);
  }
  stop = true;
  io.join();
  rig.ClearUnitAttention(rig.nexus);
  CHECK(rig.Run(Cdb10(0x28, 0, 1)).status == kStatusGood);
}

}  // namespace
}  // namespace blockhaus::testing
