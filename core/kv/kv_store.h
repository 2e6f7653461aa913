// KvStore: the metadata store of a pool (RocksDB behind one adapter).
//
// Every piece of pool metadata (block pointers, dead lists, allocator maps,
// txg records, and the datasets of volume/) lives in one RocksDB database with
// named column families. A KvBatch applies atomically; with sync=true it is
// durable when Write returns (one WAL fsync for the whole batch: group commit
// is the caller's job). Keys order bytewise, so big-endian integers sort
// numerically.
//
// Column families are named at Open; KvOptions::column_families lists them,
// and the index in that list is the `cf` argument of every call. Missing
// families are created when create_if_missing is set.
//
// Errors: NotFound (no database and !create_if_missing), Unavailable (the
// database LOCK is held by another process), Corruption, IOError,
// ResourceExhausted (out of space).
// Thread safety: thread-safe. Iterators are thread-compatible and see a
// consistent snapshot taken when they were created.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace blockhaus::core {

class KvFaultInjector;

struct KvOptions {
  // Column families; index 0 must be "default". Required.
  std::vector<std::string> column_families = {"default"};
  bool create_if_missing = false;
  // Open for reading only (rocksdb::DB::OpenForReadOnly): nothing in the
  // directory is written, not even RocksDB's info LOG; Write and Flush
  // return FailedPrecondition. Excludes create_if_missing.
  bool read_only = false;
  // Prefix length (bytes) for bloom filters and prefix seeks on the families
  // named in prefix_families; 0 disables. Not changeable after open.
  size_t prefix_length = 0;
  std::vector<int> prefix_families;
  // Inserts into a prefix family keep a hint per this many leading bytes of
  // the key (RocksDB's memtable_insert_with_hint_prefix_extractor): an
  // insert near the previous one with the same leading bytes repairs the
  // memtable skiplist's search path from the level where it stops being
  // valid, instead of searching again from the top. 0 disables; at most
  // prefix_length. RocksDB keeps ~250 bytes of memtable per distinct
  // leading bytes, so they should name something few (a lineage). A
  // DeleteRange in such a family must begin with a key shorter than this
  // (Write refuses it otherwise): RocksDB 7.x mixes up the hints of range
  // deletions and point keys when both are in the hint's domain.
  size_t insert_hint_length = 0;
  // Block cache size in bytes. Default 64 MiB.
  size_t block_cache_bytes = 64ull << 20;
  // Test seam: route all RocksDB file I/O through this injector (not owned;
  // must outlive the store). Null in production.
  KvFaultInjector* fault_injector = nullptr;
};

class KvBatch {
 public:
  KvBatch();
  ~KvBatch();
  KvBatch(KvBatch&&) noexcept;
  KvBatch& operator=(KvBatch&&) noexcept;

  void Put(int cf, std::string_view key, std::string_view value);
  void Delete(int cf, std::string_view key);
  // Deletes every key in [begin, end).
  void DeleteRange(int cf, std::string_view begin, std::string_view end);
  size_t count() const;
  size_t byte_size() const;
  // Empties the batch and keeps its memory for the next use.
  void Clear();
  // Makes room for `ops` operations up front (a hint: the batch grows past
  // it). A commit knows roughly how many it will add, and growing a vector
  // of hundreds of thousands of operations by doubling moved every one of
  // them again and again. On an empty batch holding memory for far more
  // than `ops` (kept by Clear from a burst), gives that memory back first.
  void Reserve(size_t ops);

  struct Rep;  // opaque: the store's encoding of the operations

 private:
  friend class KvStore;
  std::unique_ptr<Rep> rep_;
};

class KvIterator {
 public:
  virtual ~KvIterator() = default;
  virtual void Seek(std::string_view key) = 0;
  virtual void SeekToFirst() = 0;
  virtual bool Valid() const = 0;
  virtual void Next() = 0;
  virtual std::string_view key() const = 0;
  virtual std::string_view value() const = 0;
  // Ok, or the error that made the iterator invalid.
  virtual Status status() const = 0;
};

struct KvIteratorOptions {
  // Exclusive upper bound; empty means none.
  std::string upper_bound;
  // Only keys sharing the prefix (KvOptions::prefix_length) of the Seek key.
  bool same_prefix = false;
  // Never read a file: a Seek that needs a block not in memory (memtables,
  // block cache) leaves the iterator invalid with status() WouldBlock.
  bool memory_only = false;
};

class KvStore {
 public:
  static Result<std::unique_ptr<KvStore>> Open(const std::string& path,
                                               const KvOptions& options);
  ~KvStore();

  // Returns nullopt when the key is absent.
  Result<std::optional<std::string>> Get(int cf, std::string_view key);
  Status Write(KvBatch& batch, bool sync);
  std::unique_ptr<KvIterator> NewIterator(int cf, const KvIteratorOptions& options = {});
  // Flushes memtables to SST files (used before a clean close).
  Status Flush();
  // Closes the database; further calls fail with Unavailable.
  Status Close();

 private:
  struct Rep;
  explicit KvStore(std::unique_ptr<Rep> rep);
  std::unique_ptr<Rep> rep_;
};

// KvFaultInjector: simulated power loss and I/O errors for the RocksDB files
// (a rocksdb::FileSystemWrapper inside; this header does not expose RocksDB).
//
//   PowerCut(garble): from now on every file operation fails with IOError;
//   then, for every file written through the injector, data appended since
//   its last Sync/Fsync is dropped (garble=true: replaced by random bytes of
//   the same length instead, for a random subset), and files created or
//   renamed since their directory's last fsync are handled as a real crash
//   would (a new file whose directory was never synced may vanish).
//   Call it after the workload stops and before the store is destroyed.
//
//   Revive(): accept I/O again (before reopening the store).
//   FailNthWrite(n, enospc): the n-th Append/PositionedAppend from now fails.
// Thread safety: thread-safe.
class KvFaultInjector {
 public:
  explicit KvFaultInjector(uint64_t seed);
  ~KvFaultInjector();
  void PowerCut(bool garble);
  void Revive();
  void FailNthWrite(uint64_t n, bool enospc);
  void FailNthSync(uint64_t n);
  void ClearFaults();

  struct Rep;
  Rep* rep() { return rep_.get(); }

 private:
  std::unique_ptr<Rep> rep_;
};

}  // namespace blockhaus::core
