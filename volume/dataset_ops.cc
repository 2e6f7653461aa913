// VolumeManager: rename, hold/release and inherit. Each is one sync task
// that rewrites dataset records only (no block is touched), so each costs
// O(snapshots of the volume) at most. See volume_manager.cc for the theory
// of operation.

#include <ctime>

#include "volume/internal/manager_impl.h"

namespace blockhaus::volume {

using core::SyncContext;

namespace {

// The checks of a rename that need no tables.
Status CheckRenameNames(const std::string& from, const std::string& to) {
  bool from_snap = from.find('@') != std::string::npos;
  bool to_snap = to.find('@') != std::string::npos;
  if (!from_snap) {
    BH_RETURN_IF_ERROR(ValidateVolumeName(from));
    if (to_snap) {
      return BH_ERROR(kInvalidArgument, "cannot rename volume '{}' to snapshot name '{}'", from,
                      to);
    }
    return ValidateVolumeName(to);
  }
  BH_RETURN_IF_ERROR(ValidateSnapshotName(from));
  if (!to_snap) {
    return BH_ERROR(kInvalidArgument, "cannot rename snapshot '{}' to volume name '{}'", from,
                    to);
  }
  BH_RETURN_IF_ERROR(ValidateSnapshotName(to));
  if (SplitSnapshotName(from).first != SplitSnapshotName(to).first) {
    return BH_ERROR(kInvalidArgument,
                    "cannot rename '{}' to '{}': a snapshot stays with its volume", from, to);
  }
  return Status::Ok();
}

}  // namespace

Status VolumeManager::Rename(const std::string& from, const std::string& to) {
  BH_RETURN_IF_ERROR(CheckRenameNames(from, to));
  Impl& m = *impl_;
  std::vector<Dataset> renamed;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    renamed.clear();
    const Dataset* ds = m.Find(from);
    if (ds == nullptr) return BH_ERROR(kNotFound, "'{}' does not exist", from);
    if (m.Find(to)) return BH_ERROR(kAlreadyExists, "cannot rename '{}': '{}' already exists", from, to);
    Dataset d = *ds;
    d.name = to;
    renamed.push_back(d);
    if (ds->is_snapshot()) return Status::Ok();
    for (const Dataset* s : m.SnapshotsOf(ds->id)) {
      Dataset r = *s;
      r.name = to + "@" + SplitSnapshotName(s->name).second;
      BH_RETURN_IF_ERROR(ValidateSnapshotName(r.name));  // the length limit
      renamed.push_back(r);
    }
    return Status::Ok();
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    for (const Dataset& d : renamed) m.ReplaceDataset(ctx, d);
  };
  return m.pool->RunSyncTask(check, sync).status();
}

Status VolumeManager::Hold(const std::string& tag, const std::string& snapshot) {
  BH_RETURN_IF_ERROR(ValidateHoldTag(tag));
  BH_RETURN_IF_ERROR(ValidateSnapshotName(snapshot));
  Impl& m = *impl_;
  Dataset updated;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    const Dataset* ds = m.Find(snapshot);
    if (ds == nullptr) return BH_ERROR(kNotFound, "snapshot '{}' does not exist", snapshot);
    if (ds->holds.contains(tag)) {
      return BH_ERROR(kAlreadyExists, "cannot hold '{}': tag '{}' is already held", snapshot,
                      tag);
    }
    updated = *ds;
    updated.holds[tag] = static_cast<uint64_t>(::time(nullptr));
    return Status::Ok();
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    m.PutDataset(ctx, updated);
  };
  return m.pool->RunSyncTask(check, sync).status();
}

Status VolumeManager::Release(const std::string& tag, const std::string& snapshot) {
  BH_RETURN_IF_ERROR(ValidateHoldTag(tag));
  BH_RETURN_IF_ERROR(ValidateSnapshotName(snapshot));
  Impl& m = *impl_;
  Dataset updated;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    const Dataset* ds = m.Find(snapshot);
    if (ds == nullptr) return BH_ERROR(kNotFound, "snapshot '{}' does not exist", snapshot);
    if (!ds->holds.contains(tag)) {
      return BH_ERROR(kNotFound, "cannot release '{}': no hold with tag '{}'", snapshot, tag);
    }
    updated = *ds;
    updated.holds.erase(tag);
    return Status::Ok();
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    m.PutDataset(ctx, updated);
  };
  return m.pool->RunSyncTask(check, sync).status();
}

namespace {

// Applies zfs inherit of `key` to props (of a volume unless is_snapshot).
Status InheritInto(VolumeProps* p, const std::string& key, bool is_snapshot) {
  if (IsUserProperty(key)) {
    BH_RETURN_IF_ERROR(ValidateUserPropertyName(key));
    p->user.erase(key);
    return Status::Ok();
  }
  if (IsReadOnlyProperty(key)) return BH_ERROR(kInvalidArgument, "property '{}' is read-only", key);
  if (is_snapshot && (key == "compression" || key == "checksum" || key == "readonly")) {
    return BH_ERROR(kInvalidArgument, "property '{}' of a snapshot is read-only", key);
  }
  VolumeProps defaults;
  if (key == "compression") {
    p->compression = defaults.compression;
  } else if (key == "checksum") {
    p->checksum = defaults.checksum;
  } else if (key == "readonly") {
    p->readonly = defaults.readonly;
  } else if (key == "volsize" || key == "refreservation") {
    return BH_ERROR(kInvalidArgument, "property '{}' cannot be inherited", key);
  } else {
    return BH_ERROR(kInvalidArgument, "unknown property '{}'", key);
  }
  p->local.erase(key);
  return Status::Ok();
}

}  // namespace

Status VolumeManager::InheritProperty(const std::string& name, const std::string& key) {
  Impl& m = *impl_;
  Dataset updated;
  auto check = [&](SyncContext&) -> Status {
    MutexLock lock(&m.mu);
    const Dataset* ds = m.Find(name);
    if (ds == nullptr) return BH_ERROR(kNotFound, "'{}' does not exist", name);
    updated = *ds;
    return InheritInto(&updated.props, key, ds->is_snapshot());
  };
  auto sync = [&](SyncContext& ctx) {
    MutexLock lock(&m.mu);
    m.PutDataset(ctx, updated);
  };
  return m.pool->RunSyncTask(check, sync).status();
}

}  // namespace blockhaus::volume
