// kill -9 of the daemon during iSCSI writes, flushes and snapshots, then a
// restart (TESTING.md B3). The oracle is the driver's event log
// (crash_driver.cc) and the snapshot commands' start and end times:
//   * a write acknowledged before a completed SYNCHRONIZE CACHE was issued,
//     or acknowledged with FUA, must survive, unless a later write replaced
//     it; so the block holds one of the writes that no durable write
//     definitely followed;
//   * a block is never torn: it holds exactly one write (or zeros);
//   * a snapshot acknowledged by volctl holds, per block, a write issued
//     before it completed and not definitely followed by a write
//     acknowledged before it started; scrub is clean.
// Rounds: 30 in CI, 200 with LONG=1; the seed is printed.
#include <doctest/doctest.h>

#include <atomic>
#include <ctime>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "tests/iscsi/crash_pattern.h"
#include "tests/iscsi/daemon_process.h"
#include "tests/iscsi/run_tool.h"
#include "tests/test_util.h"

namespace blockhaus::testing {
namespace {

constexpr uint64_t kBlocks = 4096;  // 16 MiB of 4 KiB blocks
constexpr uint64_t kInf = UINT64_MAX;
constexpr const char* kTarget = "iqn.2026-11.io.blockhaus:tank.vm1";

uint64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

struct Write {
  uint64_t index = 0, gen = 0;
  uint64_t t_issue = 0, t_ack = kInf;
  bool fua = false;
};

struct Round {
  std::map<uint64_t, Write> writes;            // by gen
  std::vector<std::pair<uint64_t, uint64_t>> syncs;  // (issued, completed)
};

Round ParseLog(const std::string& path) {
  Round r;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    char kind;
    in >> kind;
    if (kind == 'I') {
      Write w;
      in >> w.index >> w.gen >> w.t_issue;
      if (in) r.writes[w.gen] = w;
    } else if (kind == 'A') {
      uint64_t index, gen, t;
      int fua;
      in >> index >> gen >> fua >> t;
      if (in && r.writes.count(gen)) {
        r.writes[gen].t_ack = t;
        r.writes[gen].fua = fua != 0;
      }
    } else if (kind == 'S') {
      uint64_t a, b;
      in >> a >> b;
      if (in) r.syncs.emplace_back(a, b);
    }
  }
  return r;
}

// The earliest time a point-in-time guarantee covers acknowledged writes:
// a write acknowledged before `t` must be in the image.
struct Cut {
  uint64_t t;            // writes acked before t are required
  uint64_t t_end;        // writes issued after t_end cannot be in the image
};

// Checks one image (head or snapshot) of the volume against the round.
// `baseline` holds, per block, the generation known durable before the
// round. Returns the number of bad blocks and describes the first.
size_t CheckImage(const std::string& image, const Round& round,
                  const std::vector<uint64_t>& baseline, const std::vector<Cut>& cuts,
                  bool fua_durable, uint64_t t_end, std::vector<uint64_t>* seen,
                  std::string* first_problem) {
  std::string bytes = ReadFile(image);
  REQUIRE(bytes.size() >= kBlocks * kCrashBlock);
  std::vector<std::vector<const Write*>> by_block(kBlocks);
  for (const auto& [gen, w] : round.writes) by_block[w.index].push_back(&w);
  size_t bad = 0;
  for (uint64_t b = 0; b < kBlocks; ++b) {
    auto got = DecodeCrashBlock(reinterpret_cast<const uint8_t*>(bytes.data()) + b * kCrashBlock, b);
    std::string why;
    if (!got) {
      why = "torn or foreign content";
    } else {
      // The write (or the baseline) the block holds.
      const Write* holds = nullptr;
      bool is_baseline = *got == baseline[b];
      for (const Write* w : by_block[b]) {
        if (w->gen == *got) holds = w;
      }
      uint64_t holds_ack = is_baseline && !holds ? 0 : (holds ? holds->t_ack : 0);
      if (!holds && !is_baseline) why = "a generation never written to this block";
      if (holds && holds->t_issue > t_end) why = "a write issued after the image was cut";
      // A required write that definitely came after what the block holds.
      for (const Write* w : by_block[b]) {
        if (!why.empty()) break;
        bool required = fua_durable && w->fua && w->t_ack != kInf;
        for (const Cut& c : cuts) required = required || (w->t_ack != kInf && w->t_ack < c.t);
        if (required && w->gen != *got && w->t_issue > holds_ack) {
          why = "lost acknowledged durable write gen " + std::to_string(w->gen);
        }
      }
    }
    if (!why.empty()) {
      if (bad++ == 0) {
        *first_problem = "block " + std::to_string(b) + ": " + why + " (holds " +
                         (got ? std::to_string(*got) : std::string("?")) + ")";
      }
    } else if (seen) {
      (*seen)[b] = *got;
    }
  }
  return bad;
}

// Durability cuts of the head: each completed SYNCHRONIZE CACHE covers the
// writes acknowledged before it was issued, and so does each acknowledged
// snapshot (it commits a txg). Acknowledged FUA writes are durable by
// themselves (CheckImage's fua_durable).
std::vector<Cut> HeadCuts(const Round& round, const std::vector<std::pair<uint64_t, uint64_t>>& snaps) {
  std::vector<Cut> cuts;
  for (const auto& [issued, done] : round.syncs) cuts.push_back({issued, kInf});
  for (const auto& [t0, t1] : snaps) cuts.push_back({t0, kInf});
  return cuts;
}

}  // namespace

