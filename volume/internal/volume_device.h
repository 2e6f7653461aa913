// Private to volume/: the BlockDevice implementation behind OpenDevice.
#pragma once

#include <atomic>
#include <memory>
#include <shared_mutex>

#include "core/pool/pool.h"
#include "volume/block_device.h"
#include "volume/dataset.h"

namespace blockhaus::volume {

// What a device of one dataset addresses, shared by its open devices and
// the manager. Devices hold `fence` shared for each call and read the
// fields under it; operations that move a dataset to another lineage or
// change its size (rollback, shrink, promote) hold it exclusively while
// they do, then store the new values. The atomics only keep readers of
// size() outside the fence well defined; the fence orders everything else.
struct DeviceCell {
  std::shared_mutex fence;
  std::atomic<uint64_t> lineage{0};
  std::atomic<uint64_t> view{0};
  std::atomic<uint64_t> size{0};

  void Set(const Dataset& ds) {
    lineage.store(ds.lineage, std::memory_order_relaxed);
    view.store(ds.is_snapshot() ? ds.txg : core::kHeadView, std::memory_order_relaxed);
    size.store(ds.props.volsize, std::memory_order_relaxed);
  }
};

std::unique_ptr<BlockDevice> NewVolumeDevice(core::Pool* pool, const Dataset& ds,
                                             std::shared_ptr<DeviceCell> cell);

}  // namespace blockhaus::volume
