// The intent log's ring file (D54); the format is in intent_file.h.

#include "core/txg/intent_file.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include "core/base/endian.h"

namespace blockhaus::core {

namespace {

// The check of a frame: its first 32 header bytes, then its body.
uint64_t FrameCheck(uint64_t salt, const uint8_t* header, std::string_view body) {
  XXH3_state_t state;
  // A state on the stack must be initialized: the reset keeps the secret
  // it derived for a seed when the state's (garbage) seed matches it.
  XXH3_INITSTATE(&state);
  XXH3_64bits_reset_withSeed(&state, salt);
  XXH3_64bits_update(&state, header, 32);
  XXH3_64bits_update(&state, body.data(), body.size());
  return XXH3_64bits_digest(&state);
}

uint64_t RoundUp(uint64_t n) { return (n + kIntentFrameAlign - 1) & ~(kIntentFrameAlign - 1); }

}  // namespace

uint64_t IntentFrameSpan(uint64_t body_len) { return RoundUp(kIntentFrameHeaderSize + body_len); }

void EncodeIntentFrame(uint64_t salt, uint64_t seq, uint64_t record_txg, std::string_view body,
                       std::string* out) {
  const uint64_t span = IntentFrameSpan(body.size());
  out->assign(span, '\0');
  auto* h = reinterpret_cast<uint8_t*>(out->data());
  EncodeLE32(h, kIntentFrameMagic);
  EncodeLE16(h + 4, kIntentFrameVersion);
  EncodeLE64(h + 8, seq);
  EncodeLE64(h + 16, record_txg);
  EncodeLE32(h + 24, static_cast<uint32_t>(body.size()));
  EncodeLE32(h + 28, static_cast<uint32_t>(span));
  EncodeLE64(h + 32, FrameCheck(salt, h, body));
  std::memcpy(h + kIntentFrameHeaderSize, body.data(), body.size());
}

std::optional<uint64_t> IntentRing::Place(uint64_t span) const {
  if (span > capacity) return std::nullopt;
  if (empty()) return tail + span <= capacity ? tail : 0;
  if (tail > head_offset) {  // free: [tail, capacity) and [0, head_offset)
    if (tail + span <= capacity) return tail;
    if (span <= head_offset) return 0;
    return std::nullopt;
  }
  // Wrapped (the tail is behind the head), or full when they meet.
  if (tail + span <= head_offset) return tail;
  return std::nullopt;
}

uint64_t IntentRing::used() const {
  if (empty()) return 0;
  return tail > head_offset ? tail - head_offset : capacity - head_offset + tail;
}

Result<IntentScanEnd> ScanIntentFrames(Vdev& vdev, uint64_t salt, uint64_t seq, uint64_t offset,
                                       const std::function<Status(const IntentFrame&)>& fn) {
  const uint64_t capacity = vdev.size();
  std::vector<uint8_t> first(kIntentFrameAlign);
  IntentFrame frame;
  // The header of a frame of `want` at `at`, whole but not yet checked:
  // its span, or nullopt.
  auto header = [&](uint64_t want, uint64_t at) -> Result<std::optional<uint64_t>> {
    if (at % kIntentFrameAlign != 0 || at + kIntentFrameAlign > capacity) {
      return std::optional<uint64_t>();
    }
    BH_RETURN_IF_ERROR(vdev.Read(at, ByteSpan(first.data(), first.size())));
    const uint8_t* h = first.data();
    const uint32_t span = DecodeLE32(h + 28);
    if (DecodeLE32(h) != kIntentFrameMagic || DecodeLE16(h + 4) != kIntentFrameVersion ||
        DecodeLE64(h + 8) != want || span != IntentFrameSpan(DecodeLE32(h + 24)) ||
        span > capacity - at) {
      return std::optional<uint64_t>();
    }
    return std::optional<uint64_t>(span);
  };
  // The frame of `want` at `at` into `frame`, when it is there whole.
  auto load = [&](uint64_t want, uint64_t at) -> Result<bool> {
    BH_ASSIGN_OR_RETURN(std::optional<uint64_t> span, header(want, at));
    if (!span) return false;
    const uint8_t* h = first.data();
    const uint32_t body_len = DecodeLE32(h + 24);
    frame.seq = want;
    frame.record_txg = DecodeLE64(h + 16);
    frame.offset = at;
    frame.span = *span;
    frame.body.resize(body_len);
    const size_t in_first = std::min<size_t>(body_len, first.size() - kIntentFrameHeaderSize);
    std::memcpy(frame.body.data(), h + kIntentFrameHeaderSize, in_first);
    if (body_len > in_first) {
      BH_RETURN_IF_ERROR(vdev.Read(
          at + kIntentFrameAlign,
          ByteSpan(reinterpret_cast<uint8_t*>(frame.body.data()) + in_first, body_len - in_first)));
    }
    return FrameCheck(salt, h, frame.body) == DecodeLE64(h + 32);
  };
  // Follows the frames from `next_seq` at `tail` (at the end of the last
  // one, or at 0 where the writer wrapped), calling `call` with each, and
  // leaves both past the last one found.
  auto follow = [&](uint64_t& next_seq, uint64_t& tail,
                    const std::function<Status(const IntentFrame&)>& call) -> Status {
    for (uint64_t at = tail;;) {
      BH_ASSIGN_OR_RETURN(bool found, load(next_seq, at));
      if (!found && at != 0) {
        at = 0;
        BH_ASSIGN_OR_RETURN(found, load(next_seq, at));
      }
      if (!found) return Status::Ok();
      BH_RETURN_IF_ERROR(call(frame));
      ++next_seq;
      at += frame.span;
      tail = at;
    }
  };
  IntentScanEnd end{seq, offset, std::nullopt};
  BH_RETURN_IF_ERROR(follow(end.next_seq, end.tail, fn));
  // The end, or a damaged frame? Only a frame of the seq expected with a
  // whole header can have been written whole, and its successor is where
  // the writer puts it. Frames behind a damaged one are followed to their
  // end (without `fn`), past any further damage.
  const auto skip = [](const IntentFrame&) { return Status::Ok(); };
  uint64_t damaged_seq = end.next_seq;
  uint64_t damaged_tail = end.tail;
  for (bool more = true; more;) {
    more = false;
    for (uint64_t at : {damaged_tail, uint64_t{0}}) {
      BH_ASSIGN_OR_RETURN(std::optional<uint64_t> span, header(damaged_seq, at));
      if (!span) continue;
      for (uint64_t next : {at + *span, uint64_t{0}}) {
        if (next == at) continue;
        BH_ASSIGN_OR_RETURN(bool behind, load(damaged_seq + 1, next));
        if (!behind) continue;
        if (!end.damaged) end.damaged = IntentDamage{damaged_seq, at, next, 0};
        ++damaged_seq;
        damaged_tail = next;
        BH_RETURN_IF_ERROR(follow(damaged_seq, damaged_tail, skip));
        end.damaged->after_seq = damaged_seq;
        more = true;
        break;
      }
      if (more) break;
    }
  }
  return end;
}

}  // namespace blockhaus::core
