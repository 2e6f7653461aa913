#include "tools/volctl/export_records.h"

#include <arpa/inet.h>

#include <cctype>
#include <set>

#include <nlohmann/json.hpp>

#include "core/base/format.h"
#include "volume/dataset.h"

namespace blockhaus::tools {
namespace {

bool AllHex(std::string_view s) {
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return !s.empty();
}

Status ValidateIqn(const std::string& name) {
  // iqn.YYYY-MM.reversed.domain[:identifier]
  const std::string_view rest = std::string_view(name).substr(4);
  if (rest.size() < 9 || !std::isdigit(static_cast<unsigned char>(rest[0])) ||
      !std::isdigit(static_cast<unsigned char>(rest[1])) ||
      !std::isdigit(static_cast<unsigned char>(rest[2])) ||
      !std::isdigit(static_cast<unsigned char>(rest[3])) || rest[4] != '-' ||
      !std::isdigit(static_cast<unsigned char>(rest[5])) ||
      !std::isdigit(static_cast<unsigned char>(rest[6])) || rest[7] != '.') {
    return BH_ERROR(kInvalidArgument,
                    "'{}' is not an iSCSI name: an IQN is iqn.YYYY-MM.reversed.domain[:name]",
                    name);
  }
  int month = (rest[5] - '0') * 10 + (rest[6] - '0');
  if (month < 1 || month > 12) {
    return BH_ERROR(kInvalidArgument, "'{}' is not an iSCSI name: month {} out of range", name,
                    month);
  }
  std::string_view authority = rest.substr(8);
  authority = authority.substr(0, authority.find(':'));
  if (authority.empty() || authority.front() == '.' || authority.back() == '.') {
    return BH_ERROR(kInvalidArgument, "'{}' is not an iSCSI name: no naming authority", name);
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == ':';
    if (!ok) {
      return BH_ERROR(kInvalidArgument,
                      "'{}' is not an iSCSI name: only lowercase letters, digits, '-', '.' "
                      "and ':' are allowed",
                      name);
    }
  }
  return Status::Ok();
}

}  // namespace

std::string ExportKey(uint64_t dataset_id) {
  return fmt::format("{}{:016x}", kExportKeyPrefix, dataset_id);
}

std::string EncodeExport(const ExportRecord& r) {
  nlohmann::json j = {{"dataset_id", r.dataset_id},   {"dataset_guid", r.dataset_guid},
                      {"target", r.target},           {"lun", r.lun},
                      {"allow", r.allow},             {"chap_user", r.chap_user},
                      {"chap_secret", r.chap_secret}, {"mutual_user", r.mutual_user},
                      {"mutual_secret", r.mutual_secret}, {"read_only", r.read_only},
                      {"multi_session", r.multi_session}, {"sector_size", r.sector_size},
                      {"soft_threshold", r.soft_threshold}};
  return j.dump();
}

Result<ExportRecord> DecodeExport(const std::string& key, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  auto bad = [&] { return BH_ERROR(kCorruption, "export record {} does not parse", key); };
  if (!j.is_object()) return bad();
  ExportRecord r;
  auto get_u64 = [&](const char* k, uint64_t* out) {
    auto it = j.find(k);
    if (it == j.end() || !it->is_number_unsigned()) return false;
    *out = it->get<uint64_t>();
    return true;
  };
  auto get_str = [&](const char* k, std::string* out) {
    auto it = j.find(k);
    if (it == j.end() || !it->is_string()) return false;
    *out = it->get<std::string>();
    return true;
  };
  auto get_bool = [&](const char* k, bool* out) {
    auto it = j.find(k);
    if (it == j.end() || !it->is_boolean()) return false;
    *out = it->get<bool>();
    return true;
  };
  uint64_t sector = 0;
  if (!get_u64("dataset_id", &r.dataset_id) || !get_u64("dataset_guid", &r.dataset_guid) ||
      !get_str("target", &r.target) || !get_u64("lun", &r.lun) ||
      !get_str("chap_user", &r.chap_user) || !get_str("chap_secret", &r.chap_secret) ||
      !get_str("mutual_user", &r.mutual_user) || !get_str("mutual_secret", &r.mutual_secret) ||
      !get_bool("read_only", &r.read_only) || !get_bool("multi_session", &r.multi_session) ||
      !get_u64("sector_size", &sector) || (sector != 512 && sector != 4096) || r.lun > kMaxLun) {
    return bad();
  }
  r.sector_size = static_cast<uint32_t>(sector);
  if (j.contains("soft_threshold")) {   // absent in records older than the field
    uint64_t pct = 0;
    if (!get_u64("soft_threshold", &pct) || pct > 99) return bad();
    r.soft_threshold = static_cast<uint32_t>(pct);
  }
  auto allow = j.find("allow");
  if (allow == j.end() || !allow->is_array()) return bad();
  for (const auto& a : *allow) {
    if (!a.is_string()) return bad();
    r.allow.push_back(a.get<std::string>());
  }
  return r;
}

Result<std::vector<ExportRecord>> LoadExports(core::Pool* pool) {
  BH_ASSIGN_OR_RETURN(auto kvs, pool->ScanClientKeys(kExportKeyPrefix));
  std::vector<ExportRecord> out;
  for (const auto& [key, value] : kvs) {
    BH_ASSIGN_OR_RETURN(ExportRecord r, DecodeExport(key, value));
    out.push_back(std::move(r));
  }
  return out;
}

Status ValidateIscsiName(const std::string& name) {
  if (name.size() > 223) {
    return BH_ERROR(kInvalidArgument, "iSCSI name is {} bytes long; at most 223 are allowed",
                    name.size());
  }
  if (name.rfind("iqn.", 0) == 0) return ValidateIqn(name);
  if (name.rfind("eui.", 0) == 0 && name.size() == 4 + 16 && AllHex(name.substr(4))) {
    return Status::Ok();
  }
  if (name.rfind("naa.", 0) == 0 && (name.size() == 4 + 16 || name.size() == 4 + 32) &&
      AllHex(name.substr(4))) {
    return Status::Ok();
  }
  return BH_ERROR(kInvalidArgument,
                  "'{}' is not an iSCSI name (iqn.YYYY-MM.domain[:name], eui.<16 hex> or "
                  "naa.<16|32 hex>)",
                  name);
}

Status ValidateAllowRule(const std::string& rule) {
  if (rule == "any") return Status::Ok();
  if (rule.rfind("iqn.", 0) == 0 || rule.rfind("eui.", 0) == 0 || rule.rfind("naa.", 0) == 0) {
    return ValidateIscsiName(rule);
  }
  std::string addr = rule;
  int max_prefix = rule.find(':') == std::string::npos ? 32 : 128;
  size_t slash = rule.find('/');
  if (slash != std::string::npos) {
    addr = rule.substr(0, slash);
    std::string prefix = rule.substr(slash + 1);
    bool digits = !prefix.empty() && prefix.size() <= 3;
    for (char c : prefix) digits = digits && std::isdigit(static_cast<unsigned char>(c));
    if (!digits || std::stoi(prefix) > max_prefix) {
      return BH_ERROR(kInvalidArgument, "--allow '{}': bad prefix length (0..{})", rule,
                      max_prefix);
    }
  }
  unsigned char buf[16];
  int family = max_prefix == 32 ? AF_INET : AF_INET6;
  if (::inet_pton(family, addr.c_str(), buf) != 1) {
    return BH_ERROR(kInvalidArgument,
                    "--allow '{}' is neither an initiator name, an address/prefix nor 'any'",
                    rule);
  }
  return Status::Ok();
}

std::string DefaultTargetName(const std::string& pool, const std::string& dataset) {
  std::string name = "iqn.2026-11.io.blockhaus:" + pool + "." + dataset;
  for (char& c : name) {
    if (c == '@') c = ':';
    if (c == '_') c = '-';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return name;
}

Status CheckNotExported(PoolRef& ref, const std::string& name, bool recursive, bool clones) {
  BH_ASSIGN_OR_RETURN(std::vector<ExportRecord> exports, LoadExports(ref.pool));
  if (exports.empty()) return Status::Ok();
  BH_ASSIGN_OR_RETURN(volume::Dataset root, ref.vm->Get(name));
  std::vector<volume::Dataset> all = ref.vm->List();
  // The datasets the destroy takes along, breadth first.
  std::vector<volume::Dataset> doomed = {root};
  std::set<uint64_t> seen = {root.id};
  for (size_t i = 0; i < doomed.size(); ++i) {
    const volume::Dataset d = doomed[i];
    for (const volume::Dataset& o : all) {
      bool takes = (recursive && !d.is_snapshot() && o.is_snapshot() && o.volume_id == d.id) ||
                   (clones && d.is_snapshot() && !o.is_snapshot() && o.origin_id == d.id);
      if (takes && seen.insert(o.id).second) doomed.push_back(o);
    }
  }
  for (const volume::Dataset& d : doomed) {
    for (const ExportRecord& e : exports) {
      if (e.dataset_id == d.id) {
        return BH_ERROR(kFailedPrecondition,
                        "cannot destroy '{}/{}': it is exported as {} LUN {}; run volctl "
                        "unexport {}/{} first",
                        ref.name, d.name, e.target, e.lun, ref.name, d.name);
      }
    }
  }
  return Status::Ok();
}

Status CheckPoolHasNoExports(PoolRef& ref) {
  BH_ASSIGN_OR_RETURN(std::vector<ExportRecord> exports, LoadExports(ref.pool));
  if (!exports.empty()) {
    return BH_ERROR(kFailedPrecondition,
                    "pool '{}' still exports {} LUN(s) (first: {} LUN {}); unexport them first",
                    ref.name, exports.size(), exports.front().target, exports.front().lun);
  }
  return Status::Ok();
}

void NotifyVolumeChanged(PoolRef& ref, const std::string& volume, bool size_changed) {
  if (ref.live) ref.live->VolumeChanged(ref.name, volume, size_changed);
}

}  // namespace blockhaus::tools
