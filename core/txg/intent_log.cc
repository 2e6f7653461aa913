// Theory of operation: the intent log (D46, D54)
//
// Overview
//   A SYNCHRONIZE CACHE after a few small writes used to commit the open
//   txg: an fdatasync of the data file (the blocks, scattered wherever the
//   allocator put them, then a device flush) and a synced RocksDB batch (a
//   second flush), with the batch built in between. ZFS answers fsync from
//   its ZIL instead; this is the same idea. While the writes not yet made
//   durable are few (PoolOptions::intent_log_max_bytes),
//   Pool::FlushWrites() copies their blocks, as stored (compressed,
//   checksummed), into one record and writes it, in a frame, to the pool's
//   ring file (<dir>/intent, txg/intent_file.h) with one write and one
//   fdatasync. The file is written only in place (prefilled by volctl, or
//   allocated by its first lap), so that fdatasync has no file system
//   metadata to commit: no journal commit, which would also wait for the
//   data file's writeback (D54; until then records were RocksDB writes,
//   appends to its WAL). The blocks stay in their txg, which commits as it
//   would have (timer, dirty data, a Flush()), and that commit moves the
//   ring's head past the records it made obsolete. After a crash, Open
//   puts the blocks of the records left back into the open txg and
//   commits them before anything else runs.
//
// Data structures & on-disk format
//   Records: txg/intent_format.h; frames and the ring: txg/intent_file.h.
//   In memory, Impl::open_unlogged lists the keys the open txg took since
//   the last record (InsertDirty appends, a key may repeat),
//   syncing_unlogged those of the syncing txg (moved over when the txg
//   closes, cleared when it is durable). A record holds the current block
//   of each listed key of both maps, syncing txg first, each with the txg
//   it belongs to; holes (unmaps) too. Impl::intent_ring says where the
//   live frames are (head: the first that may matter; tail: where the next
//   goes) and hands out seq numbers, so records replay in the order they
//   were written. The head is in the metadata store (kMetaKeyIntentHead),
//   put by each commit that trims, with the seed of the frame checks
//   (kMetaKeyIntentSalt). Records of format 3, in the store under
//   "intent", are still replayed (before the ring's) and deleted.
//
// Invariants
//   L1 FlushWrites returns Ok only when every write and unmap that returned
//      before it started is durable, in a committed txg or in a record.
//      Blocks leave the unlogged lists only under intent_mu, which is held
//      until their record is durable; a later FlushWrites that finds the
//      lists empty took intent_mu after that. A failed record suspends the
//      pool (its blocks are off the lists, nothing may claim them durable).
//   L2 A record becomes obsolete only by the commit of a txg at or after
//      every txg whose blocks it holds: when txg T closes, it takes the
//      ring's cut (next seq, tail) under mu, where records take their seq
//      and place together; every record before the cut was built while T
//      or an earlier txg was open. T's commit puts the cut as the new head,
//      and only once that is durable may the ring reuse their room.
//   L3 Replay never puts back a block its txg committed: entries of txgs
//      up to the replay base are skipped, the synced_txg when the first
//      replay of these records began, kept on disk (kMetaKeyReplayBase)
//      because commits during a replay (timer, dirty data, space) reuse
//      the old txg numbers for replayed blocks. The replay commits before
//      the pool is used, and that commit makes every record obsolete (its
//      cut is past the last frame found; a crash during a commit leaves
//      records of two txgs), and deletes the base, so no record is
//      replayed over newer data. A crash during a replay leaves the
//      records and the base: the next open replays them all again, over
//      what the commits in between already put back (the same blocks, in
//      the same order).
//   L4 Payloads are read from the data file under the read gate (shared),
//      so the space of a block cannot be reused while it is copied (I4).
//   L5 A frame never overwrites a live one: a record is built only when
//      one of its largest possible size (every unlogged block, whole)
//      would find room, and it is placed when built; the head only moves
//      on meanwhile. Without room the flush commits instead.
//
// Concurrency & lock order
//   intent_mu -> read_gate -> mu. One record is built and written at a
//   time: FlushWrites callers queue on intent_mu, and each one logs what
//   accumulated while it waited (group commit). Writers only append keys
//   under mu, as they already hold it to put their blocks.
//
// Crash consistency
//   A frame is acknowledged only after its fdatasync. A scan from the head
//   takes the frames with the next seq expected, at the end of the last or
//   at 0, whose check (seeded with the pool's secret salt, so that a
//   guest's data shaped like a frame does not pass) matches; a frame torn
//   by the crash, or one of an older lap, ends the log. A frame of the seq
//   expected that fails its check while the next seq's frame follows it
//   and passes was damaged after its write (frames are written one at a
//   time, each synced first), and is not an end: it stops the open like a
//   damaged record, and a recovery open drops it and every frame behind
//   it. Every read-write open hands out seqs past any frame the ring can
//   hold (D57): behind an end lost beyond notice (a dropped write, a
//   damaged header) or dropped by a recovery there may be frames of the
//   seqs after it, and none may pass for a later frame of the new log.
//   Replay checks each
//   record whole (it decodes, its payloads match their checksums) before
//   it puts any of its blocks back; a record that does not decode or
//   verify stops the open with Corruption; the records stay (blocks
//   replayed before it may have been committed: L3 makes a later replay
//   put them back the same). A recovery open (PoolOptions::
//   discard_damaged_intent_log, volctl pool clear -F) replays the records
//   before the damaged one, then drops it and every later one (the
//   store's deleted, the ring's seq range marked in kMetaKeyIntentDropFrom)
//   with one synced batch and commits: the pool holds every flush up to
//   the one the damaged record made durable, in order, as after a crash
//   just before it (a later record without it could hold a state that
//   never was). A crash after the drop replays the same records again.
//   Replay writes blocks like any writer (reserve, write, dirty map). A
//   ring file that is missing while the store has its salt stops the
//   open (its records are lost); a recovery open makes a new one.
//
// Failure handling
//   A failed frame write or sync, or payload read, suspends the pool (as a
//   failed commit does). A read-only open does not replay: it sees the
//   last committed txg and says that records are waiting.
//
// Tunables
//   PoolOptions::intent_log_max_bytes (1 MiB; 0 turns the log off). Past
//   it a flush commits: a big txg's data is better written once, in place.
//   The ring's size (PoolCreateOptions::intent_log_bytes: a 32nd of the
//   data, 4 to 256 MiB); records filling a quarter of it start a commit,
//   so that those written while it runs find room.


