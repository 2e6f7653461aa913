// Private state of a Pool, shared by pool.cc (lifecycle, I/O path),
// core/txg/txg.cc (commit) and core/blockmap/blockmap.cc (versions).
// Not for use outside core/.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/alloc/allocator.h"
#include "core/blockmap/space_format.h"
#include "core/base/buffer_cache.h"
#include "core/base/thread_annotations.h"
#include "core/base/work_pool.h"
#include "core/io/vdev.h"
#include "core/kv/kv_store.h"
#include "core/pool/pool.h"
#include "core/pool/pool_dir.h"
#include "core/pool/internal/dirty_scratch.h"
#include "core/txg/intent_file.h"

namespace blockhaus::core {

// Column families of the metadata store; the order is the on-disk list.
enum Cf : int {
  kCfDefault = 0,  // pool-wide keys (kMetaKey*)
  kCfBlocks,
  kCfDeadList,
  kCfBirths,
  kCfLineages,
  kCfAlloc,
  kCfClient,       // owned by the layers above core
  kCfSpace,        // space accounting (blockmap/space_format.h)
};
std::vector<std::string> ColumnFamilyNames();
// Puts the allocator's records of a txg into its batch (pool.cc).
void PutSlabRecords(KvBatch& batch, const std::vector<Allocator::SlabRecord>& records);

inline constexpr std::string_view kMetaKeyGuid = "pool_guid";
inline constexpr std::string_view kMetaKeySyncedTxg = "synced_txg";
inline constexpr std::string_view kMetaKeyNextLineage = "next_lineage";
inline constexpr std::string_view kMetaKeyFormat = "format_version";
// The synced_txg before a replay of the intent log began (intent_log.cc,
// L3); present only while a replay is unfinished.
inline constexpr std::string_view kMetaKeyReplayBase = "replay_base_txg";
// The intent log's ring (D54); not under the "intent" prefix of format 3's
// records. The seed of its frame checks (u64), set with the file.
inline constexpr std::string_view kMetaKeyIntentSalt = "ilog_salt";
// The first frame of the intent log that may matter: seq, offset (u64
// each); absent: 1, 0. Put by the commits that make records obsolete.
inline constexpr std::string_view kMetaKeyIntentHead = "ilog_head";
// While a recovery open's replay is unfinished: the frames it dropped,
// seq [first, end) (u64 each); a later replay skips them.
inline constexpr std::string_view kMetaKeyIntentDropFrom = "ilog_drop";
// 2: the "space" column family (space accounting). Older pools are refused.
// 3: intent log records in the default family (txg/intent_format.h).
// 4: intent log records in the ring file <dir>/intent (txg/intent_file.h),
// with the keys below; records of format 3 are still replayed. An older
// pool is upgraded by its first read-write open, so that a build that
// would not replay the log refuses the pool instead of ignoring it.
inline constexpr uint64_t kMetaFormatVersion = 4;
inline constexpr uint64_t kMetaFormatOldest = 2;

struct DirtyKey {
  uint64_t lineage;
  uint64_t blkno;
  bool operator==(const DirtyKey&) const = default;
  bool operator<(const DirtyKey& o) const {
    return lineage != o.lineage ? lineage < o.lineage : blkno < o.blkno;
  }
};
struct DirtyKeyHash {
  size_t operator()(const DirtyKey& k) const {
    return std::hash<uint64_t>()(k.lineage * 0x9E3779B97F4A7C15ull ^ k.blkno);
  }
};
// One block written (or unmapped) in an uncommitted txg. Its data is in the
// data file already, in space reserved from the allocator (D29): compressed
// and checksummed by the writer (Pool::Impl::Prepare), then written out
// (page cache, not synced) before the block entered the map.
//
// A raw block (D49) is in the pool's DirtyScratch instead, uncompressed,
// at `raw`; its pointer holds the space reserved for it in the data file
// (offset, psize = lsize, as an incompressible block would take), the
// compression it asked for and its checksum type. The commit compresses
// it, places it and fills in the rest.
struct DirtyBlock {
  static constexpr uint64_t kNotRaw = ~uint64_t{0};
  // The whole pointer, offset included; hole for an unmap.
  BlockPtr ptr;
  uint64_t raw = kNotRaw;
  bool is_raw() const { return raw != kNotRaw; }
};
// A block on its way into the open txg: its pointer (no offset yet) and the
// bytes as they will be stored (the compressed form when that saves a
// sector, else the block itself).
struct PreparedBlock {
  BlockPtr ptr;
  std::shared_ptr<Buffer> payload;
};
using DirtyMap = std::unordered_map<DirtyKey, DirtyBlock, DirtyKeyHash>;

// The committed head version of the blocks recent txgs wrote, so that a
// commit overwriting them again need not look them up in the block map
// (D45). A commit over blocks written a moment ago stepped a RocksDB
// iterator over every older entry of the same keys still in the memtables
// (D31 rewrites a head-only version under its key): half of the sync
// thread in sequential writes.
//
// An entry says what the block map's committed state holds as the newest
// version of (lineage, blkno) in that lineage: its birth and pointer. Only
// the sync thread uses the cache, under sync_mu. Only ApplyBlockVersion
// changes heads outside sync tasks, and it stages what it leaves as each
// block's head; Publish() takes the staged entries in once the txg's batch
// is durable, Clear() drops everything: after a txg that ran sync tasks
// (snapshots move fences, rollback, promote, destroy and the freeing steps
// rewrite versions wholesale) and when a commit fails. Memory: two
// generations of at most `generation` entries each (about 120 bytes an
// entry); a full one becomes the older, whose entries are dropped.
class HeadCache {
 public:
  struct Head {
    uint64_t birth = 0;
    BlockPtr ptr;
  };
  explicit HeadCache(size_t generation = 128 * 1024) : generation_(generation) {}

