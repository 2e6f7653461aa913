// Theory of operation: simulated power loss for the metadata store
//
// Overview
//   KvFaultInjector wraps RocksDB's default FileSystem. Everything passes
//   through to the real files, but the wrapper remembers, for each file
//   written through it, how many bytes were appended and how many of those
//   were made durable by Sync/Fsync, and which files were created since their
//   directory was last fsynced. PowerCut() then does to the real files what
//   losing power would have done, so that the next open sees the same bytes a
//   real crash would leave (leveldb's fault_injection_test, RocksDB's
//   FaultInjectionTestFS; the model is ours).
//
// Data structures & on-disk format
//   Rep::files: path -> {size, synced}; Rep::unsynced_entries: paths whose
//   directory entry is not durable yet. No format of its own.
//
// Invariants
//   * synced <= size for every tracked file; RangeSync and Flush never move
//     synced (they do not promise durability), Close neither.
//   * A file created through the wrapper stays in unsynced_entries until an
//     FSDirectory of its parent is fsynced.
//   * A rename onto an existing path is atomic and durable at once (the old
//     or the new content would be seen, and RocksDB only renames synced
//     files, so we keep the new); a rename onto a new path inherits the
//     entry state of its source. Deletes are immediate.
//
// Concurrency & lock order
//   One mutex (Rep::mu) guards every map and counter; it is never held while
//   calling into the wrapped file system except inside PowerCut, which runs
//   when the workload has stopped issuing I/O.
//
// Crash consistency
//   PowerCut(garble=false): every tracked file is truncated to its synced
//   size, and files whose directory entry was never made durable are
//   deleted. garble=true: for about half of the files the unsynced tail is
//   overwritten with random bytes instead of being cut (a write-back cache
//   that wrote garbage), the rest are cut. After PowerCut the wrapper is
//   "dead": every mutating call fails with IOError, so the store being torn
//   down cannot write anything more, until Revive().
//
// Failure handling
//   FailNthWrite(n, enospc) makes the n-th Append/PositionedAppend fail with
//   IOError (NoSpace when enospc); FailNthSync(n) the n-th Sync/Fsync.
//
// Tunables
//   The seed (constructor) chooses what a garbling cut keeps.

#include "core/kv/internal/rocksdb_fault_fs.h"

#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>

namespace blockhaus::core {

struct KvFaultInjector::Rep {
  struct FileState {
    uint64_t size = 0;
    uint64_t synced = 0;
  };
  std::mutex mu;
  std::mt19937_64 rng;
  bool dead = false;
  std::map<std::string, FileState> files;
  std::set<std::string> unsynced_entries;
  uint64_t writes = 0, fail_write_at = 0;
  bool fail_enospc = false;
  uint64_t syncs = 0, fail_sync_at = 0;
  std::shared_ptr<rocksdb::FileSystem> fs;

