// Vdev base class: the pieces every implementation shares (range checks,
// the default WriteV, errno mapping). See vdev.h for the contract.
#include "core/io/vdev.h"

#include <unistd.h>

#include <cerrno>
#include <limits>
#include <system_error>

namespace blockhaus::core {

Status Vdev::ReadNoWait(uint64_t offset, ByteSpan buf) {
  return BH_ERROR(kWouldBlock, "this device cannot read without waiting ({} bytes at {})",
                  buf.size(), offset);
}

Status Vdev::WriteV(uint64_t offset, std::span<const ConstByteSpan> bufs) {
  uint64_t total = 0;
  for (const ConstByteSpan& b : bufs) {
    if (b.size() > std::numeric_limits<uint64_t>::max() - total) {
      return BH_ERROR(kInvalidArgument, "writev: total length overflows");
    }
    total += b.size();
  }
  // Checked up front so that an out-of-range vector transfers nothing.
  BH_RETURN_IF_ERROR(CheckRange(offset, total));
  for (const ConstByteSpan& b : bufs) {
    if (b.empty()) continue;
    BH_RETURN_IF_ERROR(Write(offset, b));
    offset += b.size();
  }
  return Status::Ok();
}

Status Vdev::CheckRange(uint64_t offset, uint64_t len) const {
  const uint64_t dev_size = size();
  // Written as two comparisons so that offset + len cannot wrap.
  if (offset > dev_size || len > dev_size - offset) {
    return BH_ERROR(kInvalidArgument,
                    "range [{}, +{}) is outside the device ({} bytes)", offset,
                    len, dev_size);
  }
  return Status::Ok();
}

Status Vdev::CheckDirect(uint64_t offset, ConstByteSpan buf) const {
  BH_RETURN_IF_ERROR(CheckRange(offset, buf.size()));
  const uint64_t align = direct_alignment();
  if (align != 0 && (offset % align != 0 || buf.size() % align != 0 ||
                     reinterpret_cast<uintptr_t>(buf.data()) % align != 0)) {
    return BH_ERROR(kInvalidArgument, "direct write at {} ({} bytes) is not aligned to {}",
                    offset, buf.size(), align);
  }
  return Status::Ok();
}

Status ErrnoToStatus(int err, const std::string& what) {
  // std::generic_category().message() is thread-safe, unlike strerror().
  const std::string text = std::error_code(err, std::generic_category()).message();
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      return BH_ERROR(kResourceExhausted, "{}: {}", what, text);
    case ENOENT:
      return BH_ERROR(kNotFound, "{}: {}", what, text);
    case EACCES:
    case EPERM:
      return BH_ERROR(kPermissionDenied, "{}: {}", what, text);
    default:
      return BH_ERROR(kIOError, "{}: {}", what, text);
  }
}

Status PreadFull(int fd, uint64_t offset, ByteSpan buf, std::string_view name) {
  for (size_t done = 0; done < buf.size();) {
    ssize_t n = ::pread(fd, buf.data() + done, buf.size() - done,
                        static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, FormatMessage("pread {} at {}", name, offset + done));
    if (n == 0) {
      return BH_ERROR(kIOError, "pread {} at {}: unexpected end of device", name, offset + done);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status PwriteFull(int fd, uint64_t offset, ConstByteSpan buf, std::string_view name) {
  for (size_t done = 0; done < buf.size();) {
    ssize_t n = ::pwrite(fd, buf.data() + done, buf.size() - done,
                         static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoToStatus(errno, FormatMessage("pwrite {} at {}", name, offset + done));
    if (n == 0) {
      return BH_ERROR(kIOError, "pwrite {} at {}: device made no progress", name, offset + done);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace blockhaus::core