#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>

#include "core/base/endian.h"
#include "core/base/logging.h"
#include "core/base/sync_point.h"
#include "core/pool/internal/pool_impl.h"
#include "core/txg/intent_file.h"
#include "core/txg/intent_format.h"

namespace blockhaus::core {

namespace {

struct LogEntry {
  DirtyKey key;
  uint64_t txg;
  BlockPtr ptr;
  uint64_t raw;  // DirtyBlock::raw
};

// The current block of each key of `keys` in `map`, each key once.
void TakeUnlogged(std::vector<DirtyKey>& keys, const DirtyMap& map, uint64_t txg,
                  std::vector<LogEntry>& out) {
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  for (const DirtyKey& key : keys) {
    auto it = map.find(key);
    if (it != map.end()) out.push_back(LogEntry{key, txg, it->second.ptr, it->second.raw});
  }
  keys.clear();
}

}  // namespace

Result<bool> Pool::Impl::LogWrites() {
  if (options.intent_log_max_bytes == 0 || intent_vdev == nullptr) return false;
  MutexLock order(&intent_mu);
  std::shared_lock<std::shared_mutex> gate(read_gate);
  std::vector<LogEntry> entries;
  uint64_t record_txg;
  {
    MutexLock lock(&mu);
    if (!failure.ok() || closing || !pending_tasks.empty()) return false;
    if (open_unlogged.empty() && syncing_unlogged.empty()) return true;  // L1
    const uint64_t most = open_unlogged_bytes + syncing_unlogged_bytes;
    // L5: a record that might not find room commits instead.
    if (most > options.intent_log_max_bytes ||
        !intent_ring.Place(IntentFrameSpan(kIntentHeaderSize + most))) {
      return false;
    }
    if (syncing) TakeUnlogged(syncing_unlogged, *syncing, open_txg - 1, entries);
    TakeUnlogged(open_unlogged, open, open_txg, entries);
    syncing_unlogged_bytes = 0;
    open_unlogged_bytes = 0;
    record_txg = open_txg;
  }
  thread_local std::string record;
  thread_local std::string frame;
  StartIntentRecord(&record);
  for (const LogEntry& e : entries) {
    if (e.raw != DirtyBlock::kNotRaw) {
      // A raw block (D49) is logged as its commit will store it.
      std::shared_ptr<Buffer> data = buffers.Get(e.ptr.lsize);
      Status s = dirty_scratch->Read(e.raw, *data);
      if (!s.ok()) return Suspend(s.Annotate("reading a block for the intent log"));
      PreparedBlock b = Prepare(*data, BlockOptions{e.ptr.compression, e.ptr.checksum_type});
      uint8_t* payload = AppendIntentEntry(&record, e.key.lineage, e.key.blkno, e.txg, b.ptr);
      std::memcpy(payload, b.payload->data(), b.ptr.psize);
      continue;
    }
    uint8_t* payload = AppendIntentEntry(&record, e.key.lineage, e.key.blkno, e.txg, e.ptr);
    if (payload == nullptr) continue;
    Status s = vdev->Read(e.ptr.offset, ByteSpan(payload, e.ptr.psize));
    if (!s.ok()) return Suspend(s.Annotate("reading a block for the intent log"));
  }
  gate.unlock();
  FinishIntentRecord(&record, static_cast<uint32_t>(entries.size()));
  const uint64_t span = IntentFrameSpan(record.size());
  uint64_t seq;
  uint64_t offset;
  {
    // The seq and the place are taken together, so that the cut a closing
    // txg takes (next_seq, tail) has every frame before it behind it.
    MutexLock lock(&mu);
    std::optional<uint64_t> at = intent_ring.Place(span);
    // The head only moves on, and the record is no longer than the bound
    // checked above, so there is room (L5); were there none, the commit
    // the caller then waits for makes the blocks taken durable.
    if (!at) return false;
    offset = *at;
    seq = intent_ring.next_seq++;
    intent_ring.tail = offset + span;
  }
  EncodeIntentFrame(intent_salt, seq, record_txg, record, &frame);
  BH_SYNC_POINT("intent:before-write");
  Status s = intent_vdev->Write(offset, ConstByteSpan(AsBytes(frame), frame.size()));
  if (s.ok()) s = intent_vdev->Sync();
  if (!s.ok()) return Suspend(s.Annotate("writing the intent log"));
  MutexLock lock(&mu);
  intent_untrimmed = true;
  intent_untrimmed_bytes += span;
  if (OpenTxgDue()) work_cv.notify_all();
  counters.intent_records++;
  counters.intent_bytes += frame.size();
  // A burst of large records would otherwise keep its memory.
  if (record.capacity() > 4 * options.intent_log_max_bytes) {
    std::string().swap(record);
    std::string().swap(frame);
  }
  return true;
}

namespace {

Result<std::optional<uint64_t>> GetU64(KvStore& kv, std::string_view key) {
  BH_ASSIGN_OR_RETURN(auto v, kv.Get(kCfDefault, key));
  if (!v) return std::optional<uint64_t>();
  if (v->size() != 8) return BH_ERROR(kCorruption, "metadata key '{}' is malformed", key);
  return std::optional<uint64_t>(DecodeLE64(AsBytes(*v)));
}

// The frames a recovery open dropped: seq in [first, end).
struct DropRange {
  uint64_t first = 0;
  uint64_t end = 0;
  bool contains(uint64_t seq) const { return seq >= first && seq < end; }
};

Result<std::optional<DropRange>> GetDropRange(KvStore& kv) {
  BH_ASSIGN_OR_RETURN(auto v, kv.Get(kCfDefault, kMetaKeyIntentDropFrom));
  if (!v) return std::optional<DropRange>();
  if (v->size() != 16) {
    return BH_ERROR(kCorruption, "metadata key '{}' is malformed", kMetaKeyIntentDropFrom);
  }
  return std::optional<DropRange>(DropRange{DecodeLE64(AsBytes(*v)),
                                            DecodeLE64(AsBytes(*v) + 8)});
}

uint64_t NewSalt() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) ^ rd();
}

}  // namespace

