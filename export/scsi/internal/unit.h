// The LogicalUnit implementation shared by logical_unit.cc (dispatch, unit
// attentions, conflicts), spc.cc, sbc.cc and persistent_reservations.cc.
// Private to export/scsi. Theory of operation: logical_unit.cc (dispatch),
// spc.cc, sbc.cc, persistent_reservations.cc.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/base/thread_annotations.h"
#include "export/scsi/scsi_spec.h"
#include "export/scsi/scsi_target.h"
#include "export/scsi/sense.h"

namespace blockhaus::scsi::internal {

class Unit;

inline constexpr size_t kMaxUnitAttentions = 16;
inline constexpr size_t kMaxLostPorts = 64;
inline constexpr size_t kFastPathSlots = 16;   // sessions that share the fast path

// One command in flight: what a handler reads and writes.
struct Ctx {
  Unit& unit;
  const Nexus& nexus;
  const Command& cmd;
  Response* rsp;
  volume::BlockDevice& dev;   // pinned for the command by Unit::io_mu_ (shared)
  // TryExecute: read with BlockDevice::TryRead, write with TryWrite; a
  // handler that would have to wait sets would_block and leaves the unit's
  // state as it found it.
  bool nowait = false;
  bool would_block = false;
  const uint8_t* cdb() const { return cmd.cdb.data(); }
};

// Ends the command with CHECK CONDITION and fixed sense key/ASC/ASCQ.
void CheckCondition(Response* rsp, SenseKey key, Asc code);
inline void InvalidField(Ctx& c) {
  CheckCondition(c.rsp, SenseKey::kIllegalRequest, asc::kInvalidFieldInCdb);
}
// INVALID FIELD IN CDB naming the byte (sense-key specific field pointer,
// SPC-4 §4.5.2.4.2). Initiators (libiscsi among them) read a 05h/24h/00h
// without a pointer on a MAINTENANCE IN command as "command not supported".
inline void InvalidFieldAt(Ctx& c, uint16_t cdb_byte) {
  InvalidField(c);
  c.rsp->sense[15] = 0x80 | 0x40;   // SKSV, C/D = the CDB
  c.rsp->sense[16] = static_cast<uint8_t>(cdb_byte >> 8);
  c.rsp->sense[17] = static_cast<uint8_t>(cdb_byte);
}
inline void InvalidParameter(Ctx& c) {
  CheckCondition(c.rsp, SenseKey::kIllegalRequest, asc::kInvalidFieldInParameterList);
}
inline void ReservationConflict(Response* rsp) {
  rsp->status = kStatusReservationConflict;
  rsp->sense.clear();
}
// Ends the command with the sense StatusToSense() gives for `status`.
void FailWith(Ctx& c, const Status& status, bool writing);
// Sets data_in to `data` cut to `allocation_length` and transfer_length to
// the allocation length (data_in.size() <= transfer_length; scsi_target.h).
void ReturnData(Ctx& c, std::vector<uint8_t> data, uint32_t allocation_length);

using Handler = void (*)(Ctx&);

// How a command fares under a reservation another I_T nexus holds
// (SPC-4 §5.13.1 table 50 for persistent reservations, SPC-2 §5.5.1 for
// RESERVE(6)/(10)).
enum class Access : uint8_t {
  kAlways,    // INQUIRY, REPORT LUNS, REQUEST SENSE, PR IN, RSOC...
  kRead,      // reads medium or state: allowed under write-exclusive types
  kWrite,     // changes medium or state: conflicts for non-registrants
};

enum CommandFlags : uint8_t {
  kNone = 0,
  kNoUnitAttention = 1,    // INQUIRY, REPORT LUNS, REQUEST SENSE (SAM-5 §5.14)
  kAllowedUnderReserve = 2,  // allowed while another nexus holds RESERVE(6)
  kWritesMedium = 4,       // DATA PROTECT on a read-only unit
};

struct ServiceActionEntry {
  uint8_t action = 0;
  Handler fn = nullptr;
  uint8_t cdb_length = 0;
  Access access = Access::kAlways;
  uint8_t flags = kNone;
  std::array<uint8_t, 16> usage{};   // CDB usage data for REPORT SUPPORTED OPERATION CODES
};

struct CommandEntry {
  Handler fn = nullptr;           // null: INVALID COMMAND OPERATION CODE
  uint8_t cdb_length = 0;
  Access access = Access::kAlways;
  uint8_t flags = kNone;
  std::array<uint8_t, 16> usage{};
  const ServiceActionEntry* actions = nullptr;   // set: byte 1 bits 4..0 select one
  uint8_t action_count = 0;
};

// The opcode table (logical_unit.cc) and its service-action lookup.
const std::array<CommandEntry, 256>& CommandTable();
const ServiceActionEntry* FindServiceAction(const CommandEntry& entry, uint8_t action);

// Handlers (spc.cc).
void TestUnitReady(Ctx& c);
void RequestSense(Ctx& c);
void Inquiry(Ctx& c);
void ModeSense(Ctx& c);
void ModeSelect(Ctx& c);
void ReportSupportedOpcodes(Ctx& c);
void ReportSupportedTmfs(Ctx& c);
void StartStopUnit(Ctx& c);
void PreventAllow(Ctx& c);
void Reserve(Ctx& c);
void Release(Ctx& c);
// Handlers (sbc.cc).
void ReadCapacity10(Ctx& c);
void ReadCapacity16(Ctx& c);
void Read(Ctx& c);
void Write(Ctx& c);
// LogicalUnit::StageWrite for a WRITE(10/16): the blocks of cmd.data_out a
// Write would take at once go to BlockDevice::StageWrite. Touches nothing
// else (c.rsp may be null).
void StageWriteData(Ctx& c);
void WriteAndVerify(Ctx& c);
void Verify(Ctx& c);
void SynchronizeCache(Ctx& c);
void PreFetch(Ctx& c);
void Unmap(Ctx& c);
void WriteSame(Ctx& c);
void GetLbaStatus(Ctx& c);
void CompareAndWrite(Ctx& c);
void OrWrite(Ctx& c);
void ReadDefectData(Ctx& c);
// Handlers (persistent_reservations.cc).
void PersistentReserveIn(Ctx& c);
void PersistentReserveOut(Ctx& c);

// The thin-provisioning soft threshold of a unit as SBC-3 §4.7.3.7 reports
// it: in threshold sets of 2^exponent LBAs of "available LBA mapping
// resources" (the pool's space available to the unit), armed decreasing.
struct SoftThreshold {
  uint8_t exponent = 0;        // VPD B2h THRESHOLD EXPONENT
  uint64_t set_bytes = 0;      // bytes in one threshold set
  uint32_t count = 0;          // THRESHOLD COUNT: reached below this many sets
  uint64_t rearm_sets = 1;     // armed again at count + rearm_sets or more
  volume::ProvisioningStatus now;   // what the device reported
};
// nullopt when the unit has no threshold: soft_threshold_percent 0, a
// read-only unit, or a device that cannot report its space (sbc.cc).
std::optional<SoftThreshold> SoftThresholdOf(const Unit& u, const volume::BlockDevice& dev);
// After a command that writes or unmaps: queues 38h/07h for every I_T
// nexus when the threshold is newly reached (once per crossing), re-arms
// it once enough space is back. REQUIRES: io_mu_ held, mu_ not held.
void CheckSoftThreshold(Unit& u, const volume::BlockDevice& dev);

// SPC-4 I_T nexus identity for reservations: the initiator port (iSCSI
// name + ",i,0x" + ISID) and the relative target port.
struct PortId {
  std::string initiator_port;
  uint16_t target_port = 0;
  bool operator==(const PortId&) const = default;
};

struct Registration {
  PortId port;
  uint64_t key = 0;
  bool all_target_ports = false;   // ALL_TG_PT=1: holds for every target port
};

// Persistent reservation state of one unit (persistent_reservations.cc).
struct PrState {
  uint32_t generation = 0;
  std::vector<Registration> registrations;
  bool reserved = false;
  PrType type = PrType::kNone;
  PortId holder;          // meaningful for types other than all-registrants
  bool aptpl = false;

