#include "core/txg/intent_format.h"

#include <cstring>

#include "core/base/endian.h"
#include "core/pool/pool.h"

namespace blockhaus::core {
namespace {

const uint8_t* Bytes(std::string_view s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

}  // namespace

std::string EncodeIntentKey(uint64_t record_txg, uint64_t seq) {
  std::string key(kIntentKeyPrefix);
  PutBE64(&key, record_txg);
  PutBE64(&key, seq);
  return key;
}

Result<std::pair<uint64_t, uint64_t>> DecodeIntentKey(std::string_view key) {
  if (key.size() != kIntentKeySize || !key.starts_with(kIntentKeyPrefix)) {
    return BH_ERROR(kCorruption, "intent log key of {} bytes is malformed", key.size());
  }
  const uint8_t* p = Bytes(key) + kIntentKeyPrefix.size();
  return std::pair{DecodeBE64(p), DecodeBE64(p + 8)};
}

void StartIntentRecord(std::string* out) {
  out->clear();
  out->append(kIntentHeaderSize, '\0');
  (*out)[0] = static_cast<char>(kIntentVersion);
}

uint8_t* AppendIntentEntry(std::string* out, uint64_t lineage, uint64_t blkno, uint64_t txg,
                           const BlockPtr& ptr) {
  PutLE64(out, lineage);
  PutLE64(out, blkno);
  PutLE64(out, txg);
  BlockPtr stored = ptr;
  stored.offset = 0;
  if (stored.hole) stored.psize = 0;
  out->append(EncodeBlockPtr(stored));
  if (stored.hole) return nullptr;
  size_t at = out->size();
  out->resize(at + stored.psize);
  return reinterpret_cast<uint8_t*>(out->data()) + at;
}

void FinishIntentRecord(std::string* out, uint32_t count) {
  EncodeLE32(reinterpret_cast<uint8_t*>(out->data()) + 4, count);
}

Result<std::vector<IntentEntry>> DecodeIntentRecord(std::string_view record) {
  if (record.size() < kIntentHeaderSize) {
    return BH_ERROR(kCorruption, "intent log record of {} bytes is truncated", record.size());
  }
  const uint8_t* p = Bytes(record);
  if (p[0] != kIntentVersion) {
    return BH_ERROR(kCorruption, "intent log record version {} is unknown", p[0]);
  }
  if (p[1] != 0 || p[2] != 0 || p[3] != 0) {
    return BH_ERROR(kCorruption, "intent log record has unknown flags");
  }
  const uint32_t count = DecodeLE32(p + 4);
  // Every entry takes at least its fixed part: a count beyond that is
  // corrupt, and must not size the vector.
  if (count > (record.size() - kIntentHeaderSize) / kIntentEntryOverhead) {
    return BH_ERROR(kCorruption, "intent log record claims {} entries in {} bytes", count,
                    record.size());
  }
  std::vector<IntentEntry> entries;
  entries.reserve(count);
  size_t at = kIntentHeaderSize;
  for (uint32_t i = 0; i < count; ++i) {
    if (record.size() - at < kIntentEntryOverhead) {
      return BH_ERROR(kCorruption, "intent log entry {} is truncated", i);
    }
    IntentEntry e;
    e.lineage = DecodeLE64(p + at);
    e.blkno = DecodeLE64(p + at + 8);
    e.txg = DecodeLE64(p + at + 16);
    BH_ASSIGN_OR_RETURN(e.ptr, DecodeBlockPtr(record.substr(at + 24, kBlockPtrSize)));
    at += kIntentEntryOverhead;
    if (e.ptr.hole) {
      if (e.ptr.psize != 0) {
        return BH_ERROR(kCorruption, "intent log entry {} is a hole with {} bytes", i,
                        e.ptr.psize);
      }
    } else {
      if (e.ptr.lsize < kMinBlockSize || e.ptr.lsize > kMaxBlockSize) {
        return BH_ERROR(kCorruption, "intent log entry {} has block size {}", i, e.ptr.lsize);
      }
      if (record.size() - at < e.ptr.psize) {
        return BH_ERROR(kCorruption, "intent log entry {} is missing {} payload bytes", i,
                        e.ptr.psize - (record.size() - at));
      }
      e.payload = record.substr(at, e.ptr.psize);
      at += e.ptr.psize;
    }
    entries.push_back(e);
  }
  if (at != record.size()) {
    return BH_ERROR(kCorruption, "intent log record has {} trailing bytes", record.size() - at);
  }
  return entries;
}

}  // namespace blockhaus::core
