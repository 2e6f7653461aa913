// fuzz_pdu (TESTING.md C1): raw bytes through the streaming PDU reader,
// split at random boundaries, with and without digests, with and without
// data routing. Must never read or write out of bounds, and never size a
// buffer above the negotiated limit.
//
// Input: u8 flags (bit 0 header digest, bit 1 data digest, bit 2 login
// limit 8192 else 262144, bit 3 route data segments into a caller buffer,
// bit 4 read routed data through DirectTarget, bit 5 drop every third
// route half-way), u8 split seed, then the stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "export/iscsi/pdu.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blockhaus::iscsi;
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  uint32_t seed = data[1] * 2654435761u + 1;
  const uint32_t limit = (flags & 4) ? kLoginMaxRecvDataSegment : 262144;
  const bool route = (flags & 8) != 0, direct = (flags & 16) != 0, drop = (flags & 32) != 0;
  PduReader reader;
  reader.SetLimits({limit, (flags & 1) != 0, (flags & 2) != 0});
  std::vector<uint8_t> sink;
  uint32_t routes = 0;
  bool routed_now = false;
  if (route) {
    reader.SetDataRoute([&](const Pdu& header) {
      const uint32_t len = BhsDataSegmentLength(header.bhs);
      if (len > limit) std::abort();  // never asked about an oversized segment
      routed_now = ++routes % 2 == 1;
      if (!routed_now) return blockhaus::ByteSpan();
      sink.assign(len, 0);
      return blockhaus::ByteSpan(sink.data(), sink.size());
    });
  }
  blockhaus::ConstByteSpan in(data + 2, size - 2);
  auto check = [&](ReadEvent ev) {
    if (reader.pdu().data.size() > limit + 3) std::abort();
    if (ev == ReadEvent::kTooLong || ev == ReadEvent::kHeaderDigestError) return false;
    if (ev == ReadEvent::kPdu) {
      const size_t want = reader.data_routed() ? 0 : BhsDataSegmentLength(reader.pdu().bhs);
      if (reader.pdu().data.size() != want) std::abort();
    }
    return true;
  };
  while (!in.empty()) {
    seed = seed * 1103515245u + 12345u;
    const size_t n = std::min<size_t>(1 + (seed >> 16) % 97, in.size());
    blockhaus::ConstByteSpan piece = in.subspan(0, n);
    in = in.subspan(n);
    while (!piece.empty()) {
      if (drop && routed_now && routes % 3 == 0) reader.DropRoute();
      blockhaus::ByteSpan target = reader.DirectTarget();
      ReadEvent ev;
      if (direct && !target.empty()) {
        const size_t k = std::min(target.size(), piece.size());
        std::memcpy(target.data(), piece.data(), k);
        piece = piece.subspan(k);
        ev = reader.Filled(k);
      } else {
        size_t used = 0;
        ev = reader.Feed(piece, &used);
        piece = piece.subspan(used);
      }
      if (!check(ev)) return 0;
    }
  }
  return 0;
}
