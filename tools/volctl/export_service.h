// ExportService: the daemon's iSCSI side. Builds scsi::LogicalUnits for
// the exports stored in each pool, groups them into targets, publishes
// them to the iSCSI server and keeps them in step with the volumes.
//
// Thread safety: thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/pool/pool.h"
#include "tools/volctl/pool_access.h"
#include "volume/volume_manager.h"

namespace blockhaus::tools {

struct ExportServiceOptions {
  std::vector<std::string> listen;  // "127.0.0.1:3260", "[::1]:3260"; port 0 picks a free one
  std::chrono::milliseconds login_timeout{15000};  // iscsi::ServerOptions::login_timeout
};

class ExportService {
 public:
  // Starts the portals. Errors: InvalidArgument (bad address), IOError (bind).
  static Result<std::unique_ptr<ExportService>> Start(const ExportServiceOptions& options);
  virtual ~ExportService() = default;

  // (Re)loads the exports of `pool`: new ones get LUNs, removed ones are
  // unmapped (their sessions see REPORTED LUNS DATA HAS CHANGED, or are
  // closed when their target has no LUN left).
  virtual Status LoadPool(const std::string& pool, core::Pool* p, volume::VolumeManager* vm) = 0;
  // Drops every LUN of the pool (before it closes).
  virtual void DropPool(const std::string& pool) = 0;
  // Reopens the devices of an exported volume (after rollback or resize)
  // and queues the UNIT ATTENTION.
  virtual void VolumeChanged(const std::string& pool, volume::VolumeManager* vm,
                             const std::string& volume, bool size_changed) = 0;
  virtual std::vector<SessionRow> Sessions() = 0;
  // The portals actually listening ("127.0.0.1:40123").
  virtual std::vector<std::string> Portals() const = 0;
};

}  // namespace blockhaus::tools
