// fuzz_pdu (TESTING.md C1): raw bytes through the streaming PDU reader,
// split at random boundaries, with and without digests. Must never read or
// write out of bounds, and never size a buffer above the negotiated limit.
//
// Input: u8 flags (bit 0 header digest, bit 1 data digest, bit 2 login
// limit 8192 else 262144), u8 split seed, then the stream.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "export/iscsi/pdu.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blockhaus::iscsi;
  if (size < 2) return 0;
  const uint8_t flags = data[0];
  uint32_t seed = data[1] * 2654435761u + 1;
  const uint32_t limit = (flags & 4) ? kLoginMaxRecvDataSegment : 262144;
  PduReader reader;
  reader.SetLimits({limit, (flags & 1) != 0, (flags & 2) != 0});
  blockhaus::ConstByteSpan in(data + 2, size - 2);
  while (!in.empty()) {
    seed = seed * 1103515245u + 12345u;
    const size_t n = std::min<size_t>(1 + (seed >> 16) % 97, in.size());
    blockhaus::ConstByteSpan piece = in.subspan(0, n);
    in = in.subspan(n);
    while (!piece.empty()) {
      size_t used = 0;
      const ReadEvent ev = reader.Feed(piece, &used);
      piece = piece.subspan(used);
      if (reader.pdu().data.size() > limit + 3) std::abort();
      if (ev == ReadEvent::kTooLong || ev == ReadEvent::kHeaderDigestError) return 0;
      if (ev == ReadEvent::kPdu && BhsDataSegmentLength(reader.pdu().bhs) != reader.pdu().data.size()) {
        std::abort();
      }
    }
  }
  return 0;
}
