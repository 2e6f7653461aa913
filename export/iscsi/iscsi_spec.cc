#include "export/iscsi/iscsi_spec.h"

#include <algorithm>

// Byte offsets below are RFC 7143 §11's figures, word by word: bytes 0-3
// opcode/flags, 4 TotalAHSLength, 5-7 DataSegmentLength, 8-15 LUN or ISID,
// 16-19 ITT, 20-47 opcode specific.

namespace blockhaus::iscsi {
namespace {

void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
void Put48(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 6; ++i) p[i] = static_cast<uint8_t>(v >> (40 - 8 * i));
}
uint64_t Get48(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 6; ++i) v = (v << 8) | p[i];
  return v;
}

// Clears `out` and writes the opcode byte, the flags byte and the lengths.
void Start(Bhs* out, Opcode op, bool immediate, uint8_t flags, uint32_t dsl, uint8_t ahs = 0) {
  out->fill(0);
  (*out)[0] = static_cast<uint8_t>(static_cast<uint8_t>(op) | (immediate ? 0x40 : 0));
  (*out)[1] = flags;
  (*out)[4] = ahs;
  SetBhsDataSegmentLength(out, dsl);
}

void PutSn(Bhs* out, const SequenceNumbers& sn) {
  EncodeBE32(&(*out)[24], sn.statsn);
  EncodeBE32(&(*out)[28], sn.expcmdsn);
  EncodeBE32(&(*out)[32], sn.maxcmdsn);
}
SequenceNumbers GetSn(const Bhs& b) {
  return {DecodeBE32(&b[24]), DecodeBE32(&b[28]), DecodeBE32(&b[32])};
}

constexpr uint8_t kF = 0x80;

}  // namespace

void SetBhsDataSegmentLength(Bhs* b, uint32_t length) {
  (*b)[5] = static_cast<uint8_t>(length >> 16);
  (*b)[6] = static_cast<uint8_t>(length >> 8);
  (*b)[7] = static_cast<uint8_t>(length);
}

void EncodeScsiCommand(const ScsiCommandBhs& v, Bhs* out) {
  uint8_t flags = static_cast<uint8_t>((v.final ? kF : 0) | (v.read ? 0x40 : 0) |
                                       (v.write ? 0x20 : 0) | (v.attr & 7));
  Start(out, Opcode::kScsiCommand, v.immediate, flags, v.data_segment_length, v.total_ahs_length);
  EncodeBE64(&(*out)[8], v.lun);
  EncodeBE32(&(*out)[16], v.itt);
  EncodeBE32(&(*out)[20], v.edtl);
  EncodeBE32(&(*out)[24], v.cmdsn);
  EncodeBE32(&(*out)[28], v.expstatsn);
  std::copy(v.cdb.begin(), v.cdb.end(), out->begin() + 32);
}

ScsiCommandBhs DecodeScsiCommand(const Bhs& b) {
  ScsiCommandBhs v;
  v.immediate = BhsImmediate(b);
  v.final = (b[1] & kF) != 0;
  v.read = (b[1] & 0x40) != 0;
  v.write = (b[1] & 0x20) != 0;
  v.attr = b[1] & 7;
  v.total_ahs_length = b[4];
  v.data_segment_length = BhsDataSegmentLength(b);
  v.lun = DecodeBE64(&b[8]);
  v.itt = DecodeBE32(&b[16]);
  v.edtl = DecodeBE32(&b[20]);
  v.cmdsn = DecodeBE32(&b[24]);
  v.expstatsn = DecodeBE32(&b[28]);
  std::copy(b.begin() + 32, b.end(), v.cdb.begin());
  return v;
}

void EncodeDataOut(const DataOutBhs& v, Bhs* out) {
  Start(out, Opcode::kDataOut, false, v.final ? kF : 0, v.data_segment_length);
  EncodeBE64(&(*out)[8], v.lun);
  EncodeBE32(&(*out)[16], v.itt);
  EncodeBE32(&(*out)[20], v.ttt);
  EncodeBE32(&(*out)[28], v.expstatsn);
  EncodeBE32(&(*out)[36], v.datasn);
  EncodeBE32(&(*out)[40], v.buffer_offset);
}

