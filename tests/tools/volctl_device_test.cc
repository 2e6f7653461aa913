// A pool on a block device (`volctl pool create --data /dev/...`), using a
// loop device over a file. Needs root and losetup (util-linux); without
// them the test fails and says so.

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tests/tools/run_volctl.h"

namespace blockhaus::testing {
namespace {

std::string Shell(const std::string& cmd, int* rc) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    *rc = -1;
    return "";
  }
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  *rc = ::pclose(p);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

TEST_CASE("volctl pool: a pool on a block device") {
  TempDir tmp;
  std::string backing = tmp / "disk.img";
  { std::ofstream f(backing); }
  std::filesystem::resize_file(backing, 64 << 20);
  int rc = 0;
  std::string dev = Shell("losetup -f --show " + backing + " 2>&1", &rc);
  REQUIRE_MESSAGE(rc == 0, "this test needs root and losetup: " << dev);
  CommandResult r = RunVolctl(tmp.path(), {"pool", "create", "dev", "--data", dev});
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  r = RunVolctl(tmp.path(), {"pool", "status", "dev", "-j"});
  if (r.exit_code == 0) {
    auto j = nlohmann::json::parse(r.out);
    CHECK(j["data"] == dev);
    CHECK(j["size"] == (63u << 20));
  }
  CHECK(RunVolctl(tmp.path(), {"create", "-V", "8M", "dev/v"}).exit_code == 0);
  std::string img = tmp / "img";
  {
    std::ofstream f(img, std::ios::binary);
    for (int i = 0; i < (1 << 20); ++i) f.put(static_cast<char>(i * 7));
  }
  CHECK(RunVolctl(tmp.path(), {"write", "dev/v", img}).exit_code == 0);
  std::string out = tmp / "out";
  CHECK(RunVolctl(tmp.path(), {"read", "dev/v", out, "--length", "1M"}).exit_code == 0);
  std::ifstream a(img, std::ios::binary), b(out, std::ios::binary);
  CHECK(std::string(std::istreambuf_iterator<char>(a), {}) ==
        std::string(std::istreambuf_iterator<char>(b), {}));
  CHECK(RunVolctl(tmp.path(), {"pool", "scrub", "dev"}).exit_code == 0);
  CHECK(RunVolctl(tmp.path(), {"pool", "destroy", "dev"}).exit_code == 0);
  Shell("losetup -d " + dev, &rc);
  CHECK(rc == 0);
}

}  // namespace
}  // namespace blockhaus::testing
