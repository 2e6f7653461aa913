// The intent log's own file (D54): frames, the ring they go around, and
// the scan that finds them again. The records inside the frames are those
// of txg/intent_format.h; intent_log.cc decides what goes in them.
//
// On disk (FORMAT; the file is "<pool dir>/intent", its size the ring's
// capacity, fixed when it is created): a ring of frames, each at a 4 KiB
// aligned offset, each written whole with one write and a Sync:
//   u32 magic        kIntentFrameMagic
//   u16 version      kIntentFrameVersion
//   u16 reserved     0
//   u64 seq          rising by one a frame, never reused; each read-write
//                    open skips past any the ring may hold (D57)
//   u64 record_txg   the txg that was open when the record was built
//   u32 body_len     bytes of the record (intent_format.h) that follow
//   u32 span         bytes the frame takes: header + body, rounded up to
//                    4 KiB; the next frame starts span bytes later, or at 0
//   u64 check        XXH3-64 of bytes [0, 32) and the body, seeded with the
//                    pool's intent salt (a random number in its metadata)
// The salt keeps a frame-shaped run of a guest's own data, written into a
// record's payload, from passing for a frame of the log after a crash.
//
// Where the live frames are is in the metadata store: the commit that makes
// records obsolete puts the head (seq, offset) of the first frame that may
// still matter (kMetaKeyIntentHead). A scan starts there and follows the
// frames whose seq is the next one expected, at the end of the last one or,
// when that is not it, at offset 0 (the writer wrapped); the first place
// that holds neither ends the log (a frame torn by a crash, or one of an
// older lap). Frames are written one at a time, each synced before the
// next is built, so a torn frame is always the last: where the frame
// expected is there by its header but fails its check, and the frame of
// the seq after it follows (at its end or at 0) and passes, that frame was
// damaged after its write, and the scan says so instead of ending the log
// quietly. The file is only ever overwritten in place once written, so a
// frame's Sync is an fdatasync with no file system metadata to commit.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"
#include "core/io/vdev.h"

namespace blockhaus::core {

inline constexpr uint32_t kIntentFrameMagic = 0x4C494842;  // "BHIL"
inline constexpr uint16_t kIntentFrameVersion = 1;
inline constexpr size_t kIntentFrameHeaderSize = 40;
inline constexpr uint64_t kIntentFrameAlign = 4096;
// The smallest ring a pool opens (a few maximal records).
inline constexpr uint64_t kIntentFileMinBytes = 1ull << 20;

// Bytes a frame of a `body_len` byte record takes in the ring.
uint64_t IntentFrameSpan(uint64_t body_len);

// The frame of a record: header, body, zeros up to its span.
void EncodeIntentFrame(uint64_t salt, uint64_t seq, uint64_t record_txg, std::string_view body,
                       std::string* out);

// Where the frames of the ring are: the first that may still matter (the
// head, put by the last commit that made records obsolete) and where the
// next goes. A record is live from its write until a commit moves the
// head past it.
struct IntentRing {
  uint64_t capacity = 0;  // bytes, a multiple of kIntentFrameAlign
  uint64_t head_seq = 1;
  uint64_t head_offset = 0;
  uint64_t next_seq = 1;
  uint64_t tail = 0;  // where the frame of next_seq goes, if it fits

  bool empty() const { return head_seq == next_seq; }
  // Where a frame of `span` bytes goes without overwriting a live one:
  // at the tail, or at 0 when it does not fit before the end; nullopt
  // when the live frames leave no room for it.
  std::optional<uint64_t> Place(uint64_t span) const;
  // Bytes between the head and the tail (what the live frames hold).
  uint64_t used() const;
};

struct IntentFrame {
  uint64_t seq = 0;
  uint64_t record_txg = 0;
  uint64_t offset = 0;
  uint64_t span = 0;
  std::string body;
};

// A frame that fails its check with later frames behind it (see above).
struct IntentDamage {
  uint64_t seq = 0;            // the damaged frame's
  uint64_t offset = 0;
  uint64_t behind_offset = 0;  // where the frame of seq + 1 is
  uint64_t after_seq = 0;      // one past the last frame that follows it
};

// Where a scan ended: the seq the next frame takes, and where it would go
// (the end of the last frame found, or the start when none was); and
// whether the log ended at a damaged frame rather than at its end.
struct IntentScanEnd {
  uint64_t next_seq = 0;
  uint64_t tail = 0;
  std::optional<IntentDamage> damaged;
};

// Calls `fn` with the frames from `seq` at `offset` on, in order, until the
// log ends (see above) or `fn` fails. The frames behind a damaged one are
// not passed to `fn`. Errors: what reading the vdev or `fn` returns.
Result<IntentScanEnd> ScanIntentFrames(Vdev& vdev, uint64_t salt, uint64_t seq, uint64_t offset,
                                       const std::function<Status(const IntentFrame&)>& fn);

}  // namespace blockhaus::core
