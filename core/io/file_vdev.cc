// Theory of operation: FileVdev
//
// Overview
//   FileVdev is the production Vdev: a regular file or a block device opened
//   O_RDWR|O_CLOEXEC and driven with positional syscalls only (pread, pwrite,
//   pwritev, fdatasync). There is no user-space cache and no shared file
//   offset, so the object carries no mutable state after Open.
//
// Data structures & on-disk format
//   One fd, the device size captured at open, and the path (for messages).
//   FileVdev imposes no format of its own: byte N of the vdev is byte N of the
//   file or device. A regular file created here is sparse (ftruncate).
//   A second fd, the same file reopened O_DIRECT, carries WriteDirect
//   (D55) when the file system or device reports its direct I/O alignment
//   (statx STATX_DIOALIGN); without one, or if the kernel refuses a direct
//   write as misaligned (EINVAL), the bytes go through the first fd.
//   Both fds see the same file: the kernel writes back and drops cached
//   pages of a range it writes directly, so a later buffered read of the
//   range reads what was written.
//
// Invariants
//   * size_ > 0 and never changes while the vdev is open.
//   * Every transfer is range-checked against size_ before any syscall, so a
//     bad offset never extends a file or touches a neighbouring partition.
//   * Read/Write/WriteV return Ok only after every requested byte moved.
//
// Concurrency & lock order
//   No locks. pread/pwrite/pwritev take explicit offsets and are safe to issue
//   concurrently from many threads; ordering of overlapping writes is the
//   caller's business (the engine never overlaps in-flight writes).
//
// Crash consistency
//   A completed Write sits in the page cache (or the device's write cache),
//   a completed WriteDirect in the device's write cache, until Sync(), which
//   is fdatasync: data plus the metadata needed to read it back, and a
//   flush of the device's cache. Nothing written is durable before a later Sync returns Ok. A
//   failed fdatasync is reported and never silently retried: after an fsync
//   error Linux may already have dropped the dirty pages (fsyncgate), so the
//   caller must treat the unsynced range as lost.
//
// Failure handling
//   EINTR is retried. A short transfer continues from where it stopped; a
//   transfer that makes no progress (0 bytes: EOF on read, a device that
//   accepts nothing on write) becomes IOError. errno values map through
//   ErrnoToStatus: ENOSPC/EDQUOT -> ResourceExhausted, ENOENT -> NotFound,
//   EACCES/EPERM -> PermissionDenied, anything else IOError. Opening a
//   directory or any other non-file, non-device, or something of size 0, is
//   InvalidArgument. With create=true an existing non-empty file is never
//   shrunk (FailedPrecondition): create must not destroy a pool.
//
// Tunables
//   FileVdevOptions::direct_writes (the O_DIRECT descriptor); none at run
//   time. Files are created with mode 0600 (pool data is private). WriteV
//   hands the kernel at most IOV_MAX iovecs per pwritev.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <string>
#include <utility>
#include <vector>

#include "core/io/vdev.h"

namespace blockhaus::core {
namespace {

constexpr mode_t kCreateMode = 0600;

// Closes the fd on scope exit unless released (Open's error paths).
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

class FileVdev final : public Vdev {
 public:
  FileVdev(int fd, int direct_fd, uint32_t direct_alignment, uint64_t size, std::string path)
      : fd_(fd),
        direct_fd_(direct_fd),
        direct_alignment_(direct_fd >= 0 ? direct_alignment : 0),
        size_(size),
        path_(std::move(path)) {}
  ~FileVdev() override {
    ::close(fd_);
    if (direct_fd_ >= 0) ::close(direct_fd_);
  }

  uint64_t size() const override { return size_; }
  Status Read(uint64_t offset, ByteSpan buf) override;
  Status ReadNoWait(uint64_t offset, ByteSpan buf) override;
  Status Write(uint64_t offset, ConstByteSpan buf) override;
  Status WriteV(uint64_t offset, std::span<const ConstByteSpan> bufs) override;
  Status Sync() override;
  uint32_t direct_alignment() const override {
    return direct_refused_.load(std::memory_order_relaxed) ? 0 : direct_alignment_;
  }
  Status WriteDirect(uint64_t offset, ConstByteSpan buf) override;

