// Scrub: verify every block and the allocator against the block map.
//
// Runs with the pool's sync_mu held, so no txg commits meanwhile and no
// frees are deferred: the block map in the store and the allocator in memory
// describe the same txg. Every non-hole version in "blocks" is read and its
// checksum verified; the extents they occupy are merged and compared with
// the allocator's allocated extents, which must be equal (a block outside
// them is double-allocatable; an allocated range no block uses is a leak).
// The births index and the dead list are checked against "blocks" too, and
// every lineage's space tallies against a recount (blockmap/accounting.cc).

#include <algorithm>
#include <set>

#include "core/base/logging.h"
#include "core/pool/internal/pool_impl.h"

namespace blockhaus::core {
namespace {

constexpr size_t kMaxProblems = 100;

void Problem(ScrubReport& r, std::string text) {
  if (r.problems.size() < kMaxProblems) r.problems.push_back(std::move(text));
}

// Merges sorted extents; overlapping ones count as double allocations.
std::vector<Extent> MergeExtents(std::vector<Extent> in, ScrubReport& r) {
  std::sort(in.begin(), in.end(),
            [](const Extent& a, const Extent& b) { return a.offset < b.offset; });
  std::vector<Extent> out;
  for (const Extent& e : in) {
    if (!out.empty() && e.offset < out.back().end()) {
      r.double_allocated++;
      Problem(r, fmt::format("extent at {} is used by two blocks", e.offset));
      out.back().length = std::max(out.back().end(), e.end()) - out.back().offset;
    } else if (!out.empty() && e.offset == out.back().end()) {
      out.back().length += e.length;
    } else {
      out.push_back(e);
    }
  }
  return out;
}

uint64_t Total(const std::vector<Extent>& v) {
  uint64_t t = 0;
  for (const Extent& e : v) t += e.length;
  return t;
}

// Bytes of `a` not covered by `b` (both merged and sorted).
uint64_t Uncovered(const std::vector<Extent>& a, const std::vector<Extent>& b,
                   uint64_t* first_offset) {
  uint64_t missing = 0;
  size_t j = 0;
  auto gap = [&](uint64_t from, uint64_t to) {
    if (missing == 0) *first_offset = from;
    missing += to - from;
  };
  for (const Extent& e : a) {
    uint64_t pos = e.offset;
    while (pos < e.end()) {
      while (j < b.size() && b[j].end() <= pos) ++j;
      if (j == b.size() || b[j].offset >= e.end()) {
        gap(pos, e.end());
        break;
      }
      if (b[j].offset > pos) gap(pos, b[j].offset);
      pos = std::min(b[j].end(), e.end());
    }
  }
  return missing;
}

Status CheckBlocks(Pool::Impl& p, ScrubReport& r, std::vector<Extent>& used,
                   uint64_t* versions) {
  auto it = p.kv->NewIterator(kCfBlocks);
  std::vector<uint8_t> buf;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ++*versions;
    if (it->key().size() != kBlockKeySize) {
      r.decode_errors++;
      Problem(r, "block key of bad size");
      continue;
    }
    BlockKey key = DecodeBlockKey(it->key());
    Result<BlockPtr> ptr = DecodeBlockPtr(it->value());
    if (!ptr.ok()) {
      r.decode_errors++;
      Problem(r, fmt::format("lineage {} block {}: {}", key.lineage, key.blkno,
                             ptr.status().message()));
      continue;
    }
    if (ptr->hole) continue;
    r.blocks_checked++;
    buf.resize(ptr->lsize);
    Status s = p.ReadPtr(*ptr, key.lineage, key.blkno, buf);
    r.bytes_checked += ptr->psize;
    if (!s.ok()) {
      r.checksum_errors++;
      Problem(r, s.ToString());
    }
    used.push_back(Extent{ptr->offset, p.alloc->RoundUp(ptr->psize)});
  }
  return it->status();
}

// Lineages being destroyed lose their indexes first (DestroyLineage), so
// their versions are left out of the index checks.
Status CheckIndexes(Pool::Impl& p, ScrubReport& r, uint64_t versions) {
  std::set<uint64_t> destroying;
  {
    MutexLock guard(&p.mu);
    for (const auto& [id, info] : p.lineages) {
      if (info.destroying) destroying.insert(id);
    }
  }
  auto bl = p.kv->NewIterator(kCfBlocks);
  for (bl->SeekToFirst(); bl->Valid(); bl->Next()) {
    if (bl->key().size() == kBlockKeySize && destroying.contains(DecodeBlockKey(bl->key()).lineage)) {
      --versions;
    }
  }
  BH_RETURN_IF_ERROR(bl->status());
  uint64_t births = 0;
  auto bi = p.kv->NewIterator(kCfBirths);
  for (bi->SeekToFirst(); bi->Valid(); bi->Next()) {
    if (bi->key().size() != kBirthKeySize || !destroying.contains(DecodeBirthKey(bi->key()).lineage)) {
      ++births;
    }
  }
  BH_RETURN_IF_ERROR(bi->status());
  if (births != versions) {
    r.decode_errors++;
    Problem(r, fmt::format("births index has {} entries for {} versions", births, versions));
  }
  auto di = p.kv->NewIterator(kCfDeadList);
  for (di->SeekToFirst(); di->Valid(); di->Next()) {
    if (di->key().size() != kDeadKeySize) {
      r.decode_errors++;
      Problem(r, "dead-list key of bad size");
      continue;
    }
    DeadKey dk = DecodeDeadKey(di->key());
    if (destroying.contains(dk.lineage)) continue;
    BH_ASSIGN_OR_RETURN(auto v, p.kv->Get(kCfBlocks, EncodeBlockKey(dk.lineage, dk.blkno, dk.birth)));
    if (!v) {
      r.decode_errors++;
      Problem(r, fmt::format("dead list names lineage {} block {} birth {}, which is gone",
                             dk.lineage, dk.blkno, dk.birth));
    }
  }
  return di->status();
}

}  // namespace

Result<ScrubReport> Pool::Scrub() {
  Impl& p = *impl_;
  MutexLock sync_lock(&p.sync_mu);
  ScrubReport r;
  std::vector<Extent> used;
  uint64_t versions = 0;
  BH_RETURN_IF_ERROR(CheckBlocks(p, r, used, &versions));
  BH_RETURN_IF_ERROR(CheckIndexes(p, r, versions));
  std::vector<Extent> referenced = MergeExtents(std::move(used), r);
  std::vector<Extent> allocated;
  {
    MutexLock lock(&p.alloc_mu);
    allocated = p.alloc->AllocatedExtents();
  }
  std::vector<std::string> space_problems;
  BH_RETURN_IF_ERROR(CheckSpace(p, r, &space_problems));
  for (std::string& text : space_problems) Problem(r, std::move(text));
  r.referenced_bytes = Total(referenced);
  r.allocated_bytes = Total(allocated);
  uint64_t where = 0;
  r.leaked_bytes = Uncovered(allocated, referenced, &where);
  if (r.leaked_bytes) Problem(r, fmt::format("{} bytes leaked, first at {}", r.leaked_bytes, where));
  uint64_t unallocated = Uncovered(referenced, allocated, &where);
  if (unallocated) {
    r.double_allocated++;
    Problem(r, fmt::format("{} bytes in use but free in the allocator, first at {}",
                           unallocated, where));
  }
  return r;
}

}  // namespace blockhaus::core
