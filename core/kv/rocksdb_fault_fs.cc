// KvFaultInjector: simulated power loss and I/O errors under RocksDB.
//
// Overview
//   A rocksdb::FileSystemWrapper (FaultFileSystem) over FileSystem::Default()
//   passes every call through to the real file system while keeping a model
//   of what a crash would preserve. KvStore::Open routes all RocksDB file I/O
//   through it (rocksdb::NewCompositeEnv) when KvOptions::fault_injector is
//   set. PowerCut() turns the model into reality: it kills the file system
//   (every later mutating call fails) and rewrites the directory so that only
//   durable state remains. Revive() accepts I/O again so that a fresh KvStore
//   can recover from what is left. FailNthWrite/FailNthSync inject one-shot
//   errors without a crash. The model follows the idea of leveldb's
//   fault_injection_test and RocksDB's FaultInjectionTestFS (no code shared).
//
// Data structures & on-disk format
//   FaultState (one per injector, shared by the file system and every file
//   and directory object it hands out):
//   - files_: normalized path -> FileRecord{size, synced}: bytes written
//     through the wrapper and the prefix made durable by Sync/Fsync. Records
//     are shared_ptr so an open writer keeps updating its record across a
//     rename (and a hard link shares the record, like an inode).
//   - journal_: ordered list of directory operations not yet made durable by
//     an FSDirectory::Fsync of their directory: kCreate(path) and
//     kRename(from -> to, durable content of the replaced target if any).
//   - crash_sizes_: file sizes right after the last PowerCut (see Crash
//     consistency).
//   Nothing is stored on disk by the injector itself; files are RocksDB's.
//
// Invariants
//   - For every tracked file, synced <= size, and bytes [0, synced) are what
//     a crash preserves. RangeSync, Flush and Close are not durable.
//   - A journal entry exists for exactly those creates/renames whose
//     directory has not been fsynced since; a directory fsync removes all
//     entries of that directory (and only those).
//   - While dead_, no call changes a file or a directory entry (reads,
//     LockFile/UnlockFile and NewLogger still pass, so that a dying store can
//     release its LOCK and a reopened store can log).
//
// Concurrency & lock order
//   One Mutex (FaultState::mu_) guards all state. Every mutating call holds
//   it across the forwarded operation, so an operation either completes
//   entirely before a PowerCut or fails after it; no write can land after
//   the damage was applied. mu_ is a leaf: while holding it we call only the
//   base file system, never RocksDB. This serializes writers (test-only).
//   The test hooks BH_SYNC_POINT("KvFaultFs::Sync:Done") (after a file sync)
//   and ("KvFaultFs::RenameFile:Done") are reached with mu_ released, so a
//   callback may call PowerCut from whatever RocksDB thread got there.
//
// Crash consistency (what PowerCut(garble) does, in this order)
//   1. dead_ = true.
//   2. For each tracked file with an unsynced tail: truncate to `synced`, or
//      (garble, chosen per file by a coin from the seeded mt19937_64)
//      overwrite [synced, size) with random bytes of the same length.
//   3. Undo the journal newest-first: a rename moves the file back to its
//      old name and restores the durable content of the target it replaced
//      (so CURRENT goes back to the old MANIFEST name); a create deletes the
//      file. Files created and renamed before their directory fsync thus
//      vanish, as on a real crash of a non-journaled directory update.
//   4. Forget all tracking: after the cut, what is on disk is durable.
//   A RocksDB PosixWritableFile still open at the cut trims its
//   preallocation on close with ftruncate(its own size), which would grow a
//   truncated file back (with zeros). Revive() therefore truncates every
//   file still larger than its crash size before I/O is accepted again.
//   Simplifications (documented limits of the model):
//   - Deletes are durable at once (a real crash might resurrect the file;
//     RocksDB treats such a file as an obsolete orphan anyway).
//   - Reopening an existing file with O_TRUNC (NewWritableFile over an old
//     name) loses the old content at once, durably.
//   - A rename is tied to the target's directory only (RocksDB never renames
//     across directories). CreateDir/DeleteDir are not modeled (durable).
//   - NewRandomRWFile writes and ReuseWritableFile (log recycling, disabled
//     in KvStore) are not modeled; ReuseWritableFile returns NotSupported.
//   - ReopenWritableFile: content present at reopen counts as durable.
//   - The info LOG is written through NewLogger, which the base file system
//     serves directly, so its content is not damaged (its LOG -> LOG.old
//     renames do go through the journal).
//   - Unsynced data is either all dropped or all garbled per file; a real
//     disk may keep any prefix of it.
//
// Failure handling
//   After PowerCut every mutating call returns IOError("power cut"). An armed
//   FailNthWrite fires on the n-th Append/PositionedAppend (IOError, or
//   IOError/NoSpace when enospc) and is then disarmed; FailNthSync likewise on
//   the n-th file Sync/Fsync (directory fsyncs are not counted). Nothing is
//   written by a failed call. Revive() keeps armed faults; ClearFaults()
//   disarms both. Repair I/O in PowerCut/Revive ignores errors of
//   files that have gone (best effort: the point is the state left behind).
//
// Tunables
//   The seed (constructor) fixes the garble choices and bytes; the garble
//   probability is 1/2. kForwardSyncs (false): syncs are recorded in the
//   model but not passed to the disk, which keeps crash tests fast; the
//   model alone decides what a PowerCut keeps.

