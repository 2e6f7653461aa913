// snapshots_bench: snapshot, clone, rollback and destroy latency, and
// foreground writes while the coalescing worker frees (issue 3).
//
//   snapshots_bench [--dir DIR] [--written-gib N] [--unique-gib U]
//                   [--free-gib F] [--fg-mib M] [--runs R] [--op-runs O]
// 1. On an empty 1 TiB thin volume and on one with N GiB written in 16K
//    blocks: median of O interleaved rounds of snapshot, clone and rollback
//    (to a snapshot with nothing changed since), and the ratio full/empty
//    (goal <= 1.5x, all under 20 ms).
// 2. Destroy of a snapshot holding U GiB of unique data: time until the
//    call returns (goal < 100 ms; the worker frees in the background).
// 3. Foreground write throughput (M MiB in 1 MiB writes, then a flush),
//    idle and while the worker frees a destroyed F GiB volume (goal: busy
//    >= 80% of idle). Interleaved idle/busy runs, medians.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include "core/pool/pool.h"
#include "volume/volume_manager.h"

namespace {

using namespace blockhaus;
using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kGiB = 1 << 30;

struct Config {
  std::string dir = "/var/tmp/bh-snapshots-bench";
  uint64_t written_gib = 4;
  uint64_t unique_gib = 1;
  uint64_t free_gib = 4;
  uint64_t fg_mib = 512;
  int runs = 3;      // foreground write runs
  int op_runs = 15;  // snapshot/clone/rollback rounds per volume
};

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void Check(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

// 1 MiB of incompressible data, different per call.
const std::vector<uint8_t>& Chunk(uint64_t i) {
  static std::vector<std::vector<uint8_t>> chunks;
  if (chunks.empty()) {
    std::mt19937_64 rng(7);
    for (int c = 0; c < 8; ++c) {
      std::vector<uint8_t> d(kMiB);
      for (size_t j = 0; j < d.size(); j += 8) {
        uint64_t v = rng();
        std::memcpy(&d[j], &v, 8);
      }
      chunks.push_back(std::move(d));
    }
  }
  return chunks[i % chunks.size()];
}

void Fill(volume::VolumeManager& vm, const std::string& name, uint64_t bytes, uint64_t salt) {
  auto dev = vm.OpenDevice(name);
  Check(dev.status(), "open");
  std::vector<uint8_t> buf(kMiB);
  for (uint64_t off = 0; off < bytes; off += kMiB) {
    buf = Chunk(off / kMiB + salt);
    std::memcpy(buf.data(), &off, sizeof(off));  // every 1 MiB differs
    std::memcpy(buf.data() + 8, &salt, sizeof(salt));
    Check((*dev)->Write(off, buf), "write");
  }
  Check((*dev)->Flush(), "flush");
}

volume::VolumeProps Thin(uint64_t size) {
  volume::VolumeProps p;
  p.volsize = size;
  p.volblocksize = 16384;
  p.compression = core::Compression{};
  return p;
}

struct OpTimes {
  double snapshot, clone, rollback;
};

struct OpSamples {
  std::vector<double> snap, clone, roll;
  OpTimes Medians() const { return {Median(snap), Median(clone), Median(roll)}; }
};

// One snapshot, clone of it and rollback to it.
void TimeOps(volume::VolumeManager& vm, const std::string& vol, int* seq, OpSamples* out) {
  std::vector<double>& snap = out->snap;
  std::vector<double>& clone = out->clone;
  std::vector<double>& roll = out->roll;
  {
    std::string s = vol + "@b" + std::to_string((*seq)++);
    auto t0 = Clock::now();
    Check(vm.Snapshot({s}), "snapshot");
    auto t1 = Clock::now();
    Check(vm.Clone(s, vol + "-c" + std::to_string(*seq), {}), "clone");
    auto t2 = Clock::now();
    Check(vm.Rollback(s, false), "rollback");
    auto t3 = Clock::now();
    snap.push_back(Ms(t0, t1));
    clone.push_back(Ms(t1, t2));
    roll.push_back(Ms(t2, t3));
  }
}

double WriteMBps(volume::VolumeManager& vm, const std::string& name, uint64_t mib,
                 uint64_t salt) {
  auto t0 = Clock::now();
  Fill(vm, name, mib * kMiB, salt);
  return static_cast<double>(mib) / (Ms(t0, Clock::now()) / 1000.0) * 1.048576;
}

Config Parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    uint64_t v = std::strtoull(argv[i + 1], nullptr, 10);
    if (k == "--dir") c.dir = argv[i + 1];
    else if (k == "--written-gib") c.written_gib = v;
    else if (k == "--unique-gib") c.unique_gib = v;
    else if (k == "--free-gib") c.free_gib = v;
    else if (k == "--fg-mib") c.fg_mib = v;
    else if (k == "--runs") c.runs = static_cast<int>(v);
    else if (k == "--op-runs") c.op_runs = static_cast<int>(v);
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  Config c = Parse(argc, argv);
  std::filesystem::remove_all(c.dir);
  std::filesystem::create_directories(c.dir);
  core::PoolCreateOptions po;
  po.name = "bench";
  po.data_size = (c.written_gib + 2 * c.unique_gib + c.free_gib + 4) * kGiB +
                 c.fg_mib * kMiB * static_cast<uint64_t>(2 * c.runs + 2);
  Check(core::Pool::Create(c.dir + "/pool", po), "pool create");
  auto pool = core::Pool::Open(c.dir + "/pool");
  Check(pool.status(), "pool open");
  auto vmr = volume::VolumeManager::Open(pool->get());
  Check(vmr.status(), "volume manager");
  volume::VolumeManager& vm = **vmr;
  int seq = 0;

  // 1. snapshot / clone / rollback, empty vs full.
  Check(vm.CreateVolume("empty", Thin(1ull << 40)), "create");
  Check(vm.CreateVolume("full", Thin(1ull << 40)), "create");
  auto t0 = Clock::now();
  Fill(vm, "full", c.written_gib * kGiB, 1);
  std::printf("filled %llu GiB in %.1f s\n", static_cast<unsigned long long>(c.written_gib),
              Ms(t0, Clock::now()) / 1000);
  Check((*pool)->Flush().status(), "flush");
  OpSamples es, fs;
  for (int r = 0; r < c.op_runs; ++r) {  // interleaved: empty, full, empty, ...
    TimeOps(vm, "empty", &seq, &es);
    TimeOps(vm, "full", &seq, &fs);
  }
  OpTimes e = es.Medians(), f = fs.Medians();
  std::printf("max ms: empty %.2f/%.2f/%.2f, full %.2f/%.2f/%.2f (snapshot/clone/rollback)\n",
              *std::max_element(es.snap.begin(), es.snap.end()),
              *std::max_element(es.clone.begin(), es.clone.end()),
              *std::max_element(es.roll.begin(), es.roll.end()),
              *std::max_element(fs.snap.begin(), fs.snap.end()),
              *std::max_element(fs.clone.begin(), fs.clone.end()),
              *std::max_element(fs.roll.begin(), fs.roll.end()));
  std::printf("| op | empty 1 TiB ms | %llu GiB written ms | ratio |\n|---|---|---|---|\n",
              static_cast<unsigned long long>(c.written_gib));
  std::printf("| snapshot | %.2f | %.2f | %.2fx |\n", e.snapshot, f.snapshot, f.snapshot / e.snapshot);
  std::printf("| clone | %.2f | %.2f | %.2fx |\n", e.clone, f.clone, f.clone / e.clone);
  std::printf("| rollback | %.2f | %.2f | %.2fx |\n", e.rollback, f.rollback, f.rollback / e.rollback);

  // 2. destroy a snapshot holding unique data.
  Check(vm.CreateVolume("uniq", Thin(c.unique_gib * kGiB)), "create");
  Fill(vm, "uniq", c.unique_gib * kGiB, 2);
  Check(vm.Snapshot({"uniq@s"}), "snapshot");
  Fill(vm, "uniq", c.unique_gib * kGiB, 3);
  auto space = vm.Space(*vm.Get("uniq@s"));
  Check(space.status(), "space");
  auto d0 = Clock::now();
  Check(vm.Destroy("uniq@s", false, false), "destroy");
  double destroy_ms = Ms(d0, Clock::now());
  std::printf("destroy of a snapshot with %.2f GiB unique: %.2f ms\n",
              static_cast<double>(space->used) / kGiB, destroy_ms);
  while (vm.coalescer().jobs_pending > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));