  const Registration* Find(const PortId& port) const;
  Registration* Find(const PortId& port);
  bool IsHolder(const PortId& port) const;
  std::vector<uint8_t> Encode() const;
  static Result<PrState> Decode(ConstByteSpan bytes);
};

// SPC-4 §5.13.1: may `port` run a command of class `access` now?
bool PrAllows(const PrState& pr, const PortId& port, Access access);

struct NexusState {
  std::deque<Asc> unit_attentions;   // oldest first; bounded (kMaxUnitAttentions)
  PortId port;
  bool prevent_removal = false;
};

class Unit : public LogicalUnit {
 public:
  Unit(std::unique_ptr<volume::BlockDevice> device, const LunOptions& options,
       PersistentStore* store, PrState loaded);

  void Execute(const Nexus& nexus, const Command& cmd, Response* response) override;
  bool TryExecute(const Nexus& nexus, const Command& cmd, Response* response) override;
  void StageWrite(const Nexus& nexus, const Command& cmd) override;
  void ReplaceDevice(std::unique_ptr<volume::BlockDevice> device, uint8_t asc,
                     uint8_t ascq) override;
  void SetUnitAttention(uint8_t asc, uint8_t ascq, uint64_t except_nexus) override;
  void NexusLost(uint64_t nexus_id) override;
  void Reset(uint64_t nexus_id) override;

