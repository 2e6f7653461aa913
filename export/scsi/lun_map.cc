// Theory of operation: the LUN map of one iSCSI target (SAM-5 §4.6).
//
// Overview
//   LunMap routes each command to the LogicalUnit its LUN names. REPORT
//   LUNS (SPC-4 §6.33) is the target's own command and answered here for
//   any LUN, mapped or not; INQUIRY to an unmapped LUN answers peripheral
//   qualifier 011b (no unit can be attached there), REQUEST SENSE returns
//   05h/25h/00h as data, anything else gets CHECK CONDITION 05h/25h/00h
//   LOGICAL UNIT NOT SUPPORTED.
//
// Data structures
//   Rep::units, LUN number -> shared unit. Callers get shared_ptr copies,
//   so a unit unmapped while a command runs lives until that command ends.
//
// Invariants
//   * REPORT LUNS lists exactly the keys of Rep::units, in order.
//   * MapLun/UnmapLun queue 3Fh/0Eh REPORTED LUNS DATA HAS CHANGED on every
//     unit that stays mapped, for every nexus it knows.
//
// Concurrency & lock order
//   Rep::mu guards the map only; it is released before a unit is called,
//   so it never nests with a unit's locks.
//
// Crash consistency
//   None: the daemon rebuilds the map from the exports stored in the pool.
//
// Failure handling
//   Bad REPORT LUNS fields (SELECT REPORT beyond 02h, allocation length
//   under 16): 05h/24h/00h.
//
// Tunables
//   None. LUNs up to 255 use peripheral addressing, up to 16383 flat
//   addressing (SAM-5 §4.7); larger numbers are not mapped (MapLun checks).

#include <map>
#include <mutex>

#include "core/base/thread_annotations.h"
#include "export/scsi/scsi_spec.h"
#include "export/scsi/scsi_target.h"
#include "export/scsi/sense.h"

