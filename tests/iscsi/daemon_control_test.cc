// volctl serve as the owner of the pools: commands reach it over the
// control socket, exports are stored in the pool and survive a restart.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/iscsi/daemon_process.h"
#include "tests/test_util.h"
#include "tests/tools/damaged_intent_log.h"

namespace blockhaus::testing {
namespace {

CommandResult Ok(const std::string& home, const std::vector<std::string>& args) {
  CommandResult r = RunVolctl(home, args);
  std::string cmd;
  for (const auto& a : args) cmd += a + " ";
  CAPTURE(cmd);
  CAPTURE(r.err);
  REQUIRE(r.exit_code == 0);
  return r;
}

}  // namespace

TEST_CASE("commands go to the running daemon and act on its open pools") {
  TempDir home;
  Ok(home.path(), {"pool", "create", "tank", "--size", "1G"});
  DaemonProcess daemon(home.path());
  // Its threads say what they are (top -H, perf, gdb).
  std::multiset<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(
           "/proc/" + std::to_string(daemon.pid()) + "/task")) {
    std::string comm = ReadFile(e.path().string() + "/comm");
    if (!comm.empty() && comm.back() == '\n') comm.pop_back();
    names.insert(comm);
  }
  CAPTURE(names.size());
  for (const char* n : {"bh-loop-0", "bh-io-0", "bh-io-1", "bh-sync-tank", "bh-control",
                        "bh-coalesce"}) {
    CHECK_MESSAGE(names.count(n) == 1, n);
  }
  // The daemon holds the pool's lock: these only work because they are
  // forwarded to it.
  Ok(home.path(), {"create", "-s", "-V", "64M", "tank/vm1"});
  Ok(home.path(), {"snapshot", "tank/vm1@a"});
  CommandResult list = Ok(home.path(), {"list", "-t", "all", "-H", "-o", "name"});
  CHECK(list.out == "tank/vm1\ntank/vm1@a\n");
  // Errors come back with their exit code and message.
  CommandResult dup = RunVolctl(home.path(), {"snapshot", "tank/vm1@a"});
  CHECK(dup.exit_code == 1);
  CHECK(dup.err.find("already exists") != std::string::npos);
  // Usage errors keep exit code 2.
  CHECK(RunVolctl(home.path(), {"create", "tank/x"}).exit_code == 2);
  // A second daemon on the same home is refused.
  CommandResult second = RunVolctl(home.path(), {"serve", "--listen", "127.0.0.1:0"});
  CHECK(second.exit_code != 0);
  // Relative paths of write/read are the client's.
  TempDir work;
  std::vector<uint8_t> image = PatternBlock(512 << 10, 7, 1);
  {
    std::ofstream f(work.path() + "/img.raw", std::ios::binary);
    f.write(reinterpret_cast<const char*>(image.data()), static_cast<std::streamsize>(image.size()));
  }
  Ok(home.path(), {"write", "tank/vm1", work.path() + "/img.raw"});
  // The daemon's counters: the write's flush went to the intent log (D46),
  // not a commit of its own; the record holds the blocks compressed
  // (~256 KiB), though they wait raw for their commit (D49).
  auto st = nlohmann::json::parse(Ok(home.path(), {"pool", "status", "-j", "tank"}).out);
  CHECK(st["intent_records"].get<uint64_t>() >= 1);
  CHECK(st["intent_bytes"].get<uint64_t>() >= (256u << 10));
  CHECK(st["intent_bytes"].get<uint64_t>() < (448u << 10));
  CHECK(st["intent_replayed_blocks"] == 0);
  CHECK(st["txgs_committed"].get<uint64_t>() >= 2);  // the create and the snapshot
  CHECK(Ok(home.path(), {"pool", "status", "tank"}).out.find("intent: ") != std::string::npos);
  // The write's 32 blocks waited raw for their commit (D49), in the area
  // of the daemon's pool.
  CHECK(st["raw_dirty_capacity"].get<uint64_t>() > 0);
  CHECK(st["raw_dirty_peak"].get<uint64_t>() >= (512u << 10));
  CHECK(Ok(home.path(), {"pool", "status", "tank"}).out.find("   raw: ") != std::string::npos);
  Ok(home.path(), {"read", "tank/vm1", work.path() + "/back.raw", "--length", "512K"});
  CHECK(ReadFile(work.path() + "/back.raw") == ReadFile(work.path() + "/img.raw"));
  CHECK(daemon.Stop() == 0);
  // After a clean stop the pool opens directly again, with everything in it.
  CommandResult after = Ok(home.path(), {"list", "-t", "all", "-H", "-o", "name"});
  CHECK(after.out == "tank/vm1\ntank/vm1@a\n");
}