  rocksdb::IOStatus CheckAlive() {
    std::lock_guard<std::mutex> lock(mu);
    return dead ? rocksdb::IOStatus::IOError("power is off (fault injector)")
                : rocksdb::IOStatus::OK();
  }
};

namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;
using Rep = KvFaultInjector::Rep;

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> base, Rep* rep, std::string path)
      : FSWritableFileOwnerWrapper(std::move(base)), rep_(rep), path_(std::move(path)) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = BeforeWrite();
    if (!s.ok()) return s;
    s = FSWritableFileOwnerWrapper::Append(data, o, dbg);
    if (s.ok()) Grew(data.size());
    return s;
  }
  IOStatus Append(const Slice& data, const IOOptions& o,
                  const rocksdb::DataVerificationInfo& v, IODebugContext* dbg) override {
    IOStatus s = BeforeWrite();
    if (!s.ok()) return s;
    s = FSWritableFileOwnerWrapper::Append(data, o, v, dbg);
    if (s.ok()) Grew(data.size());
    return s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* dbg) override {
    IOStatus s = BeforeWrite();
    if (!s.ok()) return s;
    s = FSWritableFileOwnerWrapper::PositionedAppend(data, offset, o, dbg);
    if (s.ok()) GrewTo(offset + data.size());
    return s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            const rocksdb::DataVerificationInfo& v,
                            IODebugContext* dbg) override {
    IOStatus s = BeforeWrite();
    if (!s.ok()) return s;
    s = FSWritableFileOwnerWrapper::PositionedAppend(data, offset, o, v, dbg);
    if (s.ok()) GrewTo(offset + data.size());
    return s;
  }
  IOStatus Truncate(uint64_t size, const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = rep_->CheckAlive();
    if (!s.ok()) return s;
    s = FSWritableFileOwnerWrapper::Truncate(size, o, dbg);
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(rep_->mu);
      auto& f = rep_->files[path_];
      f.size = size;
      f.synced = std::min(f.synced, size);
    }
    return s;
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override {
    return DoSync([&] { return FSWritableFileOwnerWrapper::Sync(o, dbg); });
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    return DoSync([&] { return FSWritableFileOwnerWrapper::Fsync(o, dbg); });
  }
  IOStatus Flush(const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = rep_->CheckAlive();
    return s.ok() ? FSWritableFileOwnerWrapper::Flush(o, dbg) : s;
  }
  IOStatus Close(const IOOptions& o, IODebugContext* dbg) override {
    // Closing a dead file still releases the descriptor; it makes nothing durable.
    return FSWritableFileOwnerWrapper::Close(o, dbg);
  }

 private:
  IOStatus BeforeWrite() {
    std::lock_guard<std::mutex> lock(rep_->mu);
    if (rep_->dead) return IOStatus::IOError("power is off (fault injector)");
    if (rep_->fail_write_at != 0 && ++rep_->writes == rep_->fail_write_at) {
      rep_->fail_write_at = 0;
      return rep_->fail_enospc ? IOStatus::NoSpace("injected ENOSPC")
                               : IOStatus::IOError("injected EIO");
    }
    return IOStatus::OK();
  }
  void Grew(uint64_t n) {
    std::lock_guard<std::mutex> lock(rep_->mu);
    rep_->files[path_].size += n;
  }
  void GrewTo(uint64_t end) {
    std::lock_guard<std::mutex> lock(rep_->mu);
    auto& f = rep_->files[path_];
    f.size = std::max(f.size, end);
  }
  template <typename Fn>
  IOStatus DoSync(Fn&& fn) {
    uint64_t size_before;
    {
      std::lock_guard<std::mutex> lock(rep_->mu);
      if (rep_->dead) return IOStatus::IOError("power is off (fault injector)");
      if (rep_->fail_sync_at != 0 && ++rep_->syncs == rep_->fail_sync_at) {
        rep_->fail_sync_at = 0;
        return IOStatus::IOError("injected fsync failure");
      }
      size_before = rep_->files[path_].size;
    }
    IOStatus s = fn();
    std::lock_guard<std::mutex> lock(rep_->mu);
    // Durable only if the power was still on when the sync returned.
    if (s.ok() && !rep_->dead) {
      auto& f = rep_->files[path_];
      f.synced = std::max(f.synced, size_before);
    } else if (s.ok()) {
      return IOStatus::IOError("power is off (fault injector)");
    }
    return s;
  }

  Rep* rep_;
  std::string path_;
};

class FaultDirectory : public rocksdb::FSDirectoryWrapper {
 public:
  FaultDirectory(std::unique_ptr<rocksdb::FSDirectory> base, Rep* rep, std::string path)
      : FSDirectoryWrapper(std::move(base)), rep_(rep), path_(std::move(path)) {}

  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = rep_->CheckAlive();
    if (!s.ok()) return s;
    s = FSDirectoryWrapper::Fsync(o, dbg);
    if (s.ok()) Synced();
    return s;
  }
  IOStatus FsyncWithDirOptions(const IOOptions& o, IODebugContext* dbg,
                               const rocksdb::DirFsyncOptions& d) override {
    IOStatus s = rep_->CheckAlive();
    if (!s.ok()) return s;
    s = FSDirectoryWrapper::FsyncWithDirOptions(o, dbg, d);
    if (s.ok()) Synced();
    return s;
  }

 private:
  void Synced() {
    std::lock_guard<std::mutex> lock(rep_->mu);
    if (rep_->dead) return;
    for (auto it = rep_->unsynced_entries.begin(); it != rep_->unsynced_entries.end();) {
      it = Parent(*it) == path_ ? rep_->unsynced_entries.erase(it) : std::next(it);
    }
  }

  Rep* rep_;
  std::string path_;
};

