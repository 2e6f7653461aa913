// Private to volume/: the BlockDevice implementation behind OpenDevice.
#pragma once

#include <memory>
#include <shared_mutex>

#include "core/pool/pool.h"
#include "volume/block_device.h"
#include "volume/dataset.h"

namespace blockhaus::volume {

std::unique_ptr<BlockDevice> NewVolumeDevice(core::Pool* pool, const Dataset& ds,
                                             std::shared_ptr<std::shared_mutex> fence);

}  // namespace blockhaus::volume
