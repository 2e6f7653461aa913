// On-disk format of the intent log's records (FORMAT VERSION
// kIntentVersion; D46).
//
// Since pool format 4 (D54) a record is the body of a frame in the pool's
// ring file (txg/intent_file.h). Pools of format 3 kept them in the
// metadata store's "default" column family, beside the pool-wide keys,
// written with a synced RocksDB write each; Open still replays those:
//   key    "intent" | record_txg u64 BE | seq u64 BE   (22 bytes)
//          record_txg is the txg that was open when the record was written;
//          the commit of txg T deletes every record with record_txg <= T.
//          seq orders records written while the same txg was open.
//   value  IntentRecordPhys, little-endian:
//            u8  version       kIntentVersion
//            u8  reserved[3]   0
//            u32 count         entries that follow
//          then `count` entries, each:
//            u64 lineage
//            u64 blkno
//            u64 txg           the uncommitted txg the block belonged to
//            BlockPtrPhys      56 bytes (blockmap_format.h); offset 0
//            u8  payload[psize]  the stored bytes (none for a hole)
// An entry is a block as its writer stored it: compressed or not, with the
// checksum over the payload, so replay verifies it and places it as is.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"
#include "core/blockmap/blockmap_format.h"

namespace blockhaus::core {

inline constexpr uint8_t kIntentVersion = 1;
inline constexpr std::string_view kIntentKeyPrefix = "intent";
inline constexpr size_t kIntentKeySize = 6 + 16;
inline constexpr size_t kIntentHeaderSize = 8;
// Bytes of an entry besides its payload.
inline constexpr size_t kIntentEntryOverhead = 24 + kBlockPtrSize;

std::string EncodeIntentKey(uint64_t record_txg, uint64_t seq);
// Errors: Corruption (size or prefix).
Result<std::pair<uint64_t, uint64_t>> DecodeIntentKey(std::string_view key);

struct IntentEntry {
  uint64_t lineage = 0;
  uint64_t blkno = 0;
  uint64_t txg = 0;
  BlockPtr ptr;               // offset is meaningless here
  std::string_view payload;   // into the decoded record; empty for a hole
};

// Builds a record: header, then AppendIntentEntry per block, then
// FinishIntentRecord sets the count.
void StartIntentRecord(std::string* out);
// Appends an entry whose payload the caller writes next: returns where
// (ptr.psize bytes, uninitialized) for a block, null for a hole.
uint8_t* AppendIntentEntry(std::string* out, uint64_t lineage, uint64_t blkno, uint64_t txg,
                           const BlockPtr& ptr);
void FinishIntentRecord(std::string* out, uint32_t count);

// Errors: Corruption (truncated, trailing bytes, unknown version, a pointer
// that does not decode, sizes out of range).
Result<std::vector<IntentEntry>> DecodeIntentRecord(std::string_view record);

}  // namespace blockhaus::core
