// Pool: the copy-on-write block store of one pool directory.
//
// A pool stores versions of logical blocks for "lineages" (a volume and its
// snapshots share one lineage; core knows nothing of volumes). Writes land in
// the open transaction group (txg) in memory and are readable at once; a txg
// commits on a timer, past a dirty-data limit, or on Flush(). A committed txg
// is durable: its data was fdatasync'ed before one synced RocksDB batch made
// the block pointers, allocator maps and sync-task changes visible together.
// FlushWrites() makes writes durable without a commit when they are few:
// their blocks go into an intent log, replayed by the next Open after a
// crash. See core/txg/txg.cc for the commit protocol, core/txg/intent_log.cc
// for the intent log and core/blockmap/blockmap.cc for versions, views,
// holes and dead lists.
//
// Views: Read(..., kHeadView, ...) sees the newest data, including the open
// txg. Read(..., T, ...) sees the newest version born at or before committed
// txg T (a snapshot). A lineage created with an origin (L, T) is a clone: a
// block it never wrote reads as view T of lineage L.
//
// Errors (beyond each function's own): Unavailable after Close() or once the
// pool is suspended by a failed commit (health() tells why; reopen the pool),
// ResourceExhausted when a write finds no space: writes must leave the
// slop, dirty data and other lineages' unused reservations untouched
// (SyncContext::SetReservation, docs/DECISIONS.md D14).
// Thread safety: thread-safe. Reads and writes run on any thread; commits
// run on the pool's sync thread.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/base/endian.h"
#include "core/base/status.h"
#include "core/blockmap/blockmap_format.h"
#include "core/blockmap/space_format.h"
#include "core/checksum/checksum.h"
#include "core/compress/compress.h"
#include "core/pool/label_format.h"

namespace blockhaus::core {

class Vdev;
class KvFaultInjector;
class SyncContext;
class StagedWrite;

using LineageId = uint64_t;
inline constexpr uint64_t kHeadView = std::numeric_limits<uint64_t>::max();
inline constexpr uint32_t kMinBlockSize = 512;
inline constexpr uint32_t kMaxBlockSize = 128 * 1024;

struct BlockOptions {
  Compression compression{CompressionAlgo::kLz4, 0};
  ChecksumType checksum = ChecksumType::kXxh3_128;