  const Head* Find(const DirtyKey& key) const {
    if (auto it = current_.find(key); it != current_.end()) return &it->second;
    if (auto it = previous_.find(key); it != previous_.end()) return &it->second;
    return nullptr;
  }
  // What the txg being built leaves as the head of `key` (nullopt: not
  // known, or none).
  void Stage(const DirtyKey& key, std::optional<Head> head) {
    staged_.emplace_back(key, std::move(head));
  }
  // The txg's batch is durable: its staged heads are the committed ones.
  void Publish() {
    for (auto& [key, head] : staged_) {
      previous_.erase(key);
      if (!head) {
        current_.erase(key);
        continue;
      }
      current_.insert_or_assign(key, *head);
      if (current_.size() >= generation_) {
        previous_.swap(current_);
        current_.clear();
      }
    }
    staged_.clear();
  }
  // Forgets everything, staged entries too.
  void Clear() {
    current_.clear();
    previous_.clear();
    staged_.clear();
  }
  // Drops staged entries only (a txg starts).
  void DropStaged() { staged_.clear(); }
  size_t size() const { return current_.size() + previous_.size(); }

 private:
  using Map = std::unordered_map<DirtyKey, Head, DirtyKeyHash>;
  size_t generation_;
  Map current_, previous_;
  std::vector<std::pair<DirtyKey, std::optional<Head>>> staged_;
};

// How a StagedWrite reaches the pool that placed its blocks, to give their
// space back: `pool` is cleared when the pool goes, and a stage that
// outlives it has nothing to give back.
struct StageAnchor {
  Mutex mu;
  Pool::Impl* pool BH_GUARDED_BY(mu) = nullptr;
};

// Blocks [0, blocks.size()) of the write whose data starts at `start`,
// prepared by the pool of `anchor` with `block_size` and `options`; the
// first `placed` are in the data file, in space reserved for them (D35).
// Or, for a write that goes raw (D52), [raw_offset, +raw_length) of the
// pool's raw dirty area, claimed for the whole write, its first
// raw_copied bytes holding the data's; then blocks is empty.
struct StagedWrite::Rep {
  std::shared_ptr<StageAnchor> anchor;
  const uint8_t* start = nullptr;
  uint32_t block_size = 0;
  BlockOptions options;
  std::vector<PreparedBlock> blocks;
  size_t placed = 0;
  uint64_t raw_offset = 0;
  uint64_t raw_length = 0;
  uint64_t raw_copied = 0;
};

struct SyncTask {
  Pool::CheckFn check;
  Pool::SyncFn sync;
  Status result;
  uint64_t txg = 0;
  bool done = false;
};

struct Pool::Impl {
  std::string dir;
  PoolOptions options;
  PoolLabel label;
  std::unique_ptr<PoolLock> pool_lock;
  std::unique_ptr<Vdev> owned_vdev;
  // The intent log's ring (D54): its vdev, the seed of its frame checks.
  // Null on a read-only open of a pool without one.
  Vdev* intent_vdev = nullptr;
  std::unique_ptr<Vdev> owned_intent_vdev;
  uint64_t intent_salt = 0;
  Vdev* vdev = nullptr;
  std::unique_ptr<KvStore> kv;
  // Every call under alloc_mu (a leaf lock): writers reserve space for
  // their blocks, the sync thread commits, frees and releases it.
  Mutex alloc_mu;
  std::unique_ptr<Allocator> alloc;  // RoundUp() needs no lock
  // Reserved extents of dirty blocks replaced (or unmapped) before their
  // txg committed. A reader may still be reading one, so they go back to
  // the allocator under the exclusive read gate (ReleaseRetired, I4).
  std::vector<Extent> retired BH_GUARDED_BY(alloc_mu);
  // The same for raw blocks' scratch space (D49).
  std::vector<Extent> retired_raw BH_GUARDED_BY(alloc_mu);
  // Raw dirty blocks (D49); null when they are off (and read-only).
  std::unique_ptr<DirtyScratch> dirty_scratch;
  std::atomic<uint64_t> raw_copied_ahead{0};  // PoolStats::raw_copied_ahead
  std::atomic<uint64_t> direct_bytes{0};      // PoolStats::direct_bytes
  uint64_t retired_bytes BH_GUARDED_BY(alloc_mu) = 0;
  uint64_t retired_raw_bytes BH_GUARDED_BY(alloc_mu) = 0;  // of retired_raw
  uint64_t slop = 0;
  // Recycles the buffers blocks are compressed into: a write takes them,
  // and gives them back once its blocks are in the data file.
  BufferCache buffers{32ull << 20};
  // Helps a write of many blocks compress and checksum them (null for
  // read-only pools and one-CPU machines).
  std::unique_ptr<WorkPool> prepare_pool;
  // Shared with the StagedWrites this pool placed blocks for (Pool's
  // constructor and destructor set and clear it).
  std::shared_ptr<StageAnchor> stage_anchor = std::make_shared<StageAnchor>();

