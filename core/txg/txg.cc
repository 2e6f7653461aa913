// Theory of operation: transaction groups (txg)
//
// Overview
//   Every change to a pool belongs to a txg, numbered from 1 (the create).
//   At any time there is one open txg, taking new writes, unmaps and sync
//   tasks, and at most one syncing txg, being written out. The sync thread
//   closes the open txg when its timer runs out (txg_timeout_ms), when dirty
//   data passes a quarter of dirty_limit_bytes (so the next txg fills while
//   this one is written: the two cores overlap), when a flush or a sync task
//   waits for it, or at close; closing is a pointer swap under Impl::mu, so
//   writers never wait for a commit unless the open txg alone passes the
//   dirty limit.
//
// Data structures & on-disk format
//   Impl::open is a hash map (lineage, blkno) -> DirtyBlock; at close it
//   becomes Impl::syncing, still readable by Read() until the commit is done.
//   One commit writes, in this order:
//     1. the txg's blocks, compressed and checksummed already (by the
//        writer, Pool::Impl::Prepare), into space freshly allocated from the
//        allocator (one contiguous extent when possible, sorted by lineage
//        and block so the write is sequential), with one pwritev per extent;
//     2. fdatasync of the data vdev (1 and 2 on a helper thread, while the
//        sync thread builds the batch of 3);
//     3. one RocksDB WriteBatch, synced: new block pointers and births,
//        superseded versions (freed, or moved to the dead list when a snapshot
//        sees them), sync-task changes, dirty slab maps, the changed space
//        tallies (blockmap/accounting.cc), and synced_txg.
//   The txg is durable when 3 returns. Flush() returns then.
//
// Invariants
//   I1 data is durable before the metadata that points to it commits (2
//      before 3).
//   I2 space freed in txg N is allocatable only after N is durable: the
//      allocator parks it until ReleaseDeferred(N), called after 3.
//   I3 a live block is never overwritten: allocations come only from space
//      free in the last durable txg, so a crash at any instant leaves the
//      pool exactly at the last durable txg, readable without repair.
//   I4 reads never see reused space: ReleaseDeferred runs under the
//      exclusive read gate, after every read that might hold a pointer to a
//      freed version has finished.
//
// Concurrency & lock order
//   sync_mu (whole commit; Scrub) -> read_gate -> mu. The sync thread holds
//   mu only to swap maps and publish results; device writes and the RocksDB
//   write run without it. Waiters (Flush, sync tasks,
//   throttled writers) sleep on done_cv.
//
// Crash consistency
//   What is durable: every txg up to synced_txg in the metadata store. The
//   open and syncing txgs are lost whole on a crash: data blocks they wrote
//   sit in space the durable allocator maps still show as free. A txg is
//   never half visible because its metadata is one atomic batch.
//
// Failure handling
//   A failed device write, sync or batch suspends the pool (hard severity):
//   the failure is kept in Impl::failure, every waiter and later writer gets
//   Unavailable naming it, reads of committed data go on, and nothing more is
//   committed. Memory may be ahead of disk at that point, so the only way on
//   is to reopen the pool, which starts from the last durable txg. Sync tasks
//   whose check fails are dropped without touching the batch.
//
// Tunables
//   PoolOptions::txg_timeout_ms (default 5 s), dirty_limit_bytes (64 MiB).

#include <algorithm>
#include <chrono>
#include <cstring>
#include <future>

#include "core/base/logging.h"
#include "core/base/sync_point.h"
#include "core/pool/internal/pool_impl.h"

namespace blockhaus::core {
namespace {

// A block of the syncing txg, to be placed: its dirty form (compressed and
// checksummed at write time) and the pointer that gets its offset.
struct PreparedBlock {
  DirtyKey key;
  const DirtyBlock* dirty;
  BlockPtr ptr;