  bool operator==(const BlockOptions&) const = default;
};

struct PoolCreateOptions {
  std::string name;       // required; see ValidatePoolName
  std::string data_path;  // default "<dir>/data"; an existing file or device
  uint64_t data_size = 0; // bytes; required when data_path does not exist yet
  uint32_t ashift = 12;   // sector size 1 << ashift, 9..16
  uint64_t slab_size = 0; // bytes; 0 picks 64 MiB, smaller for small pools
  // The intent log's ring file, <dir>/intent (D54): 0 picks a 32nd of the
  // data size, 4 MiB to 256 MiB. With prefill it is written with zeros at
  // once (volctl does), so that even its first lap overwrites in place;
  // else it is sparse, and its first lap allocates as it goes.
  uint64_t intent_log_bytes = 0;
  bool intent_log_prefill = false;
};

struct PoolOptions {
  // Commit the open txg at least this often (milliseconds). Default 5000.
  uint32_t txg_timeout_ms = 5000;
  // Most data the open txg may hold; writers wait beyond it. A commit
  // starts once half of it is dirty (D47). The data is in the data file's
  // page cache or the raw dirty scratch (raw_dirty_bytes), not in the
  // pool's heap (D29, D49), so this bounds what a commit writes out, not
  // the heap. 0: a tenth of the RAM, 64 MiB to 4 GiB (ZFS's
  // zfs_dirty_data_max).
  uint64_t dirty_limit_bytes = 0;
  // Open for reading only (list, get, read, diff, status): no sync thread,
  // the data file and the metadata store are opened read-only and nothing
  // under the pool directory is written (the lock file aside). Write,
  // Unmap and RunSyncTask return FailedPrecondition; Flush returns the
  // last synced txg; reads and Scrub work.
  bool read_only = false;
  // Threads that help a write of many blocks (WriteBlocks) compress and
  // checksum them beside the writing thread; -1: one fewer than the CPUs,
  // at most 3.
  int prepare_threads = -1;
  // FlushWrites() logs the uncommitted writes and unmaps (core/txg/
  // intent_log.cc) instead of committing them while they take at most this
  // many bytes (payloads plus ~80 bytes a block); beyond, it commits. 0:
  // never log, FlushWrites() is Flush().
  uint64_t intent_log_max_bytes = 1ull << 20;
  // Recovery (volctl pool clear -F, ZFS's zpool clear -F): an intent log
  // record that does not decode or verify (or a ring frame damaged after
  // its write, with frames behind it), and every record after it, are
  // dropped instead of stopping the open; the records before it replay.
  // The writes the dropped records made durable are lost (a warning and
  // the intent_discarded_* counters say how many). Off: such a record
  // stops a read-write open with Corruption, and nothing changes.
  bool discard_damaged_intent_log = false;
  // Raw dirty blocks (D49): writes with compression on keep their blocks
  // uncompressed in memory (a memfd of this many bytes, shmem), and the
  // commit compresses each once, however often its txg rewrote it. A
  // write that finds it full compresses its blocks itself. nullopt:
  // dirty_limit_bytes (the open and the syncing txg together); below
  // 128K: off. Its pages go back to the system when six txg timeouts pass
  // with nothing in it.
  std::optional<uint64_t> raw_dirty_bytes = std::nullopt;
  // Streams bypass the page cache (D55): a commit writes the raw blocks
  // (D49) of a run of at least this many logically contiguous bytes of one
  // volume, written in its txg (a file copy, a restore, a log), with
  // O_DIRECT where the data file's file system supports it: no copy into
  // the cache, no fresh cache pages, nothing left for fdatasync to write
  // out. Reads of those blocks come from the device until the page cache
  // has them; shorter runs (random writes, which a workload tends to read
  // back) stay buffered and cached. bcache's sequential_cutoff, 4 MiB by
  // default, is the same idea. 0: every commit write is buffered.
  uint64_t direct_run_bytes = 4u << 20;
  // Test seams (not owned, must outlive the pool): the data vdev to use
  // instead of opening label.data_path, the intent log's instead of
  // <dir>/intent, and a fault injector for RocksDB.
  Vdev* vdev = nullptr;
  Vdev* intent_vdev = nullptr;
  KvFaultInjector* kv_fault_injector = nullptr;
};

struct PoolStats {
  uint64_t capacity = 0;   // bytes of the data region
  uint64_t allocated = 0;  // bytes held by committed blocks
  uint64_t free = 0;       // bytes allocatable now
  uint64_t deferred = 0;   // freed bytes waiting for their txg to be durable
  uint64_t slop = 0;       // bytes kept back so that frees always commit
  uint64_t dirty = 0;      // bytes written but not yet committed
  uint64_t reserved = 0;   // data file bytes held by blocks not yet committed
                           // (dirty, or staged by Pool::PrepareAhead); counted in free
  uint64_t open_txg = 0;
  uint64_t synced_txg = 0;
  uint64_t txgs_committed = 0;  // since open
  uint64_t last_commit_us = 0;  // duration of the last commit
  // Block versions commits found in the head cache instead of the block
  // map (D45), since open.
  uint64_t head_cache_hits = 0;
  // Intent log (core/txg/intent_log.cc), since open: FlushWrites() calls
  // made durable by a record instead of a commit, the records' bytes, and
  // the blocks Open replayed from records a crash left.
  uint64_t intent_records = 0;
  uint64_t intent_bytes = 0;
  uint64_t intent_replayed_blocks = 0;
  // Records a recovery open dropped (discard_damaged_intent_log), and the
  // blocks of those that still decoded.
  uint64_t intent_discarded_records = 0;
  uint64_t intent_discarded_blocks = 0;
  // Raw dirty blocks (D49): the scratch area's size (0: off), the bytes in
  // it now and at most since open, the blocks commits compressed out of it
  // since open, and the writes that found it full (their writers
  // compressed their blocks themselves).
  uint64_t raw_dirty_capacity = 0;
  uint64_t raw_dirty_bytes = 0;
  uint64_t raw_dirty_peak = 0;
  uint64_t raw_blocks_committed = 0;
  uint64_t raw_dirty_full = 0;
  // Bytes of raw blocks copied into the area while their write's data was
  // still arriving (PrepareAhead, D52), since open.
  uint64_t raw_copied_ahead = 0;
  // Bytes commits wrote past the page cache (streams, D55), since open.
  uint64_t direct_bytes = 0;
};

struct ScrubReport {
  uint64_t blocks_checked = 0;
  uint64_t bytes_checked = 0;   // physical bytes read and verified
  uint64_t checksum_errors = 0;
  uint64_t decode_errors = 0;   // pointers or lineage records that do not decode
  uint64_t leaked_bytes = 0;    // allocated but referenced by no block
  uint64_t double_allocated = 0;  // extents referenced twice or while free
  uint64_t referenced_bytes = 0;
  uint64_t allocated_bytes = 0;
  uint64_t space_mismatches = 0;  // lineages whose tallies differ from a recount
  std::vector<std::string> problems;  // human-readable, first 100
  bool clean() const {
    return checksum_errors == 0 && decode_errors == 0 && leaked_bytes == 0 &&
           double_allocated == 0 && referenced_bytes == allocated_bytes &&
           space_mismatches == 0;
  }
};

// What releasing a snapshot of a lineage did (SyncContext::ReleaseSnapshot).
struct SnapshotRelease {
  uint64_t prev = 0;   // the snapshot before it, 0 if none
  uint64_t next = 0;   // the snapshot after it, 0 if it was the newest
  SpaceTally unique;   // bytes only it saw: now waiting to be freed
};

// Space still to be freed in the background (exact, from the tallies).
struct PendingFrees {
  SpaceTally bytes;          // dead versions no view sees, plus lineages being destroyed
  uint64_t lineages = 0;     // lineages being destroyed
};

// Progress of a bounded freeing step run in syncing context.
struct FreeProgress {
  uint64_t versions = 0;  // block versions removed or revived
  uint64_t bytes = 0;     // space returned to the allocator (deferred)
  bool more = false;      // the limit stopped the step before it was done
};

class Pool {
 public:
  // Creates the pool directory contents (label, metadata store, data file)
  // and commits txg 1. `dir` must not hold a pool.
  // Errors: InvalidArgument (name, sizes, ashift), AlreadyExists, IOError,
  // PermissionDenied, NotFound (a device path that does not exist).
  static Status Create(const std::string& dir, const PoolCreateOptions& options);