  // Lock order: intent_mu, sync_mu, then read_gate, then mu, then alloc_mu.
  // One intent log record is built and written at a time, in seq order
  // (core/txg/intent_log.cc).
  Mutex intent_mu;
  Mutex sync_mu;  // held for a whole commit, and by Scrub
  HeadCache head_cache;  // used under sync_mu only (D45)
  uint64_t head_cache_hits = 0;  // under sync_mu; published in counters
  // Readers hold it shared from block-pointer lookup to the end of the data
  // read; the sync thread takes it exclusively before space freed by a
  // committed txg becomes allocatable, so no read sees reused space.
  std::shared_mutex read_gate;

  mutable Mutex mu;
  std::condition_variable_any work_cv;  // wakes the sync thread
  std::condition_variable_any done_cv;  // wakes flushers, task waiters, throttled writers
  DirtyMap open BH_GUARDED_BY(mu);
  uint64_t open_bytes BH_GUARDED_BY(mu) = 0;
  std::shared_ptr<const DirtyMap> syncing BH_GUARDED_BY(mu);
  uint64_t syncing_bytes BH_GUARDED_BY(mu) = 0;
  // open_bytes and syncing_bytes per lineage, for reservations.
  std::map<LineageId, uint64_t> open_by_lineage BH_GUARDED_BY(mu);
  std::map<LineageId, uint64_t> syncing_by_lineage BH_GUARDED_BY(mu);
  uint64_t open_txg BH_GUARDED_BY(mu) = 0;
  uint64_t synced_txg BH_GUARDED_BY(mu) = 0;
  uint64_t flush_target BH_GUARDED_BY(mu) = 0;  // commit up to this txg now
  std::vector<SyncTask*> pending_tasks BH_GUARDED_BY(mu);  // for the open txg
  // Retired space passed kReleaseRetiredBytes: the release thread gives it
  // back (ReleaseLoop), during a commit too, which releases it anyway.
  bool release_wanted BH_GUARDED_BY(mu) = false;
  bool closing BH_GUARDED_BY(mu) = false;
  bool closed BH_GUARDED_BY(mu) = false;
  bool sync_exited BH_GUARDED_BY(mu) = false;
  Status failure BH_GUARDED_BY(mu);  // set once; suspends the pool
  std::map<LineageId, LineageInfo> lineages BH_GUARDED_BY(mu);
  uint64_t next_lineage BH_GUARDED_BY(mu) = 1;
  PoolStats counters BH_GUARDED_BY(mu);
  std::thread sync_thread;
  std::thread release_thread;  // ReleaseLoop
  // Threads waiting for a commit (a flush, a sync task, a throttled
  // writer, Close): while none does, the commit compresses raw blocks as
  // background CPU (core/base/background_cpu.h, D51).
  std::atomic<int> commit_waiters{0};
  struct WaitingForCommit {
    explicit WaitingForCommit(Impl& pool) : impl(pool) { impl.commit_waiters++; }
    ~WaitingForCommit() { impl.commit_waiters--; }
    WaitingForCommit(const WaitingForCommit&) = delete;
    WaitingForCommit& operator=(const WaitingForCommit&) = delete;
    Impl& impl;
  };
  // Intent log (core/txg/intent_log.cc). The blocks of the open and the
  // syncing txg put since the last record (a key may repeat), and what
  // logging them would take (kIntentEntryOverhead + psize each).
  std::vector<DirtyKey> open_unlogged BH_GUARDED_BY(mu);
  std::vector<DirtyKey> syncing_unlogged BH_GUARDED_BY(mu);
  uint64_t open_unlogged_bytes BH_GUARDED_BY(mu) = 0;
  uint64_t syncing_unlogged_bytes BH_GUARDED_BY(mu) = 0;
  // Frames of the ring: the head moves when a commit that trims is
  // durable, the tail when a record is placed (under intent_mu too).
  IntentRing intent_ring BH_GUARDED_BY(mu);
  // Records were written since the last txg closed; the commit of the
  // next txg to close deletes those of its txg and before (and, for the
  // txg that ends a replay, every record up to intent_trim_floor and the
  // replay base). Taken when the txg closes, with its sync tasks.
  bool intent_untrimmed BH_GUARDED_BY(mu) = false;
  uint64_t intent_trim_floor BH_GUARDED_BY(mu) = 0;
  bool intent_replay_done BH_GUARDED_BY(mu) = false;
  // Bytes of those records' frames in the ring: past a quarter of it
  // they start a commit, so that records written while it runs find room.
  uint64_t intent_untrimmed_bytes BH_GUARDED_BY(mu) = 0;
  // With a replay: the seq of the first frame it dropped (a recovery
  // open), which the replay's commit forgets with the replay base.
  bool intent_drop_marked BH_GUARDED_BY(mu) = false;

