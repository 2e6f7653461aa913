// The memfd that holds raw dirty blocks until their commit (D49); see
// core/pool/internal/dirty_scratch.h.
#include "core/pool/internal/dirty_scratch.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/io/vdev.h"

#include <algorithm>
#include <cerrno>

namespace blockhaus::core {

Result<std::unique_ptr<DirtyScratch>> DirtyScratch::Create(uint64_t capacity) {
  capacity &= ~uint64_t{4095};
  if (capacity == 0) return BH_ERROR(kInvalidArgument, "a dirty scratch area needs 4K or more");
  int fd = ::memfd_create("blockhaus-dirty", MFD_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "memfd_create");
  if (::ftruncate(fd, static_cast<off_t>(capacity)) != 0) {
    Status s = ErrnoToStatus(errno, "ftruncate of the dirty scratch area");
    ::close(fd);
    return s;
  }
  return std::unique_ptr<DirtyScratch>(new DirtyScratch(fd, capacity));
}

DirtyScratch::DirtyScratch(int fd, uint64_t capacity) : fd_(fd), capacity_(capacity) {
  free_.emplace(0, capacity);
}

DirtyScratch::~DirtyScratch() { ::close(fd_); }

std::optional<uint64_t> DirtyScratch::Allocate(uint64_t length, bool count_miss) {
  if (length == 0) return std::nullopt;
  MutexLock lock(&mu_);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < length) continue;
    uint64_t offset = it->first;
    uint64_t left = it->second - length;
    free_.erase(it);
    if (left > 0) free_.emplace(offset + length, left);
    used_ += length;
    peak_ = std::max(peak_, used_);
    touched_ = true;
    return offset;
  }
  if (count_miss) ++misses_;
  return std::nullopt;
}

void DirtyScratch::Free(uint64_t offset, uint64_t length) {
  if (length == 0) return;
  MutexLock lock(&mu_);
  used_ -= length;
  auto next = free_.lower_bound(offset);
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {  // joins the run before
      offset = prev->first;
      length += prev->second;
      free_.erase(prev);
    }
  }
  if (next != free_.end() && offset + length == next->first) {  // and the one after
    length += next->second;
    free_.erase(next);
  }
  free_.emplace(offset, length);
}

Status DirtyScratch::Write(uint64_t offset, ConstByteSpan data) {
  return PwriteFull(fd_, offset, data, "the dirty scratch area");
}

Status DirtyScratch::Read(uint64_t offset, ByteSpan out) const {
  return PreadFull(fd_, offset, out, "the dirty scratch area");
}

bool DirtyScratch::Trim() {
  MutexLock lock(&mu_);
  if (used_ != 0 || !touched_) return false;
  // Punching the whole file frees its pages; it stays as long (sparse).
  if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                  static_cast<off_t>(capacity_)) != 0) {
    return false;
  }
  touched_ = false;
  return true;
}

uint64_t DirtyScratch::used() const {
  MutexLock lock(&mu_);
  return used_;
}

uint64_t DirtyScratch::peak() const {
  MutexLock lock(&mu_);
  return peak_;
}

uint64_t DirtyScratch::misses() const {
  MutexLock lock(&mu_);
  return misses_;
}

}  // namespace blockhaus::core