DataOutBhs DecodeDataOut(const Bhs& b) {
  DataOutBhs v;
  v.final = BhsFinal(b);
  v.data_segment_length = BhsDataSegmentLength(b);
  v.lun = DecodeBE64(&b[8]);
  v.itt = DecodeBE32(&b[16]);
  v.ttt = DecodeBE32(&b[20]);
  v.expstatsn = DecodeBE32(&b[28]);
  v.datasn = DecodeBE32(&b[36]);
  v.buffer_offset = DecodeBE32(&b[40]);
  return v;
}

void EncodeNopOut(const NopOutBhs& v, Bhs* out) {
  Start(out, Opcode::kNopOut, v.immediate, kF, v.data_segment_length);
  EncodeBE64(&(*out)[8], v.lun);
  EncodeBE32(&(*out)[16], v.itt);
  EncodeBE32(&(*out)[20], v.ttt);
  EncodeBE32(&(*out)[24], v.cmdsn);
  EncodeBE32(&(*out)[28], v.expstatsn);
}

NopOutBhs DecodeNopOut(const Bhs& b) {
  NopOutBhs v;
  v.immediate = BhsImmediate(b);
  v.data_segment_length = BhsDataSegmentLength(b);
  v.lun = DecodeBE64(&b[8]);
  v.itt = DecodeBE32(&b[16]);
  v.ttt = DecodeBE32(&b[20]);
  v.cmdsn = DecodeBE32(&b[24]);
  v.expstatsn = DecodeBE32(&b[28]);
  return v;
}

void EncodeTaskMgmtRequest(const TaskMgmtRequestBhs& v, Bhs* out) {
  Start(out, Opcode::kTaskMgmtRequest, v.immediate, static_cast<uint8_t>(kF | (v.function & 0x7f)),
        0);
  EncodeBE64(&(*out)[8], v.lun);
  EncodeBE32(&(*out)[16], v.itt);
  EncodeBE32(&(*out)[20], v.rtt);
  EncodeBE32(&(*out)[24], v.cmdsn);
  EncodeBE32(&(*out)[28], v.expstatsn);
  EncodeBE32(&(*out)[32], v.refcmdsn);
  EncodeBE32(&(*out)[36], v.expdatasn);
}

TaskMgmtRequestBhs DecodeTaskMgmtRequest(const Bhs& b) {
  TaskMgmtRequestBhs v;
  v.immediate = BhsImmediate(b);
  v.function = b[1] & 0x7f;
  v.lun = DecodeBE64(&b[8]);
  v.itt = DecodeBE32(&b[16]);
  v.rtt = DecodeBE32(&b[20]);
  v.cmdsn = DecodeBE32(&b[24]);
  v.expstatsn = DecodeBE32(&b[28]);
  v.refcmdsn = DecodeBE32(&b[32]);
  v.expdatasn = DecodeBE32(&b[36]);
  return v;
}

void EncodeLoginRequest(const LoginRequestBhs& v, Bhs* out) {
  uint8_t flags = static_cast<uint8_t>((v.transit ? 0x80 : 0) | (v.cont ? 0x40 : 0) |
                                       ((v.csg & 3) << 2) | (v.nsg & 3));
  Start(out, Opcode::kLoginRequest, true, flags, v.data_segment_length);
  (*out)[2] = v.version_max;
  (*out)[3] = v.version_min;
  Put48(&(*out)[8], v.isid);
  Put16(&(*out)[14], v.tsih);
  EncodeBE32(&(*out)[16], v.itt);
  Put16(&(*out)[20], v.cid);
  EncodeBE32(&(*out)[24], v.cmdsn);
  EncodeBE32(&(*out)[28], v.expstatsn);
}