TEST_CASE("kill -9 of the daemon during iSCSI writes, flushes and snapshots") {
  TempDir home;
  auto volctl_ok = [&](const std::vector<std::string>& args) {
    CommandResult r = RunVolctl(home.path(), args);
    REQUIRE_MESSAGE(r.exit_code == 0, args[0] << ": " << r.err);
    return r;
  };
  volctl_ok({"pool", "create", "tank", "--size", "512M"});
  volctl_ok({"create", "-s", "-V", "16M", "tank/vm1"});
  volctl_ok({"export", "tank/vm1", "--allow", "any"});
  const int rounds = std::getenv("LONG") ? 200 : 30;
  // From here on, only through a daemon; unset however the test ends, or
  // the volctl commands of the tests after it would refuse to run.
  struct RequireDaemon {
    RequireDaemon() { ::setenv("VOLCTL_REQUIRE_DAEMON", "1", 1); }
    ~RequireDaemon() { ::unsetenv("VOLCTL_REQUIRE_DAEMON"); }
  } require_daemon;
  const uint64_t seed = TestSeed();
  MESSAGE("daemon kill test seed " << seed << ", " << rounds << " rounds");
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> baseline(kBlocks, 0);
  uint64_t total_writes = 0, total_acked = 0, total_snaps = 0;
  for (int round = 0; round < rounds; ++round) {
    CAPTURE(round);
    uint64_t t_start = NowUs();
    DaemonProcess daemon(home.path());
    uint64_t startup_ms = (NowUs() - t_start) / 1000;
    CHECK_MESSAGE(startup_ms < 10000, "daemon took " << startup_ms << " ms to accept logins");
    std::string log = home / ("driver" + std::to_string(round) + ".log");
    std::string url = "iscsi://" + daemon.portal() + "/" + kTarget + "/0";
    int qd = 1 + static_cast<int>(rng() % 32);
    pid_t driver = ::fork();
    if (driver == 0) {
      std::string bin = BH_CRASH_DRIVER;
      std::string blocks = std::to_string(kBlocks), s = std::to_string(seed * 1000 + round + 1);
      std::string q = std::to_string(qd);
      execl(bin.c_str(), bin.c_str(), url.c_str(), blocks.c_str(), s.c_str(), q.c_str(), "30",
            log.c_str(), nullptr);
      _exit(127);
    }
    // Snapshots on the side until the daemon dies at a random moment.
    uint64_t kill_after_ms = 300 + rng() % 2200;
    // A snapshot command started once the kill begins is not part of the
    // oracle (VOLCTL_REQUIRE_DAEMON keeps it from running without one).
    std::atomic<uint64_t> t_kill_begin{kInf};
    std::thread killer([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(kill_after_ms));
      t_kill_begin.store(NowUs());
      daemon.Kill();
    });
    std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> snaps;  // acknowledged
    std::vector<std::string> tried;
    for (int i = 0; t_kill_begin.load() == kInf && i < 50; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50 + rng() % 300));
      std::string name = "tank/vm1@r" + std::to_string(round) + "s" + std::to_string(i);
      uint64_t t0 = NowUs();
      CommandResult r = RunVolctl(home.path(), {"snapshot", name});
      uint64_t t1 = NowUs();
      if (t0 >= t_kill_begin.load()) break;
      tried.push_back(name);
      if (r.exit_code == 0) snaps.push_back({name, {t0, t1}});
    }
    killer.join();
    uint64_t t_kill = NowUs();
    int status = 0;
    for (int i = 0; i < 600 && ::waitpid(driver, &status, WNOHANG) != driver; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (::kill(driver, 0) == 0) {
      ::kill(driver, SIGKILL);
      ::waitpid(driver, &status, 0);
      FAIL("the driver did not notice the daemon's death in 30 s");
    }
    REQUIRE_MESSAGE(WIFEXITED(status), "driver died by signal " << WTERMSIG(status));
    REQUIRE_MESSAGE(WEXITSTATUS(status) == 0, "driver exit " << WEXITSTATUS(status));
    Round r = ParseLog(log);
    total_writes += r.writes.size();
    for (const auto& [g, w] : r.writes) total_acked += w.t_ack != kInf;

    DaemonProcess again(home.path());
    std::vector<std::pair<uint64_t, uint64_t>> snap_times;
    for (const auto& s : snaps) snap_times.push_back(s.second);
    // Head.
    std::string head = home / "head.raw";
    volctl_ok({"read", "tank/vm1", head});
    std::vector<uint64_t> seen(kBlocks, 0);
    std::string problem;
    size_t bad = CheckImage(head, r, baseline, HeadCuts(r, snap_times), true, kInf, &seen,
                            &problem);
    CHECK_MESSAGE(bad == 0, "head: " << bad << " bad blocks; first: " << problem);
    // Every acknowledged snapshot, and any unacknowledged one that exists.
    for (const std::string& name : tried) {
      bool acked = false;
      std::pair<uint64_t, uint64_t> t{0, t_kill};
      for (const auto& s : snaps) {
        if (s.first == name) {
          acked = true;
          t = s.second;
        }
      }
      CommandResult exists = RunVolctl(home.path(), {"list", "-H", "-o", "name", "-t", "snapshot", name});
      if (!acked && exists.exit_code != 0) continue;
      CHECK_MESSAGE(exists.exit_code == 0, "acknowledged snapshot " << name << " is missing");
      if (exists.exit_code != 0) continue;
      std::string img = home / "snap.raw";
      volctl_ok({"read", name, img});
      std::vector<Cut> cuts;
      if (acked) cuts.push_back({t.first, t.second});
      std::string why;
      size_t sbad = CheckImage(img, r, baseline, cuts, false, t.second, nullptr, &why);
      CHECK_MESSAGE(sbad == 0, name << ": " << sbad << " bad blocks; first: " << why);
      volctl_ok({"destroy", name});
      total_snaps += acked;
    }
    CommandResult scrub = RunVolctl(home.path(), {"pool", "scrub", "tank"});
    CHECK_MESSAGE(scrub.exit_code == 0, scrub.out << scrub.err);
    baseline = seen;
    CHECK(again.Stop() == 0);
    if (bad > 0) break;
  }
  MESSAGE("writes issued " << total_writes << ", acknowledged " << total_acked
                           << ", snapshots verified " << total_snaps);
  CHECK(total_acked > 0);
}

}  // namespace blockhaus::testing
