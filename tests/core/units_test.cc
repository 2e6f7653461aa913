#include "core/base/units.h"

#include <doctest/doctest.h>

namespace blockhaus {
namespace {

TEST_CASE("ParseSize: the forms people write") {
  CHECK(*ParseSize("512") == 512);
  CHECK(*ParseSize("4K") == 4096);
  CHECK(*ParseSize("16k") == 16384);
  CHECK(*ParseSize("1.5G") == 1610612736ull);
  CHECK(*ParseSize("2T") == (2ull << 40));
  CHECK(*ParseSize("8MiB") == (8ull << 20));
  CHECK(*ParseSize("8MB") == (8ull << 20));
  CHECK(*ParseSize("0") == 0);
  CHECK(*ParseSize("15E") == 15ull << 60);
}

TEST_CASE("ParseSize: bad input is InvalidArgument") {
  for (const char* bad : {"", "-1", "1q", "16E", "K", "1.5", "1..5G", " 1G", "1G ", "+4K",
                          "99999999999999999999999", "1.0000000000001K"}) {
    auto r = ParseSize(bad);
    CHECK_MESSAGE(!r.ok(), bad);
    if (!r.ok()) CHECK(r.status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("FormatSize: zfs-style numbers") {
  CHECK(FormatSize(512) == "512");
  CHECK(FormatSize(1536) == "1.50K");
  CHECK(FormatSize(10ull << 30) == "10.0G");
  CHECK(FormatSize(200ull << 40) == "200T");
}

}  // namespace
}  // namespace blockhaus
