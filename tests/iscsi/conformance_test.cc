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

// Parses CUnit's verbose output: "Suite: X", then "  Test: Y ..." followed
// by CUnit's verdict, "passed" or "FAILED", either right after the dots or
// at the start of a later line (when the test printed something first). Only
// the verdict counts: tests log "[FAILED]" for steps that are meant to fail.
// A test that printed "[SKIPPED]" and passed was skipped.
SuiteResult Parse(const std::string& out) {
  SuiteResult r;
  r.output = out;
  std::istringstream in(out);
  std::string line, suite, current;
  bool skipped = false;
  static const std::regex kSuite(R"(^Suite: (\S+))");
  static const std::regex kTest(R"(^\s+Test: (\S+) \.\.\.(.*)$)");
  std::smatch m;
  auto verdict = [&](const std::string& text) {
    if (current.empty()) return;
    if (text.rfind("passed", 0) == 0) {
      (skipped ? r.skipped : r.passed).push_back(current);
    } else if (text.rfind("FAILED", 0) == 0) {
      r.failed.push_back(current);
    } else {
      return;
    }
    current.clear();
  };
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, kSuite)) {
      suite = m[1];
    } else if (std::regex_search(line, m, kTest)) {
      current = suite + "." + std::string(m[1]);
      std::string rest = m[2];
      skipped = rest.find("[SKIPPED]") != std::string::npos;
      verdict(rest);
    } else if (!current.empty()) {
      skipped = skipped || line.find("[SKIPPED]") != std::string::npos;
      verdict(line);
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
  std::string tests;                       // -t pattern; empty: every test
  size_t min_passed = 100;                 // the run must get this far
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
  if (const char* only = std::getenv("BH_CU_TESTS")) {
    cu.insert(cu.end(), {"-t", only});
  } else if (!c.tests.empty()) {
    cu.insert(cu.end(), {"-t", c.tests});
  }
  cu.push_back(url);
  cu.push_back(url);
  CommandResult run = RunTool(home.path(), cu, 1500, c.env);
  SuiteResult r = Parse(run.out + run.err);
  MESSAGE(c.name << ": " << r.passed.size() << " passed, " << r.skipped.size() << " skipped, "
                 << r.failed.size() << " failed");
  std::string failed;
  for (const auto& t : r.failed) failed += t + "\n";
  CHECK_MESSAGE(r.failed.empty(), c.name << " failed:\n" << failed);
  CHECK_MESSAGE(r.passed.size() >= (std::getenv("BH_CU_TESTS") ? 1 : c.min_passed),
                "the suite hardly ran:\n" << run.out.substr(0, 4000) << run.err);
  std::string reasons = SkipReasons(), unexplained;
  for (const auto& t : r.skipped) {
    if (reasons.find(t) == std::string::npos) unexplained += t + "\n";
  }
  CHECK_MESSAGE(unexplained.empty(),
                c.name << ": skipped without a reason in docs/CONFORMANCE.md:\n" << unexplained);
  CHECK(daemon.Alive());
  // The whole run, for reading failures and skip reasons.
  std::ofstream(std::string(BH_BUILD_DIR) + "/iscsi-test-cu-" + c.name + ".log") << r.output;
}

}  // namespace

TEST_CASE("iscsi-test-cu: thin LUN") {
  RunConformance({"thin", {"--allow", "any"}, false, "", "", {}, "", 400});
}

// A snapshot exports write-protected. The ReadOnly suite checks that every
// writing command gets DATA PROTECT / WRITE PROTECTED; the other suites
// here only read (or check refusals) and must pass on a snapshot as on a
// volume. Left out: every suite that writes data as a step (Write*,
// WriteSame*, Unmap, CompareAndWrite, MultipathIO, the PR OUT suites ...)
// and GetLBAStatus.UnmapSingle, which unmaps first.
TEST_CASE("iscsi-test-cu: snapshot export, read-only") {
  RunConformance({"snapshot", {}, true, "", "", {},
                  "SCSI.ReadOnly,SCSI.Read6,SCSI.Read10,SCSI.Read12,SCSI.Read16,"
                  "SCSI.ReadCapacity10,SCSI.ReadCapacity16,SCSI.Inquiry,SCSI.TestUnitReady,"
                  "SCSI.GetLBAStatus.BeyondEol,SCSI.Prefetch10,SCSI.Prefetch16,SCSI.Verify10,"
                  "SCSI.Verify12,SCSI.Verify16,SCSI.ReportSupportedOpcodes,SCSI.ModeSense6,"
                  "SCSI.PrinReadKeys,SCSI.PrinReportCapabilities,SCSI.ReadDefectData10,"
                  "SCSI.ReadDefectData12,SCSI.PreventAllow,SCSI.StartStopUnit,SCSI.Mandatory,"
                  "SCSI.NoMedia",
                  80});
}

TEST_CASE("iscsi-test-cu: chap") {
  RunConformance({"chap",
                  {"--chap-user", "cu-user", "--chap-secret-file", "@secret"},
                  false, "cu-user%conformance-secret-1@", "", {}, "", 400});
}

TEST_CASE("iscsi-test-cu: mutual-chap") {
  RunConformance({"mutual-chap",
                  {"--chap-user", "cu-user", "--chap-secret-file", "@secret",
                   "--mutual-chap-user", "cu-target", "--mutual-chap-secret-file", "@tsecret"},
                  false, "cu-user%conformance-secret-1@",
                  "?target_user=cu-target&target_password=target-secret-22", {}, "", 400});
}

TEST_CASE("iscsi-test-cu: digests, CRC32C headers") {
  RunConformance({"digests", {}, false, "", "?header_digest=crc32c", {}, "", 400});
}

}  // namespace blockhaus::testing
