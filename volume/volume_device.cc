// VolumeDevice: the BlockDevice of a volume or snapshot (block_device.h).
//
// Splits byte ranges into volume blocks. Whole blocks go straight to core
// (a run of whole blocks in one ReadBlocks or WriteBlocks call);
// partial blocks are read, patched and written back under one of 64 striped
// locks chosen by block number, so two partial writes to one block never
// lose each other's bytes. A block that ends up all zeros is unmapped
// instead of written (it reads as zeros and holds no space). Every call
// holds its dataset's fence (DeviceCell) shared and reads the lineage, view
// and size under it, so a rollback, shrink or promote (exclusive) sees no
// I/O in flight, and a device opened before one of them addresses the
// dataset's new lineage and size after it. TryRead and TryWrite (for event
// loops) give up with WouldBlock wherever they would wait. StageWrite
// compresses the whole blocks of a write's data that has arrived so far
// for its TryWrite (D35), or copies them into the pool's raw dirty area
// (D52); it needs no fence, since a prepared block is the same wherever it
// goes, and the pool checks it is used for its own bytes.

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "volume/internal/volume_device.h"

namespace blockhaus::volume {
namespace {

// Most blocks are not zero and say so in their first bytes. Past those,
// comparing the block with itself shifted by 16 bytes lets libc's vector
// memcmp do the scan: with 16 zero bytes first, equal means all zero.
bool AllZero(ConstByteSpan data) {
  constexpr size_t kHead = 16;
  const uint8_t* p = data.data();
  const size_t n = data.size();
  for (size_t i = 0; i < std::min(n, kHead); ++i) {
    if (p[i] != 0) return false;
  }
  return n <= kHead || std::memcmp(p, p + kHead, n - kHead) == 0;
}

class VolumeDevice : public BlockDevice {
 public:
  VolumeDevice(core::Pool* pool, const Dataset& ds, std::shared_ptr<DeviceCell> cell)
      : pool_(pool),
        cell_(std::move(cell)),
        bs_(ds.props.volblocksize),
        read_only_(ds.is_snapshot() || ds.props.readonly),
        options_{ds.props.compression, ds.props.checksum} {}

  uint64_t size() const override { return cell_->size.load(std::memory_order_relaxed); }
  uint32_t block_size() const override { return bs_; }
  bool read_only() const override { return read_only_; }

  Status Read(uint64_t offset, ByteSpan out) override {
    std::shared_lock<std::shared_mutex> fenced(cell_->fence);
    return ReadFenced(offset, out, /*nowait=*/false);
  }

  Status TryRead(uint64_t offset, ByteSpan out) override {
    std::shared_lock<std::shared_mutex> fenced(cell_->fence, std::try_to_lock);
    if (!fenced.owns_lock()) return BH_ERROR(kWouldBlock, "the volume is being switched");
    return ReadFenced(offset, out, /*nowait=*/true);
  }

  Status Write(uint64_t offset, ConstByteSpan data) override {
    std::shared_lock<std::shared_mutex> fenced(cell_->fence);
    BH_RETURN_IF_ERROR(CheckWritable(offset, data.size()));
    const uint64_t lineage = cell_->lineage.load(std::memory_order_relaxed);
    for (uint64_t done = 0; done < data.size();) {
      uint64_t pos = offset + done, blk = pos / bs_, in = pos % bs_;
      uint64_t n = std::min<uint64_t>(bs_ - in, data.size() - done);
      if (n == bs_) {
        n = (data.size() - done) / bs_ * bs_;
        BH_RETURN_IF_ERROR(PutBlocks(lineage, blk, data.subspan(done, n)));
      } else {
        BH_RETURN_IF_ERROR(Patch(lineage, blk, in, data.subspan(done, n)));
      }
      done += n;
    }
    return Status::Ok();
  }

  // Whole blocks of data only, in one core call that writes all or nothing:
  // a partial block is read first and a zero block is unmapped, both of
  // which may wait.
  Status TryWrite(uint64_t offset, ConstByteSpan data, core::StagedWrite* staged) override {
    std::shared_lock<std::shared_mutex> fenced(cell_->fence, std::try_to_lock);
    if (!fenced.owns_lock()) return BH_ERROR(kWouldBlock, "the volume is being switched");
    BH_RETURN_IF_ERROR(CheckWritable(offset, data.size()));
    if (offset % bs_ != 0 || data.size() % bs_ != 0) {
      return BH_ERROR(kWouldBlock, "a partial block is read first");
    }
    for (size_t k = 0; k < data.size(); k += bs_) {
      if (AllZero(data.subspan(k, bs_))) return BH_ERROR(kWouldBlock, "a zero block is unmapped");
    }
    const uint64_t lineage = cell_->lineage.load(std::memory_order_relaxed);
    return pool_->TryWriteBlocks(lineage, offset / bs_, bs_, data, options_, staged);
  }

  // Only what TryWrite would take: whole blocks from a block boundary of a
  // writable volume. The lineage does not matter until the write (a
  // prepared block is its bytes as stored, wherever it goes).
  void StageWrite(uint64_t offset, uint64_t length, ConstByteSpan arrived,
                  core::StagedWrite* staged) override {
    if (read_only_ || offset % bs_ != 0 || length % bs_ != 0 || arrived.size() < bs_) return;
    pool_->PrepareAhead(staged, bs_, length, arrived.first(arrived.size() / bs_ * bs_), options_);
  }

