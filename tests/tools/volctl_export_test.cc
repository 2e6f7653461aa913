// volctl export|unexport|exports without a daemon: records in the pool, and
// the bad inputs of TESTING.md D1 (iSCSI config) refused with the pool's
// export list unchanged.
#include <doctest/doctest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tests/tools/run_volctl.h"

namespace blockhaus::testing {
namespace {

struct ExportHome {
  TempDir tmp;
  // The export list and the datasets the refusals must leave (a command
  // that succeeds forgets them).
  mutable UnchangedState unchanged{[this] { return State(); }};
  ExportHome() {
    Ok({"pool", "create", "tank", "--size", "128M"});
    Ok({"create", "-s", "-V", "16M", "tank/v"});
    Ok({"create", "-s", "-V", "16M", "tank/w"});
    Ok({"snapshot", "tank/v@s"});
    Secret("good", "0123456789abcdef");
    Secret("good2", "fedcba9876543210");
    Secret("short", "elevenbytes");
  }
  CommandResult Run(const std::vector<std::string>& args) const {
    return RunVolctl(tmp.path(), args);
  }
  CommandResult Ok(const std::vector<std::string>& args) const {
    unchanged.Forget();
    CommandResult r = Run(args);
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    REQUIRE_MESSAGE(r.exit_code == 0, cmd << ": " << r.err);
    return r;
  }
  void Secret(const std::string& name, const std::string& value) const {
    std::ofstream(tmp / name) << value << "\n";
  }
  std::string State() const {
    return Run({"exports", "-j"}).out + Run({"list", "-t", "all", "-H", "-o", "name"}).out;
  }
};

void ExpectRefused(const ExportHome& h, const std::vector<std::string>& args,
                   const std::string& says) {
  h.unchanged.ExpectRefused(h.tmp.path(), args, says, 2);  // idempotent
}

}  // namespace

TEST_CASE("volctl export: records, defaults and unexport") {
  ExportHome h;
  CommandResult r = h.Ok({"export", "tank/v", "--allow", "iqn.1993-08.org.debian:01:abc",
                          "--allow", "10.0.0.0/8", "--chap-user", "alice", "--chap-secret-file",
                          h.tmp / "good"});
  CHECK(r.out == "iqn.2026-11.io.blockhaus:tank.v LUN 0 -> tank/v\n");
  h.Ok({"export", "tank/w", "--target", "iqn.2026-11.io.blockhaus:shared", "--lun", "7",
        "--allow", "any", "--sector-size", "4096", "--soft-threshold", "0"});
  auto j = nlohmann::json::parse(h.Ok({"exports", "-j"}).out)["exports"];
  REQUIRE(j.size() == 2);
  CHECK(j[0]["volume"] == "tank/v");
  CHECK(j[0]["auth"] == "chap");
  CHECK(j[0]["chap_user"] == "alice");
  CHECK(j[0]["allow"].size() == 2);
  CHECK(j[1]["lun"] == 7);
  CHECK(j[1]["sector_size"] == 4096);
  CHECK(j[0]["soft_threshold"] == 80);   // the default
  CHECK(j[1]["soft_threshold"] == 0);    // off
  CHECK(h.Ok({"exports", "-j"}).out.find("0123456789abcdef") == std::string::npos);
  // A snapshot exports read-only; the next free LUN of the shared target.
  r = h.Ok({"export", "tank/v@s", "--target", "iqn.2026-11.io.blockhaus:shared", "--allow", "any"});
  CHECK(r.out.find("LUN 0") != std::string::npos);
  CHECK(r.out.find("(read-only)") != std::string::npos);
  // Renames keep the export (it is keyed by the dataset, not its name).
  h.Ok({"unexport", "tank/v@s"});
  h.Ok({"unexport", "tank/w"});
  j = nlohmann::json::parse(h.Ok({"exports", "-j"}).out)["exports"];
  CHECK(j.size() == 1);
}

TEST_CASE("volctl export: bad iSCSI configuration is refused and changes nothing") {
  ExportHome h;
  h.Ok({"export", "tank/v", "--allow", "any"});
  const std::string good = h.tmp / "good";
  ExpectRefused(h, {"export", "tank/nosuch"}, "does not exist");
  ExpectRefused(h, {"export", "tank/v"}, "already exported");
  ExpectRefused(h, {"export", "tank/w", "--target", "iqn.2026-11.io.blockhaus:tank.v", "--lun", "0",
                    "--allow", "any"},
                "already has a LUN 0");
  ExpectRefused(h, {"export", "tank/w", "--target", "iqn.2026-11.io.blockhaus:tank.v",
                    "--allow", "10.0.0.1"},
                "different --allow");
  ExpectRefused(h, {"export", "tank/w", "--target", "iqn.example"}, "not an iSCSI name");
  ExpectRefused(h, {"export", "tank/w", "--target", "iqn.2026-13.com.x"}, "month 13");
  ExpectRefused(h, {"export", "tank/w", "--target", "iqn.2026-11.com.Example"}, "lowercase");
  ExpectRefused(h, {"export", "tank/w", "--target", "iqn.2026-11." + std::string(220, 'a')},
                "at most 223");
  ExpectRefused(h, {"export", "tank/w", "--target", "eui.123"}, "not an iSCSI name");
  ExpectRefused(h, {"export", "tank/w", "--lun", "16384"}, "over the limit");
  ExpectRefused(h, {"export", "tank/w", "--allow", "iqn.bad"}, "not an iSCSI name");
  ExpectRefused(h, {"export", "tank/w", "--allow", "10.0.0.0/33"}, "bad prefix");
  ExpectRefused(h, {"export", "tank/w", "--allow", "300.1.1.1"}, "neither an initiator");
  ExpectRefused(h, {"export", "tank/w", "--allow", "any", "--allow", "any"}, "given twice");
  ExpectRefused(h, {"export", "tank/w", "--chap-user", "bob"}, "go together");
  ExpectRefused(h, {"export", "tank/w", "--chap-user", "bob", "--chap-secret-file", h.tmp / "short"},
                "at least 12");
  ExpectRefused(h, {"export", "tank/w", "--chap-user", "bob", "--chap-secret-file", h.tmp / "none"},
                "cannot read");
  ExpectRefused(h, {"export", "tank/w", "--chap-user", "a=b", "--chap-secret-file", good},
                "may not contain '='");
  ExpectRefused(h, {"export", "tank/w", "--chap-user", "bob", "--chap-secret-file", good,
                    "--mutual-chap-user", "tgt", "--mutual-chap-secret-file", good},
                "equals the initiator's secret");
  ExpectRefused(h, {"export", "tank/w", "--mutual-chap-user", "tgt", "--mutual-chap-secret-file",
                    h.tmp / "good2"},
                "needs CHAP");
  ExpectRefused(h, {"unexport", "tank/w"}, "not exported");
  ExpectRefused(h, {"destroy", "tank/v"}, "unexport");
  ExpectRefused(h, {"destroy", "-r", "tank/v"}, "unexport");
  ExpectRefused(h, {"pool", "destroy", "tank"}, "unexport them first");
  // Checked by the parser (exit 2).
  CommandResult r = h.Run({"export", "tank/w", "--sector-size", "1024"});
  CHECK(r.exit_code == 2);
  CHECK(h.Run({"export", "tank/w", "--soft-threshold", "100"}).exit_code == 2);
}

}  // namespace blockhaus::testing
