// The command set over a real volume (VolumeDevice on a pool): data path,
// holes for UNMAP and zero WRITE SAME, GET LBA STATUS from the block map,
// SYNCHRONIZE CACHE, snapshots write protected, a full pool as 07h/27h/07h.

#include <doctest/doctest.h>

#include <random>

#include "core/pool/pool.h"
#include "export/scsi/scsi_spec.h"
#include "tests/export/scsi_rig.h"
#include "tests/test_util.h"
#include "volume/volume_manager.h"

namespace blockhaus::testing {
namespace {

using scsi::kStatusGood;

struct VolumeRig {
  TempDir tmp;
  std::unique_ptr<core::Pool> pool;
  std::unique_ptr<volume::VolumeManager> vm;
  scsi::LunMap map;
  scsi::Nexus nexus = MakeNexus(1);
  std::vector<uint8_t> out;

  explicit VolumeRig(uint64_t pool_bytes = 128 << 20) {
    core::PoolCreateOptions o;
    o.name = "tank";
    o.data_size = pool_bytes;
    REQUIRE(core::Pool::Create(tmp / "pool", o).ok());
    pool = std::move(core::Pool::Open(tmp / "pool")).value();
    volume::VolumeManagerOptions vo;
    vo.start_coalescer = false;
    vm = std::move(volume::VolumeManager::Open(pool.get(), vo)).value();
  }
  void Export(const std::string& name, uint64_t lun) {
    auto dev = vm->OpenDevice(name);
    REQUIRE_MESSAGE(dev.ok(), dev.status().ToString());
    scsi::LunOptions lo;
    lo.serial = name;
    auto unit = scsi::LogicalUnit::Create(std::move(dev).value(), lo, nullptr);
    REQUIRE(unit.ok());
    map.MapLun(lun, *unit);
  }
  scsi::Response Run(uint64_t lun, const std::vector<uint8_t>& cdb, std::vector<uint8_t> data = {}) {
    scsi::Response r;
    RunInto(lun, cdb, &r, std::move(data));
    return r;
  }
  // Into a Response the caller keeps, as the iSCSI layer reuses its tasks'.
  void RunInto(uint64_t lun, const std::vector<uint8_t>& cdb, scsi::Response* r,
               std::vector<uint8_t> data = {}) {
    scsi::Command cmd;
    cmd.nexus_id = nexus.id;
    cmd.lun = lun;
    std::copy(cdb.begin(), cdb.end(), cmd.cdb.begin());
    out = std::move(data);
    cmd.data_out = out;
    map.Execute(nexus, cmd, r);
  }
  void ClearUa(uint64_t lun) {
    for (int i = 0; i < 8 && Run(lun, {0, 0, 0, 0, 0, 0}).status != kStatusGood; ++i) {
    }
  }
};

volume::VolumeProps Props(uint64_t size, bool compress = true) {
  volume::VolumeProps p;
  p.volsize = size;
  p.volblocksize = 16384;
  if (!compress) p.compression = core::Compression{core::CompressionAlgo::kOff, 0};
  return p;
}

TEST_CASE("scsi volume: write, read, unmap, write same, get lba status, sync") {
  VolumeRig rig;
  REQUIRE(rig.vm->CreateVolume("vol", Props(16 << 20)).ok());
  rig.Export("vol", 0);
  rig.ClearUa(0);
  std::vector<uint8_t> a = Pattern(64 * 512, 3);
  REQUIRE(rig.Run(0, Cdb10(0x2a, 32, 64), a).status == kStatusGood);   // LBAs 32..95: blocks 1, 2
  CHECK(rig.Run(0, Cdb10(0x28, 32, 64)).data_in == a);
  CHECK(rig.Run(0, Cdb10(0x35, 0, 0)).status == kStatusGood);
  // Block 1 (LBAs 32..63) is mapped, blocks 0 and 3.. are holes.
  std::vector<uint8_t> cdb(16, 0);
  cdb[0] = 0x9e;
  cdb[1] = 0x12;
  cdb[13] = 255;
  scsi::Response s = rig.Run(0, cdb);
  REQUIRE(s.status == kStatusGood);
  REQUIRE(s.data_in.size() >= 8 + 3 * 16);
  CHECK(DecodeBE64(&s.data_in[8]) == 0);
  CHECK(s.data_in[8 + 12] == 1);
  CHECK(DecodeBE64(&s.data_in[24]) == 32);
  CHECK(DecodeBE32(&s.data_in[24 + 8]) == 64);
  CHECK(s.data_in[24 + 12] == 0);
  // UNMAP one whole volume block and half of the next: reads zero there.
  std::vector<uint8_t> list(24, 0);
  scsi::EncodeBE16(&list[0], 22);
  scsi::EncodeBE16(&list[2], 16);
  EncodeBE64(&list[8], 32);
  EncodeBE32(&list[16], 48);
  REQUIRE(rig.Run(0, {0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, list).status == kStatusGood);
  std::vector<uint8_t> back = Bytes(rig.Run(0, Cdb10(0x28, 32, 64)).data_in);
  CHECK(std::all_of(back.begin(), back.begin() + 48 * 512, [](uint8_t b) { return b == 0; }));
  CHECK(std::equal(back.begin() + 48 * 512, back.end(), a.begin() + 48 * 512));
  // WRITE SAME of zeros over the rest: the whole volume is holes again.
  REQUIRE(rig.Run(0, Cdb10(0x41, 64, 32, 0x08), std::vector<uint8_t>(512, 0)).status == kStatusGood);
  s = rig.Run(0, cdb);
  REQUIRE(s.data_in.size() == 8 + 16);
  CHECK(s.data_in[8 + 12] == 1);
  CHECK(DecodeBE32(&s.data_in[16]) == (8u << 20) / 512);   // one scan covers 8 MiB
}

// A READ's buffer is not zeroed before the volume fills it (Buffer), so
// every byte must come from the volume: a response reused after one full of
// other bytes returns exactly the written data and zeros for the holes and
// the unmapped part of a block, from the committed blocks and the dirty ones.
TEST_CASE("scsi volume: a READ into a reused response returns only the volume's bytes") {
  VolumeRig rig;
  REQUIRE(rig.vm->CreateVolume("vol", Props(16 << 20)).ok());
  rig.Export("vol", 0);
  rig.ClearUa(0);
  const std::vector<uint8_t> a = Pattern(40 * 512, 9);  // LBAs 40..79: part of blocks 1 and 2
  REQUIRE(rig.Run(0, Cdb10(0x2a, 40, 40), a).status == kStatusGood);
  std::vector<uint8_t> expect(256 * 512, 0);            // LBAs 0..255: blocks 0..7
  std::copy(a.begin(), a.end(), expect.begin() + 40 * 512);
  for (bool committed : {false, true}) {
    CAPTURE(committed);
    if (committed) REQUIRE(rig.Run(0, Cdb10(0x35, 0, 0)).status == kStatusGood);
    scsi::Response r;
    r.data_in.assign(1 << 20, 0xa5);
    rig.RunInto(0, Cdb10(0x28, 0, 256), &r);
    REQUIRE(r.status == kStatusGood);
    CHECK(r.data_in == expect);
    // A shorter read at an odd LBA into the same, longer, buffer.
    r.data_in.assign(1 << 20, 0x5a);
    rig.RunInto(0, Cdb10(0x28, 37, 50), &r);
    REQUIRE(r.status == kStatusGood);
    CHECK(r.data_in == std::vector<uint8_t>(expect.begin() + 37 * 512, expect.begin() + 87 * 512));
  }
}

TEST_CASE("scsi volume: a snapshot exports write protected") {
  VolumeRig rig;
  REQUIRE(rig.vm->CreateVolume("vol", Props(4 << 20)).ok());
  REQUIRE(rig.vm->Snapshot({"vol@s1"}).ok());
  rig.Export("vol@s1", 1);
  rig.ClearUa(1);
  CHECK(SenseOf(rig.Run(1, Cdb10(0x2a, 0, 1), std::vector<uint8_t>(512, 1))) == kWriteProtected);
  scsi::Response ms = rig.Run(1, {0x1a, 0x08, 0x3f, 0, 255, 0});
  CHECK((ms.data_in[2] & 0x80) == 0x80);
  CHECK(rig.Run(1, Cdb10(0x28, 0, 1)).status == kStatusGood);
}

// Thin volume larger than its pool, filled with incompressible data: the
// soft threshold (80% of the pool in use, the default) raises 38h/07h
// once, then the pool runs out and writes get 07h/27h/07h.
TEST_CASE("scsi volume: a filling pool raises the soft threshold once, then runs out") {
  VolumeRig rig(32 << 20);
  REQUIRE(rig.vm->CreateVolume("thin", Props(256 << 20, false)).ok());
  rig.Export("thin", 0);
  rig.ClearUa(0);
  const uint64_t capacity = rig.pool->stats().capacity;
  std::mt19937_64 rng(42);
  std::vector<uint8_t> chunk(1 << 20);
  bool full = false;
  int attentions = 0;
  uint64_t written_at_attention = 0;
  uint32_t i = 0;
  for (int sent = 0; sent < 128 && !full; ++sent) {
    for (auto& b : chunk) b = static_cast<uint8_t>(rng());
    scsi::Response r = rig.Run(0, Cdb10(0x2a, i * 2048, 2048), chunk);
    if (r.status == kStatusGood) {
      ++i;
    } else if (SenseOf(r) == kSoftThresholdReached) {
      ++attentions;   // reported instead of running the write: send it again
      written_at_attention = uint64_t{i} << 20;
    } else {
      CHECK(SenseOf(r) == kSpaceAllocationFailed);
      full = true;
    }
  }
  CHECK(full);
  CHECK(attentions == 1);
  // Reached with about 80% in use (the slop and dirty data count as used).
  CHECK(written_at_attention >= capacity * 70 / 100);
  CHECK(written_at_attention <= capacity * 85 / 100);
  // The session goes on.
  CHECK(rig.Run(0, Cdb10(0x28, 0, 8)).status == kStatusGood);
}

}  // namespace
}  // namespace blockhaus::testing
