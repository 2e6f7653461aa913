// volctl space properties (issue 3): list/get show zfsprops(7) numbers,
// exact with -p, and the pool shows what destroys still have to free.

#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/pool/pool.h"
#include "core/pool/pool_dir.h"
#include "tests/test_util.h"
#include "tests/tools/run_volctl.h"
#include "volume/volume_manager.h"

namespace blockhaus::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;

struct SpaceHome {
  TempDir tmp;
  SpaceHome() { Ok({"pool", "create", "tank", "--size", "128M"}); }
  CommandResult Run(const std::vector<std::string>& args) const {
    return RunVolctl(tmp.path(), args);
  }
  std::string Ok(const std::vector<std::string>& args) const {
    CommandResult r = Run(args);
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    REQUIRE_MESSAGE(r.exit_code == 0, cmd << ": " << r.err);
    return r.out;
  }
  // Incompressible data: stored as is, so physical == logical.
  std::string Image(size_t size, uint64_t seed) const {
    std::string path = tmp / ("img" + std::to_string(seed));
    std::ofstream f(path, std::ios::binary);
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < size; ++i) f.put(static_cast<char>(rng()));
    return path;
  }
  // PROPERTY -> exact value for one dataset.
  std::map<std::string, std::string> Props(const std::string& name) const {
    std::map<std::string, std::string> out;
    std::istringstream lines(Ok({"get", "-H", "-p", "all", name}));
    for (std::string line; std::getline(lines, line);) {
      std::istringstream cols(line);
      std::string ds, prop, value;
      std::getline(cols, ds, '\t');
      std::getline(cols, prop, '\t');
      std::getline(cols, value, '\t');
      out[prop] = value;
    }
    return out;
  }
};

std::string N(uint64_t v) { return std::to_string(v); }

TEST_CASE("volctl space: used, referenced, written, usedbysnapshots are exact") {
  SpaceHome h;
  h.Ok({"create", "-s", "-V", "16M", "tank/a"});
  h.Ok({"write", "tank/a", h.Image(kMiB, 1)});
  h.Ok({"snapshot", "tank/a@s1"});
  h.Ok({"write", "tank/a", h.Image(kMiB / 2, 2)});  // overwrites half
  auto a = h.Props("tank/a");
  CHECK(a["referenced"] == N(kMiB));
  CHECK(a["written"] == N(kMiB / 2));
  CHECK(a["usedbysnapshots"] == N(kMiB / 2));
  CHECK(a["usedbydataset"] == N(kMiB));
  CHECK(a["usedbyrefreservation"] == "0");
  CHECK(a["used"] == N(kMiB + kMiB / 2));
  CHECK(a["logicalused"] == N(kMiB + kMiB / 2));
  CHECK(a["compressratio"] == "1.00");
  auto s1 = h.Props("tank/a@s1");
  CHECK(s1["used"] == N(kMiB / 2));
  CHECK(s1["referenced"] == N(kMiB));
  CHECK(s1["written"] == N(kMiB));
  CHECK(s1["usedbysnapshots"] == "-");

  // A clone references its origin's bytes and uses nothing of its own.
  h.Ok({"clone", "tank/a@s1", "tank/c"});
  auto c = h.Props("tank/c");
  CHECK(c["referenced"] == N(kMiB));
  CHECK(c["used"] == "0");

  // JSON carries the same numbers.
  auto j = nlohmann::json::parse(
      h.Ok({"list", "-r", "-j", "-p", "-t", "all", "-o", "name,used,referenced", "tank/a"}));
  CHECK(j["datasets"][0]["used"] == N(kMiB + kMiB / 2));

  // Destroying the clone and the snapshot frees exactly the snapshot's used.
  h.Ok({"destroy", "tank/c"});
  h.Ok({"destroy", "tank/a@s1"});
  auto status = nlohmann::json::parse(h.Ok({"pool", "status", "tank", "-j"}));
  CHECK(status["freeing"] == 0);
  CHECK(status["allocated"] == kMiB);
  CHECK(h.Props("tank/a")["used"] == N(kMiB));
  auto list = nlohmann::json::parse(h.Ok({"pool", "list", "-j", "-p"}));
  CHECK(list["pools"][0]["freeing"] == 0);
}

TEST_CASE("volctl space: a thick volume that does not fit is refused") {
  SpaceHome h;
  CommandResult r = h.Run({"create", "-V", "1G", "tank/big"});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("out of space") != std::string::npos);
  h.Ok({"create", "-s", "-V", "1G", "tank/thin"});
  h.Ok({"create", "-V", "8M", "tank/thick"});
  auto t = h.Props("tank/thick");
  CHECK(t["refreservation"] == N(8 * kMiB));
  CHECK(t["usedbyrefreservation"] == N(8 * kMiB));
  CHECK(t["used"] == N(8 * kMiB));
  CommandResult bad = h.Run({"set", "refreservation=16M", "tank/thick"});
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("volsize") != std::string::npos);
}

