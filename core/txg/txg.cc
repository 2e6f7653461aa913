// Theory of operation: transaction groups (txg)
//
// Overview
//   Every change to a pool belongs to a txg, numbered from 1 (the create).
//   At any time there is one open txg, taking new writes, unmaps and sync
//   tasks, and at most one syncing txg, being written out. The sync thread
//   closes the open txg when its timer runs out (txg_timeout_ms), when dirty
//   data passes half of dirty_limit_bytes or the txg holds kTxgBlocksDue
//   blocks (so the next txg fills while this one is written, and the two
//   stay within the limit together while the device keeps up), when a
//   flush or a sync task waits for it, or at close; closing is a pointer
//   swap under Impl::mu, so writers never wait for a commit unless the open
//   txg alone passes the dirty limit or four times kTxgBlocksDue blocks
//   (metadata memory grows per block).
//
// Data structures & on-disk format
//   Impl::open is a hash map (lineage, blkno) -> DirtyBlock; at close it
//   becomes Impl::syncing, still readable by Read() until the commit is done.
//   A dirty block is a whole block pointer: its writer compressed and
//   checksummed it (Pool::Impl::Prepare), reserved space for it from the
//   allocator and wrote it there, to the page cache and not synced
//   (Pool::Impl::Place, D29), before it entered the map. Reads of dirty
//   blocks read the data file like committed ones. A block rewritten (or
//   unmapped) within its txg retires its copy, whose space goes back to the
//   allocator under the exclusive read gate (I4): at the commit, or before
//   it, once kReleaseRetiredBytes have piled up, from the release thread
//   (Pool::Impl::ReleaseLoop; it runs while a commit does too). Back
//   in the allocator it is the lowest free space again, so the next copies
//   land on the same pages of the page cache and the commit writes the
//   newest copy of each block, not every copy (D47).
//   A raw dirty block (D49) is the exception: a write with compression on
//   copied it uncompressed into the pool's scratch area (a memfd), reserved
//   the space it would take uncompressed, and put that in the map with its
//   place in the scratch. Reads copy it from there; a rewrite retires its
//   scratch space like a placed copy.
//   One commit writes, in this order:
//     0. the raw blocks (PlaceRaw): each compressed and checksummed once,
//        on the prepare helpers, its reservation traded for one of its
//        stored size, and written to the data file (not synced); as
//        SCHED_IDLE CPU while nobody waits for the commit (D51), so that
//        it takes only what the event loops leave idle. The blocks of
//        streams (runs of back-to-back blocks of one lineage of at least
//        direct_run_bytes) go past the page cache (WriteDirect, D55),
//        the others through it;
//     1. fdatasync of the data vdev, on a helper thread while the sync
//        thread builds the batch of 2 (every block of the txg was written
//        before it entered the map, so all are covered);
//     2. one RocksDB WriteBatch, synced: new block pointers and births, the
//        allocation of each block's reserved space (Allocator::Commit),
//        superseded versions (freed, or moved to the dead list when a
//        snapshot sees them), sync-task changes, dirty slab maps, the
//        changed space tallies (blockmap/accounting.cc), synced_txg, and
//        the intent log's new head, past the records this txg makes
//        obsolete (intent_log.cc).
//   The txg is durable when 2 returns. Flush() returns then.
//
// Invariants
//   I1 data is durable before the metadata that points to it commits (1
//      before 2).
//   I2 space freed in txg N is allocatable only after N is durable: the
//      allocator parks it until ReleaseDeferred(N), called after 2.
//   I3 a live block is never overwritten: reservations come only from
//      space free in the last durable txg, so a crash at any instant leaves
//      the pool exactly at the last durable txg, readable without repair.
//      A reservation is free in every slab record on disk until the txg
//      holding its block commits (alloc/allocator.cc, Reservations).
//   I4 reads never see reused space: ReleaseDeferred and the release of
//      retired and dropped reservations run after the commit took the read
//      gate exclusively once, so after every read that might hold a
//      pointer to that space finished (later reads find only new pointers).
//      The scratch space of the syncing txg's raw blocks goes back after
//      the syncing map is gone and one more exclusive pass of the gate.
//
// Concurrency & lock order
//   sync_mu (whole commit; Scrub) -> read_gate -> mu -> alloc_mu (a leaf:
//   nothing is taken under it). Writers reserve space under alloc_mu alone
//   and write their blocks holding no lock. The sync thread holds
//   mu only to swap maps and publish results; device writes and the RocksDB
//   write run without it. Its allocator work (Commit, the frees the block
//   map and the sync tasks collect in SyncContext::Rep::frees, the
//   release) takes alloc_mu for slices of kAllocSlice calls, so a writer's
//   reservation waits tens of microseconds, not a whole txg's worth, and
//   the two threads do not trade the mutex once per block (D36, D38). Waiters
//   (Flush, sync tasks, throttled writers) sleep on done_cv.
//
// Crash consistency
//   What is durable: every txg up to synced_txg in the metadata store. The
//   open and syncing txgs are lost whole on a crash: data blocks their
//   writers wrote sit in space the durable allocator maps still show as
//   free. A txg is
//   never half visible because its metadata is one atomic batch.
//
// Failure handling
//   A failed device write (a writer's, D29), sync or batch suspends the
//   pool (hard severity):
//   the failure is kept in Impl::failure, every waiter and later writer gets
//   Unavailable naming it, reads of committed data go on, and nothing more is
//   committed. Memory may be ahead of disk at that point, so the only way on
//   is to reopen the pool, which starts from the last durable txg. Sync tasks
//   whose check fails are dropped without touching the batch.
//
// Tunables
//   PoolOptions::txg_timeout_ms (default 5 s), dirty_limit_bytes (a tenth
//   of the RAM, 64 MiB to 4 GiB).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <future>
#include <optional>
#include <set>