  // Space accounting (blockmap/accounting.cc). Changed only on the sync
  // thread (in syncing context); read by anyone. Innermost lock.
  mutable Mutex space_mu;
  std::map<LineageId, LineageSpace> space BH_GUARDED_BY(space_mu);
  // Keys of the "space" family changed since the last commit.
  std::set<std::string> space_dirty BH_GUARDED_BY(space_mu);

  // --- pool.cc
  Status ReadOnlyError() const {
    return BH_ERROR(kFailedPrecondition, "pool {} is open read-only", label.name);
  }
  // Admission of `bytes` of new data for `lineage` (D4, D14). overwrite_own:
  // the write replaces a version only the head sees (its commit frees as
  // much as it allocates), which may use the slop.
  Status CheckWritable(LineageId lineage, uint64_t bytes, bool overwrite_own = false)
      BH_REQUIRES(mu);
  // Free space not held back by the slop, dirty data or unused
  // reservations (those of `except` left out).
  uint64_t UnreservedFree(LineageId except) const BH_REQUIRES(mu);
  // Unused reservation of one lineage, less its dirty data.
  uint64_t ReservationRoom(LineageId lineage) const BH_REQUIRES(mu);
  // Whether a write of blkno replaces a version only the head sees.
  bool OverwritesHeadOnly(LineageId lineage, uint64_t blkno);
  // Admits one block into the open txg (waiting at the dirty limit, and for
  // in-flight frees near full) and puts it there. A placed block it
  // replaces is retired.
  Status PutDirty(LineageId lineage, uint64_t blkno, DirtyBlock block, uint64_t bytes);
  // The stored form of a block written with `block_options`: compressed when
  // that saves a sector (ZFS's rule: a 4K block compressed to 2K on 4K
  // sectors would use the same space and cost a decompression on every
  // read), and checksummed. Any thread.
  PreparedBlock Prepare(ConstByteSpan data, const BlockOptions& block_options);
  // Reserves space for `blocks` (as few runs as the allocator can give),
  // writes them there (not synced) and sets their offsets. On error
  // nothing stays reserved.
  // nowait: WouldBlock (nothing reserved) where it would have waited.
  // write = false: only reserves, from the highest free space, and sets
  // the offsets (raw blocks, D49, D50).
  Status Place(std::span<PreparedBlock> blocks, bool nowait = false, bool write = true);
  // Writes blocks whose offsets are set (not synced): one pwritev per run
  // of back-to-back blocks, each padded with zeros to the sector. A run
  // takes at most kWriteIov buffers, since each write holds the data
  // file's inode lock, which every other writer to it waits for.
  static constexpr size_t kWriteIov = 64;
  // direct: the commit's blocks, written past the page cache where the
  // vdev can (D55, WriteDirectAt).
  Status WriteAt(std::span<const PreparedBlock> blocks, bool direct = false);
  static constexpr uint64_t kDirectStage = 4u << 20;
  Status WriteDirectAt(std::span<const PreparedBlock> blocks, uint64_t align);
  // Pool::WriteBlocks and TryWriteBlocks; blocks `staged` holds for this
  // data are taken from it (staged may be null).
  Status WriteBlocks(LineageId lineage, uint64_t first, uint32_t block_size, ConstByteSpan data,
                     const BlockOptions& options, bool nowait, StagedWrite* staged = nullptr);
  // Pool::PrepareAhead.
  void PrepareAhead(StagedWrite* staged, uint32_t block_size, uint64_t length,
                    ConstByteSpan arrived, const BlockOptions& options);
  // Puts a block into the open txg and counts it; returns the dirty block
  // it replaced (a hole if none), for the caller to retire.
  DirtyBlock InsertDirty(LineageId lineage, uint64_t blkno, DirtyBlock block, uint64_t bytes)
      BH_REQUIRES(mu);
  // Gives back the reservations of placed blocks that never entered the
  // map.
  void UnreservePlaced(std::span<const PreparedBlock> blocks) BH_EXCLUDES(alloc_mu);
  // PutDirty of placed blocks [first, first + blocks.size()) at once,
  // without waiting: WouldBlock (nothing put) when the space check fails.
  // raw: the blocks are raw, at raw, raw + block_size, ... in the scratch.
  Status PutDirtyNoWait(LineageId lineage, uint64_t first, const std::vector<PreparedBlock>& blocks,
                        uint32_t block_size, uint64_t raw = DirtyBlock::kNotRaw);
  // WriteBlocks of raw blocks (D49): reserves their space in the data file
  // and copies them into the scratch, or the rest of them into the run
  // `ahead` (may be null) claimed and began to fill (D52), which it takes.
  // true once written; false (nothing changed) when the scratch has no
  // room; WouldBlock when the reservation would wait, with nowait.
  Result<bool> WriteRaw(LineageId lineage, uint64_t first, uint32_t block_size,
                        ConstByteSpan data, const BlockOptions& options, bool nowait,
                        StagedWrite::Rep* ahead);
  // Whether a write of such blocks goes to the scratch (when it has room):
  // compressed blocks of more than one sector.
  bool TakesRaw(uint32_t block_size, const BlockOptions& options) const;
  // With dirty data or a commit in flight, commits it (its frees may make
  // room) and returns true once done; else false.
  bool CommitInFlight(std::unique_lock<Mutex>& guard) BH_REQUIRES(mu);
  // Suspends the pool for `cause` (the first cause stays) and returns the
  // Unavailable error writers get from then on.
  Status Suspend(const Status& cause) BH_EXCLUDES(mu);
  // Retires the reserved space (and a raw block's scratch space) of dirty
  // blocks replaced in their txg; once enough has piled up, asks the sync
  // thread to give it back (ReleaseRetired waits for readers, which no
  // writer should).
  void Retire(std::span<const DirtyBlock> replaced) BH_EXCLUDES(mu, alloc_mu);
  // Gives retired space back to the allocator once no read can be using it.
  // REQUIRES: no lock held.
  void ReleaseRetired();
  // The release thread: ReleaseRetired whenever release_wanted, until the
  // pool closes. Writers on the event loop must not wait for readers, and
  // the sync thread is busy for seconds during a commit, while a writer
  // rewriting its blocks retires as fast as it writes.
  void ReleaseLoop();
  void RefreshCounters() BH_REQUIRES(mu);

