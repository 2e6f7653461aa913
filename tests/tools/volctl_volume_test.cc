// volctl volume commands end to end, and their bad inputs (zfs "_neg"
// style): a message naming the problem, a non-zero exit, and the pool home
// byte-identical before and after.

#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tests/tools/logical_state.h"
#include "tests/tools/run_volctl.h"

namespace blockhaus::testing {
namespace {

// What a user can observe of the pool (logical_state.h).
std::string LogicalState(const std::string& home) {
  return PoolLogicalState(home, "tank",
                          "name,type,volsize,volblocksize,compression,checksum,origin,guid,"
                          "createtxg,refreservation,readonly,org:note");
}

struct Home {
  TempDir tmp;
  // What the refusals must leave (a command that succeeds forgets it).
  mutable UnchangedState unchanged{[this] { return LogicalState(tmp.path()); }};
  Home() { REQUIRE(Run({"pool", "create", "tank", "--size", "128M"}).exit_code == 0); }
  CommandResult Run(const std::vector<std::string>& args) const { return RunVolctl(tmp.path(), args); }
  void Ok(const std::vector<std::string>& args) const {
    unchanged.Forget();
    CommandResult r = Run(args);
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    REQUIRE_MESSAGE(r.exit_code == 0, cmd << ": " << r.err);
  }
};

void ExpectRefused(const Home& h, const std::vector<std::string>& args, const std::string& says) {
  h.unchanged.ExpectRefused(h.tmp.path(), args, says);
}

std::string WriteImage(const TempDir& tmp, size_t size, uint64_t seed) {
  std::string path = tmp / ("img" + std::to_string(seed));
  std::ofstream f(path, std::ios::binary);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < size; ++i) f.put(static_cast<char>(i % 4096 < 2048 ? rng() : 0));
  return path;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

TEST_CASE("volctl volumes: import, snapshot, overwrite, rollback, clone, export") {
  Home h;
  h.Ok({"create", "-V", "16M", "-b", "8K", "-o", "compression=zstd-1", "tank/vm"});
  std::string img = WriteImage(h.tmp, 3 << 20, 1);
  h.Ok({"write", "tank/vm", img, "--offset", "4096"});
  h.Ok({"snapshot", "tank/vm@a"});
  std::string other = WriteImage(h.tmp, 1 << 20, 2);
  h.Ok({"write", "tank/vm", other});
  std::string out = h.tmp / "out";
  h.Ok({"read", "tank/vm@a", out, "--offset", "4096", "--length", std::to_string(3 << 20)});
  CHECK(Slurp(out) == Slurp(img));
  h.Ok({"clone", "tank/vm@a", "tank/test"});
  h.Ok({"read", "tank/test", out, "--offset", "4096", "--length", std::to_string(3 << 20)});
  CHECK(Slurp(out) == Slurp(img));
  h.Ok({"rollback", "tank/vm@a"});
  h.Ok({"read", "tank/vm", out, "--offset", "4096", "--length", std::to_string(3 << 20)});
  CHECK(Slurp(out) == Slurp(img));

  CommandResult r = h.Run({"list", "-t", "all", "-H", "-o", "name,type,origin"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "tank/test\tvolume\ttank/vm@a\ntank/vm\tvolume\t-\ntank/vm@a\tsnapshot\t-\n");
  r = h.Run({"get", "-H", "-p", "volsize,volblocksize,compression", "tank/vm"});
  CHECK(r.out == "tank/vm\tvolsize\t16777216\tlocal\ntank/vm\tvolblocksize\t8192\t-\n"
                 "tank/vm\tcompression\tzstd-1\tlocal\n");
  r = h.Run({"list", "-j", "tank/vm"});
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["datasets"][0]["name"] == "tank/vm");
  // As zfs list: a named volume alone, with its snapshots under -r, and only
  // its snapshots under -t snapshot.
  CHECK(h.Run({"list", "-t", "all", "-H", "-o", "name", "tank/vm"}).out == "tank/vm\n");
  CHECK(h.Run({"list", "-r", "-t", "all", "-H", "-o", "name", "tank/vm"}).out ==
        "tank/vm\ntank/vm@a\n");
  CHECK(h.Run({"list", "-r", "-H", "-o", "name", "tank/vm"}).out == "tank/vm\n");
  CHECK(h.Run({"list", "-t", "snapshot", "-H", "-o", "name", "tank/vm"}).out == "tank/vm@a\n");
  CHECK(h.Run({"list", "-r", "-t", "all", "-H", "-o", "name", "tank/vm@a"}).out == "tank/vm@a\n");

  h.Ok({"destroy", "-R", "tank/vm"});
  CHECK(h.Run({"list", "-H"}).out.empty());
  r = h.Run({"pool", "scrub", "tank"});
  CHECK(r.exit_code == 0);
  r = h.Run({"pool", "status", "tank", "-j"});
  CHECK(nlohmann::json::parse(r.out)["allocated"] == 0);
}

TEST_CASE("volctl volumes: bad input is refused and changes nothing") {
  Home h;
  h.Ok({"create", "-V", "1M", "tank/v"});
  h.Ok({"snapshot", "tank/v@s"});
  h.Ok({"snapshot", "tank/v@t"});
  h.Ok({"clone", "tank/v@s", "tank/c"});
  h.Ok({"set", "org:note=kept", "tank/v"});
  ExpectRefused(h, {"create", "-V", "1M", "tank/v"}, "already exists");
  ExpectRefused(h, {"create", "-V", "1M", "nopool/v"}, "pool 'nopool' does not exist");
  ExpectRefused(h, {"create", "-V", "1M", "v"}, "not POOL/VOLUME");
  ExpectRefused(h, {"create", "-V", "0", "tank/w"}, "bad volsize");
  ExpectRefused(h, {"create", "-V", "1000", "tank/w"}, "multiple of volblocksize");
  ExpectRefused(h, {"create", "-V", "1q", "tank/w"}, "unknown size unit");
  ExpectRefused(h, {"create", "-V", "1M", "-b", "3K", "tank/w"}, "power of two");
  ExpectRefused(h, {"create", "-V", "1M", "-b", "256K", "tank/w"}, "power of two");
  ExpectRefused(h, {"create", "-V", "1M", "-b", "2K", "tank/w"}, "from 4K to 128K");
  ExpectRefused(h, {"create", "-V", "1M", "-b", "0", "tank/w"}, "bad volblocksize");
  ExpectRefused(h, {"create", "-V", "1M", "-o", "compression=zstd-20", "tank/w"}, "zstd-1..19");
  ExpectRefused(h, {"create", "-V", "1M", "-o", "checksum=md5", "tank/w"}, "bad checksum");
  ExpectRefused(h, {"create", "-V", "1M", "-o", "readonly=maybe", "tank/w"}, "use on or off");
  ExpectRefused(h, {"create", "-V", "1M", "-o", "refreservation=lots", "tank/w"},
                "bad refreservation");
  ExpectRefused(h, {"create", "-V", "1M", "-o", "volsize=2M", "tank/w"}, "use -V");
  ExpectRefused(h, {"clone", "-o", "color=red", "tank/v@s", "tank/d"}, "unknown property");
  ExpectRefused(h, {"clone", "-o", "volblocksize=8K", "tank/v@s", "tank/d"}, "volblocksize");
  ExpectRefused(h, {"create", "-V", "1M", "-o", "compression=gzip", "tank/w"}, "bad compression");
  ExpectRefused(h, {"create", "-V", "1M", "-o", "nonsense", "tank/w"}, "PROPERTY=VALUE");
  ExpectRefused(h, {"create", "-V", "1M", "-o", "color=red", "tank/w"}, "unknown property");
  ExpectRefused(h, {"create", "-V", "1M", "tank/bad name"}, "invalid character");
  ExpectRefused(h, {"create", "-V", "1M", "tank/w@s"}, "snapshot name");
  ExpectRefused(h, {"destroy", "tank/v"}, "use -r");
  ExpectRefused(h, {"destroy", "-r", "tank/v"}, "use -R");
  ExpectRefused(h, {"destroy", "tank/v@s"}, "dependent clone");
  ExpectRefused(h, {"destroy", "tank/nosuch"}, "does not exist");
  ExpectRefused(h, {"rollback", "tank/v@s"}, "use -r");
  ExpectRefused(h, {"rollback", "-r", "tank/v@nosuch"}, "does not exist");
  ExpectRefused(h, {"rollback", "tank/v"}, "not a snapshot name");
  ExpectRefused(h, {"snapshot", "tank/v@s"}, "already exists");
  ExpectRefused(h, {"snapshot", "tank/v@x", "tank/nosuch@x"}, "does not exist");
  ExpectRefused(h, {"clone", "tank/v@s", "tank/c"}, "already exists");
  ExpectRefused(h, {"set", "volblocksize=4K", "tank/v"}, "only be set at create");
  ExpectRefused(h, {"set", "used=1", "tank/v"}, "read-only");
  ExpectRefused(h, {"set", "compression=lz4", "tank/v@s"}, "read-only");
  ExpectRefused(h, {"set", "usedbydataset=1", "tank/v"}, "read-only");
  ExpectRefused(h, {"set", "available=1", "tank/v"}, "read-only");
  ExpectRefused(h, {"set", "refreservation=2M", "tank/v"}, "more than its");
  // User properties follow zfsprops(7): ':' in the name, lower case, at most
  // 256 characters, values at most 8192 bytes.
  ExpectRefused(h, {"set", "Org:Note=x", "tank/v"}, "bad user property name");
  ExpectRefused(h, {"set", "org:no te=x", "tank/v"}, "only lower-case letters");
  ExpectRefused(h, {"set", "org:" + std::string(260, 'n') + "=x", "tank/v"}, "longer than 256");
  ExpectRefused(h, {"set", "org:note=" + std::string(8193, 'x'), "tank/v"}, "longer than 8192");
  ExpectRefused(h, {"create", "-V", "1M", "-o", "ORG:X=1", "tank/w"}, "bad user property name");
  ExpectRefused(h, {"inherit", "Org:Note", "tank/v"}, "bad user property name");
  ExpectRefused(h, {"get", "bogus", "tank/v"}, "unknown property");
  ExpectRefused(h, {"get", "volsize,Org:Note", "tank/v"}, "bad user property name");
  ExpectRefused(h, {"list", "-o", "name,bogus"}, "unknown property");
  ExpectRefused(h, {"list", "-o", "name,bogus", "tank/nosuch"}, "unknown property");
  ExpectRefused(h, {"list", "-t", "filesystem"}, "bad type");
  ExpectRefused(h, {"write", "tank/v@s", h.tmp / "none"}, "cannot open");
  std::string big = WriteImage(h.tmp, 2 << 20, 3);
  ExpectRefused(h, {"write", "tank/v", big}, "beyond the volume");
}

}  // namespace
}  // namespace blockhaus::testing