  // Opens an existing pool and starts its sync thread.
  // Errors: NotFound (no label), Corruption (label, metadata or data vdev do
  // not match or decode), Unavailable (open by another process).
  static Result<std::unique_ptr<Pool>> Open(const std::string& dir,
                                            const PoolOptions& options = {});

  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Commits the open txg, stops the sync thread and closes the store. The
  // destructor calls it; call it yourself to see the Status.
  Status Close();

  const PoolLabel& label() const;
  PoolStats stats() const;
  // Ok, or the failure that suspended the pool.
  Status health() const;

  // Writes one whole block at the head of `lineage`. The data is readable at
  // once and durable after the next Flush(). Block sizes are 512..128K.
  // Errors: NotFound (lineage), InvalidArgument (size), ResourceExhausted.
  Status Write(LineageId lineage, uint64_t blkno, ConstByteSpan data,
               const BlockOptions& options);
  // Writes data.size() / block_size consecutive blocks from `first`, as
  // Write() would one by one, compressing them on prepare_threads helpers
  // too. data.size() must be a multiple of block_size. On an error, the
  // blocks before the failing one are written.
  Status WriteBlocks(LineageId lineage, uint64_t first, uint32_t block_size,
                     ConstByteSpan data, const BlockOptions& options);
  // WriteBlocks that never waits (for a commit, the write throttle, space
  // being freed or a reader): WouldBlock, with nothing written, unless the
  // blocks can go in at once. For event loops, which must not block; they
  // retry with WriteBlocks elsewhere. The data file write itself is a
  // buffered pwritev (the kernel may still throttle it). The calling thread
  // compresses every block itself: no prepare_threads helper (D33).
  Status TryWriteBlocks(LineageId lineage, uint64_t first, uint32_t block_size,
                        ConstByteSpan data, const BlockOptions& options);
  // TryWriteBlocks that takes the blocks `staged` prepared from the start
  // of the same data (PrepareAhead) instead of preparing them again, and
  // prepares the rest. `staged` is emptied whatever the outcome. Blocks
  // staged from other data (another address, block size or options, or
  // another pool) are not used.
  Status TryWriteBlocks(LineageId lineage, uint64_t first, uint32_t block_size,
                        ConstByteSpan data, const BlockOptions& options, StagedWrite* staged);
  // Compresses and checksums the whole blocks of `arrived`, the first bytes
  // of a write's data that is still arriving, which `staged` does not hold
  // yet, and writes them to space reserved in the data file where there is
  // room without waiting, so that the write itself only maps them (D35).
  // A write whose blocks stay raw (D49) instead has a run of the raw dirty
  // area claimed for all its `length` bytes and its blocks copied there as
  // they arrive, so that the write copies only the rest (D52).
  // Nothing is visible to readers, and nothing of it survives a crash.
  // Calls for the same write pass the same start and length and a growing
  // `arrived`; a call with another start, block size or options starts
  // `staged` afresh. The bytes of `arrived` must not change until the
  // write or StagedWrite::Reset. Does nothing on a read-only pool; never
  // waits.
  void PrepareAhead(StagedWrite* staged, uint32_t block_size, uint64_t length,
                    ConstByteSpan arrived, const BlockOptions& options);
  // Unmaps a block at the head: it reads as zeros and frees its space once
  // no snapshot sees it.
  Status Unmap(LineageId lineage, uint64_t blkno);
  // Reads a block at a view (kHeadView or a committed txg). Unwritten and
  // unmapped blocks read as zeros. out.size() must equal the block's size.
  // Errors: Corruption (checksum mismatch, with lineage, block and offset),
  // IOError, InvalidArgument (out.size() differs from the stored size).
  Status Read(LineageId lineage, uint64_t blkno, uint64_t view, ByteSpan out);
  // Reads out.size() / block_size consecutive blocks from `first`, each of
  // block_size bytes, as Read() would one by one, but with one metadata
  // iterator for all and one device read per physically contiguous run.
  // out.size() must be a multiple of block_size.
  Status ReadBlocks(LineageId lineage, uint64_t first, uint64_t view, uint32_t block_size,
                    ByteSpan out);
  // ReadBlocks that never waits for a device: WouldBlock (and `out`
  // unspecified) unless the metadata and data are all in memory (dirty
  // data, RocksDB's memtables and block cache, the page cache). For event
  // loops, which must not block; they retry with ReadBlocks elsewhere.
  Status TryReadBlocks(LineageId lineage, uint64_t first, uint64_t view, uint32_t block_size,
                       ByteSpan out);
  // Returns the version visible at a view without reading data, or nullopt
  // for a block that reads as zeros. Does not look into dirty data.
  Result<std::optional<BlockPtr>> LookupCommitted(LineageId lineage, uint64_t blkno,
                                                  uint64_t view);

