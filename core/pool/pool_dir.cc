#include "core/pool/pool_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "core/io/vdev.h"
#include "core/pool/label_format.h"

namespace blockhaus::core {
namespace {

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '.' || c == ':';
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Status FsyncPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open " + path);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoToStatus(err, "fsync " + path);
  return Status::Ok();
}

std::string DefaultHome() {
  const char* env = std::getenv("VOLCTL_HOME");
  if (env != nullptr && env[0] != '\0') return env;
  if (::geteuid() == 0) return "/var/lib/blockhaus";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.local/share/blockhaus";
}

std::string PoolDir(const std::string& home, std::string_view name) {
  return home + "/pools/" + std::string(name);
}

Status ValidatePoolName(std::string_view name) {
  if (name.empty()) return BH_ERROR(kInvalidArgument, "pool name is empty");
  if (name.size() > 200) {
    return BH_ERROR(kInvalidArgument, "pool name is longer than 200 characters");
  }
  if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z'))) {
    return BH_ERROR(kInvalidArgument, "pool name '{}' must begin with a letter", name);
  }
  for (char c : name) {
    if (!IsNameChar(c)) {
      return BH_ERROR(kInvalidArgument,
                      "pool name '{}' has an invalid character (allowed: letters, digits, "
                      "'_', '-', '.', ':')", name);
    }
  }
  static constexpr std::array<std::string_view, 5> kReserved = {"mirror", "raidz", "draid",
                                                                "spare", "log"};
  for (std::string_view r : kReserved) {
    if (name.substr(0, r.size()) == r) {
      return BH_ERROR(kInvalidArgument, "pool name '{}' begins with reserved word '{}'",
                      name, r);
    }
  }
  return Status::Ok();
}

Result<std::vector<std::string>> ListPoolNames(const std::string& home) {
  std::vector<std::string> names;
  std::string dir = home + "/pools";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    if (errno == ENOENT) return names;
    return ErrnoToStatus(errno, "open " + dir);
  }
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (::stat((dir + "/" + name + "/label").c_str(), &st) == 0) names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::unique_ptr<PoolLock>> PoolLock::Acquire(const std::string& dir) {
  std::string path = dir + "/lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, "open " + path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    char buf[32] = {};
    ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    ::close(fd);
    if (err == EWOULDBLOCK) {
      std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
      while (!pid.empty() && (pid.back() == '\n' || pid.back() == '\0')) pid.pop_back();
      return BH_ERROR(kUnavailable, "pool is in use by another process (pid {})", pid);
    }
    return ErrnoToStatus(err, "lock " + path);
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "write " + path);
  }
  return std::unique_ptr<PoolLock>(new PoolLock(fd));
}

PoolLock::~PoolLock() { ::close(fd_); }

Status DestroyPoolFiles(const std::string& dir, std::vector<std::string>* notes) {
  BH_ASSIGN_OR_RETURN(std::unique_ptr<PoolLock> lock, PoolLock::Acquire(dir));
  Result<std::string> raw = ReadSmallFile(dir + "/label", kLabelSize);
  Result<PoolLabel> label = raw.ok() ? DecodeLabel(*raw) : Result<PoolLabel>(raw.status());
  if (!label.ok()) {
    notes->push_back(FormatMessage("the label of {} does not read ({}): a data file it named "
                                   "outside that directory is left as it is",
                                   dir, label.status().ToString()));
  } else if (!label->data_path.starts_with(dir + "/")) {
    const std::string& path = label->data_path;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      if (errno != ENOENT) {
        notes->push_back(FormatMessage("data file {} is left as it is: {}", path,
                                       std::strerror(errno)));
      }
    } else if (!S_ISREG(st.st_mode)) {
      notes->push_back(FormatMessage("data device {} is left as it is", path));
    } else {
      // The file must still be this pool's: its first bytes are the label.
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      std::string head(kLabelSize, '\0');
      const bool read = fd >= 0 && ::pread(fd, head.data(), head.size(), 0) ==
                                       static_cast<ssize_t>(head.size());
      if (fd >= 0) ::close(fd);
      bool ours = false;
      if (read) {
        Result<PoolLabel> on_file = DecodeLabel(head);
        ours = on_file.ok() && on_file->guid == label->guid;
      }
      if (!ours) {
        notes->push_back(FormatMessage("data file {} does not start with the label of pool {} "
                                       "(guid {:#x}); it is left as it is",
                                       path, label->name, label->guid));
      } else if (std::error_code ec; !std::filesystem::remove(path, ec) && ec) {
        notes->push_back(FormatMessage("cannot remove data file {}: {}", path, ec.message()));
      }
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return BH_ERROR(kIOError, "cannot remove {}: {}", dir, ec.message());
  return Status::Ok();
}

Result<std::string> ReadSmallFile(const std::string& path, size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoToStatus(errno, "open " + path);
  std::string out;
  char buf[4096];
  while (out.size() <= max_bytes) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return ErrnoToStatus(err, "read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (out.size() > max_bytes) {
    return BH_ERROR(kCorruption, "{} is larger than {} bytes", path, max_bytes);
  }
  return out;
}

Status WriteFileAtomic(const std::string& path, std::string_view contents) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoToStatus(errno, "create " + tmp);
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      return ErrnoToStatus(err, "write " + tmp);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoToStatus(err, "fsync " + tmp);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoToStatus(errno, "rename " + tmp);
  return FsyncPath(DirName(path));
}

}  // namespace blockhaus::core
