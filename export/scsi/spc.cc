// Theory of operation: SPC-4 primary commands of a Blockhaus logical unit.
//
// Overview
//   INQUIRY (standard data and VPD pages 00h, 80h, 83h, B0h, B1h, B2h),
//   MODE SENSE/SELECT (6 and 10) over three pages (caching 08h, control
//   0Ah, informational exceptions 1Ch) and one subpage (logical block
//   provisioning 1Ch/02h, when the unit has a soft threshold), REQUEST
//   SENSE, TEST UNIT READY,
//   REPORT SUPPORTED OPERATION CODES and TASK MANAGEMENT FUNCTIONS, START
//   STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL and the SPC-2 RESERVE/RELEASE.
//   REPORT LUNS lives in lun_map.cc (it is the target's, not the unit's).
//   Each page has its own builder; each builder returns the whole page and
//   ReturnData() cuts it to the allocation length, so transfer_length is
//   always the allocation length and data_in never exceeds it.
//
// Data structures & on-disk format
//   None persistent. The mode pages are constants: nothing is changeable
//   (the changeable-values page is all zeros), the write cache is reported
//   enabled (WCE=1) because writes are acknowledged from the open txg and
//   made durable by SYNCHRONIZE CACHE or FUA (sbc.cc). MODE SELECT accepts
//   exactly the current values and rejects any change with 05h/26h/00h.
//   The NAA designator of VPD 83h comes from LunOptions::naa_id (NAA 6,
//   IEEE Registered Extended); when the daemon leaves it 0 a hash of the
//   serial stands in, so the identity is stable across restarts as long as
//   the serial is.
//
// Invariants
//   * every length read from a CDB or a parameter list is checked against
//     the bytes present before use; page walks advance at least 2 bytes per
//     step and stop at the parameter list length (no recursion, SPDK #873).
//   * REPORT SUPPORTED OPERATION CODES is generated from the dispatch table
//     (logical_unit.cc), so it lists exactly what Execute() runs.
//
// Concurrency & lock order
//   Handlers run with Unit::io_mu_ shared; REQUEST SENSE, PREVENT and
//   RESERVE/RELEASE take Unit::mu_ (order in logical_unit.cc).
//
// Crash consistency
//   Nothing here is durable; an SPC-2 reservation ends with its nexus or a
//   LOGICAL UNIT RESET.
//
// Failure handling
//   Bad CDB fields: 05h/24h/00h. Bad parameter lists: 05h/26h/00h, or
//   05h/1Ah/00h when the list is shorter than its own header says. Saved
//   pages: 05h/39h/00h. LOEJ on this non-removable medium: 05h/24h/00h.
//
// Tunables
//   kMaxTransferBytes (8 MiB), kMaxUnmapBlocks (1 Mi LBAs), kMaxUnmapDescriptors
//   (256), MaxWriteSameBlocks() (64 Ki LBAs, at most one maximum transfer),
//   kMaxCompareAndWriteBlocks (128):
//   reported in the Block Limits page and enforced in sbc.cc.

#include <algorithm>
#include <cstring>

#include "export/scsi/internal/limits.h"
#include "export/scsi/internal/unit.h"