  // Commits everything written so far and returns the txg that made it
  // durable. Concurrent callers share one commit (group commit).
  Result<uint64_t> Flush();
  // Makes every write and unmap done so far durable (SYNCHRONIZE CACHE, FUA):
  // with at most options.intent_log_max_bytes of them uncommitted and no
  // sync task waiting, by one synced intent log record, else by Flush().
  // Logged blocks stay in their txg, which commits as usual; committed
  // state (LookupCommitted, ChangedBlocks, views) does not see them before.
  Status FlushWrites();

  // Runs `check` and then `sync` on the sync thread inside one txg and waits
  // until that txg is durable (ZFS sync task). `check` may fail (nothing
  // changes); `sync` must not fail. Returns the txg.
  using CheckFn = std::function<Status(SyncContext&)>;
  using SyncFn = std::function<void(SyncContext&)>;
  Result<uint64_t> RunSyncTask(CheckFn check, SyncFn sync);

  // Logical blocks that may read differently at view `b` of lineage
  // `b_lineage` than at view `a` of `a_lineage`, found through the births
  // index: the candidates are the versions of b_lineage born in
  // (born_after, b], and a candidate is reported when the two views resolve
  // to different versions (two zero-reading blocks are the same). Cost is
  // proportional to the versions born after born_after, never to the
  // lineage's size. Sorted, each block once. Committed state only (Flush
  // first to include dirty data). REQUIRES: every version of b_lineage
  // visible at b that is not visible at view a is born after born_after.
  Result<std::vector<uint64_t>> ChangedBlocks(LineageId a_lineage, uint64_t a,
                                              LineageId b_lineage, uint64_t b,
                                              uint64_t born_after);
  // Whether any block in [first, end) reads as non-zero at the head of
  // `lineage` (following clone origins). Committed state only. Cost is
  // proportional to the versions stored in that range.
  Result<bool> HasDataInRange(LineageId lineage, uint64_t first, uint64_t end);

