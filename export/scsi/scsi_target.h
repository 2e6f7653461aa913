// scsi::Target and scsi::LogicalUnit: the SCSI side of an export, the seam
// between export/iscsi (the transport) and volume/ (BlockDevice).
//
// The transport hands every SCSI command of an I_T nexus to the Target of
// the iSCSI target it belongs to, with its write data already gathered, and
// gets back a status, sense data and read data. All SCSI to block
// translation lives below this header (SPC-4 in spc.cc, SBC-3 in sbc.cc);
// the transport never looks inside a CDB beyond what RFC 7143 needs.
//
// Residuals: Response::transfer_length is the number of bytes the CDB calls
// for in its data direction (a READ's length in bytes, an INQUIRY's
// allocation length, a WRITE's length in bytes, a parameter list length).
// data_in.size() never exceeds it (data is cut to the allocation length).
// The transport sets the residual (RFC 7143 §11.4.5) from these two and
// EDTL: for reads, overflow by transfer_length - EDTL when transfer_length
// > EDTL, else underflow by EDTL - min(EDTL, data_in.size()) when that is
// positive (an INQUIRY that returns less than asked); it sends at most EDTL
// bytes of data_in. For writes, overflow by transfer_length - EDTL, or
// underflow by EDTL - transfer_length.
//
// Write data (Command::data_out) holds what the transport gathered, at most
// EDTL bytes. When it is shorter than the CDB asks (EDTL < transfer
// length), the command writes only the whole logical blocks received and
// succeeds (libiscsi iSCSIResiduals); extra bytes past the transfer length
// are ignored. Parameter lists (UNMAP, MODE SELECT, PERSISTENT RESERVE OUT)
// shorter than their CDB says get 05h/1Ah/00h PARAMETER LIST LENGTH ERROR.
//
// Unit attentions, reservations and the rest of the per-nexus state live in
// the LogicalUnit, keyed by Nexus::id. The transport reports nexus
// lifetime (NexusLost) and task management (ResetLun). A TARGET WARM/COLD
// RESET is ResetLun for every LUN of LunMap::Luns().
//
// Thread safety: Target and LogicalUnit are thread-safe. Execute blocks on
// block I/O; the transport calls it from its I/O threads, never from an
// event loop. An event loop may call TryExecute, which runs a command only
// when it can finish without waiting for a device or a commit (a READ whose
// data and metadata are in memory, a WRITE of whole blocks the pool takes
// at once) and otherwise changes nothing. While a WRITE's data arrives in
// bursts, an event loop may call StageWrite with the bytes so far, which
// compresses the whole blocks among them ahead of TryExecute (D35) and
// changes nothing else.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/base/buffer.h"
#include "core/base/endian.h"
#include "core/base/status.h"
#include "volume/block_device.h"