  Status Unmap(uint64_t offset, uint64_t length) override {
    std::shared_lock<std::shared_mutex> fenced(cell_->fence);
    BH_RETURN_IF_ERROR(CheckWritable(offset, length));
    const uint64_t lineage = cell_->lineage.load(std::memory_order_relaxed);
    static const std::vector<uint8_t> kZeros(kMaxVolBlockSize, 0);
    for (uint64_t done = 0; done < length;) {
      uint64_t pos = offset + done, blk = pos / bs_, in = pos % bs_;
      uint64_t n = std::min<uint64_t>(bs_ - in, length - done);
      if (n == bs_) {
        BH_RETURN_IF_ERROR(pool_->Unmap(lineage, blk));
      } else {
        BH_RETURN_IF_ERROR(Patch(lineage, blk, in, ConstByteSpan(kZeros.data(), n)));
      }
      done += n;
    }
    return Status::Ok();
  }

  Status Flush() override { return pool_->FlushWrites(); }

  // zfs "available" (VolumeManager::Available): the pool's unreserved free
  // space plus what is left of this volume's own reservation.
  std::optional<ProvisioningStatus> Provisioning() const override {
    const core::Pool::Room room = pool_->room(cell_->lineage.load(std::memory_order_relaxed));
    ProvisioningStatus st;
    st.capacity_bytes = room.capacity;
    st.available_bytes = room.available;
    return st;
  }

 private:
  // REQUIRES: the fence held shared.
  Status ReadFenced(uint64_t offset, ByteSpan out, bool nowait) {
    BH_RETURN_IF_ERROR(CheckRange(offset, out.size()));
    const uint64_t lineage = cell_->lineage.load(std::memory_order_relaxed);
    const uint64_t view = cell_->view.load(std::memory_order_relaxed);
    auto read = [&](uint64_t blk, ByteSpan dst) {
      return nowait ? pool_->TryReadBlocks(lineage, blk, view, bs_, dst)
                    : pool_->ReadBlocks(lineage, blk, view, bs_, dst);
    };
    std::vector<uint8_t> block;
    for (uint64_t done = 0; done < out.size();) {
      uint64_t pos = offset + done, blk = pos / bs_, in = pos % bs_;
      uint64_t n = std::min<uint64_t>(bs_ - in, out.size() - done);
      if (n == bs_) {
        // Every whole block from here in one call (one metadata iterator,
        // one device read per contiguous run).
        n = (out.size() - done) / bs_ * bs_;
        BH_RETURN_IF_ERROR(read(blk, out.subspan(done, n)));
      } else {
        block.resize(bs_);
        BH_RETURN_IF_ERROR(read(blk, block));
        std::memcpy(out.data() + done, block.data() + in, n);
      }
      done += n;
    }
    return Status::Ok();
  }
  // REQUIRES: the fence held shared.
  Status CheckRange(uint64_t offset, uint64_t len) const {
    uint64_t end = 0;
    uint64_t size = cell_->size.load(std::memory_order_relaxed);
    if (__builtin_add_overflow(offset, len, &end) || end > size) {
      return BH_ERROR(kInvalidArgument, "range [{}, +{}) is beyond the volume's {} bytes",
                      offset, len, size);
    }
    return Status::Ok();
  }
  Status CheckWritable(uint64_t offset, uint64_t len) const {
    if (read_only_) return BH_ERROR(kPermissionDenied, "the volume is read-only");
    return CheckRange(offset, len);
  }
  Status PutBlock(uint64_t lineage, uint64_t blk, ConstByteSpan data) {
    if (AllZero(data)) return pool_->Unmap(lineage, blk);
    return pool_->Write(lineage, blk, data, options_);
  }
  // Whole blocks from `first`: runs of data in one WriteBlocks call (which
  // compresses them in parallel), zero blocks unmapped.
  Status PutBlocks(uint64_t lineage, uint64_t first, ConstByteSpan data) {
    const size_t n = data.size() / bs_;
    size_t run = 0;  // blocks [run, k) hold data and are not written yet
    for (size_t k = 0; k <= n; ++k) {
      bool zero = k < n && AllZero(data.subspan(k * bs_, bs_));
      if (k < n && !zero) continue;
      if (k > run) {
        BH_RETURN_IF_ERROR(pool_->WriteBlocks(lineage, first + run, bs_,
                                              data.subspan(run * bs_, (k - run) * bs_),
                                              options_));
      }
      if (zero) BH_RETURN_IF_ERROR(pool_->Unmap(lineage, first + k));
      run = k + 1;
    }
    return Status::Ok();
  }
  // Read-modify-write of part of one block.
  Status Patch(uint64_t lineage, uint64_t blk, uint64_t in, ConstByteSpan part) {
    std::lock_guard<std::mutex> lock(stripes_[blk % stripes_.size()]);
    std::vector<uint8_t> block(bs_);
    BH_RETURN_IF_ERROR(pool_->Read(lineage, blk, core::kHeadView, block));
    std::memcpy(block.data() + in, part.data(), part.size());
    return PutBlock(lineage, blk, block);
  }

  core::Pool* pool_;
  std::shared_ptr<DeviceCell> cell_;
  uint32_t bs_;
  bool read_only_;
  core::BlockOptions options_;
  std::array<std::mutex, 64> stripes_;
};

}  // namespace

std::unique_ptr<BlockDevice> NewVolumeDevice(core::Pool* pool, const Dataset& ds,
                                             std::shared_ptr<DeviceCell> cell) {
  return std::make_unique<VolumeDevice>(pool, ds, std::move(cell));
}

}  // namespace blockhaus::volume