LoginRequestBhs DecodeLoginRequest(const Bhs& b) {
  LoginRequestBhs v;
  v.transit = (b[1] & 0x80) != 0;
  v.cont = (b[1] & 0x40) != 0;
  v.csg = (b[1] >> 2) & 3;
  v.nsg = b[1] & 3;
  v.version_max = b[2];
  v.version_min = b[3];
  v.data_segment_length = BhsDataSegmentLength(b);
  v.isid = Get48(&b[8]);
  v.tsih = Get16(&b[14]);
  v.itt = DecodeBE32(&b[16]);
  v.cid = Get16(&b[20]);
  v.cmdsn = DecodeBE32(&b[24]);
  v.expstatsn = DecodeBE32(&b[28]);
  return v;
}

void EncodeTextRequest(const TextRequestBhs& v, Bhs* out) {
  uint8_t flags = static_cast<uint8_t>((v.final ? 0x80 : 0) | (v.cont ? 0x40 : 0));
  Start(out, Opcode::kTextRequest, v.immediate, flags, v.data_segment_length);
  EncodeBE64(&(*out)[8], v.lun);
  EncodeBE32(&(*out)[16], v.itt);
  EncodeBE32(&(*out)[20], v.ttt);
  EncodeBE32(&(*out)[24], v.cmdsn);
  EncodeBE32(&(*out)[28], v.expstatsn);
}

TextRequestBhs DecodeTextRequest(const Bhs& b) {
  TextRequestBhs v;
  v.immediate = BhsImmediate(b);
  v.final = (b[1] & 0x80) != 0;
  v.cont = (b[1] & 0x40) != 0;
  v.data_segment_length = BhsDataSegmentLength(b);
  v.lun = DecodeBE64(&b[8]);
  v.itt = DecodeBE32(&b[16]);
  v.ttt = DecodeBE32(&b[20]);
  v.cmdsn = DecodeBE32(&b[24]);
  v.expstatsn = DecodeBE32(&b[28]);
  return v;
}

void EncodeLogoutRequest(const LogoutRequestBhs& v, Bhs* out) {
  Start(out, Opcode::kLogoutRequest, v.immediate, static_cast<uint8_t>(kF | (v.reason & 0x7f)), 0);
  EncodeBE32(&(*out)[16], v.itt);
  Put16(&(*out)[20], v.cid);
  EncodeBE32(&(*out)[24], v.cmdsn);
  EncodeBE32(&(*out)[28], v.expstatsn);
}

LogoutRequestBhs DecodeLogoutRequest(const Bhs& b) {
  LogoutRequestBhs v;
  v.immediate = BhsImmediate(b);
  v.reason = b[1] & 0x7f;
  v.itt = DecodeBE32(&b[16]);
  v.cid = Get16(&b[20]);
  v.cmdsn = DecodeBE32(&b[24]);
  v.expstatsn = DecodeBE32(&b[28]);
  return v;
}

void EncodeScsiResponse(const ScsiResponseBhs& v, Bhs* out) {
  uint8_t flags = static_cast<uint8_t>(kF | (v.bidi_overflow ? 0x10 : 0) |
                                       (v.bidi_underflow ? 0x08 : 0) | (v.overflow ? 0x04 : 0) |
                                       (v.underflow ? 0x02 : 0));
  Start(out, Opcode::kScsiResponse, false, flags, v.data_segment_length);
  (*out)[2] = v.response;
  (*out)[3] = v.status;
  EncodeBE32(&(*out)[16], v.itt);
  PutSn(out, v.sn);
  EncodeBE32(&(*out)[36], v.expdatasn);
  EncodeBE32(&(*out)[40], v.bidi_residual);
  EncodeBE32(&(*out)[44], v.residual);
}

ScsiResponseBhs DecodeScsiResponse(const Bhs& b) {
  ScsiResponseBhs v;
  v.bidi_overflow = (b[1] & 0x10) != 0;
  v.bidi_underflow = (b[1] & 0x08) != 0;
  v.overflow = (b[1] & 0x04) != 0;
  v.underflow = (b[1] & 0x02) != 0;
  v.response = b[2];
  v.status = b[3];
  v.data_segment_length = BhsDataSegmentLength(b);
  v.itt = DecodeBE32(&b[16]);
  v.sn = GetSn(b);
  v.expdatasn = DecodeBE32(&b[36]);
  v.bidi_residual = DecodeBE32(&b[40]);
  v.residual = DecodeBE32(&b[44]);
  return v;
}