  // 3. foreground writes, idle vs while the worker frees.
  Check(vm.CreateVolume("fg", Thin(c.fg_mib * kMiB)), "create");
  std::vector<double> idle, busy;
  std::vector<double> frees_s;
  for (int r = 0; r < c.runs; ++r) {
    idle.push_back(WriteMBps(vm, "fg", c.fg_mib, 10 + r));
    std::string victim = "victim" + std::to_string(r);
    Check(vm.CreateVolume(victim, Thin(c.free_gib * kGiB)), "create");
    Fill(vm, victim, c.free_gib * kGiB, 20 + r);
    auto f0 = Clock::now();
    Check(vm.Destroy(victim, true, true), "destroy");
    busy.push_back(WriteMBps(vm, "fg", c.fg_mib, 30 + r));
    bool overlapped = vm.coalescer().jobs_pending > 0;
    while (vm.coalescer().jobs_pending > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    frees_s.push_back(Ms(f0, Clock::now()) / 1000);
    std::printf("run %d: idle %.0f MB/s, while freeing %.0f MB/s (worker %s the whole write; "
                "free took %.1f s)\n", r, idle.back(), busy.back(),
                overlapped ? "busy during" : "finished before the end of", frees_s.back());
  }
  std::vector<double> ratios;
  for (size_t i = 0; i < idle.size(); ++i) ratios.push_back(busy[i] / idle[i]);
  std::printf("foreground writes: idle %.0f MB/s, while freeing %llu GiB %.0f MB/s; "
              "median of per-run ratios %.2fx\n",
              Median(idle), static_cast<unsigned long long>(c.free_gib), Median(busy),
              Median(ratios));
  vmr->reset();
  Check((*pool)->Close(), "close");
  std::filesystem::remove_all(c.dir);
  return 0;
}
