// VolumeManager::Diff: changed byte ranges between two views, from the
// block map's births index only (Pool::ChangedBlocks): no data is read and
// the cost is proportional to the blocks born after the older view.
//
// Pairs accepted (zfs diff: snapshot, then a later snapshot or the head):
//   * vol@a, vol@b (b newer) or vol: one lineage, candidates born after a;
//   * vol@a, clone (or clone@x) where the clone's origin is vol@a: the
//     clone's lineage holds only what it changed, so every version it has
//     is a candidate, compared against the origin view.

#include "volume/internal/manager_impl.h"

namespace blockhaus::volume {

namespace {

std::vector<VolumeManager::ByteRange> Coalesce(const std::vector<uint64_t>& blocks, uint32_t bs) {
  std::vector<VolumeManager::ByteRange> out;
  for (uint64_t b : blocks) {
    uint64_t off = b * bs;
    if (!out.empty() && out.back().offset + out.back().length == off) {
      out.back().length += bs;
    } else {
      out.push_back({off, bs});
    }
  }
  return out;
}

}  // namespace

Result<std::vector<VolumeManager::ByteRange>> VolumeManager::Diff(const std::string& from,
                                                                  const std::string& to) {
  BH_RETURN_IF_ERROR(ValidateSnapshotName(from));
  Impl& m = *impl_;
  Dataset a, b;
  const Dataset* b_volume = nullptr;
  {
    MutexLock lock(&m.mu);
    const Dataset* fa = m.Find(from);
    if (fa == nullptr) return BH_ERROR(kNotFound, "snapshot '{}' does not exist", from);
    const Dataset* fb = m.Find(to);
    if (fb == nullptr) return BH_ERROR(kNotFound, "'{}' does not exist", to);
    a = *fa;
    b = *fb;
    b_volume = b.is_snapshot() ? &m.by_id.at(b.volume_id) : fb;
    if (b_volume->id == a.volume_id) {
      if (b.is_snapshot() && b.txg <= a.txg) {
        return BH_ERROR(kInvalidArgument, "'{}' is not newer than '{}'", to, from);
      }
    } else if (b_volume->origin_id != a.id) {
      return BH_ERROR(kInvalidArgument,
                      "cannot diff '{}' and '{}': the second must be a later snapshot of the "
                      "same volume, the volume itself, or a clone of the first", from, to);
    }
  }
  bool same_volume = b.is_snapshot() ? b.volume_id == a.volume_id : b.id == a.volume_id;
  uint64_t b_view = b.is_snapshot() ? b.txg : core::kHeadView;
  if (!b.is_snapshot()) BH_RETURN_IF_ERROR(m.pool->Flush().status());
  BH_ASSIGN_OR_RETURN(auto blocks, m.pool->ChangedBlocks(a.lineage, a.txg, b.lineage, b_view,
                                                         same_volume ? a.txg : 0));
  return Coalesce(blocks, b.props.volblocksize);
}

}  // namespace blockhaus::volume