#include "core/kv/internal/rocksdb_fault_fs.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/io_status.h>

#include "core/base/sync_point.h"
#include "core/base/thread_annotations.h"

namespace blockhaus::core {

namespace {

using rocksdb::FileOptions;
using rocksdb::FileSystem;
using rocksdb::FSDirectory;
using rocksdb::FSWritableFile;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

std::string NormalPath(const std::string& path) {
  std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  if (!p.has_filename() && p.has_parent_path()) p = p.parent_path();
  return p.string();
}

std::string DirOf(const std::string& path) {
  return std::filesystem::path(NormalPath(path)).parent_path().string();
}

// Whether file and directory syncs also reach the disk. PowerCut applies the
// model, not the disk's own state, so real fsyncs only cost time (tens of ms
// each on CI disks); a crash of the host is out of scope for this seam.
constexpr bool kForwardSyncs = false;

struct FileRecord {
  uint64_t size = 0;
  uint64_t synced = 0;
};

struct DirOp {
  enum class Kind { kCreate, kRename };
  Kind kind;
  std::string dir;
  std::string path;  // The created file, or the rename target.
  std::string from;  // Rename source.
  std::optional<std::string> replaced;  // Durable content of a replaced target.
};

}  // namespace

class FaultState {
 public:
  explicit FaultState(uint64_t seed) : base_(FileSystem::Default()), rng_(seed) {}

  Mutex* mu() { return &mu_; }

  // The methods below require mu_ (callers hold it across the forwarded call).
  IOStatus CheckAlive(const char* op, const std::string& path) const BH_REQUIRES(mu_);
  IOStatus TakeWriteFault(const std::string& path) BH_REQUIRES(mu_);
  IOStatus TakeSyncFault(const std::string& path) BH_REQUIRES(mu_);
  std::shared_ptr<FileRecord> Track(const std::string& path, uint64_t size) BH_REQUIRES(mu_);
  void NoteCreate(const std::string& path) BH_REQUIRES(mu_);
  // Durable content of `path` (nullopt when absent), read before a rename
  // replaces it.
  std::optional<std::string> DurableContent(const std::string& path) BH_REQUIRES(mu_);
  void NoteRename(const std::string& from, const std::string& to,
                  std::optional<std::string> replaced) BH_REQUIRES(mu_);
  void NoteLink(const std::string& from, const std::string& to) BH_REQUIRES(mu_);
  void NoteDelete(const std::string& path) BH_REQUIRES(mu_);
  void NoteTruncate(const std::string& path, uint64_t size) BH_REQUIRES(mu_);
  void NoteDirSynced(const std::string& dir) BH_REQUIRES(mu_);

