#include "export/iscsi/pdu.h"

#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "tests/test_util.h"

namespace blockhaus::iscsi {
namespace {

std::vector<uint8_t> MakePdu(uint32_t data_len, bool hd, bool dd, uint8_t fill = 0x5a) {
  NopOutBhs n;
  n.itt = 42;
  Bhs b;
  EncodeNopOut(n, &b);
  std::vector<uint8_t> data(data_len, fill);
  std::vector<uint8_t> out;
  AppendPdu(b, data, hd, dd, &out);
  return out;
}

}  // namespace

TEST_CASE("reader reassembles PDUs split at every byte boundary") {
  for (bool hd : {false, true}) {
    for (bool dd : {false, true}) {
      const std::vector<uint8_t> wire = MakePdu(13, hd, dd);
      CHECK(wire.size() == 48 + (hd ? 4 : 0) + 16 + (dd ? 4 : 0));
      for (size_t split = 1; split < wire.size(); ++split) {
        PduReader r;
        r.SetLimits({8192, hd, dd});
        size_t used = 0;
        ReadEvent ev = r.Feed({wire.data(), split}, &used);
        CHECK(ev == ReadEvent::kNeedMore);
        CHECK(used == split);
        ev = r.Feed({wire.data() + split, wire.size() - split}, &used);
        REQUIRE(ev == ReadEvent::kPdu);
        CHECK(used == wire.size() - split);
        CHECK(r.pdu().data.size() == 13);
        CHECK(BhsItt(r.pdu().bhs) == 42);
      }
    }
  }
}

TEST_CASE("reader handles back-to-back PDUs fed in random slices") {
  const uint64_t seed = blockhaus::testing::TestSeed();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> wire;
  for (uint32_t i = 0; i < 50; ++i) {
    auto one = MakePdu(static_cast<uint32_t>(rng() % 600), true, true, static_cast<uint8_t>(i));
    wire.insert(wire.end(), one.begin(), one.end());
  }
  PduReader r;
  r.SetLimits({8192, true, true});
  size_t off = 0;
  int pdus = 0;
  while (off < wire.size()) {
    size_t n = std::min<size_t>(1 + rng() % 100, wire.size() - off);
    ConstByteSpan in(wire.data() + off, n);
    while (!in.empty()) {
      size_t used = 0;
      ReadEvent ev = r.Feed(in, &used);
      in = in.subspan(used);
      off += used;
      if (ev == ReadEvent::kPdu) ++pdus;
      REQUIRE((ev == ReadEvent::kPdu || ev == ReadEvent::kNeedMore));
    }
  }
  CHECK(pdus == 50);
}

TEST_CASE("reader refuses a segment above the limit before allocating") {
  NopOutBhs n;
  Bhs b;
  EncodeNopOut(n, &b);
  SetBhsDataSegmentLength(&b, kMaxDataSegmentLength);  // 16 MiB - 1 claimed
  PduReader r;  // 8192 during login
  size_t used = 0;
  CHECK(r.Feed(b, &used) == ReadEvent::kTooLong);
  CHECK(r.pdu().data.capacity() == 0);
  SetBhsDataSegmentLength(&b, 8193);
  PduReader r2;
  CHECK(r2.Feed(b, &used) == ReadEvent::kTooLong);
  SetBhsDataSegmentLength(&b, 8192);
  PduReader r3;
  CHECK(r3.Feed(b, &used) == ReadEvent::kNeedMore);
}

TEST_CASE("reader detects header and data digest errors") {
  std::vector<uint8_t> wire = MakePdu(8, true, true);
  wire[48] ^= 1;  // header digest
  PduReader r;
  r.SetLimits({8192, true, true});
  size_t used = 0;
  CHECK(r.Feed(wire, &used) == ReadEvent::kHeaderDigestError);

  wire = MakePdu(8, true, true);
  wire[52] ^= 1;  // first data byte
  PduReader r2;
  r2.SetLimits({8192, true, true});
  CHECK(r2.Feed(wire, &used) == ReadEvent::kDataDigestError);
}

TEST_CASE("reader survives garbage") {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<uint8_t> junk(1 + rng() % 2000);
    for (auto& x : junk) x = static_cast<uint8_t>(rng());
    PduReader r;
    r.SetLimits({8192, (round & 1) != 0, (round & 2) != 0});
    ConstByteSpan in(junk);
    while (!in.empty()) {
      size_t used = 0;
      ReadEvent ev = r.Feed(in, &used);
      in = in.subspan(used);
      if (ev == ReadEvent::kTooLong || ev == ReadEvent::kHeaderDigestError) break;
    }
    CHECK(r.pdu().data.size() <= 8192 + 3);
  }
}

