// Test helpers for export/iscsi: a RAM-backed fake scsi::Target and a static
// TargetDirectory, plus (raw_iscsi_client.h) a tiny blocking iSCSI
// initiator over a raw socket.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/base/endian.h"
#include "export/iscsi/iscsi_spec.h"
#include "export/iscsi/pdu.h"
#include "export/iscsi/target_directory.h"
#include "export/iscsi/text.h"
#include "export/scsi/scsi_target.h"
#include "export/scsi/sense.h"
#include "tests/export/raw_iscsi_client.h"

namespace blockhaus::iscsi::testing {

// A RAM disk per LUN answering the handful of commands initiators need.
class RamTarget : public scsi::Target {
 public:
  explicit RamTarget(uint64_t bytes_per_lun = 1 << 20, std::vector<uint64_t> luns = {0}) {
    for (uint64_t l : luns) disks_[l].assign(bytes_per_lun, 0);
  }
  // Runs at the start of every Execute (tests block or count there).
  std::function<void(const scsi::Command&)> hook;
  std::atomic<int> resets{0};
  std::atomic<int> nexus_lost{0};
  std::atomic<int> executed{0};

  // With try_reads set, READ(10) runs when an event loop tries it
  // (TryExecute), and its EDTL is recorded; everything else, and every
  // command without it, goes to Execute on an I/O thread.
  std::atomic<bool> try_reads{false};
  bool TryExecute(const scsi::Nexus& nexus, const scsi::Command& cmd,
                  scsi::Response* r) override {
    if (!try_reads || cmd.cdb[0] != 0x28) return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      tried_reads_.push_back(cmd.expected_length);
    }
    Execute(nexus, cmd, r);
    return true;
  }
  std::vector<uint32_t> TriedReads() {
    std::lock_guard<std::mutex> lock(mu_);
    return tried_reads_;
  }

  void Execute(const scsi::Nexus&, const scsi::Command& cmd, scsi::Response* r) override {
    if (hook) hook(cmd);
    ++executed;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = disks_.find(cmd.lun);
    const uint8_t op = cmd.cdb[0];
    if (it == disks_.end() && op != 0xa0 && op != 0x12) {
      return Check(r, 0x25);
    }
    switch (op) {
      case 0x00: return;  // TEST UNIT READY
      case 0x35: return;  // SYNCHRONIZE CACHE(10)
      case 0x12: return Inquiry(cmd, it == disks_.end(), r);
      case 0x25: {        // READ CAPACITY(10)
        r->data_in.assign(8, 0);
        EncodeBE32(&r->data_in[0], static_cast<uint32_t>(it->second.size() / 512 - 1));
        EncodeBE32(&r->data_in[4], 512);
        r->transfer_length = 8;
        return;
      }
      case 0x9e: {        // READ CAPACITY(16)
        const uint32_t alloc = DecodeBE32(&cmd.cdb[10]);
        r->data_in.assign(32, 0);
        EncodeBE64(&r->data_in[0], it->second.size() / 512 - 1);
        EncodeBE32(&r->data_in[8], 512);
        r->data_in.resize(std::min<size_t>(32, alloc));
        r->transfer_length = alloc;
        return;
      }
      case 0x1a: {        // MODE SENSE(6): header only
        r->data_in = {3, 0, 0, 0};
        r->transfer_length = cmd.cdb[4];
        if (r->data_in.size() > cmd.cdb[4]) r->data_in.resize(cmd.cdb[4]);
        return;
      }
      case 0xa0: {        // REPORT LUNS
        const uint32_t alloc = DecodeBE32(&cmd.cdb[6]);
        std::vector<uint8_t> d(8 + 8 * disks_.size(), 0);
        EncodeBE32(&d[0], static_cast<uint32_t>(8 * disks_.size()));
        size_t i = 8;
        for (auto& [l, disk] : disks_) {
          d[i + 1] = static_cast<uint8_t>(l);
          i += 8;
        }
        if (d.size() > alloc) d.resize(alloc);
        r->data_in.assign(d.begin(), d.end());
        r->transfer_length = alloc;
        return;
      }
      case 0x28: return Rw(cmd, DecodeBE32(&cmd.cdb[2]), (uint32_t{cmd.cdb[7]} << 8) | cmd.cdb[8], false, it->second, r);
      case 0x2a: return Rw(cmd, DecodeBE32(&cmd.cdb[2]), (uint32_t{cmd.cdb[7]} << 8) | cmd.cdb[8], true, it->second, r);
      case 0x88: return Rw(cmd, DecodeBE64(&cmd.cdb[2]), DecodeBE32(&cmd.cdb[10]), false, it->second, r);
      case 0x8a: return Rw(cmd, DecodeBE64(&cmd.cdb[2]), DecodeBE32(&cmd.cdb[10]), true, it->second, r);
      default: return Check(r, 0x20);
    }
  }
  // Every StageWrite offered (D35): how many bytes, whether they were the
  // bytes the test sent (`expected`, set by the test), and a stage came along.
  struct StageCall {
    uint32_t bytes = 0;
    bool bytes_match = false;
    bool has_stage = false;
  };
  std::vector<uint8_t> expected_write;
  std::vector<StageCall> stage_calls;
  void StageWrite(const scsi::Nexus&, const scsi::Command& cmd) override {
    std::lock_guard<std::mutex> lock(mu_);
    StageCall c;
    c.bytes = static_cast<uint32_t>(cmd.data_out.size());
    c.bytes_match = cmd.data_out.size() <= expected_write.size() &&
                    std::equal(cmd.data_out.begin(), cmd.data_out.end(), expected_write.begin());
    c.has_stage = cmd.staged != nullptr;
    stage_calls.push_back(c);
  }
  std::vector<StageCall> StageCalls() {
    std::lock_guard<std::mutex> lock(mu_);
    return stage_calls;
  }