namespace blockhaus::scsi {
namespace {

constexpr uint64_t kMaxLun = 16383;

void Fail(Response* rsp, SenseKey key, Asc code) {
  rsp->status = kStatusCheckCondition;
  rsp->sense = FixedSense(key, code.asc, code.ascq);
  rsp->data_in.clear();
}

void EncodeLun(uint8_t* p, uint64_t lun) {
  if (lun < 256) {
    p[0] = 0x00;   // peripheral device addressing
    p[1] = static_cast<uint8_t>(lun);
  } else {
    p[0] = static_cast<uint8_t>(0x40 | (lun >> 8));   // flat space addressing
    p[1] = static_cast<uint8_t>(lun);
  }
}

void ReportLuns(const std::vector<uint64_t>& luns, const Command& cmd, Response* rsp) {
  const uint8_t* cdb = cmd.cdb.data();
  uint8_t select = cdb[2];
  uint32_t alloc = DecodeBE32(cdb + 6);
  if (select > 0x02 || alloc < 16) return Fail(rsp, SenseKey::kIllegalRequest, asc::kInvalidFieldInCdb);
  std::vector<uint8_t> d(8, 0);
  if (select != 0x01) {   // 01h: well-known LUNs only, and there are none
    for (uint64_t lun : luns) {
      uint8_t e[8] = {};
      EncodeLun(e, lun);
      d.insert(d.end(), e, e + 8);
    }
  }
  EncodeBE32(&d[0], static_cast<uint32_t>(d.size() - 8));
  if (d.size() > alloc) d.resize(alloc);
  rsp->data_in.assign(d.begin(), d.end());
  rsp->transfer_length = alloc;
}

// SPC-4 §6.4.2: peripheral qualifier 011b, device type 1Fh.
void InquiryNoUnit(const Command& cmd, Response* rsp) {
  const uint8_t* cdb = cmd.cdb.data();
  uint32_t alloc = DecodeBE16(cdb + 3);
  if ((cdb[1] & 0x01) || cdb[2] != 0) {
    return Fail(rsp, SenseKey::kIllegalRequest, asc::kLunNotSupported);
  }
  std::vector<uint8_t> d(36, 0);
  d[0] = 0x7f;
  d[2] = 0x06;
  d[3] = 0x12;
  d[4] = 31;
  if (d.size() > alloc) d.resize(alloc);
  rsp->data_in.assign(d.begin(), d.end());
  rsp->transfer_length = alloc;
}

}  // namespace

struct LunMap::Rep {
  mutable Mutex mu;
  std::map<uint64_t, std::shared_ptr<LogicalUnit>> units BH_GUARDED_BY(mu);
};

LunMap::LunMap() : rep_(std::make_unique<Rep>()) {}
LunMap::~LunMap() = default;

void LunMap::Execute(const Nexus& nexus, const Command& cmd, Response* response) {
  response->status = kStatusGood;
  response->sense.clear();
  response->data_in.clear();
  response->transfer_length = 0;
  if (cmd.cdb[0] == op::kReportLuns) return ReportLuns(Luns(), cmd, response);
  std::shared_ptr<LogicalUnit> unit = Find(cmd.lun);
  if (unit != nullptr) return unit->Execute(nexus, cmd, response);
  switch (cmd.cdb[0]) {
    case op::kInquiry:
      return InquiryNoUnit(cmd, response);
    case op::kRequestSense: {
      std::vector<uint8_t> d = FixedSense(SenseKey::kIllegalRequest, asc::kLunNotSupported.asc,
                                          asc::kLunNotSupported.ascq);
      uint32_t alloc = cmd.cdb[4];
      if (d.size() > alloc) d.resize(alloc);
      response->data_in.assign(d.begin(), d.end());
      response->transfer_length = alloc;
      return;
    }
    default:
      return Fail(response, SenseKey::kIllegalRequest, asc::kLunNotSupported);
  }
}

bool LunMap::TryExecute(const Nexus& nexus, const Command& cmd, Response* response) {
  if (cmd.cdb[0] == op::kReportLuns) return false;
  std::shared_ptr<LogicalUnit> unit = Find(cmd.lun);
  return unit != nullptr && unit->TryExecute(nexus, cmd, response);
}

void LunMap::StageWrite(const Nexus& nexus, const Command& cmd) {
  std::shared_ptr<LogicalUnit> unit = Find(cmd.lun);
  if (unit != nullptr) unit->StageWrite(nexus, cmd);
}

bool LunMap::HasLun(uint64_t lun) const { return Find(lun) != nullptr; }

bool LunMap::ResetLun(const Nexus& nexus, uint64_t lun) {
  std::shared_ptr<LogicalUnit> unit = Find(lun);
  if (unit == nullptr) return false;
  unit->Reset(nexus.id);
  return true;
}

void LunMap::NexusLost(uint64_t nexus_id) {
  std::vector<std::shared_ptr<LogicalUnit>> units;
  {
    MutexLock lock(&rep_->mu);
    for (const auto& [lun, unit] : rep_->units) units.push_back(unit);
  }
  for (const auto& unit : units) unit->NexusLost(nexus_id);
}

void LunMap::MapLun(uint64_t lun, std::shared_ptr<LogicalUnit> unit) {
  if (lun > kMaxLun || unit == nullptr) return;
  std::vector<std::shared_ptr<LogicalUnit>> others;
  {
    MutexLock lock(&rep_->mu);
    for (const auto& [l, u] : rep_->units) {
      if (l != lun) others.push_back(u);
    }
    rep_->units[lun] = std::move(unit);
  }
  for (const auto& u : others) {
    u->SetUnitAttention(asc::kReportedLunsDataChanged.asc, asc::kReportedLunsDataChanged.ascq);
  }
}

void LunMap::UnmapLun(uint64_t lun) {
  std::vector<std::shared_ptr<LogicalUnit>> others;
  {
    MutexLock lock(&rep_->mu);
    if (rep_->units.erase(lun) == 0) return;
    for (const auto& [l, u] : rep_->units) others.push_back(u);
  }
  for (const auto& u : others) {
    u->SetUnitAttention(asc::kReportedLunsDataChanged.asc, asc::kReportedLunsDataChanged.ascq);
  }
}

std::shared_ptr<LogicalUnit> LunMap::Find(uint64_t lun) const {
  MutexLock lock(&rep_->mu);
  auto it = rep_->units.find(lun);
  return it == rep_->units.end() ? nullptr : it->second;
}

std::vector<uint64_t> LunMap::Luns() const {
  MutexLock lock(&rep_->mu);
  std::vector<uint64_t> luns;
  for (const auto& [lun, unit] : rep_->units) luns.push_back(lun);
  return luns;
}

}  // namespace blockhaus::scsi
