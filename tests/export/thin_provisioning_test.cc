// Thin-provisioning soft threshold (SBC-3 §4.7.3.7, docs/DECISIONS.md D20):
// VPD B2h THRESHOLD EXPONENT, the Logical Block Provisioning mode page
// (1Ch/02h), one UNIT ATTENTION 38h/07h per I_T nexus per crossing with
// hysteresis, and 07h/27h/07h for writes the pool cannot take. Driven over
// a MemBlockDevice whose reported space the test sets.
#include <doctest/doctest.h>

#include "export/scsi/scsi_spec.h"
#include "tests/export/scsi_rig.h"

namespace blockhaus::testing {
namespace {

using scsi::kStatusGood;

constexpr uint64_t kMiB = 1 << 20;

// 100 MiB of pool: the default threshold (80% in use) is reached below 20
// threshold sets of 1 MiB available, re-armed at 21.
void SetAvailable(ScsiRig& rig, uint64_t available) {
  rig.dev->SetProvisioning(volume::ProvisioningStatus{100 * kMiB, available});
}

std::vector<uint8_t> Vpd(ScsiRig& rig, uint8_t page) {
  scsi::Response r = rig.Run({0x12, 0x01, page, 0x00, 0xff, 0});
  REQUIRE(r.status == kStatusGood);
  return Bytes(r.data_in);
}

// MODE SENSE(10) of page/subpage with page control `pc`; the page itself
// (after the 8-byte header, no block descriptors).
scsi::Response ModeSense10(ScsiRig& rig, uint8_t page, uint8_t subpage, uint8_t pc = 0) {
  return rig.Run(
      {0x5a, 0x08, static_cast<uint8_t>(pc << 6 | page), subpage, 0, 0, 0, 0x10, 0x00, 0});
}

std::vector<uint8_t> Write(uint8_t fill) { return std::vector<uint8_t>(512, fill); }

}  // namespace

TEST_CASE("thin: no threshold without space reports, when off, or when read-only") {
  ScsiRig unknown;  // the device cannot report its space
  CHECK(Vpd(unknown, 0xb2)[4] == 0);
  CHECK(SenseOf(ModeSense10(unknown, 0x1c, 0x02)) == kInvalidField);
  ScsiRig off(ScsiRig::kDefaultSize, 512, false, 16384, nullptr, 0);
  SetAvailable(off, 1 * kMiB);
  CHECK(Vpd(off, 0xb2)[4] == 0);
  CHECK(off.Run(Cdb10(0x2a, 0, 1), Write(1)).status == kStatusGood);
  CHECK(off.Run({0, 0, 0, 0, 0, 0}).status == kStatusGood);  // no attention
  ScsiRig ro(ScsiRig::kDefaultSize, 512, true);
  SetAvailable(ro, 1 * kMiB);
  CHECK(Vpd(ro, 0xb2)[4] == 0);
  CHECK(SenseOf(ModeSense10(ro, 0x1c, 0x02)) == kInvalidField);
}

TEST_CASE("thin: VPD B2h threshold exponent gives 1 MiB threshold sets") {
  ScsiRig rig;
  SetAvailable(rig, 50 * kMiB);
  std::vector<uint8_t> b2 = Vpd(rig, 0xb2);
  CHECK(b2[4] == 11);  // 2^11 LBAs of 512 bytes
  CHECK(b2[5] == (0x80 | 0x40 | 0x20 | 0x04));
  CHECK((b2[6] & 0x07) == 0x02);  // thin provisioned
  ScsiRig big(ScsiRig::kDefaultSize, 4096);
  SetAvailable(big, 50 * kMiB);
  CHECK(Vpd(big, 0xb2)[4] == 8);  // 2^8 LBAs of 4096 bytes
}

TEST_CASE("thin: Logical Block Provisioning mode page 1Ch/02h") {
  ScsiRig rig;
  SetAvailable(rig, 50 * kMiB);
  scsi::Response r = ModeSense10(rig, 0x1c, 0x02);
  REQUIRE(r.status == kStatusGood);
  REQUIRE(r.data_in.size() == 8 + 24);
  const uint8_t* p = &r.data_in[8];
  CHECK(p[0] == 0x5c);  // SPF, page 1Ch
  CHECK(p[1] == 0x02);
  CHECK(scsi::DecodeBE16(p + 2) == 20);
  CHECK(p[4] == 0x00);              // SITUA=0: every I_T nexus
  CHECK(p[16] == 0x80);             // enabled, soft, armed decreasing
  CHECK(p[17] == 0x01);             // available LBA mapping resources
  CHECK(DecodeBE32(p + 20) == 20);  // 20% of 100 MiB in 1 MiB sets
  // Nothing is changeable.
  scsi::Response ch = ModeSense10(rig, 0x1c, 0x02, 1);
  REQUIRE(ch.status == kStatusGood);
  CHECK(ch.data_in[8 + 16] == 0);
  CHECK(DecodeBE32(&ch.data_in[8 + 20]) == 0);
  // In "all subpages" lists, not in the subpage-0 lists.
  scsi::Response all = ModeSense10(rig, 0x3f, 0xff);
  scsi::Response main = ModeSense10(rig, 0x3f, 0x00);
  REQUIRE(all.status == kStatusGood);
  REQUIRE(main.status == kStatusGood);
  CHECK(all.data_in.size() == main.data_in.size() + 24);
  CHECK(ModeSense10(rig, 0x1c, 0xff).data_in.size() == 8 + 12 + 24);
  CHECK(SenseOf(ModeSense10(rig, 0x1c, 0x01)) == kInvalidField);
  // MODE SELECT takes the page as it is and refuses a change.
  std::vector<uint8_t> list(8, 0);
  list.insert(list.end(), r.data_in.begin() + 8, r.data_in.end());
  std::vector<uint8_t> sel{0x55, 0x10, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(list.size()), 0};
  CHECK(rig.Run(sel, list).status == kStatusGood);
  list[8 + 23] ^= 1;
  CHECK(SenseOf(rig.Run(sel, list)) == kInvalidParameter);
}

TEST_CASE("thin: one 38h/07h per I_T nexus per crossing, with hysteresis") {
  ScsiRig rig;
  scsi::Nexus other = MakeNexus(2, "iqn.2026-01.test:host2");
  rig.ClearUnitAttention(other);
  SetAvailable(rig, 50 * kMiB);
  CHECK(rig.Run(Cdb10(0x2a, 0, 1), Write(1)).status == kStatusGood);
  CHECK(rig.Run({0, 0, 0, 0, 0, 0}).status == kStatusGood);
  // Below 20 sets: the write that crosses runs; everybody hears of it once.
  SetAvailable(rig, 19 * kMiB + kMiB / 2);
  CHECK(rig.Run(Cdb10(0x2a, 1, 1), Write(2)).status == kStatusGood);
  CHECK(SenseOf(rig.Run({0, 0, 0, 0, 0, 0})) == kSoftThresholdReached);
  CHECK(rig.Run({0, 0, 0, 0, 0, 0}).status == kStatusGood);
  CHECK(SenseOf(rig.Run(other, {0, 0, 0, 0, 0, 0})) == kSoftThresholdReached);
  CHECK(rig.Run(other, {0, 0, 0, 0, 0, 0}).status == kStatusGood);
  // Still below, or back within the hysteresis: nothing new.
  CHECK(rig.Run(Cdb10(0x2a, 2, 1), Write(3)).status == kStatusGood);
  SetAvailable(rig, 20 * kMiB + kMiB / 2);
  CHECK(rig.Run(Cdb10(0x2a, 3, 1), Write(4)).status == kStatusGood);
  SetAvailable(rig, 10 * kMiB);
  CHECK(rig.Run(Cdb10(0x2a, 4, 1), Write(5)).status == kStatusGood);
  CHECK(rig.Run({0, 0, 0, 0, 0, 0}).status == kStatusGood);
  CHECK(rig.Run(other, {0, 0, 0, 0, 0, 0}).status == kStatusGood);
  // Re-armed at 21 sets (an UNMAP counts, as any command writing the
  // medium), then crossed again.
  SetAvailable(rig, 21 * kMiB);
  CHECK(rig.Run({0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0},
                {0, 22, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0})
            .status == kStatusGood);
  SetAvailable(rig, 5 * kMiB);
  CHECK(rig.Run(Cdb16(0x8a, 5, 1), Write(6)).status == kStatusGood);  // fast path
  CHECK(SenseOf(rig.Run({0, 0, 0, 0, 0, 0})) == kSoftThresholdReached);
  CHECK(SenseOf(rig.Run(other, {0, 0, 0, 0, 0, 0})) == kSoftThresholdReached);
  // Reads never raise it.
  ScsiRig reads;
  SetAvailable(reads, 1 * kMiB);
  CHECK(reads.Run(Cdb10(0x28, 0, 1)).status == kStatusGood);
  CHECK(reads.Run({0, 0, 0, 0, 0, 0}).status == kStatusGood);
}

TEST_CASE("thin: a write the pool cannot take is 07h/27h/07h and still raises 38h/07h") {
  ScsiRig rig;
  SetAvailable(rig, 0);
  rig.dev->fail_writes = BH_ERROR(kResourceExhausted, "pool tank is out of space");
  CHECK(SenseOf(rig.Run(Cdb10(0x2a, 0, 1), Write(1))) == kSpaceAllocationFailed);
  CHECK(SenseOf(rig.Run({0, 0, 0, 0, 0, 0})) == kSoftThresholdReached);
  CHECK(SenseOf(rig.Run(Cdb10(0x2a, 0, 1), Write(1))) == kSpaceAllocationFailed);
  rig.dev->fail_writes = Status::Ok();
  SetAvailable(rig, 60 * kMiB);
  CHECK(rig.Run(Cdb10(0x2a, 0, 1), Write(1)).status == kStatusGood);
  CHECK(rig.Run({0, 0, 0, 0, 0, 0}).status == kStatusGood);
}

}  // namespace blockhaus::testing