  // --- intent_log.cc
  // Logs the unlogged blocks of the open and syncing txgs in one synced
  // record: true once they are durable, false when they must be committed
  // instead (too many, a sync task waiting, the log off).
  Result<bool> LogWrites();
  // Open: the ring file (created when missing, with its salt) and its head.
  Status OpenIntentFile();
  // Creates the ring file of a pool with `data_size` bytes of data
  // (PoolCreateOptions::intent_log_bytes), synced with its directory.
  static Status CreateIntentFile(const std::string& dir, uint64_t data_size, uint64_t bytes,
                                 bool prefill);
  // Open: puts the blocks of the records a crash left back into the open
  // txg and commits them (the commit deletes the records).
  Status ReplayIntentLog();

  // --- txg.cc
  // A txg's metadata costs memory per block (its map entry, and at commit
  // four batch operations of ~140 bytes): so many blocks start a commit,
  // and four times as many make writers wait, whatever their bytes.
  static constexpr size_t kTxgBlocksDue = 64 * 1024;
  // The open txg should be committed now: half of the dirty limit,
  // kTxgBlocksDue blocks, or intent log frames in a quarter of the ring.
  bool OpenTxgDue() const BH_REQUIRES(mu) {
    return open_bytes > options.dirty_limit_bytes / 2 || open.size() > kTxgBlocksDue ||
           intent_untrimmed_bytes > intent_ring.capacity / 4;
  }
  // Writers wait for the syncing txg: the dirty limit, or 4 x kTxgBlocksDue.
  bool OpenTxgFull() const BH_REQUIRES(mu) {
    return open_bytes > options.dirty_limit_bytes || open.size() > 4 * kTxgBlocksDue;
  }
  void SyncLoop();
  // What a commit deletes of the intent log: records keyed before `end`,
  // and with `replay` the replay base.
  struct IntentTrim {
    uint64_t end = 0;
    bool replay = false;
    // The ring's new head: the first frame placed after the txg closed.
    uint64_t head_seq = 1;
    uint64_t head_offset = 0;
  };
  Status CommitTxg(uint64_t txg, const DirtyMap& blocks, std::vector<SyncTask*>& txg_tasks,
                   const std::optional<IntentTrim>& trim);
  Result<uint64_t> WaitForTxg(uint64_t txg);