  void PowerCut(bool garble) BH_EXCLUDES(mu_);
  void Revive() BH_EXCLUDES(mu_);
  void FailNthWrite(uint64_t n, bool enospc) BH_EXCLUDES(mu_);
  void FailNthSync(uint64_t n) BH_EXCLUDES(mu_);
  void ClearFaults() BH_EXCLUDES(mu_);

 private:
  void DamageFile(const std::string& path, const FileRecord& rec, bool garble)
      BH_REQUIRES(mu_);
  void Garble(const std::string& path, const FileRecord& rec) BH_REQUIRES(mu_);
  void UndoDirOp(const DirOp& op) BH_REQUIRES(mu_);

  const std::shared_ptr<FileSystem> base_;
  Mutex mu_;
  bool dead_ BH_GUARDED_BY(mu_) = false;
  uint64_t write_countdown_ BH_GUARDED_BY(mu_) = 0;  // 0: disarmed.
  bool write_enospc_ BH_GUARDED_BY(mu_) = false;
  uint64_t sync_countdown_ BH_GUARDED_BY(mu_) = 0;
  std::mt19937_64 rng_ BH_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<FileRecord>> files_ BH_GUARDED_BY(mu_);
  std::vector<DirOp> journal_ BH_GUARDED_BY(mu_);
  std::map<std::string, uint64_t> crash_sizes_ BH_GUARDED_BY(mu_);
};

IOStatus FaultState::CheckAlive(const char* op, const std::string& path) const {
  if (!dead_) return IOStatus::OK();
  return IOStatus::IOError(std::string("blockhaus fault injection: power cut: ") + op,
                           path);
}

IOStatus FaultState::TakeWriteFault(const std::string& path) {
  IOStatus s = CheckAlive("write", path);
  if (!s.ok() || write_countdown_ == 0 || --write_countdown_ > 0) return s;
  if (write_enospc_) {
    return IOStatus::NoSpace("blockhaus fault injection: injected ENOSPC", path);
  }
  return IOStatus::IOError("blockhaus fault injection: injected write error", path);
}

IOStatus FaultState::TakeSyncFault(const std::string& path) {
  IOStatus s = CheckAlive("sync", path);
  if (!s.ok() || sync_countdown_ == 0 || --sync_countdown_ > 0) return s;
  return IOStatus::IOError("blockhaus fault injection: injected sync error", path);
}

std::shared_ptr<FileRecord> FaultState::Track(const std::string& path, uint64_t size) {
  auto rec = std::make_shared<FileRecord>();
  rec->size = size;
  rec->synced = size;
  files_[NormalPath(path)] = rec;
  return rec;
}

void FaultState::NoteCreate(const std::string& path) {
  journal_.push_back(DirOp{DirOp::Kind::kCreate, DirOf(path), NormalPath(path), "", {}});
}

std::optional<std::string> FaultState::DurableContent(const std::string& path) {
  std::string data;
  if (!rocksdb::ReadFileToString(base_.get(), path, &data).ok()) return std::nullopt;
  auto it = files_.find(NormalPath(path));
  if (it != files_.end() && data.size() > it->second->synced) {
    data.resize(it->second->synced);
  }
  return data;
}

void FaultState::NoteRename(const std::string& from, const std::string& to,
                            std::optional<std::string> replaced) {
  std::string src = NormalPath(from);
  std::string dst = NormalPath(to);
  auto it = files_.find(src);
  if (it != files_.end()) {
    files_[dst] = it->second;
    files_.erase(src);
  } else {
    files_.erase(dst);  // Untracked source: its content is durable.
  }
  journal_.push_back(DirOp{DirOp::Kind::kRename, DirOf(to), dst, src, std::move(replaced)});
}

void FaultState::NoteLink(const std::string& from, const std::string& to) {
  auto it = files_.find(NormalPath(from));
  if (it != files_.end()) files_[NormalPath(to)] = it->second;
  NoteCreate(to);
}

void FaultState::NoteDelete(const std::string& path) { files_.erase(NormalPath(path)); }

void FaultState::NoteTruncate(const std::string& path, uint64_t size) {
  auto it = files_.find(NormalPath(path));
  if (it == files_.end()) return;
  it->second->size = size;
  it->second->synced = std::min(it->second->synced, size);
}

void FaultState::NoteDirSynced(const std::string& dir) {
  std::string d = NormalPath(dir);
  std::erase_if(journal_, [&d](const DirOp& op) { return op.dir == d; });
}

void FaultState::Garble(const std::string& path, const FileRecord& rec) {
  std::string junk(rec.size - rec.synced, '\0');
  for (char& c : junk) c = static_cast<char>(rng_() & 0xff);
  std::unique_ptr<rocksdb::FSRandomRWFile> file;
  if (!base_->NewRandomRWFile(path, FileOptions(), &file, nullptr).ok()) return;
  file->Write(rec.synced, junk, IOOptions(), nullptr).PermitUncheckedError();
  file->Close(IOOptions(), nullptr).PermitUncheckedError();
}

void FaultState::DamageFile(const std::string& path, const FileRecord& rec, bool garble) {
  if (rec.size <= rec.synced) {
    crash_sizes_[path] = rec.size;
  } else if (garble && (rng_() & 1) != 0) {
    Garble(path, rec);
    crash_sizes_[path] = rec.size;
  } else {
    base_->Truncate(path, rec.synced, IOOptions(), nullptr).PermitUncheckedError();
    crash_sizes_[path] = rec.synced;
  }
}

void FaultState::UndoDirOp(const DirOp& op) {
  if (op.kind == DirOp::Kind::kCreate) {
    base_->DeleteFile(op.path, IOOptions(), nullptr).PermitUncheckedError();
    crash_sizes_.erase(op.path);
    return;
  }
  if (base_->RenameFile(op.path, op.from, IOOptions(), nullptr).ok()) {
    auto it = crash_sizes_.find(op.path);
    if (it != crash_sizes_.end()) {
      crash_sizes_[op.from] = it->second;
      crash_sizes_.erase(op.path);
    }
  }
  if (op.replaced.has_value()) {
    rocksdb::WriteStringToFile(base_.get(), *op.replaced, op.path, true)
        .PermitUncheckedError();
  }
}

void FaultState::PowerCut(bool garble) {
  MutexLock lock(&mu_);
  dead_ = true;
  for (const auto& [path, rec] : files_) DamageFile(path, *rec, garble);
  for (auto it = journal_.rbegin(); it != journal_.rend(); ++it) UndoDirOp(*it);
  files_.clear();
  journal_.clear();
}

void FaultState::Revive() {
  MutexLock lock(&mu_);
  for (const auto& [path, size] : crash_sizes_) {
    uint64_t actual = 0;
    if (!base_->GetFileSize(path, IOOptions(), &actual, nullptr).ok()) continue;
    if (actual > size) {
      base_->Truncate(path, size, IOOptions(), nullptr).PermitUncheckedError();
    }
  }
  crash_sizes_.clear();
  dead_ = false;
}

void FaultState::FailNthWrite(uint64_t n, bool enospc) {
  MutexLock lock(&mu_);
  write_countdown_ = n;
  write_enospc_ = enospc;
}

void FaultState::FailNthSync(uint64_t n) {
  MutexLock lock(&mu_);
  sync_countdown_ = n;
}

void FaultState::ClearFaults() {
  MutexLock lock(&mu_);
  write_countdown_ = 0;
  sync_countdown_ = 0;
}

namespace {

// A writable file whose appends and syncs update its FileRecord.
class FaultWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<FSWritableFile> target, std::string path,
                    std::shared_ptr<FaultState> state, std::shared_ptr<FileRecord> rec)
      : FSWritableFileOwnerWrapper(std::move(target)),
        path_(std::move(path)),
        state_(std::move(state)),
        rec_(std::move(rec)) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* dbg) override {
    return Write(data.size(), std::nullopt, [&] { return target()->Append(data, o, dbg); });
  }
  IOStatus Append(const Slice& data, const IOOptions& o,
                  const rocksdb::DataVerificationInfo& info, IODebugContext* dbg) override {
    return Write(data.size(), std::nullopt,
                 [&] { return target()->Append(data, o, info, dbg); });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* dbg) override {
    return Write(data.size(), offset,
                 [&] { return target()->PositionedAppend(data, offset, o, dbg); });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    return Write(data.size(), offset,
                 [&] { return target()->PositionedAppend(data, offset, o, info, dbg); });
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override {
    return SyncThenReach([&] { return target()->Sync(o, dbg); });
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    return SyncThenReach([&] { return target()->Fsync(o, dbg); });
  }
  IOStatus RangeSync(uint64_t offset, uint64_t n, const IOOptions& o,
                     IODebugContext* dbg) override {
    return Gated("range sync", [&] { return target()->RangeSync(offset, n, o, dbg); });
  }
  IOStatus Flush(const IOOptions& o, IODebugContext* dbg) override {
    return Gated("flush", [&] { return target()->Flush(o, dbg); });
  }
  IOStatus Close(const IOOptions& o, IODebugContext* dbg) override {
    return Gated("close", [&] { return target()->Close(o, dbg); });
  }
  IOStatus Truncate(uint64_t size, const IOOptions& o, IODebugContext* dbg) override;

 private:
  template <typename Fn>
  IOStatus Gated(const char* op, Fn fn) {
    MutexLock lock(state_->mu());
    IOStatus s = state_->CheckAlive(op, path_);
    return s.ok() ? fn() : s;
  }
  template <typename Fn>
  IOStatus Write(size_t n, std::optional<uint64_t> offset, Fn fn) {
    MutexLock lock(state_->mu());
    IOStatus s = state_->TakeWriteFault(path_);
    if (s.ok()) s = fn();
    if (s.ok()) {
      rec_->size = offset ? std::max<uint64_t>(rec_->size, *offset + n) : rec_->size + n;
    }
    return s;
  }
  template <typename Fn>
  IOStatus SyncThenReach(Fn fn) {
    IOStatus s = DoSync(fn);
    // Lets a test cut power after a sync (e.g. before a directory fsync).
    if (s.ok()) BH_SYNC_POINT("KvFaultFs::Sync:Done");
    return s;
  }
  template <typename Fn>
  IOStatus DoSync(Fn fn) {
    MutexLock lock(state_->mu());
    IOStatus s = state_->TakeSyncFault(path_);
    if (s.ok() && kForwardSyncs) s = fn();
    if (s.ok()) rec_->synced = rec_->size;
    return s;
  }

  const std::string path_;
  const std::shared_ptr<FaultState> state_;
  const std::shared_ptr<FileRecord> rec_;  // Guarded by state_->mu().
};