Status Pool::Impl::CreateIntentFile(const std::string& dir, uint64_t data_size,
                                    uint64_t bytes, bool prefill) {
  if (bytes == 0) bytes = std::clamp<uint64_t>(data_size / 32, 4ull << 20, 256ull << 20);
  bytes &= ~(kIntentFrameAlign - 1);
  if (bytes < kIntentFileMinBytes) {
    return BH_ERROR(kInvalidArgument, "an intent log of {} bytes is below the minimum of {}",
                    bytes, kIntentFileMinBytes);
  }
  const std::string path = dir + "/intent";
  BH_ASSIGN_OR_RETURN(auto vdev, OpenFileVdev(path, FileVdevOptions{.create = true,
                                                                    .size = bytes,
                                                                    .direct_writes = false}));
  if (prefill) {
    static const std::vector<uint8_t> kZeros(1 << 20, 0);
    for (uint64_t at = 0; at < bytes; at += kZeros.size()) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kZeros.size(), bytes - at));
      BH_RETURN_IF_ERROR(vdev->Write(at, ConstByteSpan(kZeros.data(), n)));
    }
  }
  BH_RETURN_IF_ERROR(vdev->Sync());
  return FsyncPath(dir);
}

Status Pool::Impl::OpenIntentFile() {
  BH_ASSIGN_OR_RETURN(std::optional<uint64_t> salt, GetU64(*kv, kMetaKeyIntentSalt));
  if (options.intent_vdev != nullptr) {
    intent_vdev = options.intent_vdev;
  } else {
    const std::string path = dir + "/intent";
    std::error_code ec;
    const bool exists = std::filesystem::exists(path, ec);
    if (exists) {
      FileVdevOptions vo;
      vo.read_only = options.read_only;
      vo.direct_writes = false;  // frames are written with Write
      BH_ASSIGN_OR_RETURN(owned_intent_vdev, OpenFileVdev(path, vo));
    } else if (options.read_only) {
      if (salt) {
        BH_LOG(kWarning, "pool {}: the intent log file {} is missing; a read-only open sees "
               "the last committed txg", label.name, path);
      }
      return Status::Ok();  // no ring: nothing to replay, nothing to log
    } else {
      // A pool of format 3 or older, or a new one: no record can be lost.
      // With a salt, records were written to a file that is gone.
      if (salt && !options.discard_damaged_intent_log) {
        return BH_ERROR(kCorruption, "pool {}: the intent log file {} is missing; the writes "
                        "it made durable are lost (a recovery open, `volctl pool clear -F`, "
                        "starts a new one)", label.name, path);
      }
      BH_RETURN_IF_ERROR(CreateIntentFile(dir, label.data_size, 0, false));
      BH_ASSIGN_OR_RETURN(owned_intent_vdev,
                          OpenFileVdev(path, FileVdevOptions{.direct_writes = false}));
      if (salt) {
        BH_LOG(kWarning, "pool {}: recovery open: the intent log file was missing, a new one "
               "was created; the writes the old one made durable are lost", label.name);
      }
    }
    intent_vdev = owned_intent_vdev.get();
  }
  const uint64_t capacity = intent_vdev->size() & ~(kIntentFrameAlign - 1);
  if (capacity < kIntentFileMinBytes) {
    return BH_ERROR(kCorruption, "pool {}: the intent log file holds {} bytes, below {}",
                    label.name, intent_vdev->size(), kIntentFileMinBytes);
  }
  if (!salt) {
    if (options.read_only) {  // no frame was ever written
      intent_vdev = nullptr;
      owned_intent_vdev.reset();
      return Status::Ok();
    }
    // After the file: a crash in between leaves a file and no salt, which
    // the next open takes as new (it holds no frame).
    salt = NewSalt();
    KvBatch batch;
    std::string v;
    PutLE64(&v, *salt);
    batch.Put(kCfDefault, kMetaKeyIntentSalt, v);
    BH_RETURN_IF_ERROR(kv->Write(batch, /*sync=*/true));
  }
  intent_salt = *salt;
  IntentRing ring;
  ring.capacity = capacity;
  BH_ASSIGN_OR_RETURN(auto head, kv->Get(kCfDefault, kMetaKeyIntentHead));
  if (head) {
    if (head->size() != 16) {
      return BH_ERROR(kCorruption, "metadata key '{}' is malformed", kMetaKeyIntentHead);
    }
    ring.head_seq = DecodeLE64(AsBytes(*head));
    ring.head_offset = DecodeLE64(AsBytes(*head) + 8);
    if (ring.head_seq == 0 || ring.head_offset % kIntentFrameAlign != 0 ||
        ring.head_offset > capacity) {
      return BH_ERROR(kCorruption, "metadata key '{}' is out of range (seq {}, offset {})",
                      kMetaKeyIntentHead, ring.head_seq, ring.head_offset);
    }
  }
  ring.next_seq = ring.head_seq;
  ring.tail = ring.head_offset;
  MutexLock lock(&mu);
  intent_ring = ring;
  return Status::Ok();
}

