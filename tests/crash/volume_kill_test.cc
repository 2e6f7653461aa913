// kill -9 during volume operations (issue 3): a child writes, snapshots,
// destroys and rolls back while its coalescing worker frees in the
// background; the parent kills it at random instants and checks that every
// acknowledged snapshot exists with exactly its content, that no destroyed
// one is back, that an operation cut short left either nothing or the whole
// object, and that after the interrupted frees finish the pool recounts
// clean. 30 rounds (300 with LONG=1); BH_SEED replays.

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "core/base/endian.h"
#include "core/pool/pool.h"
#include "tests/test_util.h"
#include "volume/volume_manager.h"

namespace blockhaus::testing {
namespace {

constexpr uint32_t kBs = 4096;
constexpr uint64_t kBlocks = 32;

struct Rec {
  char op;
  uint64_t id, tag;
};

std::vector<Rec> ReadLog(int fd) {
  std::vector<uint8_t> bytes;
  uint8_t buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) bytes.insert(bytes.end(), buf, buf + n);
  std::vector<Rec> log;
  for (size_t i = 0; i + 17 <= bytes.size(); i += 17) {
    log.push_back({static_cast<char>(bytes[i]), DecodeLE64(&bytes[i + 1]), DecodeLE64(&bytes[i + 9])});
  }
  return log;
}

using Content = std::vector<uint64_t>;  // tag per block, 0 = zeros

struct Expect {
  std::map<uint64_t, Content> must;     // acknowledged and not being destroyed
  std::map<uint64_t, Content> may;      // in flight: absent, or exactly this
  std::set<uint64_t> gone;              // destroy acknowledged
};

// Replays the log over the snapshots that existed when the round began.
Expect Replay(const std::vector<Rec>& log, Content head, std::map<uint64_t, Content> snaps) {
  Expect e;
  e.must = snaps;
  for (const Rec& r : log) {
    switch (r.op) {
      case 'W': head[r.id] = r.tag; break;
      case 'N': e.may[r.id] = head; break;
      case 'n': e.must[r.id] = e.may[r.id]; e.may.erase(r.id); break;
      case 'D': e.may[r.id] = e.must[r.id]; e.must.erase(r.id); break;
      case 'd': e.may.erase(r.id); e.gone.insert(r.id); break;
      case 'R': break;
      case 'r': head = e.must.at(r.id); break;
      default: FAIL("unknown log record " << r.op);
    }
  }
  return e;
}

bool Matches(volume::VolumeManager& vm, const std::string& name, const Content& want,
             uint64_t seed) {
  auto dev = vm.OpenDevice(name);
  if (!dev.ok()) return false;
  std::vector<uint8_t> buf(kBs);
  for (uint64_t b = 0; b < kBlocks; ++b) {
    if (!(*dev)->Read(b * kBs, buf).ok()) return false;
    std::vector<uint8_t> expect =
        want[b] == 0 ? std::vector<uint8_t>(kBs, 0) : PatternBlock(kBs, seed, want[b]);
    if (buf != expect) return false;
  }
  return true;
}

TEST_CASE("crash: kill -9 during snapshots, destroys, rollbacks and background frees") {
  uint64_t seed = TestSeed();
  MESSAGE("volume kill seed " << seed << " (replay with BH_SEED=" << seed << ")");
  TempDir tmp;
  std::string dir = tmp / "pool";
  core::PoolCreateOptions o;
  o.name = "victim";
  o.data_size = 64 << 20;
  REQUIRE(core::Pool::Create(dir, o).ok());
  {
    auto pool = std::move(core::Pool::Open(dir)).value();
    auto vm = std::move(volume::VolumeManager::Open(pool.get())).value();
    volume::VolumeProps p;
    p.volsize = kBs * kBlocks;
    p.volblocksize = kBs;
    REQUIRE(vm->CreateVolume("v", p).ok());
  }
  const char* l = std::getenv("LONG");
  int rounds = (l != nullptr && l[0] == '1') ? 300 : 30;
  std::mt19937_64 rng(seed);
  Content head(kBlocks, 0);                 // the head as the last round left it
  std::map<uint64_t, Content> snaps;        // snapshots as the last round left them
  for (int round = 1; round <= rounds; ++round) {
    std::string ctx = "seed " + std::to_string(seed) + " round " + std::to_string(round) + ": ";
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    pid_t pid = ::fork();
    if (pid == 0) {
      // The log goes to fd 3. If the pipe's read end is fd 3 itself, dup2
      // replaces it; closing it afterwards would close the log instead.
      if (fds[0] != 3) ::close(fds[0]);
      if (fds[1] != 3) {
        ::dup2(fds[1], 3);
        ::close(fds[1]);
      }
      std::string s = std::to_string(seed), r = std::to_string(round);
      ::execl(BH_VOLUME_CRASH_WORKER, "volume_crash_worker", dir.c_str(), s.c_str(), r.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(40 + rng() % 260));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int wstatus = 0;
    REQUIRE(::waitpid(pid, &wstatus, 0) == pid);
    std::vector<Rec> log = ReadLog(fds[0]);
    ::close(fds[0]);
    REQUIRE_MESSAGE(WIFSIGNALED(wstatus), ctx << "worker exited by itself");

    Expect e = Replay(log, head, snaps);
    auto pool = std::move(core::Pool::Open(dir)).value();
    volume::VolumeManagerOptions vo;
    vo.start_coalescer = false;
    auto vm = std::move(volume::VolumeManager::Open(pool.get(), vo)).value();
    std::set<uint64_t> present;
    for (const auto& d : vm->List()) {
      if (d.is_snapshot()) present.insert(std::strtoull(d.name.c_str() + 3, nullptr, 10));
    }
    snaps.clear();
    for (const auto& [id, content] : e.must) {
      REQUIRE_MESSAGE(present.contains(id), ctx << "acknowledged snapshot s" << id << " is missing");
      REQUIRE_MESSAGE(Matches(*vm, "v@s" + std::to_string(id), content, seed),
                      ctx << "snapshot s" << id << " does not hold its data");
      snaps[id] = content;
    }
    for (const auto& [id, content] : e.may) {
      if (!present.contains(id)) continue;
      REQUIRE_MESSAGE(Matches(*vm, "v@s" + std::to_string(id), content, seed),
                      ctx << "half-made snapshot s" << id << " is visible");
      snaps[id] = content;
    }
    for (uint64_t id : e.gone) {
      REQUIRE_MESSAGE(!present.contains(id), ctx << "destroyed snapshot s" << id << " is back");
    }
    REQUIRE_MESSAGE(present.size() == snaps.size(), ctx << "unexpected snapshots exist");
    // The head: each block holds its value from the last round, a write of
    // this round, or a snapshot's (rollback); which one is learnt here for
    // the next round's snapshots. Anything else is torn or foreign data.
    auto dev = vm->OpenDevice("v");
    std::vector<uint8_t> buf(kBs);
    std::map<uint64_t, Content> all_snaps = snaps;
    for (const auto& [id, c] : e.may) all_snaps[id] = c;
    for (uint64_t b = 0; b < kBlocks; ++b) {
      REQUIRE((*dev)->Read(b * kBs, buf).ok());
      std::set<uint64_t> candidates = {0, head[b]};
      for (const Rec& r : log) {
        if (r.op == 'W' && r.id == b) candidates.insert(r.tag);
      }
      for (const auto& [id, c] : all_snaps) candidates.insert(c[b]);
      for (const auto& [id, c] : e.must) candidates.insert(c[b]);
      bool found = false;
      for (uint64_t t : candidates) {
        std::vector<uint8_t> want = t == 0 ? std::vector<uint8_t>(kBs, 0) : PatternBlock(kBs, seed, t);
        if (buf == want) {
          head[b] = t;
          found = true;
          break;
        }
      }
      REQUIRE_MESSAGE(found, ctx << "head block " << b << " holds data no operation wrote");
    }
    // The persisted space tallies are exact after the kill: every dataset's
    // properties equal a recount from the block map.
    for (const volume::Dataset& d : vm->List()) {
      auto have = vm->Space(d);
      auto want = volume::RecountDatasetSpace(*pool, d);
      REQUIRE(have.ok());
      REQUIRE(want.ok());
      REQUIRE_MESSAGE(*have == *want, ctx << d.name << ": space tallies differ from a recount");
    }
    // Interrupted frees finish, and the pool recounts clean.
    REQUIRE(vm->DrainCoalescer(100000).ok());
    REQUIRE(vm->coalescer().jobs_pending == 0);
    REQUIRE_MESSAGE(pool->pending_frees().bytes.phys == 0, ctx << "frees left after the drain");
    auto report = pool->Scrub();
    REQUIRE(report.ok());
    for (const auto& p : report->problems) MESSAGE(ctx << p);
    REQUIRE_MESSAGE(report->clean(), ctx << "scrub found problems");
  }
}

}  // namespace
}  // namespace blockhaus::testing