  const LunOptions& options() const { return options_; }
  uint32_t lbs() const { return options_.logical_block_size; }

  // State the handlers share. Lock order: io_mu_ (shared or exclusive)
  // before mu_; nothing is called below mu_ except PersistentStore::Save.
  Mutex mu_;
  std::unordered_map<uint64_t, NexusState> nexuses_ BH_GUARDED_BY(mu_);
  std::optional<uint64_t> reserve6_holder_ BH_GUARDED_BY(mu_);
  // Initiator ports whose nexus was lost, oldest first (at most
  // kMaxLostPorts): their next nexus starts with 29h/07h I_T NEXUS LOSS
  // OCCURRED instead of 29h/00h.
  std::deque<PortId> lost_ports_ BH_GUARDED_BY(mu_);
  PrState pr_ BH_GUARDED_BY(mu_);
  PersistentStore* store_;
  // Queues `code` for every nexus whose port is `port` (all ports when null)
  // except `except`.
  void QueueAttention(Asc code, const PortId* port, uint64_t except) BH_REQUIRES(mu_);
  // Recomputes slow_ after a change of UAs or reservations.
  void UpdateSlowPath() BH_REQUIRES(mu_);
  // Holds the device exclusively: COMPARE AND WRITE and ORWRITE (atomic
  // against every other write) and ReplaceDevice.
  std::shared_mutex io_mu_;
  // The soft threshold has been reached and not re-armed since (sbc.cc
  // CheckSoftThreshold; acq_rel exchange: one UNIT ATTENTION per crossing).
  std::atomic<bool> soft_threshold_reached_{false};

 private:
  bool FastPathAllowed(const Command& cmd) const;
  // The checks before a handler runs: unit attention and reservations.
  // False when they ended the command. Touches no device (device_ may be
  // swapped while it runs; only io_mu_ pins it).
  bool Admit(const Nexus& nexus, const CommandEntry& entry, Access access, uint8_t flags,
             Response* rsp);
  void Dispatch(const Nexus& nexus, const Command& cmd, Response* rsp);
  // Write protection, then the handler, with io_mu_ held by the caller.
  void RunPinned(const Nexus& nexus, const Command& cmd, Response* rsp, Handler fn,
                 uint8_t flags);

  LunOptions options_;
  std::unique_ptr<volume::BlockDevice> device_;   // swapped only under io_mu_ exclusive
  // True while any nexus has a pending unit attention or any reservation is
  // held; the READ/WRITE fast path runs only when false and the nexus has
  // been admitted before (its id sits in its slot of admitted_, so its
  // first-contact attention is done). Written under mu_ (release), read
  // without (acquire). A slot holds the last admitted nexus whose id maps
  // to it; a collision only sends a nexus back through the slow path.
  std::atomic<bool> slow_{false};
  std::array<std::atomic<uint64_t>, kFastPathSlots> admitted_{};
};



}  // namespace blockhaus::scsi::internal