TEST_CASE("volctl space: destroy -n -v -p predicts exactly and changes nothing") {
  SpaceHome h;
  h.Ok({"create", "-s", "-V", "16M", "tank/a"});
  h.Ok({"write", "tank/a", h.Image(kMiB, 1)});
  h.Ok({"snapshot", "tank/a@s1"});
  h.Ok({"write", "tank/a", h.Image(kMiB / 2, 2)});
  h.Ok({"snapshot", "tank/a@s2"});
  h.Ok({"clone", "tank/a@s1", "tank/c"});
  h.Ok({"write", "tank/c", h.Image(kMiB / 4, 3)});
  auto allocated = [&] {
    return nlohmann::json::parse(h.Ok({"pool", "status", "tank", "-j"}))["allocated"]
        .get<uint64_t>();
  };
  uint64_t before = allocated();
  CHECK(before == kMiB + kMiB / 2 + kMiB / 4);

  // A snapshot alone: its unique bytes (s1 holds the overwritten half).
  std::string one = h.Ok({"destroy", "-n", "-p", "tank/a@s2"});
  CHECK(one == "destroy\ttank/a@s2\t0\nreclaim\t0\n");
  CHECK(h.Run({"destroy", "-n", "-v", "tank/a@s1"}).exit_code != 0);  // has a clone

  std::string plan = h.Ok({"destroy", "-n", "-v", "-p", "-R", "tank/a"});
  CHECK(plan == "destroy\ttank/c\t" + N(kMiB / 4) + "\n"
                "destroy\ttank/a@s1\t" + N(kMiB / 2) + "\n"
                "destroy\ttank/a@s2\t0\n"
                "destroy\ttank/a\t" + N(kMiB) + "\n"
                "reclaim\t" + N(before) + "\n");
  std::string text = h.Ok({"destroy", "-nv", "-R", "tank/a"});
  CHECK(text.find("would destroy tank/a@s1 (frees 512K)") != std::string::npos);
  CHECK(text.find("would reclaim 1.75M") != std::string::npos);
  CHECK(h.Ok({"destroy", "-n", "-R", "tank/a"}).empty());
  CHECK(allocated() == before);
  CHECK(h.Ok({"list", "-H", "-t", "all", "-o", "name"}) ==
        "tank/a\ntank/a@s1\ntank/a@s2\ntank/c\n");

  h.Ok({"destroy", "-R", "tank/a"});
  CHECK(allocated() == 0);
}

// The coalescing worker on a pool with no space left, stopped part way (as
// a daemon killed mid-free leaves it): `pool status` shows what is left and
// what is done, and the next command that opens the pool read-write finishes
// the job. Freeing needs no data space: its metadata goes to RocksDB.
TEST_CASE("volctl pool status: a destroy still freeing shows its progress and finishes on a full pool") {
  SpaceHome h;
  h.Ok({"create", "-s", "-V", "256M", "-b", "4K", "tank/a"});
  h.Ok({"write", "tank/a", h.Image(64 * kMiB, 1)});
  h.Ok({"snapshot", "tank/a@s"});
  CommandResult full = h.Run({"write", "tank/a", h.Image(96 * kMiB, 2)});
  REQUIRE(full.exit_code != 0);
  CHECK(full.err.find("out of space") != std::string::npos);

  const std::string dir = core::PoolDir(h.tmp.path(), "tank");
  uint64_t steps_left_pending = 0;
  {
    auto pool = core::Pool::Open(dir);
    REQUIRE_MESSAGE(pool.ok(), pool.status().ToString());
    const core::PoolStats before = (*pool)->stats();
    // Nothing left for a block of this volume: the slop is all that is free.
    CHECK(before.free <= before.slop + 4096);
    volume::VolumeManagerOptions vo;
    vo.start_coalescer = false;
    vo.coalesce_batch = 256;  // 1 MiB of 4K versions per step
    auto vm = volume::VolumeManager::Open(pool->get(), vo);
    REQUIRE(vm.ok());
    REQUIRE((*vm)->Destroy("a", /*recursive=*/true, /*clones=*/false).ok());
    auto steps = (*vm)->DrainCoalescer(4);
    REQUIRE(steps.ok());
    CHECK(*steps == 4);
    steps_left_pending = (*vm)->coalescer().jobs_pending;
    vm->reset();
    REQUIRE((*pool)->Close().ok());
  }
  REQUIRE(steps_left_pending >= 1);

  auto status = nlohmann::json::parse(h.Ok({"pool", "status", "tank", "-j", "-p"}));
  const uint64_t freeing = status["freeing"], done = status["free_jobs_progress_bytes"];
  CHECK(status["free_jobs_pending"] >= 1);
  CHECK(done >= 4 * 256 * 4096);        // four full steps of raw 4K blocks
  CHECK(freeing > 64 * kMiB);           // most of the 64 MiB + the overwrite is left
  CHECK(status["allocated"] >= freeing);
  std::string text = h.Ok({"pool", "status", "tank", "-p"});
  CAPTURE(text);
  CHECK(text.find(std::to_string(freeing) + " to free") != std::string::npos);
  CHECK(text.find(std::to_string(done) + " freed so far") != std::string::npos);
  CHECK(text.find(std::to_string(done * 100 / (done + freeing)) + "%)") != std::string::npos);

  // Any command that opens the pool read-write drains the rest.
  h.Ok({"create", "-s", "-V", "1M", "tank/b"});
  status = nlohmann::json::parse(h.Ok({"pool", "status", "tank", "-j", "-p"}));
  CHECK(status["free_jobs_pending"] == 0);
  CHECK(status["freeing"] == 0);
  CHECK(status["allocated"] == 0);
  CHECK(h.Ok({"pool", "status", "tank"}).find("frees: none pending") != std::string::npos);
  CHECK(h.Run({"pool", "scrub", "tank"}).exit_code == 0);
}

}  // namespace
}  // namespace blockhaus::testing