void EncodeDataIn(const DataInBhs& v, Bhs* out) {
  uint8_t flags = static_cast<uint8_t>((v.final ? kF : 0) | (v.acknowledge ? 0x40 : 0) |
                                       (v.overflow ? 0x04 : 0) | (v.underflow ? 0x02 : 0) |
                                       (v.has_status ? 0x01 : 0));
  Start(out, Opcode::kDataIn, false, flags, v.data_segment_length);
  (*out)[3] = v.has_status ? v.status : 0;
  EncodeBE64(&(*out)[8], v.lun);
  EncodeBE32(&(*out)[16], v.itt);
  EncodeBE32(&(*out)[20], v.ttt);
  PutSn(out, v.sn);
  EncodeBE32(&(*out)[36], v.datasn);
  EncodeBE32(&(*out)[40], v.buffer_offset);
  EncodeBE32(&(*out)[44], v.residual);
}

DataInBhs DecodeDataIn(const Bhs& b) {
  DataInBhs v;
  v.final = (b[1] & kF) != 0;
  v.acknowledge = (b[1] & 0x40) != 0;
  v.overflow = (b[1] & 0x04) != 0;
  v.underflow = (b[1] & 0x02) != 0;
  v.has_status = (b[1] & 0x01) != 0;
  v.status = b[3];
  v.data_segment_length = BhsDataSegmentLength(b);
  v.lun = DecodeBE64(&b[8]);
  v.itt = DecodeBE32(&b[16]);
  v.ttt = DecodeBE32(&b[20]);
  v.sn = GetSn(b);
  v.datasn = DecodeBE32(&b[36]);
  v.buffer_offset = DecodeBE32(&b[40]);
  v.residual = DecodeBE32(&b[44]);
  return v;
}

void EncodeR2t(const R2tBhs& v, Bhs* out) {
  Start(out, Opcode::kR2t, false, kF, 0);
  EncodeBE64(&(*out)[8], v.lun);
  EncodeBE32(&(*out)[16], v.itt);
  EncodeBE32(&(*out)[20], v.ttt);
  PutSn(out, v.sn);
  EncodeBE32(&(*out)[36], v.r2tsn);
  EncodeBE32(&(*out)[40], v.buffer_offset);
  EncodeBE32(&(*out)[44], v.desired_length);
}

R2tBhs DecodeR2t(const Bhs& b) {
  R2tBhs v;
  v.lun = DecodeBE64(&b[8]);
  v.itt = DecodeBE32(&b[16]);
  v.ttt = DecodeBE32(&b[20]);
  v.sn = GetSn(b);
  v.r2tsn = DecodeBE32(&b[36]);
  v.buffer_offset = DecodeBE32(&b[40]);
  v.desired_length = DecodeBE32(&b[44]);
  return v;
}

void EncodeNopIn(const NopInBhs& v, Bhs* out) {
  Start(out, Opcode::kNopIn, false, kF, v.data_segment_length);
  EncodeBE64(&(*out)[8], v.lun);
  EncodeBE32(&(*out)[16], v.itt);
  EncodeBE32(&(*out)[20], v.ttt);
  PutSn(out, v.sn);
}

NopInBhs DecodeNopIn(const Bhs& b) {
  NopInBhs v;
  v.data_segment_length = BhsDataSegmentLength(b);
  v.lun = DecodeBE64(&b[8]);
  v.itt = DecodeBE32(&b[16]);
  v.ttt = DecodeBE32(&b[20]);
  v.sn = GetSn(b);
  return v;
}

void EncodeTaskMgmtResponse(const TaskMgmtResponseBhs& v, Bhs* out) {
  Start(out, Opcode::kTaskMgmtResponse, false, kF, 0);
  (*out)[2] = v.response;
  EncodeBE32(&(*out)[16], v.itt);
  PutSn(out, v.sn);
}

