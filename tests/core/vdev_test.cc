#include "core/io/vdev.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

namespace blockhaus::core {
namespace {

// A fresh directory from mkdtemp, removed with its contents at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bh-vdev-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

std::unique_ptr<Vdev> CreateFile(const std::string& path, uint64_t size) {
  auto r = OpenFileVdev(path, FileVdevOptions{.create = true, .size = size});
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return std::move(r).value();
}

void CheckRangeErrors(Vdev& v) {
  std::vector<uint8_t> buf(16);
  const uint64_t size = v.size();
  CHECK(v.Read(size - 8, buf).code() == Code::kInvalidArgument);
  CHECK(v.Write(size - 8, buf).code() == Code::kInvalidArgument);
  CHECK(v.Read(size + 1, ByteSpan()).code() == Code::kInvalidArgument);
  CHECK(v.Write(UINT64_MAX - 4, buf).code() == Code::kInvalidArgument);
  CHECK(v.Read(UINT64_MAX, buf).code() == Code::kInvalidArgument);
  CHECK(v.Read(size, ByteSpan()).ok());  // Empty at the very end is fine.
  CHECK(v.Write(size - 16, buf).ok());
}

TEST_CASE("MemVdev: zero-filled, round trip, range checks") {
  auto v = NewMemVdev(1 << 20);
  CHECK(v->size() == (1u << 20));
  std::vector<uint8_t> buf(4096, 0xFF);
  REQUIRE(v->Read(8192, buf).ok());
  CHECK(buf == std::vector<uint8_t>(4096, 0));
  auto data = Pattern(5000, 3);
  REQUIRE(v->Write(12345, data).ok());
  REQUIRE(v->Sync().ok());
  std::vector<uint8_t> back(5000);
  REQUIRE(v->Read(12345, back).ok());
  CHECK(back == data);
  CheckRangeErrors(*v);
}

TEST_CASE("Vdev::WriteV default writes buffers back to back, all or nothing") {
  auto v = NewMemVdev(64 * 1024);
  auto a = Pattern(100, 1), b = Pattern(3000, 2), c = Pattern(7, 3);
  std::vector<ConstByteSpan> bufs = {a, ConstByteSpan(), b, c};
  REQUIRE(v->WriteV(10, bufs).ok());
  std::vector<uint8_t> back(3107);
  REQUIRE(v->Read(10, back).ok());
  std::vector<uint8_t> want(a);
  want.insert(want.end(), b.begin(), b.end());
  want.insert(want.end(), c.begin(), c.end());
  CHECK(back == want);
  // Out of range as a whole: nothing at all is written.
  REQUIRE(v->Write(v->size() - 3200, std::vector<uint8_t>(3200, 0)).ok());
  CHECK(v->WriteV(v->size() - 3106, bufs).code() == Code::kInvalidArgument);
  std::vector<uint8_t> tail(3200);
  REQUIRE(v->Read(v->size() - 3200, tail).ok());
  CHECK(tail == std::vector<uint8_t>(3200, 0));
}

TEST_CASE("ErrnoToStatus maps errno to codes") {
  CHECK(ErrnoToStatus(ENOSPC, "w").code() == Code::kResourceExhausted);
  CHECK(ErrnoToStatus(EDQUOT, "w").code() == Code::kResourceExhausted);
  CHECK(ErrnoToStatus(ENOENT, "o").code() == Code::kNotFound);
  CHECK(ErrnoToStatus(EACCES, "o").code() == Code::kPermissionDenied);
  CHECK(ErrnoToStatus(EPERM, "o").code() == Code::kPermissionDenied);
  Status eio = ErrnoToStatus(EIO, "pread /dev/x");
  CHECK(eio.code() == Code::kIOError);
  CHECK(eio.message().find("pread /dev/x") != std::string::npos);
}

TEST_CASE("FileVdev: create, write, sync, reopen, read") {
  TempDir dir;
  const std::string path = dir.File("pool.img");
  auto data = Pattern(10000, 9);
  {
    auto v = CreateFile(path, 1 << 20);
    CHECK(v->size() == (1u << 20));
    REQUIRE(v->Write(4096 * 3 + 5, data).ok());
    REQUIRE(v->Sync().ok());
    std::vector<uint8_t> zeros(100, 1);
    REQUIRE(v->Read(0, zeros).ok());
    CHECK(zeros == std::vector<uint8_t>(100, 0));
    CheckRangeErrors(*v);
  }
  CHECK(std::filesystem::file_size(path) == (1u << 20));
  auto r = OpenFileVdev(path, FileVdevOptions{});
  REQUIRE(r.ok());
  CHECK((*r)->size() == (1u << 20));
  std::vector<uint8_t> back(data.size());
  REQUIRE((*r)->Read(4096 * 3 + 5, back).ok());
  CHECK(back == data);
}

TEST_CASE("Vdev::ReadNoWait: cached file data and RAM read, the default declines") {
  TempDir dir;
  auto data = Pattern(20000, 4);
  auto v = CreateFile(dir.File("pool.img"), 1 << 20);
  REQUIRE(v->Write(8192, data).ok());  // now in the page cache
  std::vector<uint8_t> back(data.size());
  Status s = v->ReadNoWait(8192, back);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(back == data);
  CHECK(v->ReadNoWait((1 << 20) - 10, back).code() == Code::kInvalidArgument);
  auto mem = NewMemVdev(1 << 20);
  REQUIRE(mem->Write(100, data).ok());
  REQUIRE(mem->ReadNoWait(100, back).ok());
  CHECK(back == data);
  // A Vdev that does not implement it never claims to have read.
  class Plain : public Vdev {
   public:
    uint64_t size() const override { return 4096; }
    Status Read(uint64_t, ByteSpan) override { return Status::Ok(); }
    Status Write(uint64_t, ConstByteSpan) override { return Status::Ok(); }
    Status Sync() override { return Status::Ok(); }
  } plain;
  std::vector<uint8_t> one(512);
  CHECK(plain.ReadNoWait(0, one).code() == Code::kWouldBlock);
}

// A buffer of `n` bytes at an address aligned to `align`.
struct AlignedBytes {
  explicit AlignedBytes(size_t n, size_t align = 4096)
      : p(static_cast<uint8_t*>(std::aligned_alloc(align, n))), size(n) {}
  ~AlignedBytes() { std::free(p); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
  ByteSpan span() const { return ByteSpan(p, size); }
  uint8_t* p;
  size_t size;
};

TEST_CASE("FileVdev: direct writes skip the page cache and stay coherent with it") {
  TempDir dir;
  auto v = CreateFile(dir.File("d.img"), 1 << 20);
  const uint32_t align = v->direct_alignment();
  REQUIRE_MESSAGE(align > 0, "the file system of " << dir.path()
                                 << " reports no direct I/O alignment (statx STATX_DIOALIGN)");
  CHECK((align & (align - 1)) == 0);
  AlignedBytes buf(64 * 1024);
  auto data = Pattern(buf.size, 3);
  std::copy(data.begin(), data.end(), buf.p);

  // Written direct, the bytes are on the device, not in the page cache: a
  // read that must not wait for the device declines, a read reads them.
  REQUIRE(v->WriteDirect(128 * 1024, buf.span()).ok());
  std::vector<uint8_t> back(buf.size);
  CHECK(v->ReadNoWait(128 * 1024, back).code() == Code::kWouldBlock);
  REQUIRE(v->Read(128 * 1024, back).ok());
  CHECK(back == data);

  // Over a range the page cache holds (a buffered write, then a read): the
  // cached pages do not hide the new bytes.
  auto old = Pattern(buf.size, 77);
  REQUIRE(v->Write(512 * 1024, old).ok());
  REQUIRE(v->Read(512 * 1024, back).ok());
  REQUIRE(v->WriteDirect(512 * 1024, buf.span()).ok());
  REQUIRE(v->Read(512 * 1024, back).ok());
  CHECK(back == data);
  REQUIRE(v->Sync().ok());

  // Misaligned offset, length or address: InvalidArgument, nothing written.
  std::vector<uint8_t> before(2 * align);
  REQUIRE(v->Read(0, before).ok());
  CHECK(v->WriteDirect(align / 2, buf.span().first(align)).code() == Code::kInvalidArgument);
  CHECK(v->WriteDirect(0, buf.span().first(align / 2)).code() == Code::kInvalidArgument);
  CHECK(v->WriteDirect(0, buf.span().subspan(1, align)).code() == Code::kInvalidArgument);
  CHECK(v->WriteDirect((1 << 20) - align, buf.span().first(2 * align)).code() ==
        Code::kInvalidArgument);
  std::vector<uint8_t> after(2 * align);
  REQUIRE(v->Read(0, after).ok());
  CHECK(after == before);

  // Durable after Sync and there after a reopen.
  v.reset();
  auto r = OpenFileVdev(dir.File("d.img"), FileVdevOptions{});
  REQUIRE(r.ok());
  REQUIRE((*r)->Read(128 * 1024, back).ok());
  CHECK(back == data);

  // Without the option, or read-only, there is no direct path; WriteDirect
  // is then a Write.
  auto plain = OpenFileVdev(dir.File("d.img"), FileVdevOptions{.direct_writes = false});
  REQUIRE(plain.ok());
  CHECK((*plain)->direct_alignment() == 0);
  auto odd = Pattern(1000, 5);
  REQUIRE((*plain)->WriteDirect(7, odd).ok());
  std::vector<uint8_t> odd_back(odd.size());
  REQUIRE((*plain)->Read(7, odd_back).ok());
  CHECK(odd_back == odd);
  auto ro = OpenFileVdev(dir.File("d.img"), FileVdevOptions{.read_only = true});
  REQUIRE(ro.ok());
  CHECK((*ro)->direct_alignment() == 0);
}

TEST_CASE("MemVdev: direct writes are checked writes") {
  auto mem = NewMemVdev(1 << 20);
  CHECK(mem->direct_alignment() == 4096);
  AlignedBytes buf(8192);
  auto data = Pattern(buf.size, 8);
  std::copy(data.begin(), data.end(), buf.p);
  REQUIRE(mem->WriteDirect(4096, buf.span()).ok());
  std::vector<uint8_t> back(buf.size);
  REQUIRE(mem->Read(4096, back).ok());
  CHECK(back == data);
  CHECK(mem->WriteDirect(100, buf.span().first(4096)).code() == Code::kInvalidArgument);
  CHECK(mem->WriteDirect(0, buf.span().first(4000)).code() == Code::kInvalidArgument);
  CHECK(mem->WriteDirect(0, buf.span().subspan(8, 4096)).code() == Code::kInvalidArgument);
}

TEST_CASE("FileVdev: WriteV beyond IOV_MAX buffers") {
  TempDir dir;
  auto v = CreateFile(dir.File("v.img"), 1 << 20);
  std::vector<std::vector<uint8_t>> storage;
  std::vector<ConstByteSpan> bufs;
  std::vector<uint8_t> want;
  for (int i = 0; i < IOV_MAX * 2 + 17; ++i) {
    storage.push_back(Pattern(1 + i % 13, static_cast<uint8_t>(i)));
  }
  for (const auto& s : storage) {
    bufs.push_back(s);
    want.insert(want.end(), s.begin(), s.end());
  }
  REQUIRE(v->WriteV(777, bufs).ok());
  std::vector<uint8_t> back(want.size());
  REQUIRE(v->Read(777, back).ok());
  CHECK(back == want);
  CHECK(v->WriteV(v->size() - 10, bufs).code() == Code::kInvalidArgument);
}

TEST_CASE("FileVdev: open errors") {
  TempDir dir;
  auto missing = OpenFileVdev(dir.File("nope"), FileVdevOptions{});
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(!std::filesystem::exists(dir.File("nope")));  // Not created by accident.
  CHECK(OpenFileVdev(dir.path(), FileVdevOptions{}).status().code() ==
        Code::kInvalidArgument);
  CHECK(OpenFileVdev(dir.path(), FileVdevOptions{.create = true, .size = 4096})
            .status().code() == Code::kInvalidArgument);
  CHECK(OpenFileVdev(dir.File("zero"), FileVdevOptions{.create = true, .size = 0})
            .status().code() == Code::kInvalidArgument);
  { std::ofstream(dir.File("empty")).flush(); }
  CHECK(OpenFileVdev(dir.File("empty"), FileVdevOptions{}).status().code() ==
        Code::kInvalidArgument);
  REQUIRE(::mkfifo(dir.File("fifo").c_str(), 0600) == 0);
  CHECK(OpenFileVdev(dir.File("fifo"), FileVdevOptions{}).status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("FileVdev: create grows an existing file but never shrinks it") {
  TempDir dir;
  const std::string path = dir.File("g.img");
  { auto v = CreateFile(path, 8192); }
  { auto v = CreateFile(path, 16384); CHECK(v->size() == 16384); }
  auto shrink = OpenFileVdev(path, FileVdevOptions{.create = true, .size = 4096});
  CHECK(shrink.status().code() == Code::kFailedPrecondition);
  CHECK(std::filesystem::file_size(path) == 16384);
}

// root ignores file modes, so the open runs in a child that dropped to
// "nobody" first; the child's exit code carries the result.
TEST_CASE("FileVdev: unreadable file is PermissionDenied") {
  TempDir dir;
  const std::string path = dir.File("locked.img");
  { auto v = CreateFile(path, 4096); }
  REQUIRE(::chmod(path.c_str(), 0) == 0);
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    auto r = OpenFileVdev(path, FileVdevOptions{});
    ::_exit(!r.ok() && r.status().code() == Code::kPermissionDenied ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace blockhaus::core
