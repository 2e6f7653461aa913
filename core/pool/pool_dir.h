// Where pools live on the host, and who may open them.
//
// Every pool is a directory <home>/pools/<name>/ holding:
//   label   the checksummed PoolLabel (label_format.h)
//   lock    flock()ed by the process that has the pool open; holds its pid
//   meta/   the RocksDB metadata store
//   data    the data file, unless the label names another file or a device
// <home> is $VOLCTL_HOME, else /var/lib/blockhaus for root, else
// ~/.local/share/blockhaus.
//
// Thread safety: functions are thread-safe; PoolLock is thread-compatible.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace blockhaus::core {

std::string DefaultHome();
std::string PoolDir(const std::string& home, std::string_view name);

// ZFS rules: starts with a letter; then letters, digits, '_', '-', '.', ':';
// at most 200 characters; not a reserved word ("mirror", "raidz", "draid",
// "spare", "log"). Errors: InvalidArgument saying which rule failed.
Status ValidatePoolName(std::string_view name);

// Names of the pools under home (directories that hold a label), sorted.
Result<std::vector<std::string>> ListPoolNames(const std::string& home);

// An exclusive flock() on <dir>/lock, released by the destructor.
// Errors: Unavailable "pool is in use by process N" when another process
// holds it; IOError otherwise.
class PoolLock {
 public:
  static Result<std::unique_ptr<PoolLock>> Acquire(const std::string& dir);
  ~PoolLock();
  PoolLock(const PoolLock&) = delete;
  PoolLock& operator=(const PoolLock&) = delete;

 private:
  explicit PoolLock(int fd) : fd_(fd) {}
  int fd_;
};

// Removes the pool in `dir` without opening it: the data file its label
// names, when that lies outside `dir`, is a regular file and starts with
// this pool's label (same guid; a device, or a file that now holds
// something else, is left as it is), then the directory. The pool's lock is
// held throughout. `pool destroy` ends with it, and `pool destroy -f` of a
// pool that does not open (ZFS: zpool destroy of a FAULTED pool) is only
// this. What it left behind, and why, is appended to *notes.
// Errors: Unavailable when another process has the pool open (nothing is
// removed); IOError when the directory cannot be removed.
Status DestroyPoolFiles(const std::string& dir, std::vector<std::string>* notes);

// Reads a whole small file. Errors: NotFound, IOError.
Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes);
// Writes `contents` to path via a temporary file, fsync and rename, then
// fsyncs the directory: the file is either old or new after a crash.
Status WriteFileAtomic(const std::string& path, std::string_view contents);

// fsync of a file or directory by path (a directory: its entries).
Status FsyncPath(const std::string& path);

}  // namespace blockhaus::core
