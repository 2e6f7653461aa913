// volctl rename, promote, hold/release/holds, inherit, get SOURCE, diff and
// volsize shrink end to end, and their bad inputs (zfs "_neg" style, D1):
// a message naming the problem, a non-zero exit, and no observable change.

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

// Everything a user can observe (logical_state.h), holds and user
// properties included.
std::string LogicalState(const std::string& home) {
  return PoolLogicalState(home, "tank",
                          "name,type,volsize,volblocksize,compression,checksum,origin,guid,"
                          "createtxg,refreservation,readonly,userrefs,clones,org:tag");
}

struct Home {
  TempDir tmp;
  // What the refusals must leave (a command that succeeds forgets it).
  mutable UnchangedState unchanged{[this] { return LogicalState(tmp.path()); }};
  Home() { REQUIRE(Run({"pool", "create", "tank", "--size", "128M"}).exit_code == 0); }
  CommandResult Run(const std::vector<std::string>& args) const { return RunVolctl(tmp.path(), args); }
  std::string Out(const std::vector<std::string>& args) const {
    unchanged.Forget();
    CommandResult r = Run(args);
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    REQUIRE_MESSAGE(r.exit_code == 0, cmd << ": " << r.err);
    return r.out;
  }
  void Ok(const std::vector<std::string>& args) const { Out(args); }
};

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::string WriteImage(const TempDir& tmp, size_t size, uint64_t seed) {
  std::string path = tmp / ("img" + std::to_string(seed));
  std::ofstream f(path, std::ios::binary);
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < size; ++i) f.put(static_cast<char>(rng()));
  return path;
}

// Refused twice (idempotent failure), the state unchanged.
void ExpectRefused(const Home& h, const std::vector<std::string>& args, const std::string& says) {
  h.unchanged.ExpectRefused(h.tmp.path(), args, says, 2);
}

TEST_CASE("volctl promote, rename, holds: end to end") {
  Home h;
  h.Ok({"create", "-s", "-V", "4M", "-b", "4K", "tank/o"});
  std::string a = WriteImage(h.tmp, 1 << 20, 1);
  h.Ok({"write", "tank/o", a});
  h.Ok({"snapshot", "tank/o@base"});
  h.Ok({"write", "tank/o", WriteImage(h.tmp, 8192, 2), "--offset", "65536"});
  h.Ok({"snapshot", "tank/o@later"});
  h.Ok({"clone", "tank/o@base", "tank/c"});
  h.Ok({"write", "tank/c", WriteImage(h.tmp, 4096, 3), "--offset", "1048576"});

  h.Ok({"promote", "tank/c"});
  CHECK(h.Out({"list", "-t", "all", "-H", "-o", "name,origin"}) ==
        "tank/c\t-\ntank/c@base\t-\ntank/o\ttank/c@base\ntank/o@later\t-\n");
  CHECK(h.Out({"get", "-H", "clones", "tank/c@base"}) == "tank/c@base\tclones\ttank/o\t-\n");
  std::string out = h.tmp / "out";
  h.Ok({"read", "tank/c@base", out, "--length", "1M"});
  CHECK(Slurp(out) == Slurp(a));

  h.Ok({"rename", "tank/o", "tank/old"});
  h.Ok({"rename", "tank/c@base", "tank/c@gold"});
  CHECK(h.Out({"list", "-t", "all", "-H", "-o", "name,origin"}) ==
        "tank/c\t-\ntank/c@gold\t-\ntank/old\ttank/c@gold\ntank/old@later\t-\n");

  h.Ok({"hold", "keep", "tank/c@gold"});
  h.Ok({"hold", "audit", "tank/c@gold"});
  CHECK(h.Out({"get", "-H", "userrefs", "tank/c@gold"}) == "tank/c@gold\tuserrefs\t2\t-\n");
  std::string holds = h.Out({"holds", "-H", "tank/c@gold"});
  CHECK(holds.find("tank/c@gold\taudit\t") == 0);
  CHECK(holds.find("\ntank/c@gold\tkeep\t") != std::string::npos);
  auto j = nlohmann::json::parse(h.Out({"holds", "-j", "tank/c@gold"}));
  CHECK(j["holds"].size() == 2);
  h.Ok({"release", "keep", "tank/c@gold"});
  h.Ok({"release", "audit", "tank/c@gold"});
  CHECK(h.Out({"holds", "-H", "tank/c@gold"}).empty());

  h.Ok({"destroy", "-R", "tank/c"});
  CHECK(h.Out({"list", "-H"}).empty());
  CHECK(h.Run({"pool", "scrub", "tank"}).exit_code == 0);
  CHECK(nlohmann::json::parse(h.Out({"pool", "status", "tank", "-j"}))["allocated"] == 0);
}

