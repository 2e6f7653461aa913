// libiscsi's conformance suite (iscsi-test-cu, Debian libiscsi-bin) against
// the real daemon, in the configurations issue 4 names: a thin LUN, a
// read-only snapshot export, CHAP, mutual CHAP and CRC32C digests. Two
// URLs (two initiator names) for the multi-initiator and multipath tests.
//
// The suite counts a skip as a pass; here skips are counted apart, and
// every skipped test must be listed with its reason in docs/CONFORMANCE.md
// (so a new skip fails this test until someone explains it). BH_CU_TESTS
// narrows the run to one test pattern (e.g. SCSI.Read10) when debugging.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "tests/iscsi/daemon_process.h"
#include "tests/iscsi/run_tool.h"
#include "tests/test_util.h"

namespace blockhaus::testing {
namespace {

constexpr const char* kTarget = "iqn.2026-11.io.blockhaus:cu";
constexpr const char* kInit1 = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test";
constexpr const char* kInit2 = "iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2";

struct SuiteResult {
  std::vector<std::string> passed, skipped, failed;
  std::string output;
};

// Parses CUnit's verbose output: "Suite: X", then "  Test: Y ...passed" or
// "...FAILED"; a test that printed "[SKIPPED]" was skipped.
SuiteResult Parse(const std::string& out) {
  SuiteResult r;
  r.output = out;
  std::istringstream in(out);
  std::string line, suite, current;
  bool skipped = false;
  static const std::regex kSuite(R"(^Suite: (\S+))");
  static const std::regex kTest(R"(^\s+Test: (\S+) \.\.\.(.*)$)");
  std::smatch m;
  auto finish = [&](const std::string& verdict) {
    if (verdict.find("passed") != std::string::npos) {
      (skipped ? r.skipped : r.passed).push_back(current);
    } else if (verdict.find("FAILED") != std::string::npos) {
      r.failed.push_back(current);
    } else {
      return false;
    }
    current.clear();
    return true;
  };
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, kSuite)) {
      suite = m[1];
    } else if (std::regex_search(line, m, kTest)) {
      current = suite + "." + std::string(m[1]);
      skipped = line.find("[SKIPPED]") != std::string::npos;
      finish(m[2]);
    } else if (!current.empty()) {
      skipped = skipped || line.find("[SKIPPED]") != std::string::npos;
      if (line.find("passed") == 0 || line.find("FAILED") == 0) finish(line);
    }
  }
  return r;
}

std::string SkipReasons() { return ReadFile(std::string(BH_SOURCE_DIR) + "/docs/CONFORMANCE.md"); }

struct Config {
  std::string name;
  std::vector<std::string> export_args;   // after "export tank/<dataset>"
  bool snapshot = false;                   // export tank/vol@snap
  std::string url_user;                    // user%password@
  std::string url_query;                   // ?header_digest=crc32c ...
  std::vector<std::string> env;            // LIBISCSI_CHAP_*
};

void RunConformance(const Config& c) {
  TempDir home;
  auto ok = [&](const std::vector<std::string>& args) {
    CommandResult r = RunVolctl(home.path(), args);
    REQUIRE_MESSAGE(r.exit_code == 0, args[0] << ": " << r.err);
  };
  std::ofstream(home / "secret") << "conformance-secret-1\n";
  std::ofstream(home / "tsecret") << "target-secret-22\n";
  ok({"pool", "create", "tank", "--size", "2G"});
  ok({"create", "-s", "-V", "128M", "tank/cu"});
  std::string dataset = "tank/cu";
  if (c.snapshot) {
    ok({"snapshot", "tank/cu@ro"});
    dataset = "tank/cu@ro";
  }
  std::vector<std::string> args = {"export", dataset, "--target", kTarget, "--multi-session",
                                   "--allow", kInit1, "--allow", kInit2};
  for (std::string a : c.export_args) {
    if (a == "@secret") a = home / "secret";
    if (a == "@tsecret") a = home / "tsecret";
    args.push_back(a);
  }
  ok(args);
  DaemonProcess daemon(home.path());
  std::string url = "iscsi://" + c.url_user + daemon.portal() + "/" + kTarget + "/0" + c.url_query;
  std::vector<std::string> cu = {"iscsi-test-cu", "-d", "-v", "-i", kInit1, "-I", kInit2};
  if (const char* only = std::getenv("BH_CU_TESTS")) cu.insert(cu.end(), {"-t", only});
  cu.push_back(url);
  cu.push_back(url);
  CommandResult run = RunTool(home.path(), cu, 1500, c.env);
  SuiteResult r = Parse(run.out + run.err);
  MESSAGE(c.name << ": " << r.passed.size() << " passed, " << r.skipped.size() << " skipped, "
                 << r.failed.size() << " failed");
  std::string failed;
  for (const auto& t : r.failed) failed += t + "\n";
  CHECK_MESSAGE(r.failed.empty(), c.name << " failed:\n" << failed);
  CHECK_MESSAGE(r.passed.size() > 50, "the suite hardly ran:\n" << run.out.substr(0, 4000) << run.err);
  std::string reasons = SkipReasons(), unexplained;
  for (const auto& t : r.skipped) {
    if (reasons.find(t) == std::string::npos) unexplained += t + "\n";
  }
  CHECK_MESSAGE(unexplained.empty(),
                c.name << ": skipped without a reason in docs/CONFORMANCE.md:\n" << unexplained);
  CHECK(daemon.Alive());
  if (!r.failed.empty()) {
    std::ofstream(std::string(BH_BUILD_DIR) + "/iscsi-test-cu-" + c.name + ".log") << r.output;
  }
}

}  // namespace

TEST_CASE("iscsi-test-cu: thin LUN") {
  RunConformance({"thin", {"--allow", "any"}, false, "", "", {}});
}

TEST_CASE("iscsi-test-cu: read-only snapshot export") {
  RunConformance({"snapshot", {}, true, "", "", {}});
}

TEST_CASE("iscsi-test-cu: CHAP") {
  RunConformance({"chap",
                  {"--chap-user", "cu-user", "--chap-secret-file", "@secret"},
                  false, "cu-user%conformance-secret-1@", "", {}});
}

TEST_CASE("iscsi-test-cu: mutual CHAP") {
  RunConformance({"mutual-chap",
                  {"--chap-user", "cu-user", "--chap-secret-file", "@secret",
                   "--mutual-chap-user", "cu-target", "--mutual-chap-secret-file", "@tsecret"},
                  false, "cu-user%conformance-secret-1@",
                  "?target_user=cu-target&target_password=target-secret-22", {}});
}

TEST_CASE("iscsi-test-cu: CRC32C header and data digests") {
  RunConformance({"digests", {}, false, "", "?header_digest=crc32c&data_digest=crc32c", {}});
}

}  // namespace blockhaus::testing