  ConstByteSpan payload() const { return {dirty->payload->data(), dirty->payload->size()}; }
};

// One device write of a commit: consecutive blocks (and the zeros that pad
// each to whole sectors) at one offset.
struct Run {
  uint64_t offset;
  std::vector<ConstByteSpan> iov;
};

// Places the txg's data blocks in as few runs as the allocator can give
// (each run the first free extent long enough for the next block, cut to what
// is left): sets each block's offset and returns the writes to make.
Result<std::vector<Run>> PlaceBlocks(Pool::Impl& p, std::vector<PreparedBlock>& blocks) {
  static const std::vector<uint8_t> kZeros(kMaxBlockSize, 0);
  std::vector<Run> runs;
  uint64_t remaining = 0;
  for (const PreparedBlock& b : blocks) {
    if (!b.ptr.hole) remaining += p.alloc->RoundUp(b.ptr.psize);
  }
  size_t i = 0;
  while (remaining > 0) {
    while (blocks[i].ptr.hole) ++i;
    BH_ASSIGN_OR_RETURN(Extent extent,
                        p.alloc->AllocateRun(p.alloc->RoundUp(blocks[i].ptr.psize), remaining));
    Run& run = runs.emplace_back(Run{extent.offset, {}});
    uint64_t pos = extent.offset;
    for (; i < blocks.size(); ++i) {
      PreparedBlock& b = blocks[i];
      if (b.ptr.hole) continue;
      uint64_t len = p.alloc->RoundUp(b.ptr.psize);
      if (pos + len > extent.end()) break;
      b.ptr.offset = pos;
      run.iov.push_back(b.payload());
      if (len > b.ptr.psize) run.iov.emplace_back(kZeros.data(), len - b.ptr.psize);
      pos += len;
      remaining -= len;
    }
    if (pos < extent.end()) p.alloc->Return(Extent{pos, extent.end() - pos});
  }
  return runs;
}

// Writes the runs and syncs the device.
Status WriteAndSync(Vdev& vdev, const std::vector<Run>& runs) {
  for (const Run& run : runs) BH_RETURN_IF_ERROR(vdev.WriteV(run.offset, run.iov));
  BH_SYNC_POINT("txg:data-written");
  return vdev.Sync();
}

Status ApplyBlocks(SyncContext::Rep& rep, const std::vector<PreparedBlock>& blocks) {
  Pool::Impl& p = *rep.pool;
  std::map<LineageId, LineageInfo> lineages;
  {
    MutexLock lock(&p.mu);
    lineages = p.lineages;
  }
  for (const PreparedBlock& b : blocks) {
    auto it = lineages.find(b.key.lineage);
    if (it == lineages.end()) continue;  // filtered before placement
    BH_RETURN_IF_ERROR(ApplyBlockVersion(rep, b.key.lineage, it->second, b.key.blkno, b.ptr));
  }
  return Status::Ok();
}

void RunTasks(SyncContext::Rep& rep, std::vector<SyncTask*>& tasks) {
  SyncContext ctx(&rep);
  for (SyncTask* t : tasks) {
    t->txg = rep.txg;
    t->result = t->check ? t->check(ctx) : Status::Ok();
    if (t->result.ok() && t->sync) t->sync(ctx);
  }
}

void PutMeta(KvBatch& batch, std::string_view key, uint64_t v) {
  std::string s;
  PutLE64(&s, v);
  batch.Put(kCfDefault, key, s);
}

}  // namespace

Status Pool::Impl::CommitTxg(uint64_t txg, const DirtyMap& map,
                             std::vector<SyncTask*>& txg_tasks) {
  MutexLock sync_lock(&sync_mu);
  auto start = std::chrono::steady_clock::now();
  std::vector<PreparedBlock> blocks;
  blocks.reserve(map.size());
  {
    // Blocks of lineages destroyed meanwhile are dropped before placement.
    MutexLock guard(&mu);
    for (const auto& [key, dirty] : map) {
      auto it = lineages.find(key.lineage);
      if (it != lineages.end() && !it->second.destroying) {
        blocks.push_back(PreparedBlock{key, &dirty, dirty.ptr});
      }
    }
  }
  std::sort(blocks.begin(), blocks.end(),
            [](const PreparedBlock& a, const PreparedBlock& b) { return a.key < b.key; });
  BH_ASSIGN_OR_RETURN(std::vector<Run> runs, PlaceBlocks(*this, blocks));
  // I1 needs the data durable before the metadata batch is written, not
  // before it is built: once every block has its place, the data goes to the
  // device and is synced on another thread while this one works out the
  // batch (on every return path, the future's destructor waits for it).
  std::future<Status> data_synced =
      std::async(std::launch::async, [this, &runs] { return WriteAndSync(*vdev, runs); });

  KvBatch batch;
  SyncContext::Rep rep{this, txg, &batch, kv->NewIterator(kCfBlocks), Status(), {}, {}, {}};
  BH_RETURN_IF_ERROR(ApplyBlocks(rep, blocks));
  RunTasks(rep, txg_tasks);
  BH_RETURN_IF_ERROR(rep.failure);
  PutSlabRecords(batch, alloc->TakeDirtySlabs(txg));
  SpaceFlush(*this, batch);
  PutMeta(batch, kMetaKeySyncedTxg, txg);
  {
    MutexLock guard(&mu);
    PutMeta(batch, kMetaKeyNextLineage, next_lineage);
  }
  rep.blocks_it.reset();
  BH_RETURN_IF_ERROR(data_synced.get());
  BH_SYNC_POINT("txg:before-metadata");
  BH_RETURN_IF_ERROR(kv->Write(batch, /*sync=*/true));
  BH_SYNC_POINT("txg:committed");
  {
    std::unique_lock<std::shared_mutex> gate(read_gate);
    alloc->ReleaseDeferred(txg);
  }
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::steady_clock::now() - start).count();
  MutexLock guard(&mu);
  synced_txg = txg;
  syncing.reset();
  syncing_bytes = 0;
  syncing_by_lineage.clear();
  RefreshCounters();
  counters.txgs_committed++;
  counters.last_commit_us = static_cast<uint64_t>(us);
  for (SyncTask* t : txg_tasks) t->done = true;
  done_cv.notify_all();
  return Status::Ok();
}

