// A tiny blocking iSCSI initiator over a raw TCP socket, for tests that
// send well-formed and malformed PDUs to a target: the in-process Server
// (tests/export) and the real daemon (tests/iscsi). Header-only; links
// blockhaus_export for the PDU codec (iscsi_spec.h, pdu.h, text.h) and
// CHAP (chap.h).
//
// Thread safety: thread-compatible (one client per thread).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "core/base/endian.h"
#include "export/iscsi/chap.h"
#include "export/iscsi/iscsi_spec.h"
#include "export/iscsi/pdu.h"
#include "export/iscsi/text.h"

namespace blockhaus::iscsi::testing {

// The CHAP_R (hex) answering the CHAP_A/CHAP_I/CHAP_C in `challenge` with
// `secret` (RFC 1994 §4.1); empty when the keys are missing or malformed.
inline std::string ChapAnswerHex(const std::vector<KeyValue>& challenge, const std::string& secret) {
  const std::string* a = FindKey(challenge, "CHAP_A");
  const std::string* i = FindKey(challenge, "CHAP_I");
  const std::string* c = FindKey(challenge, "CHAP_C");
  if (a == nullptr || i == nullptr || c == nullptr) return "";
  std::optional<uint64_t> alg = ParseNumber(*a);
  std::optional<uint8_t> id = ParseChapIdentifier(*i);
  auto bytes = DecodeChapBinary(*c, kChapMaxBinary);
  if (!alg || (*alg != 5 && *alg != 7) || !id || !bytes) return "";
  return EncodeChapHex(ChapResponse(static_cast<ChapAlgorithm>(*alg), *id, secret, *bytes));
}

// Blocking raw-socket client: sends PDUs, reads whole PDUs with a timeout.
class RawClient {
 public:
  // Connects to 127.0.0.1:port, from `source` (another 127/8 address, so a
  // test can be several hosts) when given.
  explicit RawClient(uint16_t port, const char* source = nullptr) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (source != nullptr) {
      sockaddr_in s{};
      s.sin_family = AF_INET;
      if (::inet_pton(AF_INET, source, &s.sin_addr) != 1 ||
          ::bind(fd_, reinterpret_cast<sockaddr*>(&s), sizeof(s)) != 0) {
        return;
      }
    }
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

  // Logs in with CHAP (MD5) as `user`/`secret`, straight to full feature
  // phase. Returns the status of the first failing step (0 on success,
  // 0xffff when the connection ended). *captured_response gets the CHAP_R
  // sent (for replay tests).
  uint16_t LoginChap(const std::string& initiator, const std::string& target,
                     const std::string& user, const std::string& secret,
                     uint64_t isid = 0x400001370000ull, std::string* captured_response = nullptr) {
    auto a = LoginStep({{"InitiatorName", initiator}, {"TargetName", target}, {"AuthMethod", "CHAP"}},
                       0, 0, false, isid);
    if (!a) return 0xffff;
    if (uint16_t st = DecodeLoginResponse(a->bhs).status; st != 0) return st;
    auto c = LoginStep({{"CHAP_A", "5"}}, 0, 0, false, isid);
    if (!c) return 0xffff;
    if (uint16_t st = DecodeLoginResponse(c->bhs).status; st != 0) return st;
    std::vector<KeyValue> challenge;
    (void)ParseKeyValues(c->data, &challenge);
    const std::string answer = ChapAnswerHex(challenge, secret);
    if (captured_response != nullptr) *captured_response = answer;
    auto d = LoginStep({{"CHAP_N", user}, {"CHAP_R", answer}}, 0, 1, true, isid);
    if (!d) return 0xffff;
    if (uint16_t st = DecodeLoginResponse(d->bhs).status; st != 0) return st;
    auto e = LoginStep({}, 1, 3, true, isid);
    if (!e) return 0xffff;
    const LoginResponseBhs lr = DecodeLoginResponse(e->bhs);
    tsih = lr.tsih;
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
