// MemVdev: a zero-filled RAM vdev for tests and benchmarks. Sync is a no-op
// (RAM is as durable as it gets here); FaultVdev layers crash behaviour on
// top when a test needs it.
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "core/io/vdev.h"

namespace blockhaus::core {
namespace {

class MemVdev final : public Vdev {
 public:
  explicit MemVdev(uint64_t size) : data_(size, 0) {}

  uint64_t size() const override { return data_.size(); }

  Status Read(uint64_t offset, ByteSpan buf) override {
    BH_RETURN_IF_ERROR(CheckRange(offset, buf.size()));
    std::shared_lock<std::shared_mutex> lock(mu_);
    if (!buf.empty()) std::memcpy(buf.data(), data_.data() + offset, buf.size());
    return Status::Ok();
  }
  // RAM never waits.
  Status ReadNoWait(uint64_t offset, ByteSpan buf) override { return Read(offset, buf); }

  Status Write(uint64_t offset, ConstByteSpan buf) override {
    BH_RETURN_IF_ERROR(CheckRange(offset, buf.size()));
    std::unique_lock<std::shared_mutex> lock(mu_);
    if (!buf.empty()) std::memcpy(data_.data() + offset, buf.data(), buf.size());
    return Status::Ok();
  }

  Status Sync() override { return Status::Ok(); }

  // As a file on a 4K-sector device would ask, so that the pool's direct
  // writes (D55) run in every test that uses RAM.
  uint32_t direct_alignment() const override { return 4096; }
  Status WriteDirect(uint64_t offset, ConstByteSpan buf) override {
    BH_RETURN_IF_ERROR(CheckDirect(offset, buf));
    return Write(offset, buf);
  }

 private:
  // Readers share, writers exclude: overlapping concurrent I/O stays
  // race-free (TSan-clean) even though the contract only promises disjoint.
  std::shared_mutex mu_;
  std::vector<uint8_t> data_;  // The size never changes after construction.
};

}  // namespace

std::unique_ptr<Vdev> NewMemVdev(uint64_t size) {
  return std::make_unique<MemVdev>(size);
}

}  // namespace blockhaus::core