IOStatus FaultWritableFile::Truncate(uint64_t size, const IOOptions& o, IODebugContext* dbg) {
  MutexLock lock(state_->mu());
  IOStatus s = state_->CheckAlive("truncate", path_);
  if (s.ok()) s = target()->Truncate(size, o, dbg);
  if (s.ok()) {
    rec_->size = size;
    rec_->synced = std::min(rec_->synced, size);
  }
  return s;
}

// A directory whose fsync makes the pending creates and renames in it durable.
class FaultDirectory final : public rocksdb::FSDirectoryWrapper {
 public:
  FaultDirectory(std::unique_ptr<FSDirectory> target, std::string dir,
                 std::shared_ptr<FaultState> state)
      : FSDirectoryWrapper(std::move(target)), dir_(std::move(dir)), state_(std::move(state)) {}

  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    return DoFsync([&] { return FSDirectoryWrapper::Fsync(o, dbg); });
  }
  IOStatus FsyncWithDirOptions(const IOOptions& o, IODebugContext* dbg,
                               const rocksdb::DirFsyncOptions& d) override {
    return DoFsync([&] { return FSDirectoryWrapper::FsyncWithDirOptions(o, dbg, d); });
  }

 private:
  template <typename Fn>
  IOStatus DoFsync(Fn fn) {
    MutexLock lock(state_->mu());
    IOStatus s = state_->CheckAlive("directory fsync", dir_);
    if (s.ok() && kForwardSyncs) s = fn();
    if (s.ok()) state_->NoteDirSynced(dir_);
    return s;
  }

  const std::string dir_;
  const std::shared_ptr<FaultState> state_;
};