  Result<LineageInfo> GetLineage(LineageId lineage) const;
  std::vector<std::pair<LineageId, LineageInfo>> ListLineages() const;

  // Reads a key of the client column family (for the layers above core).
  Result<std::optional<std::string>> GetClientKey(std::string_view key);
  // Every client key starting with prefix, in order.
  Result<std::vector<std::pair<std::string, std::string>>> ScanClientKeys(
      std::string_view prefix);

  // Verifies every block checksum and the allocator against the block map,
  // and every lineage's space tallies against a recount. Commits are held
  // off while it runs.
  Result<ScrubReport> Scrub();

  // Space accounting (core/blockmap/accounting.cc), kept at every commit.
  // The tallies of a lineage as of the last committed txg.
  // Errors: NotFound.
  Result<LineageSpace> GetSpace(LineageId lineage) const;
  // Bytes visible at a view of a lineage, through clone origins:
  // own versions plus what the origin view shows where it hides nothing.
  Result<SpaceTally> ReferencedAt(LineageId lineage, uint64_t view) const;
  PendingFrees pending_frees() const;
  // Unused reservations of all lineages: sum of reservation - head_new.
  uint64_t unused_reservations() const;
  // Bytes a write to a lineage without a reservation could still get: free
  // space less the slop, dirty data and every unused reservation (D14).
  uint64_t unreserved_free() const;
  // What is left of a lineage's reservation: reservation - bytes born
  // after its newest snapshot - its dirty data (0 when none).
  uint64_t reservation_room(LineageId lineage) const;
  // The capacity, and what a write to `lineage` could still get
  // (unreserved_free() + reservation_room(lineage)), read together under
  // one hold of the pool's lock: the thin-provisioning check asks for
  // every write, and stats() would also take the allocator's lock.
  struct Room {
    uint64_t capacity = 0;
    uint64_t available = 0;
  };
  Room room(LineageId lineage) const;
  // Recomputes a lineage's tallies from the block map (slow: reads every
  // version of the lineage; for scrub and tests). Commits are held off.
  // For a lineage being destroyed only `total` is meaningful.
  Result<LineageSpace> RecountSpace(LineageId lineage);

  struct Impl;

 private:
  explicit Pool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The blocks of one write prepared ahead of it (Pool::PrepareAhead): their
// compressed payloads and checksums, or their pointers once they are in the
// data file, in space reserved for them but not mapped; or, for raw blocks,
// the run of the raw dirty area they are being copied into. The write takes
// them; Reset (or the destructor) gives the space back. It may outlive its
// pool, which takes back every reservation when it goes. Reusable.
// Thread safety: none; one writer at a time.
class StagedWrite {
 public:
  StagedWrite();
  ~StagedWrite();
  StagedWrite(const StagedWrite&) = delete;
  StagedWrite& operator=(const StagedWrite&) = delete;

  // Forgets the prepared blocks, gives back their buffers and their space.
  void Reset();
  void Swap(StagedWrite& other) { rep_.swap(other.rep_); }
  // Blocks prepared so far.
  size_t blocks() const;

  struct Rep;

 private:
  friend struct Pool::Impl;
  std::unique_ptr<Rep> rep_;
};

// What a sync task may do. Valid only during the task's call.
class SyncContext {
 public:
  uint64_t txg() const;

  LineageId CreateLineage(const LineageInfo& info);
  void UpdateLineage(LineageId lineage, const LineageInfo& info);
  // Sets the newest-snapshot txg of a lineage to this txg: versions born up
  // to now are kept when overwritten. Returns the txg (the snapshot's view).
  uint64_t SnapshotLineage(LineageId lineage);