  // --- blockmap.cc
  // The committed version of (lineage, blkno) visible at `view`, following
  // clone origins; nullopt when the block reads as zeros.
  Result<std::optional<BlockPtr>> Resolve(LineageId lineage, uint64_t blkno, uint64_t view);
  // The same with a caller's iterator over kCfBlocks, for lookups of many
  // blocks. forward: the iterator is a total-order one (not same_prefix)
  // and the lookups come in key order, so the first one steps there with
  // Next where that is near (see SeekForward in blockmap.cc).
  Result<std::optional<BlockPtr>> Resolve(KvIterator& it, LineageId lineage, uint64_t blkno,
                                          uint64_t view, bool forward = false);
  // Reads committed blocks [first, first + ptrs.size()) whose versions are
  // `ptrs` (nullopt: zeros; skipped where `skip` is set) into `out`, one
  // device read per physically contiguous run.
  // nowait: device reads through Vdev::ReadNoWait (WouldBlock when not
  // in memory).
  Status ReadPtrs(const std::vector<std::optional<BlockPtr>>& ptrs,
                  const std::vector<bool>& skip, LineageId lineage, uint64_t first,
                  uint32_t block_size, ByteSpan out, bool nowait = false);
  // Pool::ReadBlocks and TryReadBlocks.
  Status ReadRun(LineageId lineage, uint64_t first, uint64_t view, uint32_t block_size,
                 ByteSpan out, bool nowait);
  // The committed newest version of (lineage, blkno) in that lineage only,
  // with its birth; nullopt when the lineage has none.
  Result<std::optional<std::pair<uint64_t, BlockPtr>>> HeadVersion(LineageId lineage,
                                                                   uint64_t blkno);
  Status ReadPtr(const BlockPtr& ptr, LineageId lineage, uint64_t blkno, ByteSpan out,
                 bool nowait = false);
};

// State of one commit, shared by CommitTxg, the block map and sync tasks.
struct SyncContext::Rep {
  Pool::Impl* pool;
  uint64_t txg;
  KvBatch* batch;
  std::unique_ptr<KvIterator> blocks_it;  // committed state, for lookups
  Status failure;                         // set by SyncContext::Fail
  // Lookups see the previous txg, not this txg's batch. These remember what
  // this txg already removed, so that a sync task running after the blocks
  // (the coalescer) neither frees a version twice nor frees one the block
  // map just made the head again. Keys: encoded block keys / dead keys.
  std::set<std::string> freed_versions;
  std::set<std::string> removed_dead;
  // Lineages a lineage-wide operation rewrote in this txg (promote: all
  // three; rollback; truncate; destroy, and marking one destroying). Their
  // new state is only in the batch, so a freeing step on them, which reads
  // committed state, must wait for a later txg (CheckFreeable).
  std::set<LineageId> rewritten;
  // Extents this txg frees (Allocator::Free), applied by CommitTxg a slice
  // of alloc_mu at a time once the blocks and tasks are done: taken per
  // version, the mutex went back and forth with writers placing blocks and
  // (glibc's mutex being unfair) kept the event loop waiting up to 36 ms.
  std::vector<Extent> frees;
};

// blockmap.cc: applies one committed-to-be block version to the batch.
// `ptr` is the new version (hole when ptr.hole).
Status ApplyBlockVersion(SyncContext::Rep& rep, LineageId lineage, const LineageInfo& info,
                         uint64_t blkno, const BlockPtr& ptr);

// accounting.cc: space tallies (see the theory comment there). Every
// function runs on the sync thread; they take space_mu themselves.
//
// The version (birth, death) of `lineage` (death kHeadView while the head
// sees it) appears (add) or goes away (!add): counted in total and in the
// class it falls in (head, a dead bucket, or freeing).
void SpaceVersion(Pool::Impl& p, LineageId lineage, uint64_t birth, uint64_t death,
                  const BlockPtr& ptr, bool add);
// A version moves from death `from` to death `to` (kHeadView: revived).
void SpaceMove(Pool::Impl& p, LineageId lineage, uint64_t birth, uint64_t from, uint64_t to,
               const BlockPtr& ptr);
// The head of a clone starts (add) or stops hiding origin bytes `t`.
void SpaceShadow(Pool::Impl& p, LineageId lineage, const SpaceTally& t, bool add);
void SpaceCreateLineage(Pool::Impl& p, LineageId lineage);
void SpaceSnapshot(Pool::Impl& p, LineageId lineage, uint64_t txg);
SnapshotRelease SpaceRelease(Pool::Impl& p, LineageId lineage, uint64_t txg);
// After a rollback to txg removed and revived its versions: drops the
// snapshots after txg; the head hides what the snapshot hid.
void SpaceRollback(Pool::Impl& p, LineageId lineage, uint64_t txg);
// A destroy step freed `t` of a lineage being destroyed.
void SpaceDestroyed(Pool::Impl& p, LineageId lineage, const SpaceTally& t);
// The lineage is gone: its records leave memory and the batch deletes them.
void SpaceDropLineage(Pool::Impl& p, LineageId lineage, KvBatch& batch);
// Writes the changed records into the commit's batch.
void SpaceFlush(Pool::Impl& p, KvBatch& batch);
Status SpaceLoad(Pool::Impl& p);
// Recomputes a lineage's tallies from the block map. REQUIRES: sync_mu held.
Result<LineageSpace> RecountSpaceLocked(Pool::Impl& p, LineageId lineage);
// Scrub's check: every lineage's tallies against a recount; differences go
// to `problems` and count in r.space_mismatches. REQUIRES: sync_mu held.
Status CheckSpace(Pool::Impl& p, ScrubReport& r, std::vector<std::string>* problems);
SpaceTally BlockTally(const Pool::Impl& p, const BlockPtr& ptr);

}  // namespace blockhaus::core
