// Theory of operation: the logical unit (dispatch, unit attentions,
// reservation checks). SPC-4 commands live in spc.cc, SBC-3 commands in
// sbc.cc, persistent reservations in persistent_reservations.cc.
//
// Overview
//   Execute() takes one command of one I_T nexus and runs it to completion
//   on the calling thread (the transport's I/O thread). The opcode picks a
//   CommandEntry from a constexpr table of 256 (tgt's dispatch table); an
//   entry with service actions picks again by CDB byte 1 bits 4..0. An empty
//   entry answers 05h/20h/00h INVALID COMMAND OPERATION CODE; an unknown
//   service action 05h/24h/00h. Before a handler runs, Admit() applies, in
//   SAM-5 order: the nexus's oldest pending unit attention (not for
//   INQUIRY, REPORT LUNS, REQUEST SENSE), then an SPC-2 RESERVE held by
//   another nexus, then persistent reservations (SPC-4 §5.13.1 table 50,
//   through the entry's Access class); RunPinned() then checks write
//   protection against the device it has pinned.
//
// Data structures
//   Unit::nexuses_: per-nexus state (unit attention queue, the SPC-4 port
//   identity, PREVENT state), created at the nexus's first command with a
//   29h/00h POWER ON OR RESET attention (libiscsi and Linux clear it with a
//   TEST UNIT READY after login), or 29h/07h I_T NEXUS LOSS OCCURRED when
//   the same initiator port lost its previous nexus (lost_ports_, session
//   reinstatement). reserve6_holder_: the SPC-2 reservation.
//   soft_threshold_reached_: the thin-provisioning soft threshold (sbc.cc)
//   was crossed and has not been re-armed; each command that writes the
//   medium checks it after it ran (fast path included), so the crossing
//   queues one 38h/07h per I_T nexus.
//   pr_: persistent reservations (persistent_reservations.cc).
//
// Invariants
//   * slow_ is true whenever any nexus has a pending unit attention or any
//     reservation (SPC-2 or persistent) is held.
//   * the fast path (READ/WRITE 10/16 of an admitted nexus while slow_ is
//     false) never takes mu_ and allocates nothing beyond data_in; up to
//     kFastPathSlots sessions (multipath, clusters) share it.
//   * every handler sees the device pinned: io_mu_ is held shared for the
//     whole command, exclusive by COMPARE AND WRITE, ORWRITE and
//     ReplaceDevice.
//
// Concurrency & lock order
//   1. Unit::io_mu_ (std::shared_mutex; shared for commands, exclusive for
//      COMPARE AND WRITE, ORWRITE and ReplaceDevice)
//   2. Unit::mu_ (state above); PersistentStore::Save is called under it
//   3. locks inside volume::BlockDevice (never taken while holding mu_)
//   LunMap::Rep::mu (lun_map.cc) is never held while calling into a unit.
//   slow_ and admitted_ are atomics: written under mu_ with release
//   order, read by the fast path with acquire order, so a fast-path command
//   that sees slow_ == false also sees the state that made it false. A
//   command racing with a new unit attention or reservation may run before
//   it, as if it had arrived first.
//
// Crash consistency
//   Unit attentions, SPC-2 reservations and mode pages are volatile (SPC
//   says so). Persistent reservations with APTPL=1 are saved through the
//   PersistentStore before the PERSISTENT RESERVE OUT command completes.
//
// Failure handling
//   Handlers never throw; every Status from the BlockDevice becomes sense
//   data in StatusToSense() (sense.cc), the only such mapping.
//
// Tunables
//   kMaxUnitAttentions (16): per nexus; further attentions are dropped
//   (the 29h/00h already queued tells the initiator to rescan).
//   kMaxLostPorts (64): lost initiator ports remembered for 29h/07h.
//   kFastPathSlots (16): admitted-nexus slots of the fast path.

#include <algorithm>
#include <mutex>

#include "export/scsi/internal/cdb.h"
#include "export/scsi/internal/unit.h"

