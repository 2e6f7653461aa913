// Theory of operation: the intent log (D46)
//
// Overview
//   A SYNCHRONIZE CACHE after a few small writes used to commit the open
//   txg: an fdatasync of the data file (the blocks, scattered wherever the
//   allocator put them, then a device flush) and a synced RocksDB batch (a
//   second flush), with the batch built in between. ZFS answers fsync from
//   its ZIL instead; this is the same idea on the metadata store. While the
//   writes not yet made durable are few (PoolOptions::intent_log_max_bytes),
//   Pool::FlushWrites() copies their blocks, as stored (compressed,
//   checksummed), into one record and writes it with one synced RocksDB
//   write: a sequential append to the WAL and one flush. The blocks stay in
//   their txg, which commits as it would have (timer, dirty data, a
//   Flush()), and that commit deletes the records it made obsolete. After a
//   crash, Open puts the blocks of the records left back into the open txg
//   and commits them before anything else runs.
//
// Data structures & on-disk format
//   Records: txg/intent_format.h. In memory, Impl::open_unlogged lists the
//   keys the open txg took since the last record (InsertDirty appends, a
//   key may repeat), syncing_unlogged those of the syncing txg (moved over
//   when the txg closes, cleared when it is durable). A record holds the
//   current block of each listed key of both maps, syncing txg first, each
//   with the txg it belongs to; holes (unmaps) too. Its key is the open txg
//   and a sequence number, so records replay in the order they were
//   written.
//
// Invariants
//   L1 FlushWrites returns Ok only when every write and unmap that returned
//      before it started is durable, in a committed txg or in a record.
//      Blocks leave the unlogged lists only under intent_mu, which is held
//      until their record is durable; a later FlushWrites that finds the
//      lists empty took intent_mu after that. A failed record suspends the
//      pool (its blocks are off the lists, nothing may claim them durable).
//   L2 A record is deleted only by the commit of a txg at or after every
//      txg whose blocks it holds: record_txg is the open txg when it was
//      built and the commit of T deletes records with record_txg <= T.
//   L3 Replay never puts back a block its txg committed: entries of txgs
//      up to the replay base are skipped, the synced_txg when the first
//      replay of these records began, kept on disk (kMetaKeyReplayBase)
//      because commits during a replay (timer, dirty data, space) reuse
//      the old txg numbers for replayed blocks. The replay commits before
//      the pool is used, and that commit deletes every record, including
//      those keyed past its txg (a crash during a commit leaves records of
//      two txgs), and the base, so no record is replayed over newer data.
//      A crash during a replay leaves the records and the base: the next
//      open replays them all again, over what the commits in between
//      already put back (the same blocks, in the same order).
//   L4 Payloads are read from the data file under the read gate (shared),
//      so the space of a block cannot be reused while it is copied (I4).
//
// Concurrency & lock order
//   intent_mu -> read_gate -> mu. One record is built and written at a
//   time: FlushWrites callers queue on intent_mu, and each one logs what
//   accumulated while it waited (group commit). Writers only append keys
//   under mu, as they already hold it to put their blocks.
//
// Crash consistency
//   RocksDB writes a record atomically (a torn WAL tail is dropped on
//   recovery) and never acknowledges it before its fdatasync. Replay checks
//   each record whole (it decodes, its payloads match their checksums)
//   before it puts any of its blocks back; a record that does not decode
//   or verify stops the open with Corruption; the records stay (blocks
//   replayed before it may have been committed: L3 makes a later replay
//   put them back the same). A recovery open (PoolOptions::
//   discard_damaged_intent_log, volctl pool clear -F) replays the records
//   before the damaged one, then deletes it and every later one with one
//   synced batch and commits: the pool holds every flush up to the one the
//   damaged record made durable, in order, as after a crash just before
//   it (a later record without it could hold a state that never was). A
//   crash after the deletion replays the same records again. Replay
//   writes blocks like any writer (reserve, write, dirty map).
//
// Failure handling
//   A failed record write or payload read suspends the pool (as a failed
//   commit does). A read-only open does not replay: it sees the last
//   committed txg and says that records are waiting.
//
// Tunables
//   PoolOptions::intent_log_max_bytes (1 MiB; 0 turns the log off). Past
//   it a flush commits: a big txg's data is better written once, in place.
//   Impl::kIntentDueBytes (16 MiB): records not yet deleted start a commit,
//   so that they do not fill RocksDB's memtables.

#include <algorithm>
#include <cstring>

#include "core/base/endian.h"
#include "core/base/logging.h"
#include "core/base/sync_point.h"
#include "core/pool/internal/pool_impl.h"
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
  if (options.intent_log_max_bytes == 0) return false;
  MutexLock order(&intent_mu);
  std::shared_lock<std::shared_mutex> gate(read_gate);
  std::vector<LogEntry> entries;
  uint64_t record_txg;
  uint64_t seq;
  {
    MutexLock lock(&mu);
    if (!failure.ok() || closing || !pending_tasks.empty()) return false;
    if (open_unlogged.empty() && syncing_unlogged.empty()) return true;  // L1
    if (open_unlogged_bytes + syncing_unlogged_bytes > options.intent_log_max_bytes) {
      return false;
    }
    if (syncing) TakeUnlogged(syncing_unlogged, *syncing, open_txg - 1, entries);
    TakeUnlogged(open_unlogged, open, open_txg, entries);
    syncing_unlogged_bytes = 0;
    open_unlogged_bytes = 0;
    record_txg = open_txg;
    seq = ++intent_seq;
  }
  thread_local std::string record;
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
  KvBatch batch;
  batch.Put(kCfDefault, EncodeIntentKey(record_txg, seq), record);
  Status s = kv->Write(batch, /*sync=*/true);
  if (!s.ok()) return Suspend(s.Annotate("writing the intent log"));
  MutexLock lock(&mu);
  intent_untrimmed = true;
  intent_untrimmed_bytes += record.size();
  if (OpenTxgDue()) work_cv.notify_all();
  counters.intent_records++;
  counters.intent_bytes += record.size();
  // A burst of large records would otherwise keep its memory.
  if (record.capacity() > 4 * options.intent_log_max_bytes) std::string().swap(record);
  return true;
}

