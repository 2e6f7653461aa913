// engine_bench: in-process throughput of the pool against the raw file.
//
//   engine_bench [--dir DIR] [--mib N] [--runs R]
// Scratch files go in a new directory made under DIR (default /var/tmp),
// removed at the end; nothing else under DIR is touched.
// For each block size (4K, 16K, 128K) and compression (off, lz4, zstd-1):
//   raw   sequential pwrite of N MiB in blocks of that size, fdatasync, then
//         pread of it all after dropping it from the page cache
//   pool  the same data written as blocks of one lineage, Flush, then read
//         back after dropping the data file from the page cache
// and prints MB/s of both and the ratio pool/raw (median of R runs). The
// data is half compressible (a random half and a repeating half per block).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/io/vdev.h"
#include "core/pool/pool.h"
#include "tests/test_util.h"

namespace {

using namespace blockhaus;
using namespace blockhaus::core;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string dir = "/var/tmp";  // the parent of the scratch directory
  uint64_t mib = 256;
  int runs = 3;
};

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

void DropCache(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

std::vector<std::vector<uint8_t>> MakeData(size_t bs) {
  std::vector<std::vector<uint8_t>> blocks;
  for (uint64_t i = 0; i < 64; ++i) blocks.push_back(testing::PatternBlock(bs, 42, i + 1));
  return blocks;
}

std::pair<double, double> RunRaw(const Config& c, size_t bs) {
  std::string path = c.dir + "/raw.dat";
  uint64_t total = c.mib << 20;
  auto data = MakeData(bs);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  auto t0 = Clock::now();
  for (uint64_t off = 0, i = 0; off < total; off += bs, ++i) {
    if (::pwrite(fd, data[i % data.size()].data(), bs, static_cast<off_t>(off)) !=
        static_cast<ssize_t>(bs)) std::abort();
  }
  ::fdatasync(fd);
  auto t1 = Clock::now();
  ::close(fd);
  DropCache(path);
  fd = ::open(path.c_str(), O_RDONLY);
  std::vector<uint8_t> buf(bs);
  auto t2 = Clock::now();
  for (uint64_t off = 0; off < total; off += bs) {
    if (::pread(fd, buf.data(), bs, static_cast<off_t>(off)) != static_cast<ssize_t>(bs)) std::abort();
  }
  auto t3 = Clock::now();
  ::close(fd);
  std::filesystem::remove(path);
  double mb = static_cast<double>(total) / 1e6;
  return {mb / Seconds(t0, t1), mb / Seconds(t2, t3)};
}

std::pair<double, double> RunPool(const Config& c, size_t bs, const char* comp) {
  std::string dir = c.dir + "/pool";
  std::filesystem::remove_all(dir);
  PoolCreateOptions o;
  o.name = "bench";
  o.data_size = (c.mib << 20) * 2 + (64 << 20);
  if (!Pool::Create(dir, o).ok()) std::abort();
  auto pool = std::move(Pool::Open(dir)).value();
  LineageId l = 0;
  if (!pool->RunSyncTask(nullptr, [&](SyncContext& ctx) { l = ctx.CreateLineage({}); }).ok()) std::abort();
  BlockOptions opts{*ParseCompression(comp), ChecksumType::kXxh3_128};
  auto data = MakeData(bs);
  uint64_t n = (c.mib << 20) / bs;
  auto t0 = Clock::now();
  for (uint64_t b = 0; b < n; ++b) {
    if (!pool->Write(l, b, data[b % data.size()], opts).ok()) std::abort();
  }
  if (!pool->Flush().ok()) std::abort();
  auto t1 = Clock::now();
  DropCache(dir + "/data");
  std::vector<uint8_t> buf(bs);
  auto t2 = Clock::now();
  for (uint64_t b = 0; b < n; ++b) {
    if (!pool->Read(l, b, kHeadView, buf).ok()) std::abort();
  }
  auto t3 = Clock::now();
  pool.reset();
  std::filesystem::remove_all(dir);
  double mb = static_cast<double>(c.mib << 20) / 1e6;
  return {mb / Seconds(t0, t1), mb / Seconds(t2, t3)};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Config ParseArgs(int argc, char** argv) {
  Config c;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--dir") c.dir = argv[i + 1];
    else if (k == "--mib") c.mib = std::strtoull(argv[i + 1], nullptr, 10);
    else if (k == "--runs") c.runs = static_cast<int>(std::strtol(argv[i + 1], nullptr, 10));
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  Config c = ParseArgs(argc, argv);
  // Only a directory of its own is removed at the end: --dir /var/tmp once
  // removed /var/tmp itself.
  std::string scratch = c.dir + "/bh-engine-bench-XXXXXX";
  if (::mkdtemp(scratch.data()) == nullptr) {
    std::fprintf(stderr, "engine_bench: cannot make a directory under %s: %s\n", c.dir.c_str(),
                 std::strerror(errno));
    return 1;
  }
  c.dir = scratch;
  std::printf("engine_bench: %llu MiB per case, median of %d runs, dir %s\n",
              static_cast<unsigned long long>(c.mib), c.runs, c.dir.c_str());
  std::printf("%-6s %-7s %10s %10s %7s %10s %10s %7s\n", "block", "comp", "raw w MB/s",
              "pool w", "ratio", "raw r MB/s", "pool r", "ratio");
  for (size_t bs : {4096u, 16384u, 131072u}) {
    for (const char* comp : {"off", "lz4", "zstd-1"}) {
      std::vector<double> rw, rr, pw, pr;
      for (int r = 0; r < c.runs; ++r) {  // A B A B ... in one run
        auto raw = RunRaw(c, bs);
        auto pool = RunPool(c, bs, comp);
        rw.push_back(raw.first);
        rr.push_back(raw.second);
        pw.push_back(pool.first);
        pr.push_back(pool.second);
      }
      std::printf("%-6zu %-7s %10.0f %10.0f %6.2fx %10.0f %10.0f %6.2fx\n", bs, comp,
                  Median(rw), Median(pw), Median(pw) / Median(rw), Median(rr), Median(pr),
                  Median(pr) / Median(rr));
      std::fflush(stdout);
    }
  }
  std::filesystem::remove_all(c.dir);
  return 0;
}