class FaultFileSystem final : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFileSystem(std::shared_ptr<FaultState> state)
      : FileSystemWrapper(FileSystem::Default()), state_(std::move(state)) {}

  const char* Name() const override { return "BlockhausFaultFileSystem"; }

  IOStatus NewWritableFile(const std::string& f, const FileOptions& fo,
                           std::unique_ptr<FSWritableFile>* r, IODebugContext* dbg) override;
  IOStatus ReopenWritableFile(const std::string& f, const FileOptions& fo,
                              std::unique_ptr<FSWritableFile>* r,
                              IODebugContext* dbg) override;
  IOStatus ReuseWritableFile(const std::string& f, const std::string&, const FileOptions&,
                             std::unique_ptr<FSWritableFile>*, IODebugContext*) override {
    return IOStatus::NotSupported("fault injection does not model file reuse", f);
  }
  IOStatus NewRandomRWFile(const std::string& f, const FileOptions& fo,
                           std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                           IODebugContext* dbg) override {
    return Gated("open read-write", f, [&] { return target()->NewRandomRWFile(f, fo, r, dbg); });
  }
  IOStatus NewDirectory(const std::string& name, const IOOptions& o,
                        std::unique_ptr<FSDirectory>* r, IODebugContext* dbg) override;
  IOStatus DeleteFile(const std::string& f, const IOOptions& o, IODebugContext* dbg) override;
  IOStatus RenameFile(const std::string& s, const std::string& t, const IOOptions& o,
                      IODebugContext* dbg) override;
  IOStatus LinkFile(const std::string& s, const std::string& t, const IOOptions& o,
                    IODebugContext* dbg) override;
  IOStatus Truncate(const std::string& f, size_t size, const IOOptions& o,
                    IODebugContext* dbg) override;
  IOStatus CreateDir(const std::string& d, const IOOptions& o, IODebugContext* dbg) override {
    return Gated("mkdir", d, [&] { return target()->CreateDir(d, o, dbg); });
  }
  IOStatus CreateDirIfMissing(const std::string& d, const IOOptions& o,
                              IODebugContext* dbg) override {
    return Gated("mkdir", d, [&] { return target()->CreateDirIfMissing(d, o, dbg); });
  }
  IOStatus DeleteDir(const std::string& d, const IOOptions& o, IODebugContext* dbg) override {
    return Gated("rmdir", d, [&] { return target()->DeleteDir(d, o, dbg); });
  }

 private:
  template <typename Fn>
  IOStatus Gated(const char* op, const std::string& path, Fn fn) {
    MutexLock lock(state_->mu());
    IOStatus s = state_->CheckAlive(op, path);
    return s.ok() ? fn() : s;
  }
  bool Exists(const std::string& f) {
    return target()->FileExists(f, IOOptions(), nullptr).ok();
  }

  const std::shared_ptr<FaultState> state_;
};

