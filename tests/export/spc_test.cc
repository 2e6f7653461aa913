// SPC-4 commands: INQUIRY and VPD pages (golden bytes), mode pages, REPORT
// LUNS, REPORT SUPPORTED OPERATION CODES, unit attentions, opcode dispatch.

#include <doctest/doctest.h>

#include "export/scsi/scsi_spec.h"
#include "tests/export/scsi_rig.h"

namespace blockhaus::testing {
namespace {

using scsi::kStatusCheckCondition;
using scsi::kStatusGood;

std::vector<uint8_t> Inquiry(ScsiRig& rig, bool evpd, uint8_t page, uint16_t alloc) {
  scsi::Response r = rig.Run({0x12, static_cast<uint8_t>(evpd ? 1 : 0), page,
                              static_cast<uint8_t>(alloc >> 8), static_cast<uint8_t>(alloc), 0});
  REQUIRE(r.status == kStatusGood);
  CHECK(r.transfer_length == alloc);
  CHECK(r.data_in.size() <= alloc);
  return Bytes(r.data_in);
}

TEST_CASE("scsi: standard INQUIRY golden bytes") {
  ScsiRig rig;
  std::vector<uint8_t> d = Inquiry(rig, false, 0, 255);
  REQUIRE(d.size() == 96);
  const std::vector<uint8_t> head = {0x00, 0x00, 0x06, 0x12, 91, 0x00, 0x00, 0x02,
                                     'B', 'L', 'O', 'C', 'K', 'H', 'A', 'U',
                                     'V', 'O', 'L', 'U', 'M', 'E', ' ', ' ', ' ', ' ', ' ', ' ',
                                     ' ', ' ', ' ', ' ', '0', '0', '0', '1'};
  CHECK(std::vector<uint8_t>(d.begin(), d.begin() + 36) == head);
  // Version descriptors: SAM-5, iSCSI, SPC-4, SBC-3 (libiscsi looks for 04C0h).
  const std::vector<uint8_t> versions = {0x00, 0xa0, 0x09, 0x60, 0x04, 0x60, 0x04, 0xc0};
  CHECK(std::vector<uint8_t>(d.begin() + 58, d.begin() + 66) == versions);
  // Allocation length cuts the data; transfer length is the allocation length.
  CHECK(Inquiry(rig, false, 0, 5).size() == 5);
  CHECK(Inquiry(rig, false, 0, 0).empty());
}

TEST_CASE("scsi: INQUIRY field checks") {
  ScsiRig rig;
  CHECK(SenseOf(rig.Run({0x12, 0, 0x80, 0, 255, 0})) == kInvalidField);   // page without EVPD
  CHECK(SenseOf(rig.Run({0x12, 1, 0x42, 0, 255, 0})) == kInvalidField);   // unknown VPD page
  CHECK(SenseOf(rig.Run({0x12, 2, 0, 0, 255, 0})) == kInvalidField);      // CMDDT
}

TEST_CASE("scsi: VPD pages golden bytes") {
  ScsiRig rig;
  CHECK(Inquiry(rig, true, 0x00, 255) ==
        std::vector<uint8_t>{0, 0, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2});
  CHECK(Inquiry(rig, true, 0x80, 255) ==
        std::vector<uint8_t>{0, 0x80, 0, 8, 'S', 'E', 'R', 'I', 'A', 'L', '0', '1'});
  CHECK(Inquiry(rig, true, 0xb2, 255) == std::vector<uint8_t>{0, 0xb2, 0, 4, 0, 0xe4, 0x02, 0});

  std::vector<uint8_t> bl = Inquiry(rig, true, 0xb0, 255);
  REQUIRE(bl.size() == 64);
  CHECK(bl[3] == 0x3c);
  CHECK(bl[4] == 0x01);                                  // WSNZ
  CHECK(bl[5] == 128);                                   // MAXIMUM COMPARE AND WRITE LENGTH
  CHECK(scsi::DecodeBE16(&bl[6]) == 32);                 // 16K volblocksize / 512
  CHECK(DecodeBE32(&bl[8]) == (8u << 20) / 512);         // MAXIMUM TRANSFER LENGTH
  CHECK(DecodeBE32(&bl[20]) == 1u << 20);                // MAXIMUM UNMAP LBA COUNT
  CHECK(DecodeBE32(&bl[24]) == 256);                     // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
  CHECK(DecodeBE32(&bl[28]) == 32);                      // OPTIMAL UNMAP GRANULARITY
  CHECK(DecodeBE64(&bl[36]) == (8u << 20) / 512);        // MAXIMUM WRITE SAME LENGTH: one transfer

  std::vector<uint8_t> bdc = Inquiry(rig, true, 0xb1, 255);
  REQUIRE(bdc.size() == 64);
  CHECK(bdc[4] == 0x00);
  CHECK(bdc[5] == 0x01);                                 // non-rotating

  std::vector<uint8_t> id = Inquiry(rig, true, 0x83, 255);
  REQUIRE(id.size() >= 4);
  CHECK(scsi::DecodeBE16(&id[2]) == id.size() - 4);
  // First designator: binary, LU, NAA, 16 bytes, NAA 6 with the low 60 bits of naa_id.
  const std::vector<uint8_t> naa_head = {0x01, 0x03, 0x00, 0x10, 0x61, 0x23, 0x45, 0x67,
                                         0x89, 0xab, 0xcd, 0xef};
  CHECK(std::vector<uint8_t>(id.begin() + 4, id.begin() + 16) == naa_head);
  // Then the T10 vendor id (ASCII) and the relative target port (iSCSI, PIV).
  size_t t10 = 4 + 4 + 16;
  CHECK(id[t10] == 0x02);
  CHECK(id[t10 + 1] == 0x01);
  size_t rtp = t10 + 4 + id[t10 + 3];
  CHECK(std::vector<uint8_t>(id.begin() + static_cast<long>(rtp), id.end()) ==
        std::vector<uint8_t>{0x51, 0x94, 0, 4, 0, 0, 0, 1});
}

TEST_CASE("scsi: READ CAPACITY golden bytes") {
  ScsiRig rig(8 << 20);
  scsi::Response r = rig.Run(Cdb10(0x25, 0, 0));
  REQUIRE(r.status == kStatusGood);
  CHECK(r.data_in == std::vector<uint8_t>{0, 0, 0x3f, 0xff, 0, 0, 0x02, 0x00});
  scsi::Response r16 = rig.Run({0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0});
  REQUIRE(r16.status == kStatusGood);
  std::vector<uint8_t> want(32, 0);
  want[6] = 0x3f;
  want[7] = 0xff;
  want[10] = 0x02;
  want[14] = 0xc0;   // LBPME, LBPRZ
  CHECK(r16.data_in == want);
  // READ CAPACITY(10) with LBA but no PMI is an invalid field.
  CHECK(SenseOf(rig.Run(Cdb10(0x25, 5, 0))) == kInvalidField);
}

TEST_CASE("scsi: 4096-byte logical blocks") {
  ScsiRig rig(8 << 20, 4096);
  scsi::Response r = rig.Run(Cdb10(0x25, 0, 0));
  CHECK(r.data_in == std::vector<uint8_t>{0, 0, 0x07, 0xff, 0, 0, 0x10, 0x00});
}

TEST_CASE("scsi: unknown opcodes and service actions") {
  ScsiRig rig;
  CHECK(SenseOf(rig.Run({0xff, 0, 0, 0, 0, 0})) == kInvalidOpcode);
  CHECK(SenseOf(rig.Run({0x04, 0, 0, 0, 0, 0})) == kInvalidOpcode);   // FORMAT UNIT
  CHECK(SenseOf(rig.Run({0x9e, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})) == kInvalidField);
  CHECK(SenseOf(rig.Run({0x5e, 0x10, 0, 0, 0, 0, 0, 0, 255, 0})) == kInvalidField);
}

TEST_CASE("scsi: first contact raises 29h/00h once; REQUEST SENSE reports and clears") {
  ScsiRig rig;
  scsi::Nexus other = MakeNexus(7, "iqn.2026-01.test:host2");
  // INQUIRY does not report a unit attention.
  CHECK(rig.Run(other, {0x12, 0, 0, 0, 36, 0}).status == kStatusGood);
  scsi::Response rs = rig.Run(other, {0x03, 0, 0, 0, 18, 0});
  REQUIRE(rs.status == kStatusGood);
  REQUIRE(rs.data_in.size() == 18);
  CHECK(rs.data_in[2] == 0x06);
  CHECK(rs.data_in[12] == 0x29);
  CHECK(rig.Run(other, {0x00, 0, 0, 0, 0, 0}).status == kStatusGood);
  // SetUnitAttention reaches every nexus but the excepted one.
  rig.unit->SetUnitAttention(0x2a, 0x09, rig.nexus.id);
  CHECK(rig.Run({0x00, 0, 0, 0, 0, 0}).status == kStatusGood);
  CHECK(SenseOf(rig.Run(other, {0x00, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x2a, 0x09});
  CHECK(rig.Run(other, {0x00, 0, 0, 0, 0, 0}).status == kStatusGood);
}

TEST_CASE("scsi: a port's next nexus after a loss starts with 29h/07h") {
  ScsiRig rig;
  rig.map.NexusLost(rig.nexus.id);
  scsi::Nexus again = MakeNexus(5);   // same initiator port (session reinstatement)
  CHECK(SenseOf(rig.Run(again, {0x00, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x29, 0x07});
  CHECK(rig.Run(again, {0x00, 0, 0, 0, 0, 0}).status == kStatusGood);
  scsi::Nexus other = MakeNexus(6, "iqn.2026-01.test:host2");
  CHECK(SenseOf(rig.Run(other, {0x00, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x29, 0x00});
}

TEST_CASE("scsi: LUN reset raises 29h/00h on every nexus") {
  ScsiRig rig;
  scsi::Nexus other = MakeNexus(7, "iqn.2026-01.test:host2");
  rig.ClearUnitAttention(other);
  CHECK(rig.map.ResetLun(rig.nexus, 0));
  CHECK_FALSE(rig.map.ResetLun(rig.nexus, 3));
  CHECK(SenseOf(rig.Run({0x00, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x29, 0x00});
  CHECK(rig.Run({0x00, 0, 0, 0, 0, 0}).status == kStatusGood);
  CHECK(SenseOf(rig.Run(other, {0x00, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x29, 0x00});
}

TEST_CASE("scsi: REPORT LUNS and unmapped LUNs") {
  ScsiRig rig;
  auto second = scsi::LogicalUnit::Create(std::make_unique<MemBlockDevice>(1 << 20, 4096),
                                          scsi::LunOptions{}, nullptr);
  REQUIRE(second.ok());
  rig.map.MapLun(300, *second);
  // Existing nexuses hear about the change.
  CHECK(SenseOf(rig.Run({0x00, 0, 0, 0, 0, 0})) == SenseTriple{0x06, 0x3f, 0x0e});
  scsi::Response r = rig.Run({0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0});
  REQUIRE(r.status == kStatusGood);
  CHECK(r.data_in == std::vector<uint8_t>{0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0x41, 0x2c, 0, 0, 0, 0, 0, 0});
  CHECK(SenseOf(rig.Run({0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0})) == kInvalidField);
  CHECK(SenseOf(rig.Run({0xa0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0})) == kInvalidField);
  scsi::Response wk = rig.Run({0xa0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0});
  CHECK(wk.data_in == std::vector<uint8_t>(8, 0));
  // INQUIRY of an unmapped LUN: peripheral qualifier 011b; anything else 05h/25h/00h.
  scsi::Response inq = rig.Run(rig.nexus, {0x12, 0, 0, 0, 36, 0}, {}, 5);
  REQUIRE(inq.status == kStatusGood);
  CHECK(inq.data_in[0] == 0x7f);
  CHECK(SenseOf(rig.Run(rig.nexus, {0x00, 0, 0, 0, 0, 0}, {}, 5)) == SenseTriple{0x05, 0x25, 0x00});
  CHECK(rig.map.HasLun(300));
  rig.map.UnmapLun(300);
  CHECK_FALSE(rig.map.HasLun(300));
  CHECK(rig.map.Luns() == std::vector<uint64_t>{0});
}

std::vector<uint8_t> ModeSense6(ScsiRig& rig, uint8_t byte1, uint8_t pc_page, uint8_t alloc,
                                uint8_t subpage = 0) {
  scsi::Response r = rig.Run({0x1a, byte1, pc_page, subpage, alloc, 0});
  REQUIRE(r.status == kStatusGood);
  return Bytes(r.data_in);
}

TEST_CASE("scsi: MODE SENSE(6) golden bytes") {
  ScsiRig rig;
  std::vector<uint8_t> caching = ModeSense6(rig, 0x08, 0x08, 255);   // DBD
  std::vector<uint8_t> want = {23, 0, 0x10, 0, 0x08, 0x12, 0x04};
  want.resize(24, 0);
  CHECK(caching == want);
  std::vector<uint8_t> all = ModeSense6(rig, 0, 0x3f, 255);
  // Header, block descriptor (16384 blocks of 512), caching, control, IE.
  REQUIRE(all.size() == 4 + 8 + 20 + 12 + 12);
  CHECK(all[0] == all.size() - 1);
  CHECK(all[3] == 8);
  CHECK(std::vector<uint8_t>(all.begin() + 4, all.begin() + 12) ==
        std::vector<uint8_t>{0, 0, 0x40, 0, 0, 0, 0x02, 0});
  CHECK(all[12] == 0x08);
  CHECK(all[32] == 0x0a);
  CHECK(all[44] == 0x1c);
  // Subpage FFh of all pages is the same list; other subpages are invalid.
  CHECK(ModeSense6(rig, 0, 0x3f, 255, 0xff) == all);
  CHECK(SenseOf(rig.Run({0x1a, 0, 0x08, 0x01, 255, 0})) == kInvalidField);
  // Changeable values: nothing.
  std::vector<uint8_t> ch = ModeSense6(rig, 0x08, 0x48, 255);
  CHECK(ch[6] == 0x00);
  // Saved values are not supported; unknown pages are invalid.
  CHECK(SenseOf(rig.Run({0x1a, 0, 0xc8, 0, 255, 0})) == SenseTriple{0x05, 0x39, 0x00});
  CHECK(SenseOf(rig.Run({0x1a, 0, 0x19, 0, 255, 0})) == kInvalidField);
  // A 4-byte allocation gets just the header.
  CHECK(ModeSense6(rig, 0, 0x3f, 4).size() == 4);
}

TEST_CASE("scsi: MODE SENSE(10) with LLBAA and a read-only unit") {
  ScsiRig rig(8 << 20, 512, true);
  scsi::Response r = rig.Run({0x5a, 0x10, 0x0a, 0, 0, 0, 0, 0, 255, 0});
  REQUIRE(r.status == kStatusGood);
  const Buffer& d = r.data_in;
  REQUIRE(d.size() == 8 + 16 + 12);
  CHECK(scsi::DecodeBE16(&d[0]) == d.size() - 2);
  CHECK(d[3] == 0x90);   // WP, DPOFUA
  CHECK(d[4] == 0x01);   // LONGLBA
  CHECK(scsi::DecodeBE16(&d[6]) == 16);
  CHECK(DecodeBE64(&d[8]) == 16384);
  CHECK(d[24] == 0x0a);
}

TEST_CASE("scsi: MODE SELECT accepts the current values only") {
  ScsiRig rig;
  std::vector<uint8_t> page = ModeSense6(rig, 0x08, 0x08, 255);
  page[0] = 0;   // MODE DATA LENGTH is reserved in MODE SELECT
  page[2] = 0;
  auto len = static_cast<uint8_t>(page.size());
  CHECK(rig.Run({0x15, 0x10, 0, 0, len, 0}, page).status == kStatusGood);
  std::vector<uint8_t> changed = page;
  changed[6] = 0;   // WCE off: not changeable
  CHECK(SenseOf(rig.Run({0x15, 0x10, 0, 0, len, 0}, changed)) == kInvalidParameter);
  // A page length running past the list.
  std::vector<uint8_t> bad = page;
  bad[5] = 0x40;
  CHECK(SenseOf(rig.Run({0x15, 0x10, 0, 0, len, 0}, bad)) == kInvalidParameter);
  // Shorter data than the parameter list length, SP, PF=0.
  CHECK(SenseOf(rig.Run({0x15, 0x10, 0, 0, len, 0}, {0, 0})) == kParameterLength);
  CHECK(SenseOf(rig.Run({0x15, 0x11, 0, 0, len, 0}, page)) == SenseTriple{0x05, 0x39, 0x00});
  CHECK(SenseOf(rig.Run({0x15, 0x00, 0, 0, len, 0}, page)) == kInvalidField);
  CHECK(rig.Run({0x15, 0x10, 0, 0, 0, 0}).status == kStatusGood);
}

TEST_CASE("scsi: REPORT SUPPORTED OPERATION CODES lists the dispatch table") {
  ScsiRig rig;
  scsi::Response all = rig.Run({0xa3, 0x0c, 0x00, 0, 0, 0, 0, 0, 0x10, 0, 0, 0});
  REQUIRE(all.status == kStatusGood);
  const Buffer& d = all.data_in;
  REQUIRE(d.size() >= 4);
  CHECK(DecodeBE32(&d[0]) == d.size() - 4);
  REQUIRE((d.size() - 4) % 8 == 0);
  bool read10 = false, rc16 = false;
  for (size_t off = 4; off < d.size(); off += 8) {
    uint8_t opcode = d[off];
    bool sa = d[off + 5] & 0x01;
    uint16_t action = scsi::DecodeBE16(&d[off + 2]);
    if (opcode == 0x28) read10 = true;
    if (opcode == 0x9e && sa && action == 0x10) rc16 = true;
    // Every listed command runs: one-command queries agree.
    scsi::Response one = rig.Run({0xa3, 0x0c, static_cast<uint8_t>(sa ? 2 : 1), opcode,
                                  static_cast<uint8_t>(action >> 8), static_cast<uint8_t>(action),
                                  0, 0, 1, 0, 0, 0});
    REQUIRE(one.status == kStatusGood);
    CHECK((one.data_in[1] & 0x07) == 0x03);
    CHECK(one.data_in[4] == opcode);
    CHECK(scsi::DecodeBE16(&one.data_in[2]) == scsi::DecodeBE16(&d[off + 6]));
    // The wrong reporting option for the kind of command is an invalid field.
    CHECK(SenseOf(rig.Run({0xa3, 0x0c, static_cast<uint8_t>(sa ? 1 : 2), opcode, 0, 0, 0, 0, 1,
                           0, 0, 0})) == kInvalidField);
  }
  CHECK(read10);
  CHECK(rc16);
  // Unsupported opcode: SUPPORT 001b. With RCTD: 20-byte descriptors and timeouts.
  scsi::Response none = rig.Run({0xa3, 0x0c, 0x01, 0x04, 0, 0, 0, 0, 1, 0, 0, 0});
  CHECK((none.data_in[1] & 0x07) == 0x01);
  scsi::Response rctd = rig.Run({0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0x10, 0, 0, 0});
  CHECK((rctd.data_in.size() - 4) % 20 == 0);
  CHECK((rctd.data_in[4 + 5] & 0x02) == 0x02);
  CHECK(SenseOf(rig.Run({0xa3, 0x0c, 0x05, 0, 0, 0, 0, 0, 1, 0, 0, 0})) == kInvalidField);
  scsi::Response tmf = rig.Run({0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0});
  CHECK(tmf.data_in == std::vector<uint8_t>{0xc8, 0, 0, 0});
}

TEST_CASE("scsi: START STOP UNIT and PREVENT ALLOW on a fixed medium") {
  ScsiRig rig;
  CHECK(rig.Run({0x1b, 1, 0, 0, 0x01, 0}).status == kStatusGood);
  CHECK(SenseOf(rig.Run({0x1b, 1, 0, 0, 0x02, 0})) == kInvalidField);   // LOEJ
  CHECK(rig.Run({0x1e, 0, 0, 0, 1, 0}).status == kStatusGood);
  CHECK(rig.Run({0x1e, 0, 0, 0, 0, 0}).status == kStatusGood);
  CHECK(SenseOf(rig.Run({0x1e, 0, 0, 0, 2, 0})) == kInvalidField);
}

TEST_CASE("scsi: RESERVE(6)/RELEASE(6) across two nexuses") {
  ScsiRig rig;
  scsi::Nexus other = MakeNexus(7, "iqn.2026-01.test:host2");
  rig.ClearUnitAttention(other);
  CHECK(rig.Run({0x16, 0, 0, 0, 0, 0}).status == kStatusGood);
  CHECK(rig.Run({0x16, 0, 0, 0, 0, 0}).status == kStatusGood);   // again by the holder
  CHECK(rig.Run(other, {0x16, 0, 0, 0, 0, 0}).status == scsi::kStatusReservationConflict);
  CHECK(rig.Run(other, {0x17, 0, 0, 0, 0, 0}).status == kStatusGood);   // no-op
  CHECK(rig.Run(other, {0x1a, 0, 0x3f, 0, 255, 0}).status == scsi::kStatusReservationConflict);
  CHECK(rig.Run(other, {0x12, 0, 0, 0, 36, 0}).status == kStatusGood);
  CHECK(rig.Run(other, Cdb10(0x28, 0, 1)).status == scsi::kStatusReservationConflict);
  CHECK(rig.Run({0x1a, 0, 0x3f, 0, 255, 0}).status == kStatusGood);
  // The holder's nexus goes away: the reservation goes with it.
  rig.map.NexusLost(rig.nexus.id);
  CHECK(rig.Run(other, {0x16, 0, 0, 0, 0, 0}).status == kStatusGood);
  CHECK(rig.Run(other, {0x17, 0, 0, 0, 0, 0}).status == kStatusGood);
  // A LUN reset releases it too.
  CHECK(rig.Run(other, {0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0}).status == kStatusGood);
  rig.unit->Reset(other.id);
  scsi::Nexus third = MakeNexus(9, "iqn.2026-01.test:host3");
  rig.ClearUnitAttention(third);
  CHECK(rig.Run(third, Cdb10(0x28, 0, 1)).status == kStatusGood);
}

}  // namespace
}  // namespace blockhaus::testing