Status Pool::Impl::ReplayIntentLog() {
  // L3: the synced txg when the replay began, kept on disk until the
  // replay's commit: commits during the replay (the timer, dirty data,
  // space) advance synced_txg with replayed blocks, and a crash then must
  // not skip the entries whose old txg numbers the new commits reused.
  uint64_t base;
  IntentRing ring;
  {
    MutexLock lock(&mu);
    base = synced_txg;
    ring = intent_ring;
  }
  // What there is: records of format 3 in the store, frames in the ring
  // (this scan also finds where the next frame goes).
  bool stored_records;
  {
    auto it = kv->NewIterator(kCfDefault);
    it->Seek(kIntentKeyPrefix);
    BH_RETURN_IF_ERROR(it->status());
    stored_records = it->Valid() && it->key().starts_with(kIntentKeyPrefix);
  }
  IntentScanEnd ring_end{ring.head_seq, ring.head_offset, std::nullopt};
  if (intent_vdev != nullptr) {
    Result<IntentScanEnd> end =
        ScanIntentFrames(*intent_vdev, intent_salt, ring.head_seq, ring.head_offset,
                         [](const IntentFrame&) { return Status::Ok(); });
    if (!end.ok()) return end.status().Annotate("scanning the intent log");
    ring_end = *end;
  }
  const bool ring_records = ring_end.next_seq != ring.head_seq;
  BH_ASSIGN_OR_RETURN(std::optional<DropRange> dropped_before, GetDropRange(*kv));
  // A frame damaged after its write, with frames behind it (intent_file.h):
  // the log must not end there quietly. Unless a recovery open dropped
  // them already (and the power went before its commit), it stops the open
  // like a damaged record, or a recovery open drops it and those behind.
  std::optional<IntentDamage> damaged = ring_end.damaged;
  uint64_t next_seq = ring_end.next_seq;
  uint64_t dropped_frames = 0;  // the damaged one and those behind it
  if (damaged) {
    if (dropped_before && dropped_before->contains(damaged->seq)) {
      next_seq = std::max(damaged->after_seq, dropped_before->end);
      dropped_frames = damaged->after_seq - damaged->seq;
      damaged.reset();
    } else if (options.discard_damaged_intent_log) {
      next_seq = damaged->after_seq;
      dropped_frames = next_seq - damaged->seq;
    }
  }
  if (options.read_only) {
    // Reads see the last committed txg; the records wait for a read-write
    // open.
    if (damaged) {
      BH_LOG(kWarning, "pool {}: intent log frame {} (at {}) was damaged after its write, with "
             "frames behind it; opened read-only at the last commit (a read-write open stops "
             "there; `volctl pool clear -F` drops them)", label.name, damaged->seq,
             damaged->offset);
    } else if (stored_records || ring_records) {
      BH_LOG(kWarning, "pool {}: the intent log holds writes a crash left; opened read-only, "
             "they are not visible until a read-write open replays them", label.name);
    }
    return Status::Ok();
  }
  // New frames take seqs no frame in the ring can have: past the end found
  // lie frames of the seqs after it whenever the end was a frame lost or
  // damaged beyond notice (a write the device dropped, a damaged header),
  // or one dropped above; a new frame ending where such a one begins would
  // let a later scan follow it into the old one, and replay writes older
  // than the new frame's. The ring holds fewer frames than this gap. The
  // head is put at once when nothing replays (the replay's commit puts it
  // otherwise), before any frame can be written.
  next_seq += ring.capacity / kIntentFrameAlign + 1;
  const bool replays = stored_records || ring_records || damaged || dropped_frames > 0;
  if (!replays && intent_vdev != nullptr) {
    KvBatch batch;
    std::string head;
    PutLE64(&head, next_seq);
    PutLE64(&head, ring_end.tail);
    batch.Put(kCfDefault, kMetaKeyIntentHead, head);
    BH_RETURN_IF_ERROR(kv->Write(batch, /*sync=*/true));
  }
  {
    MutexLock lock(&mu);
    if (!replays) {
      intent_ring.head_seq = next_seq;
      intent_ring.head_offset = ring_end.tail;
    }
    intent_ring.next_seq = next_seq;
    intent_ring.tail = ring_end.tail;
  }
  if (!replays) return Status::Ok();
  BH_ASSIGN_OR_RETURN(std::optional<uint64_t> saved, GetU64(*kv, kMetaKeyReplayBase));
  if (saved) {
    base = *saved;
  } else {
    KvBatch batch;
    std::string v;
    PutLE64(&v, base);
    batch.Put(kCfDefault, kMetaKeyReplayBase, v);
    BH_RETURN_IF_ERROR(kv->Write(batch, /*sync=*/true));
  }
  const uint64_t synced = base;
  uint64_t records = 0;
  uint64_t replayed = 0;
  uint64_t skipped = 0;
  uint64_t last_record_txg = 0;
  // With discard_damaged_intent_log: the first record that does not
  // decode or verify, and every record after it, dropped unreplayed (the
  // store's deleted, the ring's marked).
  Status damage;
  std::vector<std::string> discarded_keys;
  std::optional<uint64_t> first_dropped_frame;
  uint64_t discarded_records = 0;
  uint64_t discarded_blocks = 0;
  // A record whose payloads match their checksums (those it would put
  // back), checked before any of it is put back, so that a discarded
  // record leaves nothing behind.
  auto verify = [&](const std::vector<IntentEntry>& entries) -> Status {
    for (const IntentEntry& e : entries) {
      if (e.ptr.hole || e.txg <= synced) continue;
      ConstByteSpan payload(reinterpret_cast<const uint8_t*>(e.payload.data()),
                            e.payload.size());
      if (ComputeChecksum(e.ptr.checksum_type, payload) != e.ptr.checksum) {
        return BH_ERROR(kCorruption, "block {} of lineage {} fails its checksum", e.blkno,
                        e.lineage);
      }
    }
    return Status::Ok();
  };
  // One record, `key_status` what its key said: checked whole, then its
  // blocks put back; or, damaged or after the damage, `drop` is called.
  auto take = [&](const std::string& where, const Status& key_status, uint64_t record_txg,
                  std::string_view value, const std::function<void()>& drop) -> Status {
    ++records;
    Result<std::vector<IntentEntry>> entries = DecodeIntentRecord(value);
    Status s = !damage.ok()       ? damage
               : !key_status.ok() ? key_status
               : !entries.ok()    ? entries.status()
                                  : verify(*entries);
    if (!s.ok()) {
      if (damage.ok()) {
        if (!options.discard_damaged_intent_log) return s.Annotate(where);
        damage = s.Annotate(where);
      }
      drop();
      ++discarded_records;
      if (entries.ok()) discarded_blocks += entries->size();
      return Status::Ok();
    }
    last_record_txg = std::max(last_record_txg, record_txg);
    for (const IntentEntry& e : *entries) {
      bool live;
      {
        MutexLock lock(&mu);
        auto li = lineages.find(e.lineage);
        live = li != lineages.end() && !li->second.destroying;
      }
      // L3; and a lineage destroyed meanwhile keeps none of its blocks.
      if (e.txg <= synced || !live) {
        ++skipped;
        continue;
      }
      if (e.ptr.hole) {
        DirtyBlock hole;
        hole.ptr.hole = true;
        BH_RETURN_IF_ERROR(PutDirty(e.lineage, e.blkno, hole, 0).Annotate(where));
        ++replayed;
        BH_SYNC_POINT("intent:replayed-block");
        continue;
      }
      ConstByteSpan payload(reinterpret_cast<const uint8_t*>(e.payload.data()),
                            e.payload.size());
      PreparedBlock b;
      b.ptr = e.ptr;
      b.payload = buffers.Get(payload.size());
      std::memcpy(b.payload->data(), payload.data(), payload.size());
      BH_RETURN_IF_ERROR(Place(std::span<PreparedBlock>(&b, 1)).Annotate(where));
      Status put = PutDirty(e.lineage, e.blkno, DirtyBlock{b.ptr}, b.ptr.lsize);
      if (!put.ok()) {
        UnreservePlaced(std::span<const PreparedBlock>(&b, 1));
        return put.Annotate(where);
      }
      ++replayed;
      BH_SYNC_POINT("intent:replayed-block");
    }
    return Status::Ok();
  };
  auto replay = [&]() -> Status {
    if (damaged && !options.discard_damaged_intent_log) {
      return BH_ERROR(kCorruption, "intent log frame {} (at {}) fails its check, and the "
                      "frames up to {} behind it pass theirs: it was damaged after its write",
                      damaged->seq, damaged->offset, damaged->after_seq - 1);
    }
    // Format 3's records first: a pool holds them only from a crash of an
    // older build, before any frame of the ring.
    auto it = kv->NewIterator(kCfDefault);
    for (it->Seek(kIntentKeyPrefix); it->Valid() && it->key().starts_with(kIntentKeyPrefix);
         it->Next()) {
      Result<std::pair<uint64_t, uint64_t>> key = DecodeIntentKey(it->key());
      const std::string where =
          key.ok() ? fmt::format("intent log record {}/{}", key->first, key->second)
                   : std::string("an intent log record with a malformed key");
      std::string k(it->key());
      BH_RETURN_IF_ERROR(take(where, key.status(), key.ok() ? key->first : 0, it->value(),
                              [&] { discarded_keys.push_back(k); }));
    }
    BH_RETURN_IF_ERROR(it->status());
    if (ring_records) {
      Result<IntentScanEnd> end = ScanIntentFrames(
          *intent_vdev, intent_salt, ring.head_seq, ring.head_offset,
          [&](const IntentFrame& f) -> Status {
            if (f.seq >= ring_end.next_seq) return Status::Ok();  // read past the first scan
            if (dropped_before && dropped_before->contains(f.seq)) {
              ++records;  // dropped by a recovery open whose replay did not finish
              return Status::Ok();
            }
            return take(fmt::format("intent log frame {} (at {})", f.seq, f.offset),
                        Status::Ok(), f.record_txg, f.body, [&] {
                          if (!first_dropped_frame) first_dropped_frame = f.seq;
                        });
          });
      BH_RETURN_IF_ERROR(end.status());
    }
    records += dropped_frames;
    if (damaged) {  // dropped now (not by an earlier recovery open)
      if (damage.ok()) {
        damage = BH_ERROR(kCorruption, "intent log frame {} (at {}) fails its check",
                          damaged->seq, damaged->offset);
      }
      if (!first_dropped_frame) first_dropped_frame = damaged->seq;
      discarded_records += dropped_frames;
      // The blocks of the frames behind it, for the count (its own do not
      // verify).
      BH_RETURN_IF_ERROR(ScanIntentFrames(*intent_vdev, intent_salt, damaged->seq + 1,
                                          damaged->behind_offset,
                                          [&](const IntentFrame& f) {
                                            if (f.seq >= damaged->after_seq) return Status::Ok();
                                            auto entries = DecodeIntentRecord(f.body);
                                            if (entries.ok()) discarded_blocks += entries->size();
                                            return Status::Ok();
                                          })
                             .status());
    }
    if (records == 0) return Status::Ok();
    if (discarded_records > 0) {
      // Gone before the replay commits: a crash in between replays the
      // records before the damage again, the same way (L3), and nothing
      // after it.
      KvBatch batch;
      for (const std::string& k : discarded_keys) batch.Delete(kCfDefault, k);
      if (first_dropped_frame) {
        std::string v;
        PutLE64(&v, *first_dropped_frame);
        PutLE64(&v, next_seq);
        batch.Put(kCfDefault, kMetaKeyIntentDropFrom, v);
      }
      BH_RETURN_IF_ERROR(kv->Write(batch, /*sync=*/true));
      BH_SYNC_POINT("intent:discarded");
      BH_LOG(kWarning, "pool {}: discarded {} intent log records from the first damaged one "
             "({}), with the {} blocks they held that decoded; the writes they made durable "
             "are lost", label.name, discarded_records, damage.ToString(), discarded_blocks);
      MutexLock lock(&mu);
      counters.intent_discarded_records += discarded_records;
      counters.intent_discarded_blocks += discarded_blocks;
    }
    // L3: the txg that takes this (empty) sync task deletes every record
    // (the store's, those keyed past its txg too; the ring's, by a head
    // past the last frame), the replay base and the drop mark; the task
    // makes it happen even when every entry was skipped. Flags and task
    // go in under one hold of mu, so the txg that closes with the task is
    // the one that trims (SyncLoop takes both at once).
    SyncTask commit{[](SyncContext&) { return Status::Ok(); }, [](SyncContext&) {},
                    Status::Ok(), 0, false};
    std::unique_lock<Mutex> lock(mu);
    intent_untrimmed = true;
    intent_replay_done = true;
    intent_trim_floor = last_record_txg;
    counters.intent_replayed_blocks += replayed;
    pending_tasks.push_back(&commit);
    work_cv.notify_all();
    WaitingForCommit waiting(*this);
    while (!commit.done) done_cv.wait(lock);
    return commit.result;
  };
  Status s = replay();
  if (!s.ok()) {
    // The records and the replay base stay for the next open; the pool
    // stops here, so nothing more commits (L3).
    (void)Suspend(s.Annotate("replaying the intent log"));
    if (s.code() == Code::kCorruption) {
      s = BH_ERROR(kCorruption, "{} (the records stay; a recovery open, `volctl pool clear -F`, "
                   "discards the damaged one and those after it, losing the writes they hold)",
                   s.message());
    }
    return s.Annotate(fmt::format("pool {}: replaying the intent log", label.name));
  }
  if (records > 0) {
    BH_LOG(kInfo, "pool {}: replayed {} blocks from {} intent log records ({} already committed)",
           label.name, replayed, records, skipped);
  }
  return Status::Ok();
}

}  // namespace blockhaus::core