#include "core/base/background_cpu.h"
#include "core/base/logging.h"
#include "core/base/sync_point.h"
#include "core/pool/internal/pool_impl.h"
#include "core/txg/intent_format.h"

namespace blockhaus::core {
namespace {

// Txg timeouts in a row without a write before the raw scratch area's
// pages go back to the system (D53): a first touch of a page costs ~12 us
// on a guest that hands free pages to its host, so writes that pause for
// a few seconds keep the pages they will write into again.
constexpr int kRawTrimIdleTimeouts = 6;

// Allocator calls per hold of alloc_mu in a commit: a slice takes tens of
// microseconds, where a whole txg's took milliseconds of every writer's time.
constexpr size_t kAllocSlice = 512;
// Dirty slabs whose records are built per hold of alloc_mu (a full map of
// a 64 MiB slab walks up to thousands of extents).
constexpr size_t kSlabsPerHold = 2;

// Calls fn(i) for every i in [0, n), holding `mu` for kAllocSlice calls at
// a time.
template <typename Fn>
void InSlices(Mutex& mu, size_t n, const Fn& fn) {
  for (size_t i = 0; i < n;) {
    MutexLock lock(&mu);
    for (size_t end = std::min(n, i + kAllocSlice); i < end; ++i) fn(i);
  }
}

// A block of the syncing txg: its key and its pointer (placed already, or
// raw in the scratch until PlaceRaw).
struct TxgBlock {
  DirtyKey key;
  BlockPtr ptr;
  uint64_t raw;  // DirtyBlock::raw
};

Status ApplyBlocks(SyncContext::Rep& rep, const std::vector<TxgBlock>& blocks) {
  Pool::Impl& p = *rep.pool;
  std::map<LineageId, LineageInfo> lineages;
  {
    MutexLock lock(&p.mu);
    lineages = p.lineages;
  }
  for (const TxgBlock& b : blocks) {
    auto it = lineages.find(b.key.lineage);
    if (it == lineages.end()) continue;  // filtered out by CommitTxg
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

// Empties a vector kept between commits for `n` elements; gives its memory
// back when it holds over four times what is needed (a burst is over).
template <typename T>
void Recycle(std::vector<T>& v, size_t n) {
  v.clear();
  if (v.capacity() > 4 * n + 1024) std::vector<T>().swap(v);
  v.reserve(n);
}

void PutMeta(KvBatch& batch, std::string_view key, uint64_t v) {
  std::string s;
  PutLE64(&s, v);
  batch.Put(kCfDefault, key, s);
}

// Raw blocks a commit compresses and writes at a time: their buffers come
// back to the pool's cache before the next chunk takes them (a whole txg's
// at once would be hundreds of megabytes of fresh memory every commit).
constexpr size_t kRawChunk = 1024;

// Marks the raw blocks of streams (D55): runs of back-to-back raw blocks
// of one lineage (the blocks are sorted by key) of at least `cutoff`
// logical bytes. 0 marks none.
void MarkStreams(const std::vector<TxgBlock>& blocks, uint64_t cutoff,
                 std::vector<uint8_t>& stream) {
  stream.assign(blocks.size(), 0);
  if (cutoff == 0) return;
  for (size_t i = 0; i < blocks.size();) {
    if (blocks[i].raw == DirtyBlock::kNotRaw) {
      ++i;
      continue;
    }
    size_t end = i + 1;
    uint64_t bytes = blocks[i].ptr.lsize;
    while (end < blocks.size() && blocks[end].raw != DirtyBlock::kNotRaw &&
           blocks[end].key.lineage == blocks[i].key.lineage &&
           blocks[end].key.blkno == blocks[end - 1].key.blkno + 1) {
      bytes += blocks[end++].ptr.lsize;
    }
    if (bytes >= cutoff) std::fill(stream.begin() + i, stream.begin() + end, 1);
    i = end;
  }
}

// Compresses and checksums the raw blocks of a txg (D49), once each, on
// the helpers, trades each one's reservation of its uncompressed size for
// one of its stored size (the lowest room, so a txg's blocks pack; the
// room just given back always fits it), and writes them to the data file.
// Their pointers are then whole, as if their writers had placed them.
// While nobody waits for the commit, the compression is background CPU
// (D51): it runs where the event loops leave the CPUs idle.
Status PlaceRaw(Pool::Impl& p, std::vector<TxgBlock>& blocks) {
  struct Foreground {
    ~Foreground() { SetThisThreadBackground(false); }
  } foreground;
  // The sync thread's vectors, named by reference: the helpers filling
  // them have thread_locals of their own.
  thread_local std::vector<size_t> index_kept;
  thread_local std::vector<PreparedBlock> prepared_kept;
  thread_local std::vector<uint8_t> stream_kept;
  std::vector<size_t>& index = index_kept;
  std::vector<PreparedBlock>& prepared = prepared_kept;
  std::vector<uint8_t>& stream = stream_kept;
  MarkStreams(blocks, p.options.direct_run_bytes, stream);
  size_t next = 0;
  for (;;) {
    index.clear();
    for (; next < blocks.size() && index.size() < kRawChunk; ++next) {
      if (blocks[next].raw != DirtyBlock::kNotRaw) index.push_back(next);
    }
    if (index.empty()) return Status::Ok();
    // A chunk's stream blocks first: each kind is placed back to back.
    const size_t streamed = static_cast<size_t>(
        std::stable_partition(index.begin(), index.end(), [&](size_t i) { return stream[i] != 0; }) -
        index.begin());
    prepared.assign(index.size(), PreparedBlock{});
    SetThisThreadBackground(p.commit_waiters.load(std::memory_order_relaxed) == 0);
    BH_SYNC_POINT("txg:raw-chunk");
    std::atomic<bool> failed{false};
    auto fill = [&](size_t j) {
      SetThisThreadBackground(p.commit_waiters.load(std::memory_order_relaxed) == 0);
      const TxgBlock& b = blocks[index[j]];
      std::shared_ptr<Buffer> data = p.buffers.Get(b.ptr.lsize);
      if (!p.dirty_scratch->Read(b.raw, *data).ok()) {
        failed = true;
        return;
      }
      prepared[j] = p.Prepare(*data, BlockOptions{b.ptr.compression, b.ptr.checksum_type});
    };
    if (p.prepare_pool && index.size() > 1) {
      p.prepare_pool->ParallelFor(index.size(), fill);
    } else {
      for (size_t j = 0; j < index.size(); ++j) fill(j);
    }
    if (failed) return BH_ERROR(kIOError, "reading raw dirty blocks from the scratch area");
    Status placed;
    {
      MutexLock lock(&p.alloc_mu);
      for (size_t j = 0; j < index.size() && placed.ok(); ++j) {
        const BlockPtr& old = blocks[index[j]].ptr;
        p.alloc->Unreserve(Extent{old.offset, p.alloc->RoundUp(old.psize)});
        uint64_t len = p.alloc->RoundUp(prepared[j].ptr.psize);
        Result<Extent> e = p.alloc->Reserve(len, len);
        if (e.ok()) {
          prepared[j].ptr.offset = e->offset;
        } else {
          placed = e.status();
        }
      }
    }
    BH_RETURN_IF_ERROR(placed.Annotate("placing raw dirty blocks"));
    const std::span<const PreparedBlock> all(prepared);
    BH_RETURN_IF_ERROR(p.WriteAt(all.first(streamed), /*direct=*/true));
    BH_RETURN_IF_ERROR(p.WriteAt(all.subspan(streamed)));
    for (size_t j = 0; j < index.size(); ++j) {
      blocks[index[j]].ptr = prepared[j].ptr;
      prepared[j].payload.reset();
    }
  }
}

}  // namespace

Status Pool::Impl::CommitTxg(uint64_t txg, const DirtyMap& map,
                             std::vector<SyncTask*>& txg_tasks,
                             const std::optional<IntentTrim>& trim) {
  MutexLock sync_lock(&sync_mu);
  auto start = std::chrono::steady_clock::now();
  // The block list and the batch keep their memory from one commit to the
  // next (only the sync thread commits): allocated afresh, megabytes of
  // them came from new pages every txg, and their page faults were ~8% of
  // the sync thread in sequential writes.
  thread_local std::vector<TxgBlock> blocks;
  thread_local KvBatch batch;
  Recycle(blocks, map.size());
  batch.Clear();
  head_cache.DropStaged();  // of a commit that failed (D45)
  std::vector<Extent> dropped;
  // Blocks of lineages destroyed meanwhile are dropped; their space goes
  // back after the commit, when no read can be using it. The map is the
  // syncing txg's, which nothing changes any more: only the lineages are
  // looked at under mu, so writers and readers are not held up for a walk
  // over tens of thousands of blocks (D36).
  std::set<LineageId> live;
  {
    MutexLock guard(&mu);
    for (const auto& [id, info] : lineages) {
      if (!info.destroying) live.insert(id);
    }
  }

  // The scratch space of raw blocks goes back once no read can be using it
  // (at the end, after the syncing map is gone).
  std::vector<Extent> raw_slots;
  uint64_t raw_placed = 0;
  for (const auto& [key, dirty] : map) {
    if (dirty.is_raw()) raw_slots.push_back(Extent{dirty.raw, dirty.ptr.lsize});
    if (live.contains(key.lineage)) {
      blocks.push_back(TxgBlock{key, dirty.ptr, dirty.raw});
      if (dirty.is_raw()) ++raw_placed;
    } else if (!dirty.ptr.hole) {
      dropped.push_back(Extent{dirty.ptr.offset, alloc->RoundUp(dirty.ptr.psize)});
    }
  }
  std::sort(blocks.begin(), blocks.end(),
            [](const TxgBlock& a, const TxgBlock& b) { return a.key < b.key; });
  if (!raw_slots.empty()) BH_RETURN_IF_ERROR(PlaceRaw(*this, blocks));
  // The blocks are in the data file already (D29), written by their
  // writers before they entered the map. I1 needs them durable before the
  // metadata batch is written, not before it is built: the sync runs on
  // another thread while this one works out the batch (on every return
  // path, the future's destructor waits for it).
  std::future<Status> data_synced = std::async(std::launch::async, [this] {
    BH_SYNC_POINT("txg:data-written");
    return vdev->Sync();
  });
  // Their allocations go into this txg's slab records, ahead of the frees
  // the batch makes; alloc_mu is let go between slices, so writers
  // reserve space meanwhile.
  InSlices(alloc_mu, blocks.size(), [&](size_t i) {
    const BlockPtr& ptr = blocks[i].ptr;
    if (!ptr.hole) alloc->Commit(Extent{ptr.offset, alloc->RoundUp(ptr.psize)});
  });

  // An overwrite puts a block key and a birth key and deletes the old ones.
  batch.Reserve(4 * blocks.size() + 64);
  SyncContext::Rep rep{this, txg, &batch, kv->NewIterator(kCfBlocks), Status(), {}, {}, {}, {}};
  rep.frees.reserve(blocks.size());
  BH_RETURN_IF_ERROR(ApplyBlocks(rep, blocks));
  RunTasks(rep, txg_tasks);
  BH_RETURN_IF_ERROR(rep.failure);
  // The frees go into this txg's slab records too, in slices as above.
  InSlices(alloc_mu, rep.frees.size(), [&](size_t i) { alloc->Free(txg, rep.frees[i]); });
  // The slab records, a couple of slabs per hold of alloc_mu: all at once
  // they held writers up for 9-26 ms a commit (D40). The parked frees are
  // indexed without the lock: only this thread frees and releases.
  Allocator::SlabRecordCursor slab_records = alloc->BeginSlabRecords(txg);
  for (bool done = false; !done;) {
    MutexLock lock(&alloc_mu);
    done = alloc->StepSlabRecords(slab_records, kSlabsPerHold);
  }
  PutSlabRecords(batch, slab_records.records);
  SpaceFlush(*this, batch);
  PutMeta(batch, kMetaKeySyncedTxg, txg);
  if (trim) {
    // Records of format 3 (in the store), then the ring's (D54).
    batch.DeleteRange(kCfDefault, EncodeIntentKey(0, 0), EncodeIntentKey(trim->end, 0));
    std::string head;
    PutLE64(&head, trim->head_seq);
    PutLE64(&head, trim->head_offset);
    batch.Put(kCfDefault, kMetaKeyIntentHead, head);
    if (trim->replay) {
      batch.Delete(kCfDefault, kMetaKeyReplayBase);
      batch.Delete(kCfDefault, kMetaKeyIntentDropFrom);
    }
  }
  {
    MutexLock guard(&mu);
    PutMeta(batch, kMetaKeyNextLineage, next_lineage);
  }
  rep.blocks_it.reset();
  BH_RETURN_IF_ERROR(data_synced.get());
  BH_SYNC_POINT("txg:before-metadata");
  BH_RETURN_IF_ERROR(kv->Write(batch, /*sync=*/true));
  BH_SYNC_POINT("txg:committed");
  // The heads this txg's blocks left are the committed ones now; a sync
  // task may have changed any block's (D45).
  if (txg_tasks.empty()) {
    head_cache.Publish();
  } else {
    head_cache.Clear();
  }
  // I4: the space this txg freed, and that of blocks replaced while it was
  // open, is reused only after every read that may hold a pointer to it.
  // Taking the gate once waits for those reads; the ones after it find
  // only the new pointers (the batch is in, replaced blocks are out of the
  // maps). The release itself then runs in slices under alloc_mu alone.
  std::vector<Extent> released;
  std::vector<Extent> released_raw;
  {
    std::unique_lock<std::shared_mutex> gate(read_gate);
    MutexLock lock(&alloc_mu);
    released.swap(retired);
    released_raw.swap(retired_raw);
    retired_bytes = 0;
    retired_raw_bytes = 0;
  }
  released.insert(released.end(), dropped.begin(), dropped.end());
  for (bool done = false; !done;) {
    MutexLock lock(&alloc_mu);
    done = alloc->ReleaseDeferred(txg, kAllocSlice);
  }
  InSlices(alloc_mu, released.size(), [&](size_t i) { alloc->Unreserve(released[i]); });
  for (const Extent& e : released_raw) dirty_scratch->Free(e.offset, e.length);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::steady_clock::now() - start).count();
  {
    // The txg is in the block map: reads stop looking at its dirty map.
    MutexLock guard(&mu);
    syncing.reset();
    syncing_bytes = 0;
    syncing_by_lineage.clear();
    syncing_unlogged.clear();
    syncing_unlogged_bytes = 0;
  }
  if (!raw_slots.empty()) {
    // Reads that found a raw block in that map are done after this, and
    // its scratch space can go back before the txg counts as synced.
    { std::unique_lock<std::shared_mutex> gate(read_gate); }
    for (const Extent& e : raw_slots) dirty_scratch->Free(e.offset, e.length);
  }
  MutexLock guard(&mu);
  synced_txg = txg;
  RefreshCounters();
  counters.txgs_committed++;
  counters.raw_blocks_committed += raw_placed;
  counters.last_commit_us = static_cast<uint64_t>(us);
  counters.head_cache_hits = head_cache_hits;
  for (SyncTask* t : txg_tasks) t->done = true;
  done_cv.notify_all();
  return Status::Ok();
}

void Pool::Impl::SyncLoop() {
  std::unique_lock<Mutex> guard(mu);
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(options.txg_timeout_ms);
  int idle_timeouts = 0;  // in a row, without a commit (D53)
  while (failure.ok()) {
    bool due = std::chrono::steady_clock::now() >= deadline;
    bool have_work = !open.empty() || !pending_tasks.empty();
    bool wanted = flush_target >= open_txg || !pending_tasks.empty() ||
                  OpenTxgDue() || closing || due;
    if (!(have_work && wanted)) {
      if (closing) break;
      if (due) {
        deadline = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(options.txg_timeout_ms);
        // kRawTrimIdleTimeouts txg timeouts without a write: the raw
        // scratch's pages (up to the dirty limit of memory) go back to the
        // system (D53).
        if (dirty_scratch && ++idle_timeouts >= kRawTrimIdleTimeouts) {
          idle_timeouts = 0;
          guard.unlock();
          if (dirty_scratch->Trim()) BH_SYNC_POINT("txg:raw-trimmed");
          guard.lock();
          continue;
        }
      }
      work_cv.wait_until(guard, deadline);
      continue;
    }
    uint64_t txg = open_txg++;
    idle_timeouts = 0;
    release_wanted = false;  // the commit releases what is retired
    auto map = std::make_shared<DirtyMap>(std::move(open));
    open = DirtyMap();
    syncing = map;
    syncing_bytes = open_bytes;
    open_bytes = 0;
    syncing_by_lineage = std::move(open_by_lineage);
    open_by_lineage.clear();
    syncing_unlogged = std::move(open_unlogged);
    open_unlogged.clear();
    syncing_unlogged_bytes = open_unlogged_bytes;
    open_unlogged_bytes = 0;
    std::vector<SyncTask*> batch_tasks = std::move(pending_tasks);
    pending_tasks.clear();
    // Intent log records written before this point (keyed this txg or
    // earlier, or the replay's) are obsolete once this txg is durable;
    // those written from here on are left to the next commit.
    std::optional<IntentTrim> trim;
    if (intent_untrimmed) {
      trim = IntentTrim{std::max(txg, intent_trim_floor) + 1, intent_replay_done,
                        intent_ring.next_seq, intent_ring.tail};
      intent_untrimmed = false;
      intent_untrimmed_bytes = 0;
      intent_trim_floor = 0;
      intent_replay_done = false;
    }
    done_cv.notify_all();  // throttled writers may go on
    guard.unlock();
    Status s = CommitTxg(txg, *map, batch_tasks, trim);
    guard.lock();
    if (s.ok() && trim) {
      // The frames before the cut are obsolete on disk: their room is free.
      intent_ring.head_seq = trim->head_seq;
      intent_ring.head_offset = trim->head_offset;
    }
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
  WaitingForCommit waiting(*this);
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
