// Thin provisioning end to end (docs/DECISIONS.md D20): a 256M thin volume
// on a 64M pool, exported with --soft-threshold 50, filled over iSCSI with
// incompressible data from one session while a second session idles. The
// filling session gets UNIT ATTENTION 38h/07h once, at about half the
// pool, the idle one once at its next command; then writes fail with
// 07h/27h/07h and both sessions go on.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "tests/iscsi/badinput_rig.h"
#include "tests/tools/run_volctl.h"

namespace blockhaus::testing::badinput {
namespace {

constexpr const char* kThin = "iqn.2026-11.io.blockhaus:tank.thin";
constexpr uint64_t kPoolBytes = 64ull << 20;
constexpr uint32_t kChunk = 1 << 20;
constexpr uint32_t kDataOutBytes = 64 * 1024;  // per Data-Out; the target takes 256 KiB

// A WRITE(10) of `data` at `lba`, its data sent as R2Ts ask; the outcome
// as NextOutcome() gives it.
std::string SolicitedWrite(RawClient& c, uint32_t lba, const std::vector<uint8_t>& data) {
  const uint32_t itt =
      c.Command(iscsi::testing::Cdb10(0x2a, lba, static_cast<uint16_t>(data.size() / 512)),
                static_cast<uint32_t>(data.size()), false, true);
  for (int pdus = 0; pdus < 64; ++pdus) {
    auto p = c.Recv();
    if (!p) return "close";
    if (iscsi::BhsOpcode(p->bhs) != 0x31) return Outcome(*p);
    const iscsi::R2tBhs r = iscsi::DecodeR2t(p->bhs);
    uint32_t datasn = 0;
    for (uint32_t off = 0; off < r.desired_length; off += kDataOutBytes) {
      const uint32_t n = std::min(kDataOutBytes, r.desired_length - off);
      iscsi::DataOutBhs d;
      d.itt = itt;
      d.ttt = r.ttt;
      d.datasn = datasn++;
      d.buffer_offset = r.buffer_offset + off;
      d.final = off + n == r.desired_length;
      Bhs b;
      iscsi::EncodeDataOut(d, &b);
      const auto* src = data.data() + d.buffer_offset;
      c.Send(b, std::vector<uint8_t>(src, src + n));
    }
  }
  return "too many R2Ts";
}

}  // namespace

TEST_CASE("daemon thin provisioning: soft threshold once per session, then out of space") {
  TempDir home;
  auto volctl = [&](const std::vector<std::string>& args) {
    CommandResult r = RunVolctl(home.path(), args);
    REQUIRE_MESSAGE(r.exit_code == 0, args[0] << ": " << r.err);
    return r;
  };
  volctl({"pool", "create", "tank", "--size", "64M"});
  volctl({"create", "-s", "-V", "256M", "tank/thin"});
  volctl({"export", "tank/thin", "--allow", "any", "--soft-threshold", "50"});
  auto exports = nlohmann::json::parse(volctl({"exports", "-j"}).out)["exports"];
  REQUIRE(exports.size() == 1);
  CHECK(exports[0]["soft_threshold"] == 50);
  DaemonProcess daemon(home.path());
  RawClient a(static_cast<uint16_t>(daemon.port()));
  RawClient b(static_cast<uint16_t>(daemon.port()));
  REQUIRE(a.Login(kIni, kThin, {}, kIsid + 1) == 0);
  REQUIRE(b.Login(kIni, kThin, {}, kIsid + 2) == 0);
  REQUIRE(ClearUnitAttention(a));
  REQUIRE(ClearUnitAttention(b));

  // VPD B2h: 1 MiB threshold sets; mode page 1Ch/02h: half the pool.
  a.Command({0x12, 0x01, 0xb2, 0x00, 0xff}, 255, true, false);
  auto vpd = a.Recv();
  REQUIRE(vpd.has_value());
  REQUIRE(vpd->data.size() >= 8);
  CHECK(vpd->data[4] == 11);
  a.Command({0x5a, 0x08, 0x1c, 0x02, 0, 0, 0, 0x01, 0x00}, 256, true, false);
  auto page = a.Recv();
  REQUIRE(page.has_value());
  REQUIRE(page->data.size() == 8 + 24);
  const uint32_t count = DecodeBE32(&page->data[8 + 20]);
  CHECK(count >= 28);  // ~half of 64 MiB in 1 MiB sets
  CHECK(count <= 32);

  const uint64_t seed = TestSeed();
  MESSAGE("thin fill seed " << seed);
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> chunk(kChunk);
  int attentions = 0;
  uint64_t written = 0, written_at_attention = 0;
  std::string last;
  for (int sent = 0; sent < 200; ++sent) {
    for (auto& x : chunk) x = static_cast<uint8_t>(rng());
    last = SolicitedWrite(a, static_cast<uint32_t>(written / 512), chunk);
    if (last == "scsi 00") {
      written += kChunk;
    } else if (last == "scsi 02 06/38/07") {
      ++attentions;  // reported instead of the write: send it again
      written_at_attention = written;
    } else {
      break;
    }
  }
  CHECK(last == "scsi 02 07/27/07");
  CHECK(attentions == 1);
  MESSAGE("soft threshold at " << (written_at_attention >> 20) << " MiB, out of space at "
                               << (written >> 20) << " MiB of a " << (kPoolBytes >> 20)
                               << " MiB pool");
  CHECK(written_at_attention >= kPoolBytes * 40 / 100);
  CHECK(written_at_attention <= kPoolBytes * 55 / 100);
  CHECK(written > written_at_attention);
  // The idle session hears of it once; both sessions go on.
  a.Command({}, 0, false, false);
  CHECK(NextOutcome(a) == "scsi 00");
  b.Command({}, 0, false, false);
  CHECK(NextOutcome(b) == "scsi 02 06/38/07");
  b.Command({}, 0, false, false);
  CHECK(NextOutcome(b) == "scsi 00");
  b.Command(iscsi::testing::Cdb10(0x28, 0, 8), 4096, true, false);
  auto read = b.Recv();
  REQUIRE(read.has_value());
  CHECK(iscsi::BhsOpcode(read->bhs) == 0x25);
  CHECK(daemon.Alive());
  CHECK(daemon.Stop() == 0);
}

}  // namespace blockhaus::testing::badinput
