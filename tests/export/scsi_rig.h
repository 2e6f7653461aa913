// A LunMap with one MemBlockDevice-backed unit at LUN 0 and helpers to
// send CDBs from one or more nexuses, for the SCSI command-set tests.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "export/scsi/scsi_target.h"
#include "export/scsi/sense.h"
#include "tests/export/mem_block_device.h"
#include "tests/test_util.h"

namespace blockhaus::testing {

// A PersistentStore in memory (survives the unit it is given to).
class MemPersistentStore : public scsi::PersistentStore {
 public:
  Status Save(ConstByteSpan state) override {
    if (!fail.ok()) return fail;
    saved.assign(state.begin(), state.end());
    ++saves;
    return Status::Ok();
  }
  Result<std::vector<uint8_t>> Load() override { return saved; }
  std::vector<uint8_t> saved;
  Status fail;
  int saves = 0;
};

inline scsi::Nexus MakeNexus(uint64_t id, const std::string& initiator = "iqn.2026-01.test:host1",
                             const std::string& isid = "23d000000001") {
  scsi::Nexus n;
  n.id = id;
  n.initiator_name = initiator;
  n.initiator_port = initiator + ",i,0x" + isid;
  n.target_name = "iqn.2026-01.test:target";
  n.relative_target_port = 1;
  return n;
}

struct ScsiRig {
  static constexpr uint64_t kDefaultSize = 8 << 20;

  explicit ScsiRig(uint64_t size = kDefaultSize, uint32_t lbs = 512, bool read_only = false,
                   uint32_t device_block = 16384, MemPersistentStore* store = nullptr,
                   uint8_t soft_threshold_percent = 80) {
    auto d = std::make_unique<MemBlockDevice>(size, device_block, read_only);
    dev = d.get();
    scsi::LunOptions o;
    o.logical_block_size = lbs;
    o.soft_threshold_percent = soft_threshold_percent;
    o.serial = "SERIAL01";
    o.naa_id = 0x0123456789abcdefull;
    auto u = scsi::LogicalUnit::Create(std::move(d), o, store);
    REQUIRE_MESSAGE(u.ok(), u.status().ToString());
    unit = *u;
    map.MapLun(0, unit);
    nexus = MakeNexus(1);
    ClearUnitAttention(nexus);
  }

  scsi::Response Run(const scsi::Nexus& n, const std::vector<uint8_t>& cdb,
                     std::vector<uint8_t> data_out = {}, uint64_t lun = 0) {
    scsi::Response r;
    map.Execute(n, MakeCommand(n, cdb, std::move(data_out), lun), &r);
    return r;
  }
  // Target::TryExecute; *ran tells whether the command ran.
  scsi::Response TryRun(const scsi::Nexus& n, const std::vector<uint8_t>& cdb, bool* ran,
                        std::vector<uint8_t> data_out = {}, uint64_t lun = 0) {
    scsi::Response r;
    *ran = map.TryExecute(n, MakeCommand(n, cdb, std::move(data_out), lun), &r);
    return r;
  }
  scsi::Command MakeCommand(const scsi::Nexus& n, const std::vector<uint8_t>& cdb,
                            std::vector<uint8_t> data_out, uint64_t lun) {
    scsi::Command cmd;
    cmd.nexus_id = n.id;
    cmd.lun = lun;
    size_t i = 0;
    for (uint8_t b : cdb) cmd.cdb[i++] = b;
    cmd.cdb_length = static_cast<uint8_t>(cdb.size());
    out_buf = std::move(data_out);
    cmd.data_out = out_buf;
    cmd.expected_length = static_cast<uint32_t>(out_buf.size());
    return cmd;
  }
  scsi::Response Run(const std::vector<uint8_t>& cdb, std::vector<uint8_t> data_out = {}) {
    return Run(nexus, cdb, std::move(data_out));
  }
  // Sends TEST UNIT READY until no unit attention is left.
  void ClearUnitAttention(const scsi::Nexus& n) {
    for (int i = 0; i < 32; ++i) {
      if (Run(n, {0x00, 0, 0, 0, 0, 0}).status == scsi::kStatusGood) return;
    }
    FAIL("unit attentions do not clear");
  }

  MemBlockDevice* dev = nullptr;
  std::shared_ptr<scsi::LogicalUnit> unit;
  scsi::LunMap map;
  scsi::Nexus nexus;
  std::vector<uint8_t> out_buf;
};

// Sense key/ASC/ASCQ of a CHECK CONDITION response.
struct SenseTriple {
  uint8_t key, asc, ascq;
  bool operator==(const SenseTriple&) const = default;
};
inline SenseTriple SenseOf(const scsi::Response& r) {
  if (r.status != scsi::kStatusCheckCondition || r.sense.size() < 14) return {0xff, 0xff, 0xff};
  return {static_cast<uint8_t>(r.sense[2] & 0x0f), r.sense[12], r.sense[13]};
}
inline doctest::String toString(const SenseTriple& s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%02x/%02x/%02x", s.key, s.asc, s.ascq);
  return buf;
}

inline constexpr SenseTriple kLbaOutOfRange{0x05, 0x21, 0x00};
inline constexpr SenseTriple kInvalidField{0x05, 0x24, 0x00};
inline constexpr SenseTriple kInvalidOpcode{0x05, 0x20, 0x00};
inline constexpr SenseTriple kInvalidParameter{0x05, 0x26, 0x00};
inline constexpr SenseTriple kParameterLength{0x05, 0x1a, 0x00};
inline constexpr SenseTriple kWriteProtected{0x07, 0x27, 0x00};
inline constexpr SenseTriple kSpaceAllocationFailed{0x07, 0x27, 0x07};
inline constexpr SenseTriple kSoftThresholdReached{0x06, 0x38, 0x07};

// CDB builders (big-endian fields).
inline std::vector<uint8_t> Cdb6(uint8_t op, uint32_t lba, uint8_t len, uint8_t b1 = 0) {
  return {op, static_cast<uint8_t>(b1 | ((lba >> 16) & 0x1f)), static_cast<uint8_t>(lba >> 8),
          static_cast<uint8_t>(lba), len, 0};
}
inline std::vector<uint8_t> Cdb10(uint8_t op, uint32_t lba, uint16_t len, uint8_t b1 = 0) {
  std::vector<uint8_t> c(10, 0);
  c[0] = op;
  c[1] = b1;
  EncodeBE32(&c[2], lba);
  c[7] = static_cast<uint8_t>(len >> 8);
  c[8] = static_cast<uint8_t>(len);
  return c;
}
inline std::vector<uint8_t> Cdb12(uint8_t op, uint32_t lba, uint32_t len, uint8_t b1 = 0) {
  std::vector<uint8_t> c(12, 0);
  c[0] = op;
  c[1] = b1;
  EncodeBE32(&c[2], lba);
  EncodeBE32(&c[6], len);
  return c;
}
inline std::vector<uint8_t> Cdb16(uint8_t op, uint64_t lba, uint32_t len, uint8_t b1 = 0) {
  std::vector<uint8_t> c(16, 0);
  c[0] = op;
  c[1] = b1;
  EncodeBE64(&c[2], lba);
  EncodeBE32(&c[10], len);
  return c;
}
inline std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

}  // namespace blockhaus::testing