Status Pool::Impl::ReplayIntentLog() {
  // L3: the synced txg when the replay began, kept on disk until the
  // replay's commit: commits during the replay (the timer, dirty data,
  // space) advance synced_txg with replayed blocks, and a crash then must
  // not skip the entries whose old txg numbers the new commits reused.
  uint64_t base;
  {
    MutexLock lock(&mu);
    base = synced_txg;
  }
  if (!options.read_only) {
    auto it = kv->NewIterator(kCfDefault);
    it->Seek(kIntentKeyPrefix);
    BH_RETURN_IF_ERROR(it->status());
    if (!it->Valid() || !it->key().starts_with(kIntentKeyPrefix)) return Status::Ok();
    BH_ASSIGN_OR_RETURN(auto saved, kv->Get(kCfDefault, kMetaKeyReplayBase));
    if (saved) {
      if (saved->size() != 8) return BH_ERROR(kCorruption, "metadata key '{}' is malformed",
                                              kMetaKeyReplayBase);
      base = DecodeLE64(AsBytes(*saved));
    } else {
      KvBatch batch;
      std::string v;
      PutLE64(&v, base);
      batch.Put(kCfDefault, kMetaKeyReplayBase, v);
      BH_RETURN_IF_ERROR(kv->Write(batch, /*sync=*/true));
    }
  }
  const uint64_t synced = base;
  uint64_t records = 0;
  uint64_t replayed = 0;
  uint64_t skipped = 0;
  uint64_t last_record_txg = 0;
  // With discard_damaged_intent_log: the first record that does not
  // decode or verify, and every record after it, deleted unreplayed.
  Status damage;
  std::vector<std::string> discarded_keys;
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
  auto replay = [&]() -> Status {
    auto it = kv->NewIterator(kCfDefault);
    for (it->Seek(kIntentKeyPrefix); it->Valid() && it->key().starts_with(kIntentKeyPrefix);
         it->Next()) {
      ++records;
      if (!damage.ok()) {  // past the damaged record: dropped whole
        discarded_keys.emplace_back(it->key());
        Result<std::vector<IntentEntry>> later = DecodeIntentRecord(it->value());
        if (later.ok()) discarded_blocks += later->size();
        continue;
      }
      Result<std::pair<uint64_t, uint64_t>> key = DecodeIntentKey(it->key());
      const std::string where =
          key.ok() ? fmt::format("intent log record {}/{}", key->first, key->second)
                   : std::string("an intent log record with a malformed key");
      Result<std::vector<IntentEntry>> entries = DecodeIntentRecord(it->value());
      Status s = !key.ok() ? key.status() : !entries.ok() ? entries.status() : verify(*entries);
      if (!s.ok()) {
        if (!options.discard_damaged_intent_log) return s.Annotate(where);
        damage = s.Annotate(where);
        discarded_keys.emplace_back(it->key());
        if (entries.ok()) discarded_blocks += entries->size();
        continue;
      }
      last_record_txg = std::max(last_record_txg, key->first);
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
    }
    BH_RETURN_IF_ERROR(it->status());
    if (records == 0) return Status::Ok();
    if (!discarded_keys.empty()) {
      // Gone before the replay commits: a crash in between replays the
      // records before the damage again, the same way (L3), and nothing
      // after it.
      KvBatch batch;
      for (const std::string& k : discarded_keys) batch.Delete(kCfDefault, k);
      BH_RETURN_IF_ERROR(kv->Write(batch, /*sync=*/true));
      BH_SYNC_POINT("intent:discarded");
      BH_LOG(kWarning, "pool {}: discarded {} intent log records from the first damaged one "
             "({}), with the {} blocks they held that decoded; the writes they made durable "
             "are lost", label.name, discarded_keys.size(), damage.ToString(),
             discarded_blocks);
      MutexLock lock(&mu);
      counters.intent_discarded_records += discarded_keys.size();
      counters.intent_discarded_blocks += discarded_blocks;
    }
    // L3: the txg that takes this (empty) sync task deletes every record,
    // those keyed past its number too, and the replay base; the task
    // makes it happen even when every entry was skipped. Flags and task go
    // in under one hold of mu, so the txg that closes with the task is the
    // one that trims (SyncLoop takes both at once).
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
  if (options.read_only) {
    // Reads see the last committed txg; the records wait for a read-write
    // open.
    auto it = kv->NewIterator(kCfDefault);
    it->Seek(kIntentKeyPrefix);
    if (it->Valid() && it->key().starts_with(kIntentKeyPrefix)) {
      BH_LOG(kWarning, "pool {}: the intent log holds writes a crash left; opened read-only, "
             "they are not visible until a read-write open replays them", label.name);
    }
    return it->status();
  }
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