namespace blockhaus::scsi {

// SAM-5 status codes.
inline constexpr uint8_t kStatusGood = 0x00;
inline constexpr uint8_t kStatusCheckCondition = 0x02;
inline constexpr uint8_t kStatusConditionMet = 0x04;
inline constexpr uint8_t kStatusBusy = 0x08;
inline constexpr uint8_t kStatusReservationConflict = 0x18;
inline constexpr uint8_t kStatusTaskSetFull = 0x28;
inline constexpr uint8_t kStatusTaskAborted = 0x40;

enum class TaskAttr : uint8_t { kUntagged = 0, kSimple = 1, kOrdered = 2, kHeadOfQueue = 3, kAca = 4 };

// One I_T nexus: an iSCSI session on a target.
struct Nexus {
  uint64_t id = 0;                 // unique for the life of the daemon, never reused
  std::string initiator_name;      // "iqn.1993-08.org.debian:01:abc"
  std::string initiator_port;      // SPC-4 iSCSI TransportID form: name + ",i,0x" + ISID hex
  std::string target_name;         // the target's IQN
  uint16_t relative_target_port = 1;
};

struct Command {
  uint64_t nexus_id = 0;
  uint64_t lun = 0;                // flat LUN number (SAM-5 peripheral/flat addressing decoded)
  std::array<uint8_t, 16> cdb{};   // CDBs shorter than 16 bytes are zero-padded
  uint8_t cdb_length = 16;         // bytes of cdb that came on the wire (6..16)
  TaskAttr attr = TaskAttr::kSimple;
  uint32_t expected_length = 0;    // EDTL from the transport
  ConstByteSpan data_out;          // write data as received (may be shorter than the CDB asks)
  // The transport's stage for this write's blocks, or null: filled by
  // StageWrite while data_out is still arriving, taken by the TryExecute
  // of the whole command (D35). The transport Resets it afterwards.
  core::StagedWrite* staged = nullptr;
};

struct Response {
  uint8_t status = kStatusGood;
  std::vector<uint8_t> sense;      // fixed-format sense data (SPC-4 §4.5.3) when status is CHECK CONDITION
  Buffer data_in;                  // read data; the transport sends at most EDTL bytes of it
  uint32_t transfer_length = 0;    // bytes the CDB calls for in its data direction (see above)
};

// Where persistent reservations with APTPL=1 are kept (the daemon stores
// them in the pool, one record per LUN, keyed by the volume so a rollback
// keeps it). Save is called with the whole state (an opaque, versioned
// record; an empty one when APTPL was turned off) under the unit's lock
// after each change that must persist, and the PERSISTENT RESERVE OUT
// completes only after Save returns Ok, so Save must be durable when it
// returns. Load is called once by LogicalUnit::Create; a record that does
// not decode fails Create with Corruption.
class PersistentStore {
 public:
  virtual ~PersistentStore() = default;
  virtual Status Save(ConstByteSpan state) = 0;
  // An empty vector means nothing saved.
  virtual Result<std::vector<uint8_t>> Load() = 0;
};

struct LunOptions {
  uint32_t logical_block_size = 512;   // 512 or 4096; the device block size must be a multiple
  bool read_only = false;              // snapshots and --read-only exports: DATA PROTECT on writes
  std::string vendor = "BLOCKHAUS";    // INQUIRY T10 vendor (8 bytes, padded)
  std::string product = "VOLUME";      // INQUIRY product (16 bytes, padded)
  std::string revision = "0001";
  std::string serial;                  // VPD 0x80; stable across restarts and rollbacks
  uint64_t naa_id = 0;                 // VPD 0x83 NAA IEEE Registered designator (NAA 6, low 60 bits used)
  // Thin-provisioning soft threshold (SBC-3 §4.7.3.7): percent of the
  // pool's capacity in use at which every I_T nexus gets UNIT ATTENTION
  // 38h/07h THIN PROVISIONING SOFT THRESHOLD REACHED, once per crossing.
  // 1..99; 0 turns thresholds off. Applies only to a writable unit whose
  // device reports BlockDevice::Provisioning(). Fixed for the unit's life
  // (MODE SELECT cannot change it).
  uint8_t soft_threshold_percent = 80;
};

class LogicalUnit {
 public:
  // `store` may be null (reservations then do not persist; APTPL=1 gets
  // INVALID FIELD IN PARAMETER LIST). Not owned; must outlive the unit.
  // Errors: InvalidArgument (no device, a logical block size other than
  // 512/4096, a device block size or size that is not a multiple of it, an
  // empty device); Corruption (the stored reservation record); whatever
  // store->Load() returns.
  // Set LunOptions::serial and naa_id from the volume's identity (not the
  // dataset id of a rollback target) so INQUIRY stays the same across
  // restarts and rollbacks; naa_id 0 derives the NAA from the serial.
  static Result<std::shared_ptr<LogicalUnit>> Create(std::unique_ptr<volume::BlockDevice> device,
                                                     const LunOptions& options,
                                                     PersistentStore* store);
  virtual ~LogicalUnit() = default;

  virtual void Execute(const Nexus& nexus, const Command& cmd, Response* response) = 0;
  // Runs `cmd` as Execute would if that needs no wait for a device or a
  // lock (READ(10/16) on the fast path, data in memory; WRITE(10/16)
  // without FUA of whole blocks, no commit to wait for) and returns true;
  // otherwise returns false having changed no state (call Execute).
  virtual bool TryExecute(const Nexus& nexus, const Command& cmd, Response* response) {
    (void)nexus, (void)cmd, (void)response;
    return false;
  }
  // With cmd.data_out the first bytes of a WRITE(10/16) TryExecute could
  // run, prepares their whole blocks into cmd.staged; otherwise nothing.
  // Never waits, never answers, changes no state a command can see.
  virtual void StageWrite(const Nexus& nexus, const Command& cmd) { (void)nexus, (void)cmd; }