TEST_CASE("pools created and destroyed through the daemon are served and released") {
  TempDir home;
  DaemonProcess daemon(home.path());
  Ok(home.path(), {"pool", "create", "p1", "--size", "256M"});
  Ok(home.path(), {"create", "-V", "16M", "p1/v"});
  CommandResult st = Ok(home.path(), {"pool", "status", "-j", "p1"});
  CHECK(nlohmann::json::parse(st.out)["name"] == "p1");
  Ok(home.path(), {"destroy", "p1/v"});
  Ok(home.path(), {"pool", "destroy", "p1"});
  CHECK(Ok(home.path(), {"pool", "list", "-H"}).out.empty());
  CHECK(daemon.Stop() == 0);
}

TEST_CASE("exports are stored in the pool and served again after a restart") {
  TempDir home;
  Ok(home.path(), {"pool", "create", "tank", "--size", "1G"});
  Ok(home.path(), {"create", "-s", "-V", "64M", "tank/vm1"});
  Ok(home.path(), {"snapshot", "tank/vm1@s"});
  // Without a daemon: stored only.
  Ok(home.path(), {"export", "tank/vm1", "--allow", "any"});
  auto exports = nlohmann::json::parse(Ok(home.path(), {"exports", "-j"}).out)["exports"];
  REQUIRE(exports.size() == 1);
  CHECK(exports[0]["target"] == "iqn.2026-11.io.blockhaus:tank.vm1");
  CHECK(exports[0]["lun"] == 0);
  CHECK(exports[0]["state"] == "stored (no daemon)");
  {
    DaemonProcess daemon(home.path());
    exports = nlohmann::json::parse(Ok(home.path(), {"exports", "-j"}).out)["exports"];
    REQUIRE(exports.size() == 1);
    CHECK(exports[0]["state"] == "serving");
    CHECK(daemon.log().find("serving tank/vm1 as iqn.2026-11.io.blockhaus:tank.vm1 LUN 0") !=
          std::string::npos);
    // Live export of a snapshot: read-only, next to the volume's target.
    CommandResult snap = Ok(home.path(), {"export", "tank/vm1@s", "--target",
                                          "iqn.2026-11.io.blockhaus:tank.vm1", "--allow", "any"});
    CHECK(snap.out.find("LUN 1") != std::string::npos);
    CHECK(snap.out.find("read-only") != std::string::npos);
    // An exported volume cannot be destroyed.
    CommandResult d = RunVolctl(home.path(), {"destroy", "-r", "tank/vm1"});
    CHECK(d.exit_code == 1);
    CHECK(d.err.find("unexport") != std::string::npos);
    Ok(home.path(), {"unexport", "tank/vm1@s"});
    CHECK(daemon.Stop() == 0);
  }
  DaemonProcess again(home.path());
  CHECK(again.log().find("serving tank/vm1 as iqn.2026-11.io.blockhaus:tank.vm1 LUN 0") !=
        std::string::npos);
  exports = nlohmann::json::parse(Ok(home.path(), {"exports", "-j"}).out)["exports"];
  CHECK(exports.size() == 1);
  // Secrets never show.
  CHECK(Ok(home.path(), {"exports", "-j"}).out.find("secret") == std::string::npos);
  CHECK(again.Stop() == 0);
}

