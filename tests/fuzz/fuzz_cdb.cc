// fuzz_cdb (TESTING.md C4): arbitrary bytes become a short sequence of SCSI
// commands (CDB + data-out, from two nexuses, to a mapped and an unmapped
// LUN) against a LunMap over an in-memory device with a reservation store.
// Must not crash, leak, hang or trip a sanitizer. Every parameter list
// parser (UNMAP, MODE SELECT, PERSISTENT RESERVE OUT, COMPARE AND WRITE,
// WRITE SAME, VERIFY) is reachable; the device is small so LBA checks and
// overflow paths are hit often.
//
// Input format, repeated up to kMaxCommands times:
//   u8 selector (bit 0: nexus, bit 1: LUN 0 or 3, bit 2: a LUN reset
//      before, bit 3: nexus loss before)
//   u8 CDB length (taken mod 17) then that many CDB bytes
//   u16 data-out length (big-endian, capped by what is left) then the data

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "export/scsi/scsi_target.h"
#include "tests/export/mem_block_device.h"

namespace {

constexpr int kMaxCommands = 8;
constexpr uint64_t kDeviceBytes = 256 << 10;

class FuzzStore : public blockhaus::scsi::PersistentStore {
 public:
  blockhaus::Status Save(blockhaus::ConstByteSpan state) override {
    saved_.assign(state.begin(), state.end());
    return blockhaus::Status::Ok();
  }
  blockhaus::Result<std::vector<uint8_t>> Load() override { return saved_; }

 private:
  std::vector<uint8_t> saved_;
};

struct Cursor {
  const uint8_t* p;
  size_t left;
  bool Take(size_t n, const uint8_t** out) {
    if (left < n) return false;
    *out = p;
    p += n;
    left -= n;
    return true;
  }
};

blockhaus::scsi::Nexus MakeNexus(uint64_t id) {
  blockhaus::scsi::Nexus n;
  n.id = id;
  n.initiator_name = id == 1 ? "iqn.2026-01.fuzz:a" : "iqn.2026-01.fuzz:b";
  n.initiator_port = n.initiator_name + ",i,0x23d000000001";
  n.target_name = "iqn.2026-01.fuzz:target";
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blockhaus;
  FuzzStore store;
  scsi::LunOptions options;
  options.serial = "FUZZ";
  auto unit = scsi::LogicalUnit::Create(
      std::make_unique<testing::MemBlockDevice>(kDeviceBytes, 4096), options, &store);
  if (!unit.ok()) __builtin_trap();
  scsi::LunMap map;
  map.MapLun(0, *unit);
  const scsi::Nexus nexuses[2] = {MakeNexus(1), MakeNexus(2)};

  Cursor in{data, size};
  scsi::Response rsp;
  for (int i = 0; i < kMaxCommands; ++i) {
    const uint8_t* sel = nullptr;
    const uint8_t* len = nullptr;
    if (!in.Take(1, &sel) || !in.Take(1, &len)) break;
    const scsi::Nexus& nexus = nexuses[*sel & 1];
    if (*sel & 0x04) map.ResetLun(nexus, 0);
    if (*sel & 0x08) map.NexusLost(nexus.id);
    scsi::Command cmd;
    cmd.nexus_id = nexus.id;
    cmd.lun = (*sel & 0x02) ? 3 : 0;
    cmd.cdb_length = static_cast<uint8_t>(*len % 17);
    const uint8_t* cdb = nullptr;
    if (!in.Take(cmd.cdb_length, &cdb)) break;
    for (uint8_t j = 0; j < cmd.cdb_length; ++j) cmd.cdb[j] = cdb[j];
    const uint8_t* dlen = nullptr;
    size_t out_len = 0;
    if (in.Take(2, &dlen)) out_len = std::min<size_t>((size_t{dlen[0]} << 8) | dlen[1], in.left);
    const uint8_t* out = nullptr;
    in.Take(out_len, &out);
    cmd.data_out = ConstByteSpan(out, out == nullptr ? 0 : out_len);
    cmd.expected_length = static_cast<uint32_t>(out_len);
    map.Execute(nexus, cmd, &rsp);
    // The contract the transport relies on.
    if (rsp.data_in.size() > rsp.transfer_length) __builtin_trap();
    if (rsp.status == scsi::kStatusCheckCondition && rsp.sense.size() < 18) __builtin_trap();
  }
  return 0;
}
