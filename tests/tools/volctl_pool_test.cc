// volctl pool: the commands end to end, and the bad inputs of the foundation
// issue (zfs "_neg" style): each gets a message that says what is wrong, a
// non-zero exit, and leaves the pool home exactly as it was.

#include <doctest/doctest.h>
#include <sys/file.h>

#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tests/tools/damaged_intent_log.h"
#include "tests/tools/run_volctl.h"

namespace blockhaus::testing {
namespace {

struct Home {
  TempDir tmp;
  // Every file of the home, which the refusals must leave as they were.
  UnchangedState unchanged{[this] { return TreeState(path()); }};
  std::string path() const { return tmp.path(); }
  CommandResult Run(const std::vector<std::string>& args) {
    unchanged.Forget();
    return RunVolctl(path(), args);
  }
};

void ExpectRefused(Home& h, const std::vector<std::string>& args, const std::string& says) {
  h.unchanged.ExpectRefused(h.path(), args, says);
}

TEST_CASE("volctl pool: create, list, status, scrub, destroy") {
  Home h;
  CommandResult r = h.Run({"pool", "create", "tank", "--size", "64M"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  r = h.Run({"pool", "list", "-H", "-p"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.rfind("tank\t66060288\t0\t66060288\t0\t0%\tONLINE", 0) == 0);
  r = h.Run({"pool", "status", "tank", "-j"});
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["name"] == "tank");
  CHECK(j["size"] == 66060288);
  CHECK(j["health"] == "ONLINE");
  r = h.Run({"pool", "scrub", "tank"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("0 checksum errors") != std::string::npos);
  r = h.Run({"pool", "destroy", "tank"});
  CHECK(r.exit_code == 0);
  CHECK(h.Run({"pool", "list", "-H"}).out.empty());
}

TEST_CASE("volctl pool: bad input is refused and changes nothing") {
  Home h;
  REQUIRE(h.Run({"pool", "create", "tank", "--size", "16M"}).exit_code == 0);
  ExpectRefused(h, {"pool", "status", "nosuch"}, "pool 'nosuch' does not exist");
  ExpectRefused(h, {"pool", "scrub", "nosuch"}, "does not exist");
  ExpectRefused(h, {"pool", "destroy", "nosuch"}, "does not exist");
  ExpectRefused(h, {"pool", "create", "tank", "--size", "64M"}, "already exists");
  ExpectRefused(h, {"pool", "create", "new", "--size", "0"}, "must be > 0");
  ExpectRefused(h, {"pool", "create", "new", "--size", "-1"}, "not a size");
  ExpectRefused(h, {"pool", "create", "new", "--size", "1q"}, "unknown size unit");
  ExpectRefused(h, {"pool", "create", "new", "--size", "16E"}, "too large");
  ExpectRefused(h, {"pool", "create", "new", "--size", "1M"}, "below the minimum");
  ExpectRefused(h, {"pool", "create", "new"}, "needs --size");
  ExpectRefused(h, {"pool", "create", "9lives", "--size", "64M"}, "must begin with a letter");
  ExpectRefused(h, {"pool", "create", "a/b", "--size", "64M"}, "invalid character");
  ExpectRefused(h, {"pool", "create", "mirror1", "--size", "64M"}, "reserved word");
  ExpectRefused(h, {"pool", "create", "new", "--size", "64M", "--ashift", "20"}, "ashift");
  ExpectRefused(h, {"pool", "frobnicate"}, "frobnicate");
}

TEST_CASE("volctl pool: a pool in use by another process") {
  Home h;
  REQUIRE(h.Run({"pool", "create", "tank", "--size", "16M"}).exit_code == 0);
  std::string lock = h.path() + "/pools/tank/lock";
  int fd = ::open(lock.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX) == 0);
  ExpectRefused(h, {"pool", "status", "tank"}, "in use by another process");
  ExpectRefused(h, {"pool", "destroy", "tank"}, "in use by another process");
  CommandResult r = h.Run({"pool", "list", "-H"});
  CHECK(r.out.find("INUSE") != std::string::npos);
  ::close(fd);
  CHECK(h.Run({"pool", "status", "tank"}).exit_code == 0);
}

TEST_CASE("volctl pool: corrupt label and missing metadata") {
  Home h;
  REQUIRE(h.Run({"pool", "create", "tank", "--size", "16M"}).exit_code == 0);
  SUBCASE("corrupt label") {
    std::string label = h.path() + "/pools/tank/label";
    int fd = ::open(label.c_str(), O_RDWR);
    REQUIRE(::pwrite(fd, "XX", 2, 200) == 2);
    ::close(fd);
    ExpectRefused(h, {"pool", "status", "tank"}, "label: checksum mismatch");
    ExpectRefused(h, {"pool", "scrub", "tank"}, "label: checksum mismatch");
    CHECK(h.Run({"pool", "list", "-H"}).out.find("FAULTED") != std::string::npos);
  }
  SUBCASE("missing metadata") {
    std::filesystem::remove_all(h.path() + "/pools/tank/meta");
    ExpectRefused(h, {"pool", "status", "tank"}, "metadata store");
  }
  SUBCASE("missing data file") {
    std::filesystem::remove(h.path() + "/pools/tank/data");
    ExpectRefused(h, {"pool", "status", "tank"}, "data");
  }
}

TEST_CASE("volctl pool destroy: a pool that does not open goes with -f, and only with -f") {
  Home h;
  REQUIRE(h.Run({"pool", "create", "tank", "--size", "64M"}).exit_code == 0);
  REQUIRE(h.Run({"create", "-V", "1M", "tank/v"}).exit_code == 0);
  const std::string dir = h.path() + "/pools/tank";
  // Without -f: the reason, the way out, and nothing removed.
  auto refused = [&](const std::string& says) {
    ExpectRefused(h, {"pool", "destroy", "tank"}, says);
    ExpectRefused(h, {"pool", "destroy", "tank"}, "`volctl pool destroy -f tank`");
    CHECK(h.Run({"pool", "list", "-H"}).out.find("FAULTED") != std::string::npos);
  };
  SUBCASE("corrupt label") {
    int fd = ::open((dir + "/label").c_str(), O_RDWR);
    REQUIRE(::pwrite(fd, "XX", 2, 200) == 2);
    ::close(fd);
    refused("label: checksum mismatch");
  }
  SUBCASE("missing metadata store") {
    std::filesystem::remove_all(dir + "/meta");
    refused("metadata store");
  }
  SUBCASE("damaged intent log") {
    // The read-write open that fails has begun its replay (its metadata
    // store is not byte for byte as before), and a read-only open works:
    // `pool list` has it ONLINE, as ZFS lists a pool it has imported.
    LeaveDamagedIntentLog(dir, "v");
    CommandResult r = h.Run({"pool", "destroy", "tank"});
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("fails its checksum") != std::string::npos);
    CHECK(r.err.find("`volctl pool destroy -f tank`") != std::string::npos);
    CHECK(std::filesystem::exists(dir + "/label"));
  }
  CommandResult r = h.Run({"pool", "destroy", "-f", "tank"});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(!std::filesystem::exists(dir));
  CHECK(h.Run({"pool", "list", "-H"}).out.empty());
  // The name is free again.
  CHECK(h.Run({"pool", "create", "tank", "--size", "64M"}).exit_code == 0);
  CHECK(h.Run({"pool", "status", "tank"}).exit_code == 0);
}

TEST_CASE("volctl pool destroy -f: a data file outside the pool goes only when it is the pool's") {
  Home h;
  const std::string ext = h.path() + "/ext.img";
  REQUIRE(h.Run({"pool", "create", "tank", "--size", "64M", "--data", ext}).exit_code == 0);
  const std::string dir = h.path() + "/pools/tank";
  std::filesystem::remove_all(dir + "/meta");
  SUBCASE("the pool's own file goes") {
    CommandResult r = h.Run({"pool", "destroy", "-f", "tank"});
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.err.empty());
    CHECK(!std::filesystem::exists(ext));
  }
  SUBCASE("a file that no longer starts with the pool's label stays") {
    int fd = ::open(ext.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    const std::string zeros(4096, '\0');
    REQUIRE(::pwrite(fd, zeros.data(), zeros.size(), 0) == 4096);
    ::close(fd);
    CommandResult r = h.Run({"pool", "destroy", "-f", "tank"});
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.err.find("does not start with the label of pool tank") != std::string::npos);
    CHECK(std::filesystem::file_size(ext) == 64u << 20);
  }
  SUBCASE("nothing goes while another process has the pool open") {
    int fd = ::open((dir + "/lock").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX) == 0);
    ExpectRefused(h, {"pool", "destroy", "-f", "tank"}, "in use by another process");
    CHECK(std::filesystem::exists(ext));
    ::close(fd);
    CHECK(h.Run({"pool", "destroy", "-f", "tank"}).exit_code == 0);
    CHECK(!std::filesystem::exists(ext));
  }
  CHECK(!std::filesystem::exists(dir));
}

TEST_CASE("volctl pool clear: -F drops a damaged intent log record, and only -F") {
  Home h;
  REQUIRE(h.Run({"pool", "create", "tank", "--size", "64M"}).exit_code == 0);
  REQUIRE(h.Run({"create", "-V", "1M", "tank/v"}).exit_code == 0);
  const std::string dir = h.path() + "/pools/tank";
  CHECK(h.Run({"pool", "clear", "tank"}).out.find("opens cleanly") != std::string::npos);
  LeaveDamagedIntentLog(dir, "v");
  // Without -F the pool does not open, and the message says what -F does.
  CommandResult r = h.Run({"pool", "clear", "tank"});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("fails its checksum") != std::string::npos);
  CHECK(r.err.find("volctl pool clear -F") != std::string::npos);
  // A read-only open still works: it sees the last commit and warns.
  r = h.Run({"read", "tank/v", h.path() + "/img", "--length", "64K"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("intent log holds writes") != std::string::npos);
  // With -F: the first flush stays, the damaged second one is gone.
  r = h.Run({"pool", "clear", "-F", "tank"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("dropped 1 intent log record from the first damaged one") != std::string::npos);
  CHECK(r.out.find("replayed 4 blocks") != std::string::npos);
  r = h.Run({"read", "tank/v", h.path() + "/img", "--length", "128K"});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  std::ifstream in(h.path() + "/img", std::ios::binary);
  std::vector<uint8_t> img((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(img.size() == 131072);
  CHECK(std::count(img.begin(), img.begin() + 65536, 0xaa) == 65536);
  CHECK(std::count(img.begin() + 65536, img.end(), 0) == 65536);
  std::filesystem::remove(h.path() + "/img");
  CHECK(h.Run({"pool", "clear", "tank"}).out.find("opens cleanly") != std::string::npos);
  CHECK(h.Run({"pool", "scrub", "tank"}).exit_code == 0);
}

}  // namespace
}  // namespace blockhaus::testing