IOStatus FaultFileSystem::NewWritableFile(const std::string& f, const FileOptions& fo,
                                          std::unique_ptr<FSWritableFile>* r,
                                          IODebugContext* dbg) {
  MutexLock lock(state_->mu());
  IOStatus s = state_->CheckAlive("create", f);
  if (!s.ok()) return s;
  bool existed = Exists(f);
  std::unique_ptr<FSWritableFile> file;
  s = target()->NewWritableFile(f, fo, &file, dbg);
  if (!s.ok()) return s;
  std::shared_ptr<FileRecord> rec = state_->Track(f, 0);
  if (!existed) state_->NoteCreate(f);
  *r = std::make_unique<FaultWritableFile>(std::move(file), f, state_, std::move(rec));
  return s;
}

IOStatus FaultFileSystem::ReopenWritableFile(const std::string& f, const FileOptions& fo,
                                             std::unique_ptr<FSWritableFile>* r,
                                             IODebugContext* dbg) {
  MutexLock lock(state_->mu());
  IOStatus s = state_->CheckAlive("reopen", f);
  if (!s.ok()) return s;
  // The size comes from the path: a reopened PosixWritableFile counts from 0.
  uint64_t size = 0;
  bool existed = target()->GetFileSize(f, IOOptions(), &size, nullptr).ok();
  std::unique_ptr<FSWritableFile> file;
  s = target()->ReopenWritableFile(f, fo, &file, dbg);
  if (!s.ok()) return s;
  // Simplification: content present at reopen counts as durable.
  std::shared_ptr<FileRecord> rec = state_->Track(f, size);
  if (!existed) state_->NoteCreate(f);
  *r = std::make_unique<FaultWritableFile>(std::move(file), f, state_, std::move(rec));
  return s;
}

