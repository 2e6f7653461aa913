// kill -9 at random instants (TESTING.md A1): a child process runs random
// writes, unmaps and flushes against a real pool (real file, real RocksDB);
// the parent kills it with SIGKILL after a random delay, reopens the pool and
// checks it against the operations the child logged. 30 rounds per run, 300
// with LONG=1. Replay with BH_SEED=<printed seed>.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "core/base/endian.h"
#include "core/pool/pool.h"
#include "tests/crash/crash_verify.h"
#include "tests/test_util.h"

namespace blockhaus::testing {
namespace {

using namespace core;

std::vector<CrashRecord> ReadLog(int fd) {
  std::vector<uint8_t> bytes;
  uint8_t buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) bytes.insert(bytes.end(), buf, buf + n);
  std::vector<CrashRecord> log;
  for (size_t i = 0; i + 17 <= bytes.size(); i += 17) {
    log.push_back({static_cast<CrashOp>(bytes[i]), DecodeLE64(&bytes[i + 1]),
                   DecodeLE64(&bytes[i + 9])});
  }
  return log;
}

// Starts the worker with its log on fd 3; returns its pid and the read end.
std::pair<pid_t, int> SpawnWorker(const std::string& dir, LineageId lineage, uint64_t seed,
                                  uint64_t round) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // The log goes to fd 3. If the pipe's read end is fd 3 itself, dup2
    // replaces it; closing it afterwards would close the log instead.
    if (fds[0] != 3) ::close(fds[0]);
    if (fds[1] != 3) {
      ::dup2(fds[1], 3);
      ::close(fds[1]);
    }
    std::string l = std::to_string(lineage), s = std::to_string(seed), r = std::to_string(round);
    ::execl(BH_CRASH_WORKER, "crash_worker", dir.c_str(), l.c_str(), s.c_str(), r.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  return {pid, fds[0]};
}

TEST_CASE("crash: kill -9 of a writer at random instants") {
  uint64_t seed = TestSeed();
  MESSAGE("kill seed " << seed << " (replay with BH_SEED=" << seed << ")");
  TempDir tmp;
  std::string dir = tmp / "pool";
  PoolCreateOptions o;
  o.name = "victim";
  o.data_size = 64 << 20;
  REQUIRE(Pool::Create(dir, o).ok());
  LineageId lineage = 0;
  {
    auto pool = Pool::Open(dir);
    REQUIRE(pool.ok());
    REQUIRE((*pool)->RunSyncTask(nullptr, [&](SyncContext& c) { lineage = c.CreateLineage({}); }).ok());
  }
  const char* l = std::getenv("LONG");
  int rounds = (l != nullptr && l[0] == '1') ? 300 : 30;
  std::mt19937_64 rng(seed);
  std::map<uint64_t, uint64_t> state;
  for (int round = 1; round <= rounds; ++round) {
    auto [pid, fd] = SpawnWorker(dir, lineage, seed, static_cast<uint64_t>(round));
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + rng() % 270));
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int wstatus = 0;
    REQUIRE(::waitpid(pid, &wstatus, 0) == pid);
    std::vector<CrashRecord> log = ReadLog(fd);
    ::close(fd);
    std::string context = "seed " + std::to_string(seed) + " round " + std::to_string(round);
    REQUIRE_MESSAGE((WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL),
                    context << ": worker exited by itself (status " << wstatus << ")");
    auto pool = Pool::Open(dir);
    REQUIRE_MESSAGE(pool.ok(), context << ": reopen: " << pool.status().ToString());
    CrashModel model(state);
    state = VerifyAfterCrash(**pool, lineage, seed, model, log, context);
  }
}

}  // namespace
}  // namespace blockhaus::testing
