// Test helpers for export/iscsi: a RAM-backed fake scsi::Target, a static
// TargetDirectory, and a tiny blocking iSCSI initiator over a raw socket.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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
        r->data_in = std::move(d);
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
  bool HasLun(uint64_t lun) const override {
    std::lock_guard<std::mutex> lock(mu_);
    return disks_.count(lun) != 0;
  }
  bool ResetLun(const scsi::Nexus&, uint64_t lun) override {
    ++resets;
    return HasLun(lun);
  }
  void NexusLost(uint64_t) override { ++nexus_lost; }

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
    r->data_in = std::move(d);
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

// Blocking raw-socket client: sends PDUs, reads whole PDUs with a timeout.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  bool header_digest = false;
  bool data_digest = false;
  uint32_t cmdsn = 1;
  uint32_t expstatsn = 0;
  uint32_t itt = 1;

  bool SendRaw(const std::vector<uint8_t>& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  bool Send(const Bhs& bhs, const std::vector<uint8_t>& data = {}) {
    std::vector<uint8_t> out;
    AppendPdu(bhs, data, header_digest, data_digest, &out);
    return SendRaw(out);
  }
  // Next PDU, or nullopt on close/timeout.
  std::optional<Pdu> Recv(int timeout_ms = 3000) {
    PduReader reader;
    reader.SetLimits({kMaxDataSegmentLength, header_digest, data_digest});
    while (true) {
      if (!pending_.empty()) {
        size_t used = 0;
        const ReadEvent ev = reader.Feed(pending_, &used);
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(used));
        if (ev == ReadEvent::kPdu) {
          Pdu p = reader.pdu();
          const uint8_t op = BhsOpcode(p.bhs);
          const bool has_statsn = op == 0x21 || op == 0x22 || op == 0x23 || op == 0x24 ||
                                  op == 0x26 || op == 0x3f || (op == 0x25 && (p.bhs[1] & 1)) ||
                                  (op == 0x20 && BhsItt(p.bhs) != kReservedTag);
          if (has_statsn) expstatsn = DecodeBE32(&p.bhs[24]) + 1;
          return p;
        }
        if (ev != ReadEvent::kNeedMore) return std::nullopt;
      }
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, timeout_ms) <= 0) return std::nullopt;
      uint8_t buf[65536];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return std::nullopt;
      pending_.insert(pending_.end(), buf, buf + n);
    }
  }
  // True when the server closed the connection (EOF) within the timeout.
  bool Closed(int timeout_ms = 3000) {
    while (true) {
      pollfd pfd{fd_, POLLIN, 0};
      if (::poll(&pfd, 1, timeout_ms) <= 0) return false;
      uint8_t buf[4096];
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return true;
    }
  }

  // One login request with the given keys; returns the response.
  std::optional<Pdu> LoginStep(const std::vector<KeyValue>& keys, uint8_t csg, uint8_t nsg,
                               bool transit, uint64_t isid = 0x400001370000ull, uint16_t login_tsih = 0) {
    LoginRequestBhs l;
    l.transit = transit;
    l.csg = csg;
    l.nsg = nsg;
    l.isid = isid;
    l.tsih = login_tsih;
    l.itt = itt;
    l.cmdsn = cmdsn;
    l.expstatsn = expstatsn;
    Bhs b;
    EncodeLoginRequest(l, &b);
    if (!Send(b, EncodeKeyValues(keys))) return std::nullopt;
    return Recv();
  }

  // Logs in without CHAP, straight to full feature phase. Returns the status.
  uint16_t Login(const std::string& initiator, const std::string& target,
                 std::vector<KeyValue> extra = {}, uint64_t isid = 0x400001370000ull) {
    std::vector<KeyValue> keys = {{"InitiatorName", initiator}};
    if (target.empty()) {
      keys.push_back({"SessionType", "Discovery"});
    } else {
      keys.push_back({"TargetName", target});
    }
    keys.push_back({"AuthMethod", "None"});
    auto r = LoginStep(keys, 0, 1, true, isid);
    if (!r) return 0xffff;
    LoginResponseBhs lr = DecodeLoginResponse(r->bhs);
    if (lr.status != 0) return lr.status;
    auto r2 = LoginStep(extra, 1, 3, true, isid);
    if (!r2) return 0xffff;
    lr = DecodeLoginResponse(r2->bhs);
    tsih = lr.tsih;
    if (lr.status == 0 && lr.transit && lr.nsg == 3) {
      std::vector<KeyValue> reply;
      (void)ParseKeyValues(r2->data, &reply);
      if (const std::string* hd = FindKey(reply, "HeaderDigest")) header_digest = *hd == "CRC32C";
      if (const std::string* dd = FindKey(reply, "DataDigest")) data_digest = *dd == "CRC32C";
    }
    return lr.status;
  }

  // SCSI command with optional immediate data; returns ITT used.
  uint32_t Command(const std::array<uint8_t, 16>& cdb, uint32_t edtl, bool read, bool write,
                   const std::vector<uint8_t>& immediate = {}, bool final = true,
                   bool immediate_bit = false) {
    ScsiCommandBhs c;
    c.immediate = immediate_bit;
    c.final = final;
    c.read = read;
    c.write = write;
    c.attr = 1;
    c.itt = ++itt;
    c.edtl = edtl;
    c.cmdsn = immediate_bit ? cmdsn : cmdsn++;
    c.expstatsn = expstatsn;
    c.cdb = cdb;
    Bhs b;
    EncodeScsiCommand(c, &b);
    Send(b, immediate);
    return c.itt;
  }

  uint16_t tsih = 0;

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::vector<uint8_t> pending_;
};

inline std::array<uint8_t, 16> Cdb10(uint8_t op, uint32_t lba, uint16_t blocks) {
  std::array<uint8_t, 16> c{};
  c[0] = op;
  EncodeBE32(&c[2], lba);
  c[7] = static_cast<uint8_t>(blocks >> 8);
  c[8] = static_cast<uint8_t>(blocks);
  return c;
}

}  // namespace blockhaus::iscsi::testing