void Pool::Impl::SyncLoop() {
  std::unique_lock<Mutex> guard(mu);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(options.txg_timeout_ms);
  while (failure.ok()) {
    bool due = std::chrono::steady_clock::now() >= deadline;
    bool have_work = !open.empty() || !pending_tasks.empty();
    bool wanted = flush_target >= open_txg || !pending_tasks.empty() ||
                  open_bytes > options.dirty_limit_bytes / 4 || closing || due;
    if (!(have_work && wanted)) {
      if (closing) break;
      if (due) {
        deadline = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(options.txg_timeout_ms);
      }
      work_cv.wait_until(guard, deadline);
      continue;
    }
    uint64_t txg = open_txg++;
    auto map = std::make_shared<DirtyMap>(std::move(open));
    open = DirtyMap();
    syncing = map;
    syncing_bytes = open_bytes;
    open_bytes = 0;
    syncing_by_lineage = std::move(open_by_lineage);
    open_by_lineage.clear();
    std::vector<SyncTask*> batch_tasks = std::move(pending_tasks);
    pending_tasks.clear();
    done_cv.notify_all();  // throttled writers may go on
    guard.unlock();
    Status s = CommitTxg(txg, *map, batch_tasks);
    guard.lock();
    if (!s.ok()) {
      failure = s;
      BH_LOG(kError, "pool {} suspended: txg {} failed: {}", label.name, txg, s.ToString());
      for (SyncTask* t : batch_tasks) {
        t->result = s;
        t->done = true;
      }
      for (SyncTask* t : pending_tasks) {
        t->result = s;
        t->done = true;
      }
      pending_tasks.clear();
      done_cv.notify_all();
    }
    deadline = std::chrono::steady_clock::now() +
               std::chrono::milliseconds(options.txg_timeout_ms);
  }
  // Waiters must not sleep forever once nothing will commit any more.
  for (SyncTask* t : pending_tasks) {
    t->result = failure.ok() ? BH_ERROR(kUnavailable, "pool is closing") : failure;
    t->done = true;
  }
  pending_tasks.clear();
  sync_exited = true;
  done_cv.notify_all();
}

Result<uint64_t> Pool::Impl::WaitForTxg(uint64_t txg) {
  std::unique_lock<Mutex> guard(mu);
  while (synced_txg < txg && failure.ok() && !sync_exited) {
    done_cv.wait(guard);
  }
  if (synced_txg >= txg) return txg;
  if (!failure.ok()) {
    return BH_ERROR(kUnavailable, "pool {} is suspended: {}", label.name, failure.ToString());
  }
  return BH_ERROR(kUnavailable, "pool {} closed before txg {} committed", label.name, txg);
}

}  // namespace blockhaus::core