namespace blockhaus::scsi::internal {
namespace {

void PutPadded(uint8_t* dst, size_t width, const std::string& s) {
  std::memset(dst, ' ', width);
  size_t n = std::min(width, s.size());
  for (size_t i = 0; i < n; ++i) {
    char ch = s[i];
    dst[i] = (ch >= 0x20 && ch <= 0x7e) ? static_cast<uint8_t>(ch) : '_';
  }
}

// FNV-1a: a stable 64-bit stand-in for an unset NAA id.
uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char ch : s) {
    h ^= static_cast<uint8_t>(ch);
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string SerialOf(const LunOptions& o) { return o.serial.empty() ? "0" : o.serial; }

// SPC-4 §6.4.2: standard INQUIRY data, 96 bytes with version descriptors.
std::vector<uint8_t> StandardInquiry(const LunOptions& o) {
  std::vector<uint8_t> d(kStandardInquiryLength, 0);
  d[0] = 0x00;          // peripheral qualifier 000b, direct-access block device
  d[1] = 0x00;          // RMB=0: not removable
  d[2] = 0x06;          // VERSION: SPC-4
  d[3] = 0x12;          // HISUP=1, RESPONSE DATA FORMAT=2
  d[4] = static_cast<uint8_t>(kStandardInquiryLength - 5);
  d[7] = 0x02;          // CMDQUE
  PutPadded(&d[8], 8, o.vendor);
  PutPadded(&d[16], 16, o.product);
  PutPadded(&d[32], 4, o.revision);
  // Version descriptors (SPC-4 §6.4.2 table 146): SAM-5, iSCSI, SPC-4, SBC-3.
  const uint16_t kVersions[] = {0x00a0, 0x0960, 0x0460, 0x04c0};
  for (size_t i = 0; i < std::size(kVersions); ++i) EncodeBE16(&d[58 + 2 * i], kVersions[i]);
  return d;
}

std::vector<uint8_t> VpdHeader(uint8_t page, size_t length) {
  std::vector<uint8_t> d(4 + length, 0);
  d[1] = page;
  EncodeBE16(&d[2], static_cast<uint16_t>(length));
  return d;
}

std::vector<uint8_t> SupportedPages() {
  const uint8_t pages[] = {vpd::kSupportedPages, vpd::kUnitSerialNumber,
                           vpd::kDeviceIdentification, vpd::kBlockLimits,
                           vpd::kBlockDeviceCharacteristics, vpd::kLogicalBlockProvisioning};
  std::vector<uint8_t> d = VpdHeader(vpd::kSupportedPages, sizeof(pages));
  std::memcpy(&d[4], pages, sizeof(pages));
  return d;
}

std::vector<uint8_t> SerialPage(const LunOptions& o) {
  std::string serial = SerialOf(o);
  std::vector<uint8_t> d = VpdHeader(vpd::kUnitSerialNumber, serial.size());
  PutPadded(&d[4], serial.size(), serial);
  return d;
}

void AppendDesignator(std::vector<uint8_t>* d, uint8_t b0, uint8_t b1, const uint8_t* id,
                      size_t len) {
  d->insert(d->end(), {b0, b1, 0, static_cast<uint8_t>(len)});
  d->insert(d->end(), id, id + len);
}

// SPC-4 §7.8.6: the logical unit's NAA and T10 vendor designators, and the
// relative target port of the nexus asking.
std::vector<uint8_t> DeviceIdentification(const LunOptions& o, const Nexus& nexus) {
  std::vector<uint8_t> d = VpdHeader(vpd::kDeviceIdentification, 0);
  uint64_t id = o.naa_id != 0 ? o.naa_id : Fnv1a(SerialOf(o));
  uint8_t naa[16] = {};
  EncodeBE64(naa, (uint64_t{0x6} << 60) | (id & 0x0fffffffffffffffull));
  EncodeBE64(naa + 8, Fnv1a(SerialOf(o) + "/" + o.product));
  AppendDesignator(&d, 0x01, 0x03, naa, sizeof(naa));   // binary, LU, NAA
  std::vector<uint8_t> t10(24);
  PutPadded(&t10[0], 8, o.vendor);
  PutPadded(&t10[8], 16, o.product);
  std::string serial = SerialOf(o);
  t10.insert(t10.end(), serial.begin(), serial.end());
  if (t10.size() > 252) t10.resize(252);
  AppendDesignator(&d, 0x02, 0x01, t10.data(), t10.size());   // ASCII, LU, T10 vendor id
  uint8_t rtp[4] = {0, 0, 0, 0};
  EncodeBE16(rtp + 2, nexus.relative_target_port);
  AppendDesignator(&d, 0x51, 0x94, rtp, sizeof(rtp));   // iSCSI, PIV, target port, RTP
  EncodeBE16(&d[2], static_cast<uint16_t>(d.size() - 4));
  return d;
}

// SBC-3 §6.5.3 Block Limits.
std::vector<uint8_t> BlockLimits(const Unit& u, const volume::BlockDevice& dev) {
  uint32_t lbs = u.lbs();
  uint32_t granularity = std::max<uint32_t>(1, dev.block_size() / lbs);
  std::vector<uint8_t> d = VpdHeader(vpd::kBlockLimits, kBlockLimitsPageLength);
  d[4] = 0x01;                                   // WSNZ: WRITE SAME of 0 blocks is refused
  d[5] = kMaxCompareAndWriteBlocks;
  EncodeBE16(&d[6], static_cast<uint16_t>(std::min<uint32_t>(granularity, 0xffff)));
  EncodeBE32(&d[8], kMaxTransferBytes / lbs);    // MAXIMUM TRANSFER LENGTH
  EncodeBE32(&d[12], std::max<uint32_t>(granularity, kOptimalTransferBytes / lbs));
  EncodeBE32(&d[20], kMaxUnmapBlocks);
  EncodeBE32(&d[24], kMaxUnmapDescriptors);
  EncodeBE32(&d[28], granularity);               // OPTIMAL UNMAP GRANULARITY
  EncodeBE32(&d[32], 0x80000000u);               // UGAVALID, alignment 0
  EncodeBE64(&d[36], MaxWriteSameBlocks(lbs));
  return d;
}

std::vector<uint8_t> BlockDeviceCharacteristics() {
  std::vector<uint8_t> d = VpdHeader(vpd::kBlockDeviceCharacteristics, 0x3c);
  EncodeBE16(&d[4], 0x0001);                     // MEDIUM ROTATION RATE: non-rotating
  return d;
}

// SBC-3 §6.5.4: LBPU, LBPWS, LBPWS10, LBPRZ (holes read as zeros), thin;
// THRESHOLD EXPONENT when the unit has a soft threshold (0: none).
std::vector<uint8_t> LogicalBlockProvisioning(const Unit& u, const volume::BlockDevice& dev) {
  std::vector<uint8_t> d = VpdHeader(vpd::kLogicalBlockProvisioning, 4);
  if (std::optional<SoftThreshold> t = SoftThresholdOf(u, dev)) d[4] = t->exponent;
  d[5] = 0x80 | 0x40 | 0x20 | 0x04;
  d[6] = 0x02;                                   // PROVISIONING TYPE: thin
  return d;
}

}  // namespace

void TestUnitReady(Ctx& c) { (void)c; }

void Inquiry(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  bool evpd = cdb[1] & 0x01;
  uint8_t page = cdb[2];
  uint32_t alloc = DecodeBE16(cdb + 3);
  if ((cdb[1] & 0xfe) != 0 || (!evpd && page != 0)) return InvalidField(c);
  if (!evpd) return ReturnData(c, StandardInquiry(c.unit.options()), alloc);
  switch (page) {
    case vpd::kSupportedPages: return ReturnData(c, SupportedPages(), alloc);
    case vpd::kUnitSerialNumber: return ReturnData(c, SerialPage(c.unit.options()), alloc);
    case vpd::kDeviceIdentification:
      return ReturnData(c, DeviceIdentification(c.unit.options(), c.nexus), alloc);
    case vpd::kBlockLimits: return ReturnData(c, BlockLimits(c.unit, c.dev), alloc);
    case vpd::kBlockDeviceCharacteristics:
      return ReturnData(c, BlockDeviceCharacteristics(), alloc);
    case vpd::kLogicalBlockProvisioning:
      return ReturnData(c, LogicalBlockProvisioning(c.unit, c.dev), alloc);
    default: return InvalidField(c);
  }
}

void RequestSense(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  if (cdb[1] & 0x01) return InvalidField(c);   // DESC=1: only fixed format is supported
  std::vector<uint8_t> sense;
  {
    MutexLock lock(&c.unit.mu_);
    auto it = c.unit.nexuses_.find(c.nexus.id);
    if (it != c.unit.nexuses_.end() && !it->second.unit_attentions.empty()) {
      Asc ua = it->second.unit_attentions.front();
      it->second.unit_attentions.pop_front();
      c.unit.UpdateSlowPath();
      sense = FixedSense(SenseKey::kUnitAttention, ua.asc, ua.ascq);
    }
  }
  if (sense.empty()) sense = FixedSense(SenseKey::kNoSense, 0, 0);
  ReturnData(c, std::move(sense), cdb[4]);
}

void StartStopUnit(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  // LOEJ on a medium that cannot be removed (RMB=0) is an invalid field.
  if (cdb[4] & 0x02) return InvalidField(c);
}

void PreventAllow(Ctx& c) {
  uint8_t prevent = c.cdb()[4] & 0x03;
  if (prevent > 1) return InvalidField(c);   // 10b/11b are obsolete/media changer only
  MutexLock lock(&c.unit.mu_);
  auto it = c.unit.nexuses_.find(c.nexus.id);
  if (it != c.unit.nexuses_.end()) it->second.prevent_removal = prevent == 1;
}

void Reserve(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  // RESERVE(10) third-party (3RDPTY) and LONGID are not supported; (6)
  // extents are obsolete.
  if (cdb[0] == op::kReserve10 ? (cdb[1] & 0x12) != 0 : (cdb[1] & 0x01) != 0) {
    return InvalidField(c);
  }
  MutexLock lock(&c.unit.mu_);
  if (c.unit.pr_.reserved ||
      (c.unit.reserve6_holder_ && *c.unit.reserve6_holder_ != c.nexus.id)) {
    return ReservationConflict(c.rsp);
  }
  c.unit.reserve6_holder_ = c.nexus.id;
  c.unit.UpdateSlowPath();
}

void Release(Ctx& c) {
  MutexLock lock(&c.unit.mu_);
  if (c.unit.pr_.reserved) return ReservationConflict(c.rsp);
  // SPC-2 §7.19: a RELEASE from a nexus that holds nothing is a no-op.
  if (c.unit.reserve6_holder_ == c.nexus.id) {
    c.unit.reserve6_holder_.reset();
    c.unit.UpdateSlowPath();
  }
}

// SPC-4 §6.37: the opcode table, or one entry of it, with CDB usage data.
namespace {

constexpr size_t kTimeoutsDescriptorLength = 12;

void AppendTimeouts(std::vector<uint8_t>* d) {
  uint8_t t[kTimeoutsDescriptorLength] = {};
  EncodeBE16(t, 0x000a);
  EncodeBE32(t + 4, 0);      // NOMINAL COMMAND PROCESSING TIMEOUT: not specified
  EncodeBE32(t + 8, 30);     // RECOMMENDED COMMAND TIMEOUT: 30 s
  d->insert(d->end(), t, t + sizeof(t));
}

void AppendCommandDescriptor(std::vector<uint8_t>* d, uint8_t opcode, const ServiceActionEntry* sa,
                             uint8_t cdb_length, bool rctd) {
  uint8_t e[8] = {};
  e[0] = opcode;
  if (sa != nullptr) EncodeBE16(e + 2, sa->action);
  e[5] = static_cast<uint8_t>((rctd ? 0x02 : 0) | (sa != nullptr ? 0x01 : 0));
  EncodeBE16(e + 6, cdb_length);
  d->insert(d->end(), e, e + sizeof(e));
  if (rctd) AppendTimeouts(d);
}

std::vector<uint8_t> AllCommands(bool rctd) {
  std::vector<uint8_t> d(4, 0);
  const auto& table = CommandTable();
  for (size_t op = 0; op < table.size(); ++op) {
    const CommandEntry& e = table[op];
    uint8_t opcode = static_cast<uint8_t>(op);
    if (e.fn != nullptr) AppendCommandDescriptor(&d, opcode, nullptr, e.cdb_length, rctd);
    for (uint8_t i = 0; i < e.action_count; ++i) {
      AppendCommandDescriptor(&d, opcode, &e.actions[i], e.actions[i].cdb_length, rctd);
    }
  }
  EncodeBE32(&d[0], static_cast<uint32_t>(d.size() - 4));
  return d;
}

std::vector<uint8_t> OneCommand(bool supported, uint8_t cdb_length, const uint8_t* usage,
                                bool rctd) {
  std::vector<uint8_t> d(4, 0);
  d[1] = static_cast<uint8_t>((rctd ? 0x80 : 0) | (supported ? 0x03 : 0x01));
  if (!supported) return d;
  EncodeBE16(&d[2], cdb_length);
  d.insert(d.end(), usage, usage + cdb_length);
  if (rctd) AppendTimeouts(&d);
  return d;
}

}  // namespace

void ReportSupportedOpcodes(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  bool rctd = cdb[2] & 0x80;
  uint8_t options = cdb[2] & 0x07;
  uint8_t opcode = cdb[3];
  uint16_t action = DecodeBE16(cdb + 4);
  uint32_t alloc = DecodeBE32(cdb + 6);
  const CommandEntry& e = CommandTable()[opcode];
  switch (options) {
    case 0:
      return ReturnData(c, AllCommands(rctd), alloc);
    case 1:   // by opcode: commands with service actions need option 2
      if (e.action_count > 0) return InvalidFieldAt(c, 2);
      return ReturnData(c, OneCommand(e.fn != nullptr, e.cdb_length, e.usage.data(), rctd),
                        alloc);
    case 2: {  // by opcode and service action
      if (e.action_count == 0) return InvalidFieldAt(c, 2);
      const ServiceActionEntry* sa =
          action <= 0x1f ? FindServiceAction(e, static_cast<uint8_t>(action)) : nullptr;
      if (sa == nullptr) return ReturnData(c, OneCommand(false, 0, nullptr, rctd), alloc);
      return ReturnData(c, OneCommand(true, sa->cdb_length, sa->usage.data(), rctd), alloc);
    }
    default:
      return InvalidFieldAt(c, 2);
  }
}

// SPC-4 §6.39: ABORT TASK, ABORT TASK SET, LOGICAL UNIT RESET (what the
// transport answers; the others get "function not supported").
void ReportSupportedTmfs(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  bool repd = cdb[2] & 0x80;
  uint32_t alloc = DecodeBE32(cdb + 6);
  if (alloc < 4) return InvalidField(c);
  std::vector<uint8_t> d(repd ? 16 : 4, 0);
  d[0] = 0x80 | 0x40 | 0x08;   // ATS, ATSS, LURS
  if (repd) d[3] = 0x0c;
  ReturnData(c, std::move(d), alloc);
}

}  // namespace blockhaus::scsi::internal
