// fuzz_intent_record: bytes as an intent log record and as its key, the
// metadata a crash leaves for Open to replay (core/txg/intent_format.h),
// and as the intent log's ring file (core/txg/intent_file.h): a scan finds
// frames only inside the file, in seq order, or ends (at a damaged frame
// only with a frame of the next seq behind it); it never fails on the
// bytes alone.
// A record either decodes into entries that account for every byte, each
// payload exactly its pointer's psize (none for a hole), or is refused
// with Corruption; nothing else, and no read outside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <cstring>

#include "core/io/vdev.h"
#include "core/txg/intent_file.h"
#include "core/txg/intent_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blockhaus;
  using namespace blockhaus::core;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  {
    const uint64_t capacity = (size + kIntentFrameAlign) & ~(kIntentFrameAlign - 1);
    std::unique_ptr<Vdev> ring = NewMemVdev(capacity);
    if (size > 0 && !ring->Write(0, ConstByteSpan(data, size)).ok()) std::abort();
    uint64_t expect = 1;
    auto end = ScanIntentFrames(*ring, 0, 1, 0, [&](const IntentFrame& f) {
      if (f.seq != expect++ || f.offset + f.span > capacity) std::abort();
      return Status::Ok();
    });
    if (!end.ok() || end->next_seq != expect) std::abort();
    // Damage is reported only at the end, in the ring, with a frame behind.
    if (const auto& d = end->damaged) {
      if (d->seq != end->next_seq || d->after_seq < d->seq + 2 ||
          d->offset % kIntentFrameAlign != 0 || d->offset >= capacity ||
          d->behind_offset % kIntentFrameAlign != 0 || d->behind_offset >= capacity ||
          d->behind_offset == d->offset) {
        std::abort();
      }
    }
  }
  auto key = DecodeIntentKey(in);
  if (key.ok() != (size == kIntentKeySize && in.starts_with(kIntentKeyPrefix))) std::abort();
  if (!key.ok() && key.status().code() != Code::kCorruption) std::abort();
  auto entries = DecodeIntentRecord(in);
  if (!entries.ok()) {
    if (entries.status().code() != Code::kCorruption) std::abort();
    return 0;
  }
  size_t used = kIntentHeaderSize;
  for (const IntentEntry& e : *entries) {
    if (e.ptr.hole ? !e.payload.empty() : e.payload.size() != e.ptr.psize) std::abort();
    if (!e.ptr.hole && (e.ptr.psize == 0 || e.ptr.psize > e.ptr.lsize)) std::abort();
    volatile uint8_t sink = 0;
    for (char c : e.payload) sink = sink ^ static_cast<uint8_t>(c);  // ASan checks the bounds
    used += kIntentEntryOverhead + e.payload.size();
  }
  if (used != size) std::abort();
  return 0;
}