namespace blockhaus::scsi::internal {
namespace {

using U = std::array<uint8_t, 16>;

constexpr ServiceActionEntry kServiceActionIn16[] = {
    {sa::kReadCapacity16, ReadCapacity16, 16, Access::kAlways, kNone,
     U{0x9e, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}},
    {sa::kGetLbaStatus, GetLbaStatus, 16, Access::kRead, kNone,
     U{0x9e, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}},
};

constexpr ServiceActionEntry kMaintenanceIn[] = {
    {sa::kReportSupportedOpcodes, ReportSupportedOpcodes, 12, Access::kAlways,
     kAllowedUnderReserve, U{0xa3, 0x1f, 0x87, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0}},
    {sa::kReportSupportedTmfs, ReportSupportedTmfs, 12, Access::kAlways, kAllowedUnderReserve,
     U{0xa3, 0x1f, 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}},
};

constexpr U kPrInUsage{0x5e, 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, 0};
constexpr ServiceActionEntry kPrIn[] = {
    {prin::kReadKeys, PersistentReserveIn, 10, Access::kAlways, kAllowedUnderReserve, kPrInUsage},
    {prin::kReadReservation, PersistentReserveIn, 10, Access::kAlways, kAllowedUnderReserve,
     kPrInUsage},
    {prin::kReportCapabilities, PersistentReserveIn, 10, Access::kAlways, kAllowedUnderReserve,
     kPrInUsage},
    {prin::kReadFullStatus, PersistentReserveIn, 10, Access::kAlways, kAllowedUnderReserve,
     kPrInUsage},
};

// PERSISTENT RESERVE OUT checks reservations itself (SPC-4 §5.13.1 lists
// it as allowed; the service actions decide).
constexpr U kPrOutUsage{0x5f, 0x1f, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, 0};
constexpr ServiceActionEntry kPrOut[] = {
    {prout::kRegister, PersistentReserveOut, 10, Access::kAlways, kNone, kPrOutUsage},
    {prout::kReserve, PersistentReserveOut, 10, Access::kAlways, kNone, kPrOutUsage},
    {prout::kRelease, PersistentReserveOut, 10, Access::kAlways, kNone, kPrOutUsage},
    {prout::kClear, PersistentReserveOut, 10, Access::kAlways, kNone, kPrOutUsage},
    {prout::kPreempt, PersistentReserveOut, 10, Access::kAlways, kNone, kPrOutUsage},
    {prout::kPreemptAndAbort, PersistentReserveOut, 10, Access::kAlways, kNone, kPrOutUsage},
    {prout::kRegisterAndIgnore, PersistentReserveOut, 10, Access::kAlways, kNone, kPrOutUsage},
    {prout::kRegisterAndMove, PersistentReserveOut, 10, Access::kAlways, kNone, kPrOutUsage},
};

template <size_t N>
constexpr CommandEntry WithActions(const ServiceActionEntry (&actions)[N], uint8_t cdb_length) {
  CommandEntry e;
  e.fn = nullptr;
  e.cdb_length = cdb_length;
  e.actions = actions;
  e.action_count = static_cast<uint8_t>(N);
  return e;
}

constexpr CommandEntry Entry(Handler fn, uint8_t len, Access access, uint8_t flags, U usage) {
  CommandEntry e;
  e.fn = fn;
  e.cdb_length = len;
  e.access = access;
  e.flags = flags;
  e.usage = usage;
  return e;
}

// Usage masks of the block commands by CDB length: DPO, FUA, FUA_NV in
// byte 1 (protection fields are not supported and so not marked).
constexpr U kRw10{0, 0x1a, 0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0};
constexpr U kRw12{0, 0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0};
constexpr U kRw16{0, 0x1a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0};

constexpr U WithOpcode(U usage, uint8_t opcode, uint8_t byte1) {
  usage[0] = opcode;
  usage[1] = byte1;
  return usage;
}

constexpr std::array<CommandEntry, 256> BuildTable() {
  std::array<CommandEntry, 256> t{};
  const auto kW = Access::kWrite;
  const auto kR = Access::kRead;
  const auto kA = Access::kAlways;
  t[op::kTestUnitReady] = Entry(TestUnitReady, 6, kA, kNone, U{0x00, 0, 0, 0, 0, 0});
  t[op::kRequestSense] = Entry(RequestSense, 6, kA, kNoUnitAttention | kAllowedUnderReserve,
                               U{0x03, 0x01, 0, 0, 0xff, 0});
  t[op::kRead6] = Entry(Read, 6, kR, kNone, U{0x08, 0x1f, 0xff, 0xff, 0xff, 0});
  t[op::kWrite6] = Entry(Write, 6, kW, kWritesMedium, U{0x0a, 0x1f, 0xff, 0xff, 0xff, 0});
  t[op::kInquiry] = Entry(Inquiry, 6, kA, kNoUnitAttention | kAllowedUnderReserve,
                          U{0x12, 0x01, 0xff, 0xff, 0xff, 0});
  t[op::kModeSelect6] = Entry(ModeSelect, 6, kW, kNone, U{0x15, 0x11, 0, 0, 0xff, 0});
  t[op::kReserve6] = Entry(Reserve, 6, kW, kNone, U{0x16, 0, 0, 0, 0, 0});
  t[op::kRelease6] = Entry(Release, 6, kW, kAllowedUnderReserve, U{0x17, 0, 0, 0, 0, 0});
  t[op::kModeSense6] = Entry(ModeSense, 6, kR, kNone, U{0x1a, 0x08, 0xff, 0, 0xff, 0});
  t[op::kStartStopUnit] = Entry(StartStopUnit, 6, kW, kNone, U{0x1b, 0x01, 0, 0x0f, 0xf7, 0});
  t[op::kPreventAllow] = Entry(PreventAllow, 6, kW, kNone, U{0x1e, 0, 0, 0, 0x03, 0});
  t[op::kReadCapacity10] =
      Entry(ReadCapacity10, 10, kA, kNone, U{0x25, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0x01, 0});
  t[op::kRead10] = Entry(Read, 10, kR, kNone, WithOpcode(kRw10, op::kRead10, 0x1a));
  t[op::kWrite10] = Entry(Write, 10, kW, kWritesMedium, WithOpcode(kRw10, op::kWrite10, 0x1a));
  t[op::kWriteVerify10] =
      Entry(WriteAndVerify, 10, kW, kWritesMedium, WithOpcode(kRw10, op::kWriteVerify10, 0x12));
  t[op::kVerify10] = Entry(Verify, 10, kR, kNone, WithOpcode(kRw10, op::kVerify10, 0x16));
  t[op::kPreFetch10] = Entry(PreFetch, 10, kR, kNone, WithOpcode(kRw10, op::kPreFetch10, 0x02));
  t[op::kSyncCache10] =
      Entry(SynchronizeCache, 10, kW, kNone, WithOpcode(kRw10, op::kSyncCache10, 0x02));
  t[op::kWriteSame10] =
      Entry(WriteSame, 10, kW, kWritesMedium, WithOpcode(kRw10, op::kWriteSame10, 0x08));
  t[op::kUnmap] = Entry(Unmap, 10, kW, kWritesMedium, U{0x42, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0});
  t[op::kModeSelect10] =
      Entry(ModeSelect, 10, kW, kNone, U{0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, 0});
  t[op::kReserve10] = Entry(Reserve, 10, kW, kNone, U{0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  t[op::kRelease10] =
      Entry(Release, 10, kW, kAllowedUnderReserve, U{0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0});
  t[op::kModeSense10] =
      Entry(ModeSense, 10, kR, kNone, U{0x5a, 0x18, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0});
  t[op::kPrIn] = WithActions(kPrIn, 10);
  t[op::kPrOut] = WithActions(kPrOut, 10);
  t[op::kRead16] = Entry(Read, 16, kR, kNone, WithOpcode(kRw16, op::kRead16, 0x1a));
  t[op::kCompareAndWrite] = Entry(CompareAndWrite, 16, kW, kWritesMedium,
                                  U{0x89, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                    0, 0, 0, 0xff, 0, 0});
  t[op::kWrite16] = Entry(Write, 16, kW, kWritesMedium, WithOpcode(kRw16, op::kWrite16, 0x1a));
  t[op::kOrWrite16] =
      Entry(OrWrite, 16, kW, kWritesMedium, WithOpcode(kRw16, op::kOrWrite16, 0x1a));
  t[op::kReadDefectData10] =
      Entry(ReadDefectData, 10, kR, kNone, U{0x37, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0});
  t[op::kReadDefectData12] = Entry(ReadDefectData, 12, kR, kNone,
                                   U{0xb7, 0x1f, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0});
  t[op::kWriteVerify16] =
      Entry(WriteAndVerify, 16, kW, kWritesMedium, WithOpcode(kRw16, op::kWriteVerify16, 0x12));
  t[op::kVerify16] = Entry(Verify, 16, kR, kNone, WithOpcode(kRw16, op::kVerify16, 0x16));
  t[op::kPreFetch16] = Entry(PreFetch, 16, kR, kNone, WithOpcode(kRw16, op::kPreFetch16, 0x02));
  t[op::kSyncCache16] =
      Entry(SynchronizeCache, 16, kW, kNone, WithOpcode(kRw16, op::kSyncCache16, 0x02));
  t[op::kWriteSame16] =
      Entry(WriteSame, 16, kW, kWritesMedium, WithOpcode(kRw16, op::kWriteSame16, 0x09));
  t[op::kServiceActionIn16] = WithActions(kServiceActionIn16, 16);
  t[op::kMaintenanceIn] = WithActions(kMaintenanceIn, 12);
  t[op::kRead12] = Entry(Read, 12, kR, kNone, WithOpcode(kRw12, op::kRead12, 0x1a));
  t[op::kWrite12] = Entry(Write, 12, kW, kWritesMedium, WithOpcode(kRw12, op::kWrite12, 0x1a));
  t[op::kWriteVerify12] =
      Entry(WriteAndVerify, 12, kW, kWritesMedium, WithOpcode(kRw12, op::kWriteVerify12, 0x12));
  t[op::kVerify12] = Entry(Verify, 12, kR, kNone, WithOpcode(kRw12, op::kVerify12, 0x16));
  return t;
}

constexpr std::array<CommandEntry, 256> kCommandTable = BuildTable();

}  // namespace

const std::array<CommandEntry, 256>& CommandTable() { return kCommandTable; }

const ServiceActionEntry* FindServiceAction(const CommandEntry& entry, uint8_t action) {
  for (uint8_t i = 0; i < entry.action_count; ++i) {
    if (entry.actions[i].action == action) return &entry.actions[i];
  }
  return nullptr;
}

void CheckCondition(Response* rsp, SenseKey key, Asc code) {
  rsp->status = kStatusCheckCondition;
  rsp->sense = FixedSense(key, code.asc, code.ascq);
  rsp->data_in.clear();
}

void FailWith(Ctx& c, const Status& status, bool writing) {
  SenseData s = StatusToSense(status, writing);
  CheckCondition(c.rsp, s.key, Asc{s.asc, s.ascq});
}

void ReturnData(Ctx& c, std::vector<uint8_t> data, uint32_t allocation_length) {
  if (data.size() > allocation_length) data.resize(allocation_length);
  c.rsp->data_in.assign(data.begin(), data.end());
  c.rsp->transfer_length = allocation_length;
}

Unit::Unit(std::unique_ptr<volume::BlockDevice> device, const LunOptions& options,
           PersistentStore* store, PrState loaded)
    : store_(store), options_(options), device_(std::move(device)) {
  MutexLock lock(&mu_);
  pr_ = std::move(loaded);
  UpdateSlowPath();
}

void Unit::QueueAttention(Asc code, const PortId* port, uint64_t except) {
  for (auto& [id, n] : nexuses_) {
    if (id == except || (port != nullptr && !(n.port == *port))) continue;
    auto& q = n.unit_attentions;
    bool dup = std::any_of(q.begin(), q.end(),
                           [&](const Asc& a) { return a.asc == code.asc && a.ascq == code.ascq; });
    if (!dup && q.size() < kMaxUnitAttentions) q.push_back(code);
  }
  UpdateSlowPath();
}

void Unit::UpdateSlowPath() {
  bool slow = reserve6_holder_.has_value() || pr_.reserved;
  for (const auto& [id, n] : nexuses_) slow = slow || !n.unit_attentions.empty();
  // Release: a fast-path reader that sees false also sees the state above.
  slow_.store(slow, std::memory_order_release);
}

bool Unit::FastPathAllowed(const Command& cmd) const {
  uint8_t opcode = cmd.cdb[0];
  if (opcode != op::kRead10 && opcode != op::kRead16 && opcode != op::kWrite10 &&
      opcode != op::kWrite16) {
    return false;
  }
  // Acquire pairs with UpdateSlowPath's release.
  return cmd.nexus_id != 0 && !slow_.load(std::memory_order_acquire) &&
         admitted_[cmd.nexus_id % kFastPathSlots].load(std::memory_order_acquire) == cmd.nexus_id;
}

void Unit::Execute(const Nexus& nexus, const Command& cmd, Response* response) {
  // Keep data_in's capacity: a transport that reuses Responses allocates
  // nothing per I/O.
  response->status = kStatusGood;
  response->sense.clear();
  response->data_in.clear();
  response->transfer_length = 0;
  if (FastPathAllowed(cmd)) {
    std::shared_lock<std::shared_mutex> pin(io_mu_);
    Ctx c{*this, nexus, cmd, response, *device_};
    const CommandEntry& e = kCommandTable[cmd.cdb[0]];
    e.fn(c);
    if (e.flags & kWritesMedium) CheckSoftThreshold(*this, *device_);
    return;
  }
  Dispatch(nexus, cmd, response);
}

bool Unit::TryExecute(const Nexus& nexus, const Command& cmd, Response* response) {
  const uint8_t opcode = cmd.cdb[0];
  // FastPathAllowed: READ or WRITE (10/16) of an admitted nexus.
  if (!FastPathAllowed(cmd)) return false;
  std::shared_lock<std::shared_mutex> pin(io_mu_, std::try_to_lock);
  if (!pin.owns_lock()) return false;  // a device swap is waiting
  response->status = kStatusGood;
  response->sense.clear();
  response->data_in.clear();
  response->transfer_length = 0;
  Ctx c{*this, nexus, cmd, response, *device_};
  c.nowait = true;
  const CommandEntry& e = kCommandTable[opcode];
  e.fn(c);
  if (c.would_block) return false;
  if (e.flags & kWritesMedium) CheckSoftThreshold(*this, *device_);
  return true;
}

void Unit::StageWrite(const Nexus& nexus, const Command& cmd) {
  const uint8_t opcode = cmd.cdb[0];
  if (cmd.staged == nullptr || (opcode != op::kWrite10 && opcode != op::kWrite16) ||
      !FastPathAllowed(cmd)) {
    return;
  }
  std::shared_lock<std::shared_mutex> pin(io_mu_, std::try_to_lock);
  if (!pin.owns_lock()) return;  // a device swap is waiting
  Ctx c{*this, nexus, cmd, /*rsp=*/nullptr, *device_};
  c.nowait = true;
  StageWriteData(c);
}

void Unit::Dispatch(const Nexus& nexus, const Command& cmd, Response* rsp) {
  const CommandEntry& entry = kCommandTable[cmd.cdb[0]];
  Handler fn = entry.fn;
  Access access = entry.access;
  uint8_t flags = entry.flags;
  const ServiceActionEntry* action = nullptr;
  if (entry.action_count > 0) {
    action = FindServiceAction(entry, cmd.cdb[1] & 0x1f);
    if (action != nullptr) {
      fn = action->fn;
      access = action->access;
      flags = action->flags;
    }
  }
  if (!Admit(nexus, entry, access, flags, rsp)) return;
  if (entry.fn == nullptr && entry.action_count == 0) {
    CheckCondition(rsp, SenseKey::kIllegalRequest, asc::kInvalidOpcode);
    return;
  }
  if (fn == nullptr) {
    CheckCondition(rsp, SenseKey::kIllegalRequest, asc::kInvalidFieldInCdb);
    return;
  }
  if (cmd.cdb[0] == op::kCompareAndWrite || cmd.cdb[0] == op::kOrWrite16) {
    std::unique_lock<std::shared_mutex> pin(io_mu_);
    RunPinned(nexus, cmd, rsp, fn, flags);
    return;
  }
  std::shared_lock<std::shared_mutex> pin(io_mu_);
  RunPinned(nexus, cmd, rsp, fn, flags);
}

// REQUIRES: io_mu_ held (shared or exclusive), so device_ stays put.
void Unit::RunPinned(const Nexus& nexus, const Command& cmd, Response* rsp, Handler fn,
                     uint8_t flags) {
  if ((flags & kWritesMedium) && (options_.read_only || device_->read_only())) {
    CheckCondition(rsp, SenseKey::kDataProtect, asc::kWriteProtected);
    return;
  }
  Ctx c{*this, nexus, cmd, rsp, *device_};
  fn(c);
  if (flags & kWritesMedium) CheckSoftThreshold(*this, *device_);
}

bool Unit::Admit(const Nexus& nexus, const CommandEntry& entry, Access access, uint8_t flags,
                 Response* rsp) {
  MutexLock lock(&mu_);
  auto [it, first_contact] = nexuses_.try_emplace(nexus.id);
  NexusState& n = it->second;
  if (first_contact) {
    n.port = PortId{nexus.initiator_port, nexus.relative_target_port};
    auto lost = std::find(lost_ports_.begin(), lost_ports_.end(), n.port);
    if (lost != lost_ports_.end()) {
      lost_ports_.erase(lost);
      n.unit_attentions.push_back(asc::kItNexusLoss);
    } else {
      n.unit_attentions.push_back(asc::kPowerOnOrReset);
    }
  }
  admitted_[nexus.id % kFastPathSlots].store(nexus.id, std::memory_order_release);
  if (!n.unit_attentions.empty() && !(flags & kNoUnitAttention)) {
    Asc ua = n.unit_attentions.front();
    n.unit_attentions.pop_front();
    UpdateSlowPath();
    CheckCondition(rsp, SenseKey::kUnitAttention, ua);
    return false;
  }
  if (first_contact) UpdateSlowPath();
  if (entry.fn == nullptr && entry.action_count == 0) return true;  // invalid opcode next
  if (reserve6_holder_ && *reserve6_holder_ != nexus.id && !(flags & kAllowedUnderReserve)) {
    ReservationConflict(rsp);
    return false;
  }
  if (pr_.reserved && !PrAllows(pr_, n.port, access)) {
    ReservationConflict(rsp);
    return false;
  }
  return true;
}

void Unit::ReplaceDevice(std::unique_ptr<volume::BlockDevice> device, uint8_t asc,
                         uint8_t ascq) {
  {
    std::unique_lock<std::shared_mutex> pin(io_mu_);
    device_ = std::move(device);
  }
  MutexLock lock(&mu_);
  QueueAttention(Asc{asc, ascq}, nullptr, 0);
}

void Unit::SetUnitAttention(uint8_t asc, uint8_t ascq, uint64_t except_nexus) {
  MutexLock lock(&mu_);
  QueueAttention(Asc{asc, ascq}, nullptr, except_nexus);
}

void Unit::NexusLost(uint64_t nexus_id) {
  MutexLock lock(&mu_);
  // SPC-4 §5.13.1: an I_T nexus loss releases an SPC-2 reservation; PR
  // registrations belong to the port identity and survive.
  if (reserve6_holder_ == nexus_id) reserve6_holder_.reset();
  auto it = nexuses_.find(nexus_id);
  if (it != nexuses_.end()) {
    // SAM-5 §6.3.4: the port's next nexus hears about the loss.
    if (lost_ports_.size() >= kMaxLostPorts) lost_ports_.pop_front();
    lost_ports_.push_back(it->second.port);
    nexuses_.erase(it);
  }
  uint64_t expected = nexus_id;
  admitted_[nexus_id % kFastPathSlots].compare_exchange_strong(expected, 0,
                                                                std::memory_order_acq_rel);
  UpdateSlowPath();
}

void Unit::Reset(uint64_t nexus_id) {
  (void)nexus_id;
  MutexLock lock(&mu_);
  // SAM-5 §6.3.3: a LOGICAL UNIT RESET releases SPC-2 reservations and
  // PREVENT state (persistent reservations stay) and raises a unit
  // attention on every I_T nexus, the one that asked included (libiscsi
  // MultipathIO.Reset checks each path).
  reserve6_holder_.reset();
  for (auto& [id, n] : nexuses_) n.prevent_removal = false;
  QueueAttention(asc::kPowerOnOrReset, nullptr, 0);
}

}  // namespace blockhaus::scsi::internal

namespace blockhaus::scsi {

Result<std::shared_ptr<LogicalUnit>> LogicalUnit::Create(
    std::unique_ptr<volume::BlockDevice> device, const LunOptions& options,
    PersistentStore* store) {
  if (device == nullptr) return BH_ERROR(kInvalidArgument, "no device");
  uint32_t lbs = options.logical_block_size;
  if (lbs != 512 && lbs != 4096) {
    return BH_ERROR(kInvalidArgument, "logical block size {} is not 512 or 4096", lbs);
  }
  if (device->block_size() % lbs != 0 || device->size() % lbs != 0 || device->size() == 0) {
    return BH_ERROR(kInvalidArgument, "device ({} bytes, blocks of {}) does not fit {}-byte LBAs",
                    device->size(), device->block_size(), lbs);
  }
  internal::PrState pr;
  if (store != nullptr) {
    BH_ASSIGN_OR_RETURN(std::vector<uint8_t> saved, store->Load());
    if (!saved.empty()) {
      BH_ASSIGN_OR_RETURN(pr, internal::PrState::Decode(saved));
    }
  }
  return std::shared_ptr<LogicalUnit>(
      std::make_shared<internal::Unit>(std::move(device), options, store, std::move(pr)));
}

}  // namespace blockhaus::scsi