 private:
  Status PwritevAll(uint64_t offset, std::vector<iovec>& iov);

  const int fd_;
  const int direct_fd_;  // -1: no direct path
  const uint32_t direct_alignment_;
  // Set when the kernel refused a direct write that met the alignment it
  // reported: from then on direct_alignment() is 0.
  std::atomic<bool> direct_refused_{false};
  const uint64_t size_;
  const std::string path_;
};

Status FileVdev::Read(uint64_t offset, ByteSpan buf) {
  BH_RETURN_IF_ERROR(CheckRange(offset, buf.size()));
  return PreadFull(fd_, offset, buf, path_);
}

// preadv2(RWF_NOWAIT) copies what the page cache holds and fails with
// EAGAIN where it would have to read the device; a short read means the
// rest is not cached. Either way the caller falls back to Read().
Status FileVdev::ReadNoWait(uint64_t offset, ByteSpan buf) {
  BH_RETURN_IF_ERROR(CheckRange(offset, buf.size()));
  size_t done = 0;
  while (done < buf.size()) {
    iovec iov{buf.data() + done, buf.size() - done};
    ssize_t n = ::preadv2(fd_, &iov, 1, static_cast<off_t>(offset + done), RWF_NOWAIT);
    if (n < 0 && errno == EINTR) continue;
    if ((n < 0 && (errno == EAGAIN || errno == EOPNOTSUPP)) || n == 0) {
      return BH_ERROR(kWouldBlock, "{} at {} is not in memory", path_, offset + done);
    }
    if (n < 0) return ErrnoToStatus(errno, FormatMessage("preadv2 {} at {}", path_, offset + done));
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status FileVdev::Write(uint64_t offset, ConstByteSpan buf) {
  BH_RETURN_IF_ERROR(CheckRange(offset, buf.size()));
  return PwriteFull(fd_, offset, buf, path_);
}

Status FileVdev::WriteDirect(uint64_t offset, ConstByteSpan buf) {
  BH_RETURN_IF_ERROR(CheckDirect(offset, buf).Annotate(path_));
  if (direct_alignment() == 0) return PwriteFull(fd_, offset, buf, path_);
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pwrite(direct_fd_, buf.data() + done, buf.size() - done,
                         static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL) {
      // Aligned as the kernel said and still refused (a file system that
      // changed under us, or a short write that left the rest misaligned):
      // the rest goes through the page cache, and so does every later one.
      direct_refused_.store(true, std::memory_order_relaxed);
      return PwriteFull(fd_, offset + done, buf.subspan(done), path_);
    }
    if (n < 0) return ErrnoToStatus(errno, FormatMessage("direct pwrite {} at {}", path_, offset + done));
    if (n == 0) return BH_ERROR(kIOError, "direct pwrite {} at {}: device made no progress", path_, offset + done);
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status FileVdev::WriteV(uint64_t offset, std::span<const ConstByteSpan> bufs) {
  std::vector<iovec> iov;
  iov.reserve(bufs.size());
  uint64_t total = 0;
  for (const ConstByteSpan& b : bufs) {
    if (b.empty()) continue;
    if (b.size() > UINT64_MAX - total) {
      return BH_ERROR(kInvalidArgument, "writev {}: total length overflows", path_);
    }
    total += b.size();
    iov.push_back(iovec{const_cast<uint8_t*>(b.data()), b.size()});
  }
  BH_RETURN_IF_ERROR(CheckRange(offset, total));
  return PwritevAll(offset, iov);
}

// Issues pwritev in chunks of at most IOV_MAX entries, resuming after short
// writes by trimming the partially written iovec in place.
Status FileVdev::PwritevAll(uint64_t offset, std::vector<iovec>& iov) {
  size_t idx = 0;
  while (idx < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - idx, IOV_MAX));
    ssize_t n = ::pwritev(fd_, &iov[idx], count, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, FormatMessage("pwritev {} at {}", path_, offset));
    if (n == 0) {
      return BH_ERROR(kIOError, "pwritev {} at {}: device made no progress", path_, offset);
    }
    offset += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (idx < iov.size() && left >= iov[idx].iov_len) left -= iov[idx++].iov_len;
    if (left > 0) {
      iov[idx].iov_base = static_cast<uint8_t*>(iov[idx].iov_base) + left;
      iov[idx].iov_len -= left;
    }
  }
  return Status::Ok();
}

Status FileVdev::Sync() {
  int rc;
  do {
    rc = ::fdatasync(fd_);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return ErrnoToStatus(errno, FormatMessage("fdatasync {}", path_));
  return Status::Ok();
}

// Sizes (and, with create, grows) a regular file.
Result<uint64_t> SizeRegularFile(int fd, const struct stat& st, const std::string& path,
                                 const FileVdevOptions& options) {
  const uint64_t current = static_cast<uint64_t>(st.st_size);
  if (!options.create || current == options.size) return current;
  if (current > options.size) {
    return BH_ERROR(kFailedPrecondition,
                    "{}: refusing to shrink existing file from {} to {} bytes", path,
                    current, options.size);
  }
  if (::ftruncate(fd, static_cast<off_t>(options.size)) != 0) {
    return ErrnoToStatus(errno, FormatMessage("ftruncate {}", path));
  }
  return options.size;
}

Result<uint64_t> SizeBlockDevice(int fd, const std::string& path) {
  uint64_t bytes = 0;
  if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0) {
    return ErrnoToStatus(errno, FormatMessage("BLKGETSIZE64 {}", path));
  }
  return bytes;
}

Result<uint64_t> DeviceSize(int fd, const std::string& path, const FileVdevOptions& options) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoToStatus(errno, FormatMessage("fstat {}", path));
  if (S_ISREG(st.st_mode)) return SizeRegularFile(fd, st, path, options);
  if (S_ISBLK(st.st_mode)) return SizeBlockDevice(fd, path);
  return BH_ERROR(kInvalidArgument, "{} is neither a regular file nor a block device", path);
}

// The file reopened O_DIRECT, and the alignment its direct writes need
// (offset, length and memory: the larger of the two the kernel reports);
// {-1, 0} where the kernel reports none or refuses the open.
std::pair<int, uint32_t> OpenDirect(int fd) {
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) != 0 ||
      (stx.stx_mask & STATX_DIOALIGN) == 0 || stx.stx_dio_offset_align == 0) {
    return {-1, 0};
  }
  const uint32_t align = std::max(stx.stx_dio_offset_align, stx.stx_dio_mem_align);
  if ((align & (align - 1)) != 0 || align > 65536) return {-1, 0};
  // Through /proc/self/fd, so that it is the file already open, whatever
  // has happened to its path since.
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  int direct;
  do {
    direct = ::open(self.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  } while (direct < 0 && errno == EINTR);
  if (direct < 0) return {-1, 0};
  return {direct, align};
}

}  // namespace

