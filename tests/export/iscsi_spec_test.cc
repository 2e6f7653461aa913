#include "export/iscsi/iscsi_spec.h"

#include <doctest/doctest.h>

namespace blockhaus::iscsi {

TEST_CASE("BHS golden bytes: SCSI Command") {
  ScsiCommandBhs c;
  c.immediate = false;
  c.final = true;
  c.read = true;
  c.attr = 1;
  c.data_segment_length = 0x010203;
  c.lun = 0x0001000000000000ull;
  c.itt = 0x11223344;
  c.edtl = 4096;
  c.cmdsn = 7;
  c.expstatsn = 9;
  c.cdb[0] = 0x28;
  Bhs b;
  EncodeScsiCommand(c, &b);
  const Bhs want = {0x01, 0xc1, 0, 0, 0, 0x01, 0x02, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0,
                    0x11, 0x22, 0x33, 0x44, 0, 0, 0x10, 0, 0, 0, 0, 7, 0, 0, 0, 9,
                    0x28, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  CHECK(b == want);
  const ScsiCommandBhs d = DecodeScsiCommand(b);
  CHECK(d.read);
  CHECK_FALSE(d.write);
  CHECK(d.final);
  CHECK(d.edtl == 4096);
  CHECK(d.data_segment_length == 0x010203);
  CHECK(d.cdb[0] == 0x28);
}

TEST_CASE("BHS golden bytes: Login Request and Response") {
  LoginRequestBhs l;
  l.transit = true;
  l.csg = 1;
  l.nsg = 3;
  l.isid = 0x400001370000ull;
  l.tsih = 0x0102;
  l.itt = 1;
  l.cid = 5;
  l.cmdsn = 2;
  l.expstatsn = 3;
  l.data_segment_length = 10;
  Bhs b;
  EncodeLoginRequest(l, &b);
  CHECK(b[0] == 0x43);  // immediate + opcode 3
  CHECK(b[1] == 0x87);  // T, CSG=1, NSG=3
  CHECK(b[7] == 10);
  CHECK(b[8] == 0x40);
  CHECK(b[10] == 0x01);
  CHECK(b[11] == 0x37);
  CHECK(b[14] == 0x01);
  CHECK(b[15] == 0x02);
  CHECK(b[21] == 5);
  const LoginRequestBhs d = DecodeLoginRequest(b);
  CHECK(d.isid == l.isid);
  CHECK(d.tsih == 0x0102);
  CHECK(d.csg == 1);
  CHECK(d.nsg == 3);
  CHECK(d.transit);

  LoginResponseBhs r;
  r.status = static_cast<uint16_t>(LoginStatus::kNotFound);
  r.sn = {1, 2, 3};
  EncodeLoginResponse(r, &b);
  CHECK(b[0] == 0x23);
  CHECK(b[36] == 0x02);
  CHECK(b[37] == 0x03);
  CHECK(DecodeLoginResponse(b).status == 0x0203);
}

TEST_CASE("BHS round trips for target PDUs") {
  Bhs b;
  DataInBhs d;
  d.final = true;
  d.has_status = true;
  d.status = 0;
  d.underflow = true;
  d.residual = 512;
  d.datasn = 3;
  d.buffer_offset = 8192;
  d.data_segment_length = 4096;
  d.sn = {10, 11, 74};
  EncodeDataIn(d, &b);
  CHECK(b[0] == 0x25);
  CHECK(b[1] == 0x83);  // F, U, S
  const DataInBhs e = DecodeDataIn(b);
  CHECK(e.residual == 512);
  CHECK(e.buffer_offset == 8192);
  CHECK(e.sn.maxcmdsn == 74);

  R2tBhs r;
  r.ttt = 0xabcdef01;
  r.desired_length = 65536;
  r.buffer_offset = 4096;
  EncodeR2t(r, &b);
  CHECK(b[0] == 0x31);
  CHECK(b[1] == 0x80);
  CHECK(DecodeR2t(b).desired_length == 65536);
  CHECK(DecodeR2t(b).ttt == 0xabcdef01);

  ScsiResponseBhs s;
  s.status = 2;
  s.overflow = true;
  s.residual = 7;
  EncodeScsiResponse(s, &b);
  CHECK(b[1] == 0x84);
  CHECK(b[3] == 2);
  CHECK(DecodeScsiResponse(b).residual == 7);

  RejectBhs j;
  j.reason = static_cast<uint8_t>(RejectReason::kInvalidPduField);
  EncodeReject(j, &b);
  CHECK(b[0] == 0x3f);
  CHECK(b[2] == 0x09);
  CHECK(BhsDataSegmentLength(b) == 48);
  CHECK(BhsItt(b) == kReservedTag);

  LogoutResponseBhs lo;
  lo.time2wait = 2;
  EncodeLogoutResponse(lo, &b);
  CHECK(b[41] == 2);
  TaskMgmtRequestBhs t;
  t.function = 5;
  t.rtt = 9;
  EncodeTaskMgmtRequest(t, &b);
  CHECK(b[1] == 0x85);
  CHECK(DecodeTaskMgmtRequest(b).rtt == 9);
}

TEST_CASE("padding") {
  CHECK(PadLength(0) == 0);
  CHECK(PadLength(1) == 3);
  CHECK(PadLength(4) == 0);
  CHECK(PadLength(7) == 1);
}

}  // namespace blockhaus::iscsi
