// fuzz_intent_record: bytes as an intent log record and as its key, the
// metadata a crash leaves for Open to replay (core/txg/intent_format.h).
// A record either decodes into entries that account for every byte, each
// payload exactly its pointer's psize (none for a hole), or is refused
// with Corruption; nothing else, and no read outside the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/txg/intent_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blockhaus;
  using namespace blockhaus::core;
  std::string_view in(reinterpret_cast<const char*>(data), size);
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
