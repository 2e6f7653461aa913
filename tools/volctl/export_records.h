// Exports as stored in a pool: which volume or snapshot is served as which
// LUN of which target, to whom, with which CHAP credentials.
//
// One record per exported dataset, in the pool's client key space under
// "export/<dataset id as 16 hex digits>" as JSON (keyed by id, so a rename
// keeps the export). Records are written in a sync task: an export is
// durable when `volctl export` returns, and `volctl serve` serves every
// stored export again after a restart. Secrets live here too; the pool
// directory is root-only and no command prints them.
//
// Thread safety: functions are thread-compatible (callers serialize).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "tools/volctl/pool_access.h"

namespace blockhaus::tools {

inline constexpr const char* kExportKeyPrefix = "export/";
inline constexpr uint64_t kMaxLun = 16383;        // SAM-5 flat addressing
inline constexpr size_t kMinChapSecret = 12;      // TESTING.md SR-A1
inline constexpr size_t kMaxChapSecret = 255;
inline constexpr uint32_t kDefaultSoftThreshold = 80;   // percent of the pool in use

struct ExportRecord {
  uint64_t dataset_id = 0;
  uint64_t dataset_guid = 0;        // the LUN's serial and NAA designator derive from it
  std::string target;               // IQN
  uint64_t lun = 0;
  std::vector<std::string> allow;   // "iqn...", "eui...", "naa...", CIDR or "any"
  std::string chap_user, chap_secret;
  std::string mutual_user, mutual_secret;
  bool read_only = false;
  bool multi_session = false;
  uint32_t sector_size = 512;
  // Percent of the pool in use at which the LUN raises UNIT ATTENTION
  // 38h/07h (thin-provisioning soft threshold); 0 = off. Records written
  // before it existed read as the default.
  uint32_t soft_threshold = kDefaultSoftThreshold;

  // Settings that every LUN of one target must share.
  bool SameTargetSettings(const ExportRecord& o) const {
    return allow == o.allow && chap_user == o.chap_user && chap_secret == o.chap_secret &&
           mutual_user == o.mutual_user && mutual_secret == o.mutual_secret &&
           multi_session == o.multi_session;
  }
};

std::string ExportKey(uint64_t dataset_id);
std::string EncodeExport(const ExportRecord& r);
// Errors: Corruption naming the key when the record does not parse.
Result<ExportRecord> DecodeExport(const std::string& key, const std::string& value);

// Every export record of the pool.
Result<std::vector<ExportRecord>> LoadExports(core::Pool* pool);

// RFC 7143 §4.2.7 names: iqn.YYYY-MM.<reversed domain>[:<anything>],
// eui.<16 hex>, naa.<16 or 32 hex>; at most 223 bytes; lowercase.
Status ValidateIscsiName(const std::string& name);
// "any", an iSCSI name, or an IPv4/IPv6 address with an optional /prefix.
Status ValidateAllowRule(const std::string& rule);
// The target a dataset is exported as when --target is not given.
std::string DefaultTargetName(const std::string& pool, const std::string& dataset);

// Refuses to destroy `name` (and, with recursive/clones, what it takes
// along) while any of it is exported.
Status CheckNotExported(PoolRef& ref, const std::string& name, bool recursive, bool clones);
Status CheckPoolHasNoExports(PoolRef& ref);
// Tells the daemon (if any) that an exported volume changed under its LUNs.
void NotifyVolumeChanged(PoolRef& ref, const std::string& volume, bool size_changed);

}  // namespace blockhaus::tools
