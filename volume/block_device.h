// BlockDevice: the one interface export/ uses to reach a volume.
//
// Byte-addressed reads, writes and unmaps over a volume (or a read-only
// snapshot), in units the initiator chooses. Writes smaller than a volume
// block read-modify-write it under a per-block lock; whole blocks of zeros
// are stored as holes (they use no space). Writes are acknowledged from the
// open txg and are durable after Flush() (what SYNCHRONIZE CACHE maps to;
// a volume flushes through the pool's intent log, core::Pool::FlushWrites).
//
// Errors: InvalidArgument (range beyond the volume, or overflow),
// PermissionDenied (write to a snapshot or a readonly volume),
// ResourceExhausted (pool out of space), Corruption (checksum mismatch),
// Unavailable (pool suspended or volume being rolled back).
// Provisioning() tells how much space is left behind the device, for the
// SCSI thin-provisioning thresholds (docs/DECISIONS.md D20).
// A write whose data is still arriving may have its whole blocks prepared
// ahead (StageWrite) and handed to TryWrite with the same stage (D35).
// Thread safety: thread-safe; a core::StagedWrite is used by one caller at
// a time.
#pragma once

#include <cstdint>
#include <optional>

#include "core/base/endian.h"
#include "core/base/status.h"

namespace blockhaus::core {
class StagedWrite;
}  // namespace blockhaus::core

namespace blockhaus::volume {

// The space a device writes into (SBC-3 "LBA mapping resources"): for a
// volume, its pool, which every volume of the pool shares.
struct ProvisioningStatus {
  uint64_t capacity_bytes = 0;    // what the pool holds for data in all
  uint64_t available_bytes = 0;   // what writes to this device may still take
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  virtual uint64_t size() const = 0;
  virtual uint32_t block_size() const = 0;
  virtual bool read_only() const = 0;
  virtual Status Read(uint64_t offset, ByteSpan out) = 0;
  // Read() that never waits for a device or for a rollback's fence:
  // WouldBlock (out unspecified) unless everything needed is in memory now.
  // For event loops; the default never tries.
  virtual Status TryRead(uint64_t offset, ByteSpan out) {
    return BH_ERROR(kWouldBlock, "{} bytes at {}: this device does not read without waiting",
                    out.size(), offset);
  }
  virtual Status Write(uint64_t offset, ConstByteSpan data) = 0;
  // Write() that never waits for a commit, the write throttle, space being
  // freed or a rollback's fence: WouldBlock, with nothing written, unless
  // the data can go in at once. For event loops; the default never tries.
  // `staged` (may be null): blocks StageWrite prepared from the start of
  // `data`, used instead of preparing them again; emptied either way.
  virtual Status TryWrite(uint64_t offset, ConstByteSpan data, core::StagedWrite* staged) {
    (void)staged;
    return BH_ERROR(kWouldBlock, "{} bytes at {}: this device does not write without waiting",
                    data.size(), offset);
  }
  // Prepares (compresses, checksums, or copies into the pool's raw dirty
  // area) into `staged` the whole blocks of `arrived`, the first bytes of
  // a write of `length` bytes to `offset` whose data is still arriving,
  // for the TryWrite of that data to take. Changes nothing a reader can
  // see and never waits; a device that cannot stage does nothing. The
  // bytes of `arrived` must not change until that TryWrite or
  // staged->Reset().
  virtual void StageWrite(uint64_t offset, uint64_t length, ConstByteSpan arrived,
                          core::StagedWrite* staged) {
    (void)offset, (void)length, (void)arrived, (void)staged;
  }
  // Unmaps [offset, offset+length): whole blocks become holes, the parts of
  // partial blocks are zeroed.
  virtual Status Unmap(uint64_t offset, uint64_t length) = 0;
  virtual Status Flush() = 0;
  // The space left behind the device now (cheap: a few counters under the
  // pool's lock). nullopt when the device cannot tell.
  virtual std::optional<ProvisioningStatus> Provisioning() const { return std::nullopt; }
};

}  // namespace blockhaus::volume
