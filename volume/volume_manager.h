// VolumeManager: volumes, snapshots and clones of one pool.
//
// Every change is a core sync task (check, then sync) so it commits
// atomically with a txg and is durable when the call returns. Snapshots of
// several volumes taken in one call share one txg. Destroys return at once:
// the space they release is freed by the coalescing worker in bounded steps,
// one per txg, from a persisted job queue that survives crashes and restarts
// (see volume_manager.cc).
//
// Errors: InvalidArgument (names, sizes, properties), NotFound,
// AlreadyExists, FailedPrecondition (a forbidden destroy or rollback: the
// message says which flag would allow it), Unavailable (pool suspended).
// Thread safety: thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/pool/pool.h"
#include "volume/block_device.h"
#include "volume/dataset.h"
#include "volume/space.h"

namespace blockhaus::volume {

struct CoalescerStatus {
  uint64_t jobs_pending = 0;
  uint64_t bytes_freed = 0;          // by the worker since the manager opened
  uint64_t pending_bytes_freed = 0;  // progress of the pending jobs so far
};

struct VolumeManagerOptions {
  // Run the coalescing worker thread. Default true.
  bool start_coalescer = true;
  // Block versions freed per worker step (one step per txg). Default 4096.
  uint64_t coalesce_batch = 4096;
};

class VolumeManager {
 public:
  // Loads the datasets of `pool` (not owned; must outlive the manager).
  static Result<std::unique_ptr<VolumeManager>> Open(core::Pool* pool,
                                                     const VolumeManagerOptions& options = {});
  ~VolumeManager();

  // REQUIRES: props.volsize > 0, a multiple of volblocksize.
  Status CreateVolume(const std::string& name, const VolumeProps& props);
  // Takes all snapshots in one txg, or none.
  Status Snapshot(const std::vector<std::string>& names);
  // Rolls a volume back to its snapshot; newer snapshots are destroyed only
  // with destroy_newer (zfs rollback -r).
  Status Rollback(const std::string& snapshot, bool destroy_newer);
  Status Clone(const std::string& snapshot, const std::string& name,
               const std::map<std::string, std::string>& props);
  // recursive: also the volume's snapshots (-r); clones: also clones of
  // them, recursively (-R).
  Status Destroy(const std::string& name, bool recursive, bool clones);
  // What Destroy with the same arguments would destroy, in order, and the
  // bytes each object frees (exact, from the space tallies; the sum is what
  // the pool gets back). Changes nothing. Errors: as Destroy's check.
  Result<std::vector<DestroyItem>> PlanDestroy(const std::string& name, bool recursive,
                                               bool clones) const;

  // Renames a volume (its snapshots follow: "vol@s" -> "new@s") or a
  // snapshot within its volume ("vol@a" -> "vol@b"). Identity (id, guid),
  // holds, clones and open devices are unaffected.
  // Errors: InvalidArgument (names; a snapshot renamed to another volume or
  // to a volume name, a volume to a snapshot name), NotFound, AlreadyExists.
  Status Rename(const std::string& from, const std::string& to);

  // zfs hold/release: a held snapshot cannot be destroyed (not even by
  // destroy -r/-R or rollback -r, which are refused whole).
  // Errors: InvalidArgument (tag, not a snapshot), NotFound (snapshot; a
  // release of a tag not held), AlreadyExists (the tag is already held).
  Status Hold(const std::string& tag, const std::string& snapshot);
  Status Release(const std::string& tag, const std::string& snapshot);

  // zfs inherit for a zvol: removes a user property; compression,
  // checksum and readonly return to their defaults.
  // Errors: InvalidArgument (read-only, unknown, or not inheritable:
  // volsize, volblocksize, refreservation; native properties of a
  // snapshot), NotFound.
  Status InheritProperty(const std::string& name, const std::string& key);

  // Sets volsize. Growing is always allowed. Shrinking below written data
  // needs `force`; the blocks beyond the new end then read as zeros and
  // their space is freed (as by unmap: snapshots keep what they see), in
  // the resize's own txg, at a cost proportional to the versions stored
  // beyond the new end. A thick volume's refreservation follows.
  // Errors: InvalidArgument (not a volume; size zero or not a multiple of
  // volblocksize), FailedPrecondition (data beyond the new end and no
  // force), NotFound.
  Status Resize(const std::string& name, uint64_t volsize, bool force);

  // zfs promote: the clone takes over its origin snapshot and every older
  // snapshot of the origin's volume (renamed clone@snap), and the origin's
  // own origin; the former origin volume becomes a clone of the promoted
  // one's snapshot. One sync task, cost proportional to the snapshots and
  // to the blocks the two volumes changed since the origin snapshot
  // (SyncContext::PromoteLineage), never to the volume size.
  // Errors: NotFound, InvalidArgument (a snapshot name),
  // FailedPrecondition (not a clone; a snapshot name taken in both).
  Status Promote(const std::string& clone);

  // Changed byte ranges between snapshot `from` and `to` (a later snapshot
  // of the same volume, the volume itself, or a clone of `from` or one of
  // its snapshots), from metadata only: cost proportional to the blocks
  // born after `from`. Ranges are block aligned, sorted, coalesced.
  // Errors: NotFound, InvalidArgument (not a snapshot; unrelated datasets;
  // `to` older than `from`).
  struct ByteRange {
    uint64_t offset = 0;
    uint64_t length = 0;
    bool operator==(const ByteRange&) const = default;
  };
  Result<std::vector<ByteRange>> Diff(const std::string& from, const std::string& to);

  std::vector<Dataset> List() const;
  Result<Dataset> Get(const std::string& name) const;
  // Sets a property that may change after create (compression, checksum,
  // readonly, volsize, user properties). volsize goes to Resize without
  // force.
  Status SetProperty(const std::string& name, const std::string& key, const std::string& value);

  // The space properties of a dataset as of the last commit (space.h).
  Result<DatasetSpace> Space(const Dataset& ds) const;
  // zfs "available": what a volume can still write (the pool's unreserved
  // free space plus what is left of its own reservation).
  uint64_t Available(const Dataset& ds) const;

  // A volume opens read-write (unless readonly), a snapshot read-only.
  Result<std::unique_ptr<BlockDevice>> OpenDevice(const std::string& name);

  CoalescerStatus coalescer() const;
  // Runs worker steps on the calling thread until no job is left or
  // `max_steps` steps ran. Returns the steps taken.
  Result<uint64_t> DrainCoalescer(uint64_t max_steps);

  struct Impl;

 private:
  explicit VolumeManager(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether `key` names a read-only (computed or create-time) property.
bool IsReadOnlyProperty(std::string_view key);

// Whether `key` names a user property (it contains ':', as in zfs).
bool IsUserProperty(std::string_view key);

// zfsprops(7)'s rules for a user property name: contains ':', at most 256
// characters of lower-case letters, digits and ': - . _', no leading '-'.
// Errors: InvalidArgument saying which rule the name breaks.
Status ValidateUserPropertyName(std::string_view key);

// Parses a property assignment for create/clone/set into props.
// Errors: InvalidArgument naming the property and the accepted values.
Status ApplyProperty(VolumeProps* props, const std::string& key, const std::string& value,
                     bool at_create);

}  // namespace blockhaus::volume
