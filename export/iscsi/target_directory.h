// TargetDirectory: what the iSCSI server asks the daemon about targets.
//
// The daemon (tools/volctl serve) builds TargetConfig values from the
// exports stored in the pool and publishes them through a directory; the
// server looks a target up at login (ACL, CHAP, session policy) and for
// SendTargets, and keeps the returned shared_ptr for the session's life,
// so a reconfiguration never changes a live session under it.
//
// Thread safety: implementations are thread-safe; a TargetConfig is
// immutable once published.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "export/scsi/scsi_target.h"

namespace blockhaus::iscsi {

// One --allow entry: an initiator IQN/EUI name, a network (CIDR, IPv4 or
// IPv6) the connection must come from, or any.
struct AllowRule {
  enum class Kind : uint8_t { kInitiator, kNetwork, kAny };
  Kind kind = Kind::kInitiator;
  std::string initiator;       // kInitiator: exact, case-sensitive iSCSI name
  std::string network;         // kNetwork: "10.0.0.0/8", "::1/128"
};

struct ChapCredentials {
  std::string user;            // CHAP_N the initiator must send
  std::string secret;          // >= 12 bytes (checked by volctl)
  std::string mutual_user;     // empty: no mutual CHAP
  std::string mutual_secret;   // the target's secret for mutual CHAP
};

struct TargetConfig {
  std::string name;                        // the target's IQN
  std::vector<AllowRule> allow;            // empty: nobody may log in
  std::optional<ChapCredentials> chap;     // set: CHAP required for normal sessions
  bool multi_session = false;              // else one initiator at a time
  std::shared_ptr<scsi::Target> luns;      // never null
};

class TargetDirectory {
 public:
  virtual ~TargetDirectory() = default;
  virtual std::shared_ptr<const TargetConfig> Find(const std::string& name) const = 0;
  virtual std::vector<std::shared_ptr<const TargetConfig>> List() const = 0;
};

}  // namespace blockhaus::iscsi