  bool HasLun(uint64_t lun) const override {
    std::lock_guard<std::mutex> lock(mu_);
    return disks_.count(lun) != 0;
  }
  bool ResetLun(const scsi::Nexus&, uint64_t lun) override {
    ++resets;
    return HasLun(lun);
  }
  void NexusLost(uint64_t) override { ++nexus_lost; }

  void Fill(uint64_t lun, const std::function<uint8_t(size_t)>& byte) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& disk = disks_[lun];
    for (size_t i = 0; i < disk.size(); ++i) disk[i] = byte(i);
  }
  std::vector<uint8_t> Snapshot(uint64_t lun) {
    std::lock_guard<std::mutex> lock(mu_);
    return disks_[lun];
  }

 private:
  static void Check(scsi::Response* r, uint8_t asc) {
    r->status = scsi::kStatusCheckCondition;
    r->sense = scsi::FixedSense(scsi::SenseKey::kIllegalRequest, asc, 0);
  }
  static void Inquiry(const scsi::Command& cmd, bool unmapped, scsi::Response* r) {
    const uint32_t alloc = (uint32_t{cmd.cdb[3]} << 8) | cmd.cdb[4];
    std::vector<uint8_t> d;
    if (cmd.cdb[1] & 1) {  // VPD: only the supported-pages page
      if (cmd.cdb[2] != 0) return Check(r, 0x24);
      d = {0, 0, 0, 1, 0};
    } else {
      d.assign(36, ' ');
      d[0] = unmapped ? 0x7f : 0x00;
      d[1] = 0;
      d[2] = 6;     // SPC-4
      d[3] = 2;
      d[4] = 31;
      d[5] = d[6] = d[7] = 0;
      std::memcpy(&d[8], "BLOCKHAUTEST RAMDISK    ", 24);
      std::memcpy(&d[32], "0001", 4);
    }
    if (d.size() > alloc) d.resize(alloc);
    r->data_in.assign(d.begin(), d.end());
    r->transfer_length = alloc;
  }
  static void Rw(const scsi::Command& cmd, uint64_t lba, uint32_t blocks, bool write,
                 std::vector<uint8_t>& disk, scsi::Response* r) {
    const uint64_t total = disk.size() / 512;
    r->transfer_length = blocks * 512;
    if (lba + blocks < lba || lba + blocks > total) return Check(r, 0x21);
    const size_t off = lba * 512;
    const size_t n = size_t{blocks} * 512;
    if (write) {
      const size_t take = std::min(n, cmd.data_out.size());
      std::memcpy(disk.data() + off, cmd.data_out.data(), take);
    } else {
      r->data_in.assign(disk.begin() + static_cast<ptrdiff_t>(off),
                        disk.begin() + static_cast<ptrdiff_t>(off + n));
    }
  }

  std::vector<uint32_t> tried_reads_;
  mutable std::mutex mu_;
  std::map<uint64_t, std::vector<uint8_t>> disks_;
};

class StaticDirectory : public TargetDirectory {
 public:
  void Add(std::shared_ptr<TargetConfig> t) {
    std::lock_guard<std::mutex> lock(mu_);
    targets_.push_back(std::move(t));
  }
  std::shared_ptr<const TargetConfig> Find(const std::string& name) const override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& t : targets_) {
      if (t->name == name) return t;
    }
    return nullptr;
  }
  std::vector<std::shared_ptr<const TargetConfig>> List() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return {targets_.begin(), targets_.end()};
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<TargetConfig>> targets_;
};

inline std::shared_ptr<TargetConfig> MakeTarget(const std::string& name,
                                                std::shared_ptr<scsi::Target> luns,
                                                std::vector<AllowRule> allow = {
                                                    {AllowRule::Kind::kAny, "", ""}}) {
  auto t = std::make_shared<TargetConfig>();
  t->name = name;
  t->luns = std::move(luns);
  t->allow = std::move(allow);
  return t;
}

}  // namespace blockhaus::iscsi::testing