  // Swaps the backing device (after a live rollback or a resize): pending
  // commands finish on the old one first. Every nexus then gets UNIT
  // ATTENTION `asc`/`ascq` (for example 2Ah/09h CAPACITY DATA HAS CHANGED).
  // REQUIRES: `device` meets Create's constraints for this unit's logical
  // block size (non-empty, block size and size multiples of it).
  virtual void ReplaceDevice(std::unique_ptr<volume::BlockDevice> device, uint8_t asc,
                             uint8_t ascq) = 0;
  // Queues a UNIT ATTENTION for every nexus (or all but `except_nexus`).
  virtual void SetUnitAttention(uint8_t asc, uint8_t ascq, uint64_t except_nexus = 0) = 0;
  // The nexus is gone (session closed or reinstated): release its SPC-2
  // RESERVE, forget its unit attentions and PREVENT state. Persistent
  // reservation registrations belong to the initiator port
  // (Nexus::initiator_port + relative_target_port) and survive, as SPC-4
  // §5.13.1 says; a new session from the same port finds them again, and
  // its first command gets UNIT ATTENTION 29h/07h I_T NEXUS LOSS OCCURRED
  // (any other new nexus gets 29h/00h).
  virtual void NexusLost(uint64_t nexus_id) = 0;
  // LOGICAL UNIT RESET from `nexus_id`: clears RESERVE(6/10) reservations and
  // mode page changes, queues 29h/00h for every nexus, the caller's
  // included (SAM-5 §6.3.3).
  virtual void Reset(uint64_t nexus_id) = 0;
};

// What the transport calls: the LUNs of one iSCSI target. Abstract so the
// transport can be tested without the command set; LunMap is the real one.
class Target {
 public:
  virtual ~Target() = default;
  virtual void Execute(const Nexus& nexus, const Command& cmd, Response* response) = 0;
  // LogicalUnit::TryExecute for the command's LUN; the default never tries.
  virtual bool TryExecute(const Nexus& nexus, const Command& cmd, Response* response) {
    (void)nexus, (void)cmd, (void)response;
    return false;
  }
  // LogicalUnit::StageWrite for the command's LUN; the default does nothing.
  virtual void StageWrite(const Nexus& nexus, const Command& cmd) { (void)nexus, (void)cmd; }
  // False when `lun` is not mapped (TMF answers "LUN does not exist").
  virtual bool HasLun(uint64_t lun) const = 0;
  // LOGICAL UNIT RESET from `nexus` after the transport aborted the LUN's
  // tasks. False when `lun` is not mapped.
  virtual bool ResetLun(const Nexus& nexus, uint64_t lun) = 0;
  // The nexus is gone; every unit forgets it (LogicalUnit::NexusLost).
  virtual void NexusLost(uint64_t nexus_id) = 0;
};

// The LUN map of one iSCSI target. REPORT LUNS and commands to an unmapped
// LUN are answered here (INQUIRY of an unmapped LUN: peripheral qualifier
// 011b; anything else 05h/25h/00h); everything else goes to the unit.
class LunMap : public Target {
 public:
  LunMap();
  ~LunMap() override;
  void Execute(const Nexus& nexus, const Command& cmd, Response* response) override;
  bool TryExecute(const Nexus& nexus, const Command& cmd, Response* response) override;
  void StageWrite(const Nexus& nexus, const Command& cmd) override;
  bool HasLun(uint64_t lun) const override;
  bool ResetLun(const Nexus& nexus, uint64_t lun) override;
  void NexusLost(uint64_t nexus_id) override;

  // Adds or replaces a LUN; every nexus gets 3Fh/0Eh REPORTED LUNS DATA HAS CHANGED.
  void MapLun(uint64_t lun, std::shared_ptr<LogicalUnit> unit);
  void UnmapLun(uint64_t lun);
  std::shared_ptr<LogicalUnit> Find(uint64_t lun) const;
  std::vector<uint64_t> Luns() const;

 private:
  struct Rep;
  std::unique_ptr<Rep> rep_;
};

}  // namespace blockhaus::scsi