Result<std::unique_ptr<Vdev>> OpenFileVdev(const std::string& path,
                                           const FileVdevOptions& options) {
  if (options.create && options.size == 0) {
    return BH_ERROR(kInvalidArgument, "{}: cannot create a vdev of size 0", path);
  }
  if (options.create && options.read_only) {
    return BH_ERROR(kInvalidArgument, "{}: cannot create a read-only vdev", path);
  }
  const int flags =
      (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (options.create ? O_CREAT : 0);
  int raw_fd;
  do {
    raw_fd = ::open(path.c_str(), flags, kCreateMode);
  } while (raw_fd < 0 && errno == EINTR);
  if (raw_fd < 0 && errno == EISDIR) {
    return BH_ERROR(kInvalidArgument, "{} is a directory, not a file or device", path);
  }
  if (raw_fd < 0) return ErrnoToStatus(errno, FormatMessage("open {}", path));
  ScopedFd fd(raw_fd);
  BH_ASSIGN_OR_RETURN(uint64_t size, DeviceSize(fd.get(), path, options));
  if (size == 0) return BH_ERROR(kInvalidArgument, "{} has size 0", path);
  auto [direct_fd, direct_alignment] =
      options.direct_writes && !options.read_only ? OpenDirect(fd.get()) : std::pair<int, uint32_t>{-1, 0};
  return std::unique_ptr<Vdev>(
      std::make_unique<FileVdev>(fd.release(), direct_fd, direct_alignment, size, path));
}

}  // namespace blockhaus::core
