// MemBlockDevice: an in-memory volume::BlockDevice for the SCSI tests and
// the fuzzer. Like the real device, unwritten and unmapped bytes read as
// zeros. Faults: fail the next writes with a given Status; counts flushes.
// Provisioning() reports `provisioning` (unset: the device cannot tell).
#pragma once

#include <cstring>
#include <mutex>
#include <optional>
#include <vector>

#include "volume/block_device.h"

namespace blockhaus::testing {

class MemBlockDevice : public volume::BlockDevice {
 public:
  MemBlockDevice(uint64_t size, uint32_t block_size, bool read_only = false)
      : data_(size, 0), block_size_(block_size), read_only_(read_only) {}

  uint64_t size() const override { return data_.size(); }
  uint32_t block_size() const override { return block_size_; }
  bool read_only() const override { return read_only_; }

  Status Read(uint64_t offset, ByteSpan out) override {
    std::lock_guard<std::mutex> lock(mu_);
    BH_RETURN_IF_ERROR(Check(offset, out.size()));
    if (!out.empty()) std::memcpy(out.data(), data_.data() + offset, out.size());
    ++reads;
    return Status::Ok();
  }
  // In memory, so it never waits, unless a test says the data is not
  // "cached" (then WouldBlock, as a device read would be).
  Status TryRead(uint64_t offset, ByteSpan out) override {
    if (!cached) return BH_ERROR(kWouldBlock, "test device: not cached");
    return Read(offset, out);
  }
  // As TryRead: WouldBlock while a test says a write would wait.
  Status TryWrite(uint64_t offset, ConstByteSpan in, core::StagedWrite* staged) override {
    (void)staged;
    if (!write_ready) return BH_ERROR(kWouldBlock, "test device: a write would wait");
    return Write(offset, in);
  }
  Status Write(uint64_t offset, ConstByteSpan in) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (read_only_) return BH_ERROR(kPermissionDenied, "read-only");
    BH_RETURN_IF_ERROR(Check(offset, in.size()));
    if (!fail_writes.ok()) return fail_writes;
    if (!in.empty()) std::memcpy(data_.data() + offset, in.data(), in.size());
    ++writes;
    return Status::Ok();
  }
  Status Unmap(uint64_t offset, uint64_t length) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (read_only_) return BH_ERROR(kPermissionDenied, "read-only");
    BH_RETURN_IF_ERROR(Check(offset, length));
    if (length != 0) std::memset(data_.data() + offset, 0, length);
    ++unmaps;
    return Status::Ok();
  }
  Status Flush() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!fail_flush.ok()) return fail_flush;
    ++flushes;
    return Status::Ok();
  }
  std::optional<volume::ProvisioningStatus> Provisioning() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return provisioning;
  }
  void SetProvisioning(std::optional<volume::ProvisioningStatus> p) {
    std::lock_guard<std::mutex> lock(mu_);
    provisioning = p;
  }

  // Direct access for checks (not thread-safe against I/O).
  std::vector<uint8_t>& bytes() { return data_; }

  bool cached = true;   // TryRead reads (true) or says WouldBlock
  bool write_ready = true;  // TryWrite writes (true) or says WouldBlock
  Status fail_writes;   // returned by every Write while not Ok
  Status fail_flush;
  std::optional<volume::ProvisioningStatus> provisioning;   // guarded by mu_
  int reads = 0, writes = 0, unmaps = 0, flushes = 0;

 private:
  Status Check(uint64_t offset, uint64_t len) const {
    uint64_t end = 0;
    if (__builtin_add_overflow(offset, len, &end) || end > data_.size()) {
      return BH_ERROR(kInvalidArgument, "range beyond the device");
    }
    return Status::Ok();
  }

  mutable std::mutex mu_;
  std::vector<uint8_t> data_;
  uint32_t block_size_;
  bool read_only_;
};

}  // namespace blockhaus::testing