TEST_CASE("volctl get SOURCE, inherit, diff, volsize shrink: end to end") {
  Home h;
  h.Ok({"create", "-V", "1M", "-b", "4K", "-o", "compression=zstd-1", "tank/v"});
  CHECK(h.Out({"get", "-H", "-p", "volsize,volblocksize,compression,checksum,refreservation,guid",
               "tank/v"})
            .find("tank/v\tvolsize\t1048576\tlocal\ntank/v\tvolblocksize\t4096\t-\n"
                  "tank/v\tcompression\tzstd-1\tlocal\ntank/v\tchecksum\txxh3\tdefault\n"
                  "tank/v\trefreservation\t1048576\tlocal\ntank/v\tguid\t") == 0);
  h.Ok({"set", "org:tag=x", "tank/v"});
  CHECK(h.Out({"get", "-H", "org:tag", "tank/v"}) == "tank/v\torg:tag\tx\tlocal\n");
  h.Ok({"inherit", "org:tag", "tank/v"});
  CHECK(h.Out({"get", "-H", "org:tag", "tank/v"}) == "tank/v\torg:tag\t-\t-\n");
  h.Ok({"inherit", "compression", "tank/v"});
  CHECK(h.Out({"get", "-H", "compression", "tank/v"}) == "tank/v\tcompression\tlz4\tdefault\n");

  h.Ok({"write", "tank/v", WriteImage(h.tmp, 8192, 4), "--offset", "16384"});
  h.Ok({"snapshot", "tank/v@a"});
  h.Ok({"write", "tank/v", WriteImage(h.tmp, 4096, 5), "--offset", "20480"});
  h.Ok({"write", "tank/v", WriteImage(h.tmp, 4096, 6), "--offset", "24576"});
  h.Ok({"write", "tank/v", WriteImage(h.tmp, 4096, 7), "--offset", "524288"});
  CHECK(h.Out({"diff", "-H", "-p", "tank/v@a", "tank/v"}) == "20480\t8192\n524288\t4096\n");
  auto j = nlohmann::json::parse(h.Out({"diff", "-j", "tank/v@a", "tank/v"}));
  CHECK(j["ranges"][0]["offset"] == 20480);
  CHECK(j["ranges"][1]["length"] == 4096);
  CHECK(h.Out({"diff", "tank/v@a", "tank/v"}) == "OFFSET  LENGTH\n20.0K   8.00K\n512K    4.00K\n");

  h.Ok({"set", "volsize=2M", "tank/v"});
  h.Ok({"set", "-f", "volsize=256K", "tank/v"});
  CHECK(h.Out({"get", "-H", "-p", "volsize", "tank/v"}) == "tank/v\tvolsize\t262144\tlocal\n");
  CHECK(h.Out({"get", "-H", "-p", "volsize", "tank/v@a"}) == "tank/v@a\tvolsize\t1048576\t-\n");
  h.Ok({"set", "volsize=1M", "tank/v"});
  std::string out = h.tmp / "out";
  h.Ok({"read", "tank/v", out, "--offset", "524288", "--length", "4096"});
  CHECK(Slurp(out) == std::string(4096, '\0'));
  h.Ok({"destroy", "-r", "tank/v"});
  CHECK(h.Run({"pool", "scrub", "tank"}).exit_code == 0);
}