// Data routing: the data segment lands in the caller's span instead of
// pdu().data, whether fed through Feed in slices or read straight into
// DirectTarget(), and is still checked against the data digest.
TEST_CASE("reader routes data segments into the caller's buffer") {
  std::mt19937_64 rng(11);
  for (bool hd : {false, true}) {
    for (bool dd : {false, true}) {
      for (bool direct : {false, true}) {
        CAPTURE(hd);
        CAPTURE(dd);
        CAPTURE(direct);
        std::vector<uint8_t> wire;
        for (uint32_t len : {4096u, 13u, 0u, 512u}) {
          auto one = MakePdu(len, hd, dd, static_cast<uint8_t>(0x40 + len % 64));
          wire.insert(wire.end(), one.begin(), one.end());
        }
        std::vector<uint8_t> sink(8192, 0);
        std::vector<uint32_t> asked;
        PduReader r;
        r.SetLimits({8192, hd, dd});
        r.SetDataRoute([&](const Pdu& header) {
          const uint32_t len = BhsDataSegmentLength(header.bhs);
          asked.push_back(len);
          return len == 512 ? ByteSpan() : ByteSpan(sink.data() + 100, len);  // 512 declined
        });
        std::vector<std::pair<size_t, bool>> seen;  // (data in pdu(), routed)
        ConstByteSpan in(wire);
        while (!in.empty()) {
          ByteSpan target = r.DirectTarget();
          ReadEvent ev;
          if (direct && !target.empty()) {
            size_t n = std::min<size_t>({target.size(), in.size(), 1 + rng() % 1000});
            std::memcpy(target.data(), in.data(), n);
            in = in.subspan(n);
            ev = r.Filled(n);
          } else {
            size_t used = 0;
            ev = r.Feed(in.subspan(0, std::min<size_t>(in.size(), 1 + rng() % 700)), &used);
            in = in.subspan(used);
          }
          REQUIRE((ev == ReadEvent::kPdu || ev == ReadEvent::kNeedMore));
          if (ev == ReadEvent::kPdu) seen.emplace_back(r.pdu().data.size(), r.data_routed());
        }
        // 13 bytes need padding and a 0-byte segment has nothing to route:
        // neither is offered.
        CHECK(asked == std::vector<uint32_t>{4096, 512});
        REQUIRE(seen.size() == 4);
        CHECK(seen[0] == std::pair<size_t, bool>{0, true});
        CHECK(seen[1] == std::pair<size_t, bool>{13, false});
        CHECK(seen[2] == std::pair<size_t, bool>{0, false});
        CHECK(seen[3] == std::pair<size_t, bool>{512, false});
        CHECK(std::count(sink.begin() + 100, sink.begin() + 4196, 0x40) == 4096);
        CHECK(sink[99] == 0);
        CHECK(sink[4196] == 0);
      }
    }
  }
}

TEST_CASE("reader checks the digest of routed data, and drops a route on request") {
  std::vector<uint8_t> wire = MakePdu(1024, false, true, 0x77);
  std::vector<uint8_t> sink(1024);
  PduReader r;
  r.SetLimits({8192, false, true});
  r.SetDataRoute([&](const Pdu&) { return ByteSpan(sink); });
  std::vector<uint8_t> bad = wire;
  bad[48 + 1000] ^= 1;
  size_t used = 0;
  CHECK(r.Feed(bad, &used) == ReadEvent::kDataDigestError);
  CHECK(r.Feed(wire, &used) == ReadEvent::kPdu);
  CHECK(r.data_routed());
  CHECK(std::count(sink.begin(), sink.end(), 0x77) == 1024);

  // Dropped half-way: the rest goes nowhere, the sink keeps what it had,
  // and the reader stays in step with the stream.
  std::fill(sink.begin(), sink.end(), 0);
  CHECK(r.Feed({wire.data(), 48 + 600}, &used) == ReadEvent::kNeedMore);
  r.DropRoute();
  CHECK(r.DirectTarget().empty());
  CHECK(r.Feed({wire.data() + 648, wire.size() - 648}, &used) == ReadEvent::kPdu);
  CHECK(std::count(sink.begin(), sink.end(), 0x77) == 600);
  CHECK(r.Feed(wire, &used) == ReadEvent::kPdu);
  CHECK(std::count(sink.begin(), sink.end(), 0x77) == 1024);
}

TEST_CASE("CRC32C digest with padding matches a contiguous CRC") {
  std::vector<uint8_t> d = {1, 2, 3, 4, 5};
  std::vector<uint8_t> padded = {1, 2, 3, 4, 5, 0, 0, 0};
  CHECK(DigestWithPad(d, 3) == DigestWithPad(padded, 0));
}

TEST_CASE("writer sends borrowed and owned PDUs and releases cookies") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  PduWriter w;
  w.SetDigests(true, true);
  NopInBhs n;
  Bhs b;
  EncodeNopIn(n, &b);
  std::vector<uint8_t> borrowed(1000, 7);
  int token = 0;
  w.Queue(b, borrowed, &token);
  w.QueueOwned(b, std::vector<uint8_t>(3, 9));
  std::vector<void*> released;
  CHECK(w.Flush(sv[0], &released) == WriteResult::kDone);
  CHECK(released.size() == 1);
  CHECK(released[0] == &token);
  CHECK(w.empty());
  std::vector<uint8_t> got(4096);
  const ssize_t n1 = ::read(sv[1], got.data(), got.size());
  std::vector<uint8_t> want;
  AppendPdu(b, borrowed, true, true, &want);
  AppendPdu(b, std::vector<uint8_t>(3, 9), true, true, &want);
  REQUIRE(n1 == static_cast<ssize_t>(want.size()));
  got.resize(static_cast<size_t>(n1));
  CHECK(got == want);
  ::close(sv[0]);
  ::close(sv[1]);
}

}  // namespace blockhaus::iscsi

namespace blockhaus::iscsi {

TEST_CASE("writer: digests switched on after queueing apply only to later PDUs") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  PduWriter w;
  LoginResponseBhs l;
  Bhs b;
  EncodeLoginResponse(l, &b);
  w.QueueOwned(b, std::vector<uint8_t>{'A', '=', '1', 0});
  w.SetDigests(true, true);  // login done: digests from the next PDU on
  std::vector<void*> released;
  CHECK(w.Flush(sv[0], &released) == WriteResult::kDone);
  std::vector<uint8_t> got(4096);
  const ssize_t n = ::read(sv[1], got.data(), got.size());
  CHECK(n == 48 + 4);
  ::close(sv[0]);
  ::close(sv[1]);
}

}  // namespace blockhaus::iscsi