IOStatus FaultFileSystem::NewDirectory(const std::string& name, const IOOptions& o,
                                       std::unique_ptr<FSDirectory>* r, IODebugContext* dbg) {
  std::unique_ptr<FSDirectory> dir;
  IOStatus s = target()->NewDirectory(name, o, &dir, dbg);
  if (!s.ok()) return s;
  *r = std::make_unique<FaultDirectory>(std::move(dir), NormalPath(name), state_);
  return s;
}

IOStatus FaultFileSystem::DeleteFile(const std::string& f, const IOOptions& o,
                                     IODebugContext* dbg) {
  MutexLock lock(state_->mu());
  IOStatus s = state_->CheckAlive("delete", f);
  if (s.ok()) s = target()->DeleteFile(f, o, dbg);
  if (s.ok()) state_->NoteDelete(f);
  return s;
}

IOStatus FaultFileSystem::RenameFile(const std::string& src, const std::string& dst,
                                     const IOOptions& o, IODebugContext* dbg) {
  IOStatus s;
  {
    MutexLock lock(state_->mu());
    s = state_->CheckAlive("rename", src);
    if (!s.ok()) return s;
    std::optional<std::string> replaced = state_->DurableContent(dst);
    s = target()->RenameFile(src, dst, o, dbg);
    if (s.ok()) state_->NoteRename(src, dst, std::move(replaced));
  }
  // Lets a test cut power between a rename and the fsync of its directory.
  if (s.ok()) BH_SYNC_POINT("KvFaultFs::RenameFile:Done");
  return s;
}

IOStatus FaultFileSystem::LinkFile(const std::string& src, const std::string& dst,
                                   const IOOptions& o, IODebugContext* dbg) {
  MutexLock lock(state_->mu());
  IOStatus s = state_->CheckAlive("link", dst);
  if (s.ok()) s = target()->LinkFile(src, dst, o, dbg);
  if (s.ok()) state_->NoteLink(src, dst);
  return s;
}

IOStatus FaultFileSystem::Truncate(const std::string& f, size_t size, const IOOptions& o,
                                   IODebugContext* dbg) {
  MutexLock lock(state_->mu());
  IOStatus s = state_->CheckAlive("truncate", f);
  if (s.ok()) s = target()->Truncate(f, size, o, dbg);
  if (s.ok()) state_->NoteTruncate(f, size);
  return s;
}

}  // namespace

KvFaultInjector::KvFaultInjector(uint64_t seed) : rep_(std::make_unique<Rep>()) {
  rep_->state = std::make_shared<FaultState>(seed);
  rep_->fs = std::make_shared<FaultFileSystem>(rep_->state);
}

KvFaultInjector::~KvFaultInjector() = default;

void KvFaultInjector::PowerCut(bool garble) { rep_->state->PowerCut(garble); }
void KvFaultInjector::Revive() { rep_->state->Revive(); }
void KvFaultInjector::FailNthWrite(uint64_t n, bool enospc) {
  rep_->state->FailNthWrite(n, enospc);
}
void KvFaultInjector::FailNthSync(uint64_t n) { rep_->state->FailNthSync(n); }
void KvFaultInjector::ClearFaults() { rep_->state->ClearFaults(); }

}  // namespace blockhaus::core
