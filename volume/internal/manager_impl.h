// Private to volume/: the state behind VolumeManager, shared by
// volume_manager.cc (create, snapshot, clone, destroy, rollback, the
// worker) and the files of the later operations (dataset_ops.cc: rename,
// holds, inherit; resize.cc; diff.cc; promote.cc).
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/base/thread_annotations.h"
#include "core/pool/pool.h"
#include "volume/dataset_format.h"
#include "volume/internal/volume_device.h"
#include "volume/volume_manager.h"

namespace blockhaus::volume {

using core::SyncContext;

struct VolumeManager::Impl {
  core::Pool* pool = nullptr;
  VolumeManagerOptions options;

  mutable Mutex mu;
  std::map<uint64_t, Dataset> by_id BH_GUARDED_BY(mu);
  std::map<std::string, uint64_t> by_name BH_GUARDED_BY(mu);
  std::map<uint64_t, FreeJob> jobs BH_GUARDED_BY(mu);
  uint64_t next_id BH_GUARDED_BY(mu) = 1;
  uint64_t next_job BH_GUARDED_BY(mu) = 1;
  uint64_t bytes_freed BH_GUARDED_BY(mu) = 0;
  // One per dataset id, shared with its open devices (volume_device.h).
  std::map<uint64_t, std::shared_ptr<DeviceCell>> cells BH_GUARDED_BY(mu);
  // Lineages a fenced operation is rewriting: worker steps leave them alone
  // (core's lineage-wide operations must not share a txg with a free step
  // of the same lineage).
  std::set<uint64_t> fenced_lineages BH_GUARDED_BY(mu);
  bool stopping BH_GUARDED_BY(mu) = false;
  std::condition_variable_any worker_cv;
  std::thread worker;

  Status Load();
  const Dataset* Find(const std::string& name) const BH_REQUIRES(mu);
  std::vector<const Dataset*> SnapshotsOf(uint64_t volume_id) const BH_REQUIRES(mu);
  std::vector<const Dataset*> ClonesOf(uint64_t snapshot_id) const BH_REQUIRES(mu);
  std::shared_ptr<DeviceCell> Cell(uint64_t dataset_id);
  std::shared_ptr<DeviceCell> CellLocked(const Dataset& ds) BH_REQUIRES(mu);

  void PutDataset(SyncContext& ctx, const Dataset& ds) BH_REQUIRES(mu);
  void DropDataset(SyncContext& ctx, const Dataset& ds) BH_REQUIRES(mu);
  // Rewrites a dataset whose name may have changed (drops the old name key).
  void ReplaceDataset(SyncContext& ctx, const Dataset& ds) BH_REQUIRES(mu);
  void QueueJob(SyncContext& ctx, const FreeJob& job) BH_REQUIRES(mu);
  void PutCounters(SyncContext& ctx) BH_REQUIRES(mu);

  Status CheckDestroy(const Dataset& ds, bool recursive, bool clones,
                      std::vector<uint64_t>* order) const BH_REQUIRES(mu);
  void SyncDestroySnapshot(SyncContext& ctx, const Dataset& snap) BH_REQUIRES(mu);
  // `batch`: versions per step (0: options.coalesce_batch).
  Result<bool> Step(uint64_t* freed, uint64_t batch = 0);
  void WorkerLoop();
};

// Holds the device cells of a set of datasets exclusively (in id order, the
// lock order among cells) and marks lineages busy for the worker; undone on
// destruction. Used by operations that rewrite lineages or sizes under
// open devices: rollback, shrink, promote.
class FencedDatasets {
 public:
  FencedDatasets(VolumeManager::Impl& m, const std::vector<uint64_t>& ids,
                 const std::vector<uint64_t>& lineages);
  ~FencedDatasets();
  FencedDatasets(const FencedDatasets&) = delete;
  FencedDatasets& operator=(const FencedDatasets&) = delete;

 private:
  VolumeManager::Impl& m_;
  std::vector<std::shared_ptr<DeviceCell>> cells_;
  std::vector<uint64_t> lineages_;
};

// Reloads the cells (lineage, view, size) of every dataset from the tables.
void RefreshCells(VolumeManager::Impl& m) BH_REQUIRES(m.mu);

}  // namespace blockhaus::volume