namespace {

// Pools "tank" (sound) and "bad", whose intent log holds a damaged record
// behind a sound one: a daemon started on this home has bad FAULTED.
void LeaveFaultedPool(const std::string& home) {
  Ok(home, {"pool", "create", "tank", "--size", "1G"});
  Ok(home, {"pool", "create", "bad", "--size", "256M"});
  Ok(home, {"create", "-V", "1M", "bad/v"});
  LeaveDamagedIntentLog(home + "/pools/bad", "v");
}

}  // namespace

TEST_CASE("a pool that does not open is FAULTED, the rest served; pool clear -F recovers it") {
  TempDir home;
  LeaveFaultedPool(home.path());
  DaemonProcess daemon(home.path());
  auto health = [&] {
    std::map<std::string, std::string> h;
    auto j = nlohmann::json::parse(Ok(home.path(), {"pool", "list", "-j"}).out);
    for (const auto& p : j["pools"]) h[p["name"]] = p["health"];
    return h;
  };
  auto h = health();
  CHECK(h["tank"] == "ONLINE");
  CHECK(h["bad"] == "FAULTED");
  Ok(home.path(), {"create", "-s", "-V", "64M", "tank/vm1"});  // tank is served
  CommandResult r = RunVolctl(home.path(), {"pool", "status", "bad"});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("FAULTED") != std::string::npos);
  CHECK(r.err.find("fails its checksum") != std::string::npos);
  // Without -F it still does not open, and says what -F would do.
  r = RunVolctl(home.path(), {"pool", "clear", "bad"});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("volctl pool clear -F") != std::string::npos);
  r = Ok(home.path(), {"pool", "clear", "-F", "bad"});
  CHECK(r.out.find("dropped 1 intent log record") != std::string::npos);
  CHECK(Ok(home.path(), {"pool", "clear", "bad"}).out.find("open and served") !=
        std::string::npos);
  h = health();
  CHECK(h["bad"] == "ONLINE");
  // The flush before the damaged record is there, the one after it is not.
  TempDir work;
  Ok(home.path(), {"read", "bad/v", work.path() + "/img", "--length", "128K"});
  std::string img = ReadFile(work.path() + "/img");
  REQUIRE(img.size() == 131072);
  CHECK(img.substr(0, 65536) == std::string(65536, '\xaa'));
  CHECK(img.substr(65536) == std::string(65536, '\0'));
  CHECK(daemon.Stop() == 0);
}

TEST_CASE("pool destroy -f removes a FAULTED pool from a running daemon") {
  TempDir home;
  LeaveFaultedPool(home.path());
  DaemonProcess daemon(home.path());
  CommandResult r = RunVolctl(home.path(), {"pool", "destroy", "bad"});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("FAULTED") != std::string::npos);
  CHECK(r.err.find("`volctl pool destroy -f bad`") != std::string::npos);
  CHECK(std::filesystem::exists(home.path() + "/pools/bad/label"));
  Ok(home.path(), {"pool", "destroy", "-f", "bad"});
  CHECK(!std::filesystem::exists(home.path() + "/pools/bad"));
  auto pools = nlohmann::json::parse(Ok(home.path(), {"pool", "list", "-j"}).out)["pools"];
  REQUIRE(pools.size() == 1);
  CHECK(pools[0]["name"] == "tank");
  // The daemon forgot it: a new pool of that name is created and served,
  // and there is nothing to clear.
  Ok(home.path(), {"pool", "create", "bad", "--size", "256M"});
  CHECK(Ok(home.path(), {"pool", "clear", "bad"}).out.find("open and served") !=
        std::string::npos);
  Ok(home.path(), {"create", "-s", "-V", "64M", "tank/vm1"});  // tank still served
  CHECK(daemon.Stop() == 0);
}

}  // namespace blockhaus::testing