TaskMgmtResponseBhs DecodeTaskMgmtResponse(const Bhs& b) {
  TaskMgmtResponseBhs v;
  v.response = b[2];
  v.itt = DecodeBE32(&b[16]);
  v.sn = GetSn(b);
  return v;
}

void EncodeLoginResponse(const LoginResponseBhs& v, Bhs* out) {
  uint8_t flags = static_cast<uint8_t>((v.transit ? 0x80 : 0) | (v.cont ? 0x40 : 0) |
                                       ((v.csg & 3) << 2) | (v.nsg & 3));
  Start(out, Opcode::kLoginResponse, false, flags, v.data_segment_length);
  (*out)[2] = v.version_max;
  (*out)[3] = v.version_active;
  Put48(&(*out)[8], v.isid);
  Put16(&(*out)[14], v.tsih);
  EncodeBE32(&(*out)[16], v.itt);
  PutSn(out, v.sn);
  (*out)[36] = static_cast<uint8_t>(v.status >> 8);
  (*out)[37] = static_cast<uint8_t>(v.status);
}

LoginResponseBhs DecodeLoginResponse(const Bhs& b) {
  LoginResponseBhs v;
  v.transit = (b[1] & 0x80) != 0;
  v.cont = (b[1] & 0x40) != 0;
  v.csg = (b[1] >> 2) & 3;
  v.nsg = b[1] & 3;
  v.version_max = b[2];
  v.version_active = b[3];
  v.data_segment_length = BhsDataSegmentLength(b);
  v.isid = Get48(&b[8]);
  v.tsih = Get16(&b[14]);
  v.itt = DecodeBE32(&b[16]);
  v.sn = GetSn(b);
  v.status = Get16(&b[36]);
  return v;
}

void EncodeTextResponse(const TextResponseBhs& v, Bhs* out) {
  uint8_t flags = static_cast<uint8_t>((v.final ? 0x80 : 0) | (v.cont ? 0x40 : 0));
  Start(out, Opcode::kTextResponse, false, flags, v.data_segment_length);
  EncodeBE64(&(*out)[8], v.lun);
  EncodeBE32(&(*out)[16], v.itt);
  EncodeBE32(&(*out)[20], v.ttt);
  PutSn(out, v.sn);
}

TextResponseBhs DecodeTextResponse(const Bhs& b) {
  TextResponseBhs v;
  v.final = (b[1] & 0x80) != 0;
  v.cont = (b[1] & 0x40) != 0;
  v.data_segment_length = BhsDataSegmentLength(b);
  v.lun = DecodeBE64(&b[8]);
  v.itt = DecodeBE32(&b[16]);
  v.ttt = DecodeBE32(&b[20]);
  v.sn = GetSn(b);
  return v;
}

void EncodeLogoutResponse(const LogoutResponseBhs& v, Bhs* out) {
  Start(out, Opcode::kLogoutResponse, false, kF, 0);
  (*out)[2] = v.response;
  EncodeBE32(&(*out)[16], v.itt);
  PutSn(out, v.sn);
  Put16(&(*out)[40], v.time2wait);
  Put16(&(*out)[42], v.time2retain);
}

LogoutResponseBhs DecodeLogoutResponse(const Bhs& b) {
  LogoutResponseBhs v;
  v.response = b[2];
  v.itt = DecodeBE32(&b[16]);
  v.sn = GetSn(b);
  v.time2wait = Get16(&b[40]);
  v.time2retain = Get16(&b[42]);
  return v;
}

void EncodeReject(const RejectBhs& v, Bhs* out) {
  Start(out, Opcode::kReject, false, kF, v.data_segment_length);
  (*out)[2] = v.reason;
  EncodeBE32(&(*out)[16], kReservedTag);
  PutSn(out, v.sn);
  EncodeBE32(&(*out)[36], v.datasn);
}

RejectBhs DecodeReject(const Bhs& b) {
  RejectBhs v;
  v.reason = b[2];
  v.data_segment_length = BhsDataSegmentLength(b);
  v.sn = GetSn(b);
  v.datasn = DecodeBE32(&b[36]);
  return v;
}

}  // namespace blockhaus::iscsi