  // Frees dead versions of `lineage` born in (birth_lo, birth_hi] that died
  // in (death_lo, death_hi]: the versions only a destroyed snapshot saw.
  // Examines at most `limit` dead-list entries per call, starting at
  // *cursor (empty: the start of the interval); when it stops early it sets
  // *cursor to where the next call goes on (and returns more), else clears
  // it. Entries outside the birth range are passed over, never rescanned
  // within one pass. It reads committed state, so it refuses with
  // FailedPrecondition (call again in a later txg) when this txg could
  // hold entries it must see: death_hi >= this txg, or the lineage was
  // rewritten in this txg (rollback, truncate, promote, destroy).
  Result<FreeProgress> FreeDeadVersions(LineageId lineage, uint64_t birth_lo,
                                        uint64_t birth_hi, uint64_t death_lo,
                                        uint64_t death_hi, uint64_t limit,
                                        std::string* cursor = nullptr);
  // Forgets snapshot `txg` of a lineage for space accounting: the bytes
  // only it saw move to the pending frees, its interval merges with the
  // next one. The caller queues the free job (FreeDeadVersions over
  // (prev, txg] x (txg, next or now]). REQUIRES: txg is a snapshot.
  SnapshotRelease ReleaseSnapshot(LineageId lineage, uint64_t txg);
  // Sets the bytes reserved for a lineage's head (refreservation).
  void SetReservation(LineageId lineage, uint64_t bytes);

  // Removes versions born after `txg` and revives versions that died after
  // it, at most `limit` per call. REQUIRES: no writes reach the lineage's head
  // meanwhile (the caller fences them), and no snapshot newer than txg.
  Result<FreeProgress> RollbackLineage(LineageId lineage, uint64_t txg, uint64_t limit);
  // Removes every version and dead-list entry of a lineage, at most `limit`
  // per call; the lineage record goes with the last call. FailedPrecondition
  // if the lineage is not marked destroying, was marked (or rewritten) in
  // this txg, or is a clone's origin.
  Result<FreeProgress> DestroyLineage(LineageId lineage, uint64_t limit);

  // Makes every block in [first, end) of `lineage` read as zeros at the
  // head: head-only versions are freed and versions a snapshot (or, for a
  // clone, the origin) still sees are covered by a hole, exactly as an
  // unmap of each block would. Visits the versions stored in the range, in
  // the lineage and its clone origins, never the range block by block.
  // REQUIRES: no writes reach the lineage's head meanwhile (fenced and
  // flushed), no freeing step of this lineage in the same txg.
  Result<FreeProgress> TruncateLineage(LineageId lineage, uint64_t first, uint64_t end);

  // Promotes clone lineage `clone` (origin (L, T)): afterwards L holds the
  // versions the clone's head and snapshots see, and the versions of L born
  // after T (the former origin's head and its snapshots after T) live in a
  // new lineage that falls through to (L, T), whose id is returned. Steps:
  // L's versions and dead-list entries born after T move to the new
  // lineage, dead-list entries of L that died after T go (those versions
  // are L's head again), then every version of `clone` moves into L, and
  // each block's oldest moved version dead-lists the L version it now
  // covers. Lineages that fell through to (L, t > T) now fall through to
  // (new, t); those of (clone, t) to (L, t). L keeps its own origin; its
  // fence becomes max(T, the clone's fence); the new lineage gets
  // `new_fence`; `clone`'s record goes. Nothing is freed or allocated, and
  // no block reads differently through the lineages' new owners. Cost is
  // proportional to the versions born after T in L plus those in `clone`.
  // REQUIRES: both heads fenced and flushed; no freeing step of L or
  // clone in the same txg.
  Result<LineageId> PromoteLineage(LineageId clone, uint64_t new_fence);

  void PutClientKey(std::string_view key, std::string_view value);
  void DeleteClientKey(std::string_view key);

  // For a sync function that meets an error it cannot avoid (a metadata
  // read failing): the txg does not commit and the pool is suspended, as
  // for any failed commit. The first failure wins.
  void Fail(const Status& status);

  struct Rep;
  explicit SyncContext(Rep* rep) : rep_(rep) {}

 private:
  Rep* rep_;
};

}  // namespace blockhaus::core
