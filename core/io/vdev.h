// Vdev: the seam through which every byte of pool data reaches a device.
//
// A Vdev is a flat byte range (a regular file or a block device) with
// positional reads and writes and a durability barrier. The engine never
// calls pread/pwrite/fdatasync itself: it goes through this interface, so
// tests substitute MemVdev (RAM) or FaultVdev (drops unsynced writes, fails
// the Nth call, garbles sectors) without touching the engine.
//
// Contract for every implementation:
//   * Read/Write transfer exactly the requested bytes or return an error;
//     a short transfer is retried internally and reported as IOError only
//     when the device makes no progress.
//   * A Write is durable only after a later Sync() returns Ok.
//   * Offsets and lengths are checked: [offset, offset+len) must lie inside
//     size(), or InvalidArgument is returned and nothing is transferred.
// Errors: InvalidArgument (range), IOError (EIO and friends),
//   ResourceExhausted (ENOSPC/EDQUOT), Unavailable (device gone).
// Thread safety: thread-safe; concurrent I/O to disjoint ranges is allowed.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/base/endian.h"
#include "core/base/status.h"

namespace blockhaus::core {

class Vdev {
 public:
  virtual ~Vdev() = default;

  virtual uint64_t size() const = 0;
  virtual Status Read(uint64_t offset, ByteSpan buf) = 0;
  // Read() that never waits for the device: WouldBlock unless all of the
  // range can be copied from memory now (the page cache). The default
  // always says WouldBlock (callers then use Read).
  virtual Status ReadNoWait(uint64_t offset, ByteSpan buf);
  virtual Status Write(uint64_t offset, ConstByteSpan buf) = 0;
  // Writes the buffers back to back starting at offset (pwritev).
  virtual Status WriteV(uint64_t offset, std::span<const ConstByteSpan> bufs);
  // Makes every completed Write durable (fdatasync).
  virtual Status Sync() = 0;

  // Direct writes (D55): bytes that go to the device without passing
  // through a cache, for data that is written once and not read back soon
  // (a commit's blocks). direct_alignment() is 0 when the device has no
  // such path; otherwise WriteDirect's offset, length and buffer address
  // must be multiples of it (InvalidArgument if not, nothing written).
  // Durable only after a later Sync(), as any Write. The default is Write.
  virtual uint32_t direct_alignment() const { return 0; }
  virtual Status WriteDirect(uint64_t offset, ConstByteSpan buf) { return Write(offset, buf); }

 protected:
  // InvalidArgument unless [offset, offset+len) lies inside size().
  Status CheckRange(uint64_t offset, uint64_t len) const;
  // CheckRange, and InvalidArgument unless the offset, length and address
  // of `buf` are multiples of direct_alignment() (when that is not 0).
  Status CheckDirect(uint64_t offset, ConstByteSpan buf) const;
};

struct FileVdevOptions {
  // Create the file if missing and set its size to `size` bytes (sparse,
  // ftruncate). Ignored for block devices. Default: open existing only.
  bool create = false;
  uint64_t size = 0;
  // Open O_RDONLY: writes and syncs then fail with EBADF. Excludes create.
  bool read_only = false;
  // Offer WriteDirect through a second descriptor opened O_DIRECT, where the
  // file system or device reports its direct I/O alignment (statx
  // STATX_DIOALIGN) and accepts the open. Otherwise direct_alignment() is 0.
  bool direct_writes = true;
};

// Opens a regular file or block device for pool data. The size of a regular
// file is its length; of a block device, its capacity (BLKGETSIZE64).
// Errors: NotFound, PermissionDenied, InvalidArgument (not a file or device,
// size 0), IOError.
Result<std::unique_ptr<Vdev>> OpenFileVdev(const std::string& path,
                                           const FileVdevOptions& options);

// A RAM-backed vdev of `size` bytes, zero-filled. For tests and benchmarks.
std::unique_ptr<Vdev> NewMemVdev(uint64_t size);

// Maps an errno from a device call onto a Status (ENOSPC -> ResourceExhausted,
// ENOENT -> NotFound, EACCES/EPERM -> PermissionDenied, others IOError).
Status ErrnoToStatus(int err, const std::string& what);

// pread/pwrite of all of `buf` at `offset` of `fd`, resumed after EINTR
// and short counts; IOError when the file ends (read) or takes nothing
// (write). `name` names the file in errors.
Status PreadFull(int fd, uint64_t offset, ByteSpan buf, std::string_view name);
Status PwriteFull(int fd, uint64_t offset, ConstByteSpan buf, std::string_view name);

}  // namespace blockhaus::core
