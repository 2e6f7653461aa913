// Memory for blocks written but not yet compressed (D49): a memfd the
// writers copy their raw blocks into, so that compression happens once per
// block per txg, at the commit, however often the block is rewritten
// before it. Pages of a memfd are never written back, so nothing here
// reaches the disk or its fdatasync; they are shmem, accounted to the
// machine like the page cache the data file's dirty blocks used to take.
//
// The space is handed out first-fit, lowest offset first (so a txg that
// rewrites the same blocks keeps landing on the same pages), in runs of
// whole writes. Released space keeps its pages: giving them back and
// faulting them in again for the next txg costs a clear of every page.
//
// Thread safety: every member may be called from any thread. Allocate and
// Free take an internal mutex; Write and Read are plain pwrite and pread
// of ranges the caller owns.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>

#include "core/base/endian.h"
#include "core/base/status.h"
#include "core/base/thread_annotations.h"

namespace blockhaus::core {

class DirtyScratch {
 public:
  // A scratch area of `capacity` bytes (rounded down to 4K).
  static Result<std::unique_ptr<DirtyScratch>> Create(uint64_t capacity);
  ~DirtyScratch();
  DirtyScratch(const DirtyScratch&) = delete;
  DirtyScratch& operator=(const DirtyScratch&) = delete;

  // The offset of `length` contiguous bytes, or nullopt when no free run
  // is that long (counted in misses() if count_miss).
  std::optional<uint64_t> Allocate(uint64_t length, bool count_miss = true);
  void Free(uint64_t offset, uint64_t length);
  // Data in [offset, offset + data.size()), which the caller allocated.
  Status Write(uint64_t offset, ConstByteSpan data);
  Status Read(uint64_t offset, ByteSpan out) const;

  // Gives the pages back to the system when nothing is allocated and some
  // were written since the last trim; true if it did.
  bool Trim();

  uint64_t capacity() const { return capacity_; }
  uint64_t used() const;
  uint64_t peak() const;
  uint64_t misses() const;

 private:
  DirtyScratch(int fd, uint64_t capacity);

  const int fd_;
  const uint64_t capacity_;
  mutable Mutex mu_;
  std::map<uint64_t, uint64_t> free_ BH_GUARDED_BY(mu_);  // offset -> length
  uint64_t used_ BH_GUARDED_BY(mu_) = 0;
  uint64_t peak_ BH_GUARDED_BY(mu_) = 0;
  uint64_t misses_ BH_GUARDED_BY(mu_) = 0;
  bool touched_ BH_GUARDED_BY(mu_) = false;  // allocated from since the last Trim
};

}  // namespace blockhaus::core
