// The reference model for crash tests: what a block may contain after a
// crash, given the operations acknowledged before it.
//
// Every write stores PatternBlock(kBlockSize, seed, tag) with a tag unique in
// the run, so a block's content names the write that produced it (tag 0 is
// all zeros: never written or unmapped). The workload logs each operation
// before issuing it and marks flushes: FlushStart before Flush(), FlushDone
// after it returned Ok. Operations logged before the FlushStart of the last
// FlushDone are durable; later ones may or may not have survived.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace blockhaus::testing {

inline constexpr size_t kCrashBlockSize = 16384;

enum class CrashOp : uint8_t { kWrite = 'W', kUnmap = 'U', kFlushStart = 'S', kFlushDone = 'F' };

struct CrashRecord {
  CrashOp op;
  uint64_t blkno = 0;
  uint64_t tag = 0;  // 0 for unmap
};

class CrashModel {
 public:
  // The state every block had when this round started (tag per block).
  explicit CrashModel(std::map<uint64_t, uint64_t> start) : known_(std::move(start)) {}

  // The tags block `blkno` may hold after the crash.
  std::set<uint64_t> Acceptable(const std::vector<CrashRecord>& log, uint64_t blkno) const {
    size_t durable = DurablePrefix(log);
    uint64_t value = Known(blkno);
    for (size_t i = 0; i < durable; ++i) {
      if (IsData(log[i]) && log[i].blkno == blkno) value = log[i].tag;
    }
    std::set<uint64_t> ok = {value};
    for (size_t i = durable; i < log.size(); ++i) {
      if (IsData(log[i]) && log[i].blkno == blkno) ok.insert(log[i].tag);
    }
    return ok;
  }

  // Blocks any record of the log touches, plus those known before.
  std::set<uint64_t> Touched(const std::vector<CrashRecord>& log) const {
    std::set<uint64_t> out;
    for (const auto& [b, t] : known_) out.insert(b);
    for (const CrashRecord& r : log) {
      if (IsData(r)) out.insert(r.blkno);
    }
    return out;
  }

  static size_t DurablePrefix(const std::vector<CrashRecord>& log) {
    size_t durable = 0, last_start = 0;
    for (size_t i = 0; i < log.size(); ++i) {
      if (log[i].op == CrashOp::kFlushStart) last_start = i;
      if (log[i].op == CrashOp::kFlushDone) durable = last_start;
    }
    return durable;
  }

 private:
  static bool IsData(const CrashRecord& r) {
    return r.op == CrashOp::kWrite || r.op == CrashOp::kUnmap;
  }
  uint64_t Known(uint64_t blkno) const {
    auto it = known_.find(blkno);
    return it == known_.end() ? 0 : it->second;
  }
  std::map<uint64_t, uint64_t> known_;
};

}  // namespace blockhaus::testing