class FaultFs : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFs(Rep* rep)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), rep_(rep) {}
  const char* Name() const override { return "BlockhausFaultFs"; }

  IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                           std::unique_ptr<rocksdb::FSWritableFile>* r,
                           IODebugContext* dbg) override {
    IOStatus s = rep_->CheckAlive();
    if (!s.ok()) return s;
    std::unique_ptr<rocksdb::FSWritableFile> base;
    s = target()->NewWritableFile(f, o, &base, dbg);
    if (!s.ok()) return s;
    {
      std::lock_guard<std::mutex> lock(rep_->mu);
      rep_->files[f] = Rep::FileState{};
      rep_->unsynced_entries.insert(f);
    }
    r->reset(new FaultWritableFile(std::move(base), rep_, f));
    return s;
  }
  IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                              std::unique_ptr<rocksdb::FSWritableFile>* r,
                              IODebugContext* dbg) override {
    IOStatus s = rep_->CheckAlive();
    if (!s.ok()) return s;
    std::unique_ptr<rocksdb::FSWritableFile> base;
    s = target()->ReopenWritableFile(f, o, &base, dbg);
    if (!s.ok()) return s;
    std::error_code ec;
    uint64_t size = std::filesystem::file_size(f, ec);
    {
      std::lock_guard<std::mutex> lock(rep_->mu);
      if (!rep_->files.contains(f)) rep_->files[f] = Rep::FileState{size, size};
    }
    r->reset(new FaultWritableFile(std::move(base), rep_, f));
    return s;
  }
  IOStatus NewDirectory(const std::string& name, const IOOptions& o,
                        std::unique_ptr<rocksdb::FSDirectory>* r,
                        IODebugContext* dbg) override {
    std::unique_ptr<rocksdb::FSDirectory> base;
    IOStatus s = target()->NewDirectory(name, o, &base, dbg);
    if (!s.ok()) return s;
    std::string path = name;
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    r->reset(new FaultDirectory(std::move(base), rep_, path));
    return s;
  }
  IOStatus RenameFile(const std::string& src, const std::string& dst, const IOOptions& o,
                      IODebugContext* dbg) override {
    IOStatus s = rep_->CheckAlive();
    if (!s.ok()) return s;
    std::error_code ec;
    bool dst_existed = std::filesystem::exists(dst, ec);
    s = target()->RenameFile(src, dst, o, dbg);
    if (!s.ok()) return s;
    std::lock_guard<std::mutex> lock(rep_->mu);
    auto node = rep_->files.extract(src);
    if (!node.empty()) {
      node.key() = dst;
      rep_->files.erase(dst);
      rep_->files.insert(std::move(node));
    }
    bool src_unsynced = rep_->unsynced_entries.erase(src) > 0;
    if (!dst_existed && src_unsynced) rep_->unsynced_entries.insert(dst);
    if (dst_existed) rep_->unsynced_entries.erase(dst);
    return s;
  }
  IOStatus DeleteFile(const std::string& f, const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = rep_->CheckAlive();
    if (!s.ok()) return s;
    s = target()->DeleteFile(f, o, dbg);
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(rep_->mu);
      rep_->files.erase(f);
      rep_->unsynced_entries.erase(f);
    }
    return s;
  }

 private:
  Rep* rep_;
};

// Overwrites [from, to) of path with random bytes.
void Garble(const std::string& path, uint64_t from, uint64_t to, std::mt19937_64& rng) {
  FILE* f = std::fopen(path.c_str(), "r+b");
  if (f == nullptr) return;
  if (std::fseek(f, static_cast<long>(from), SEEK_SET) == 0) {
    for (uint64_t i = from; i < to; ++i) std::fputc(static_cast<int>(rng() & 0xff), f);
  }
  std::fclose(f);
}

}  // namespace

std::shared_ptr<rocksdb::FileSystem> FaultFileSystem(KvFaultInjector& injector) {
  Rep* rep = injector.rep();
  std::lock_guard<std::mutex> lock(rep->mu);
  if (!rep->fs) rep->fs = std::make_shared<FaultFs>(rep);
  return rep->fs;
}

KvFaultInjector::KvFaultInjector(uint64_t seed) : rep_(std::make_unique<Rep>()) {
  rep_->rng.seed(seed);
}
KvFaultInjector::~KvFaultInjector() = default;

void KvFaultInjector::PowerCut(bool garble) {
  std::lock_guard<std::mutex> lock(rep_->mu);
  rep_->dead = true;
  std::error_code ec;
  for (const auto& [path, st] : rep_->files) {
    if (rep_->unsynced_entries.contains(path) || st.size <= st.synced) continue;
    if (!std::filesystem::exists(path, ec)) continue;
    if (garble && (rep_->rng() & 1)) {
      Garble(path, st.synced, st.size, rep_->rng);
    } else {
      std::filesystem::resize_file(path, st.synced, ec);
    }
  }
  for (const std::string& path : rep_->unsynced_entries) std::filesystem::remove(path, ec);
  rep_->files.clear();
  rep_->unsynced_entries.clear();
}

void KvFaultInjector::Revive() {
  std::lock_guard<std::mutex> lock(rep_->mu);
  rep_->dead = false;
}

void KvFaultInjector::FailNthWrite(uint64_t n, bool enospc) {
  std::lock_guard<std::mutex> lock(rep_->mu);
  rep_->writes = 0;
  rep_->fail_write_at = n;
  rep_->fail_enospc = enospc;
}

void KvFaultInjector::FailNthSync(uint64_t n) {
  std::lock_guard<std::mutex> lock(rep_->mu);
  rep_->syncs = 0;
  rep_->fail_sync_at = n;
}

void KvFaultInjector::ClearFaults() {
  std::lock_guard<std::mutex> lock(rep_->mu);
  rep_->fail_write_at = 0;
  rep_->fail_sync_at = 0;
}

}  // namespace blockhaus::core