TEST_CASE("volctl promote, rename, holds, inherit, shrink: bad input changes nothing") {
  Home h;
  h.Ok({"create", "-s", "-V", "1M", "-b", "4K", "tank/v"});
  h.Ok({"write", "tank/v", WriteImage(h.tmp, 65536, 8), "--offset", "524288"});
  h.Ok({"snapshot", "tank/v@s"});
  h.Ok({"snapshot", "tank/v@t"});
  h.Ok({"create", "-s", "-V", "1M", "tank/w"});
  h.Ok({"snapshot", "tank/w@s"});
  h.Ok({"clone", "tank/v@s", "tank/c"});
  h.Ok({"snapshot", "tank/c@s"});
  h.Ok({"hold", "keep", "tank/v@t"});
  h.Ok({"hold", "keep", "tank/c@s"});

  ExpectRefused(h, {"promote", "tank/v"}, "not a clone");
  ExpectRefused(h, {"promote", "tank/nosuch"}, "does not exist");
  ExpectRefused(h, {"promote", "tank/v@s"}, "snapshot name");
  ExpectRefused(h, {"promote", "tank/c"}, "exists in both");

  ExpectRefused(h, {"rename", "tank/v", "tank/w"}, "already exists");
  ExpectRefused(h, {"rename", "tank/v@s", "tank/v@t"}, "already exists");
  ExpectRefused(h, {"rename", "tank/v@s", "tank/w@x"}, "stays with its volume");
  ExpectRefused(h, {"rename", "tank/v@s", "tank/x"}, "to volume name");
  ExpectRefused(h, {"rename", "tank/v", "tank/x@y"}, "to snapshot name");
  ExpectRefused(h, {"rename", "tank/v", "tank/bad name"}, "invalid character");
  ExpectRefused(h, {"rename", "tank/v", "tank/"}, "not POOL/VOLUME");
  ExpectRefused(h, {"rename", "tank/v", "other/v"}, "across pools");
  ExpectRefused(h, {"rename", "tank/nosuch", "tank/x"}, "does not exist");

  ExpectRefused(h, {"destroy", "tank/v@t"}, "held by tag 'keep'");
  ExpectRefused(h, {"destroy", "-r", "tank/v"}, "held by tag 'keep'");
  ExpectRefused(h, {"destroy", "-R", "tank/v"}, "held by tag 'keep'");
  ExpectRefused(h, {"rollback", "-r", "tank/v@s"}, "held by tag 'keep'");
  ExpectRefused(h, {"hold", "keep", "tank/v@t"}, "already held");
  ExpectRefused(h, {"hold", "keep", "tank/v"}, "not a snapshot name");
  ExpectRefused(h, {"hold", "keep", "tank/v@nosuch"}, "does not exist");
  ExpectRefused(h, {"release", "nosuch", "tank/v@t"}, "no hold with tag 'nosuch'");
  ExpectRefused(h, {"release", "keep", "tank/v@s"}, "no hold with tag 'keep'");
  ExpectRefused(h, {"holds", "tank/v"}, "not a snapshot name");

  ExpectRefused(h, {"inherit", "used", "tank/v"}, "read-only");
  ExpectRefused(h, {"inherit", "guid", "tank/v"}, "read-only");
  ExpectRefused(h, {"inherit", "volsize", "tank/v"}, "cannot be inherited");
  ExpectRefused(h, {"inherit", "bogus", "tank/v"}, "unknown property");
  ExpectRefused(h, {"inherit", "compression", "tank/v@s"}, "read-only");

  ExpectRefused(h, {"set", "volsize=256K", "tank/v"}, "use -f");
  ExpectRefused(h, {"set", "volsize=1000", "tank/v"}, "multiple of volblocksize");
  ExpectRefused(h, {"set", "volsize=0", "tank/v"}, "bad volsize");
  ExpectRefused(h, {"set", "-f", "compression=lz4", "tank/v"}, "volsize only");
  ExpectRefused(h, {"set", "volsize=256K", "tank/v@s"}, "snapshot");

  ExpectRefused(h, {"diff", "tank/v@t", "tank/v@s"}, "not newer");
  ExpectRefused(h, {"diff", "tank/v@s", "tank/w"}, "later snapshot of the same volume");
  ExpectRefused(h, {"diff", "tank/v", "tank/v@s"}, "not a snapshot name");
}

}  // namespace
}  // namespace blockhaus::testing
