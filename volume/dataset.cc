#include "volume/dataset.h"

namespace blockhaus::volume {
namespace {

constexpr size_t kMaxComponent = 200;

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '.' || c == ':';
}

Status CheckComponent(std::string_view part, std::string_view what, std::string_view full) {
  if (part.empty()) return BH_ERROR(kInvalidArgument, "'{}': empty {} name", full, what);
  if (part.size() > kMaxComponent) {
    return BH_ERROR(kInvalidArgument, "'{}': {} name longer than {} characters", full, what,
                    kMaxComponent);
  }
  for (char c : part) {
    if (!IsNameChar(c)) {
      return BH_ERROR(kInvalidArgument,
                      "'{}': invalid character in {} name (allowed: letters, digits, '_', "
                      "'-', '.', ':')", full, what);
    }
  }
  return Status::Ok();
}

}  // namespace

std::pair<std::string, std::string> SplitSnapshotName(std::string_view name) {
  size_t at = name.find('@');
  if (at == std::string_view::npos) return {std::string(name), ""};
  return {std::string(name.substr(0, at)), std::string(name.substr(at + 1))};
}

Status ValidateVolumeName(std::string_view name) {
  if (name.find('@') != std::string_view::npos) {
    return BH_ERROR(kInvalidArgument, "'{}' is a snapshot name, expected a volume", name);
  }
  return CheckComponent(name, "volume", name);
}

Status ValidateSnapshotName(std::string_view name) {
  size_t at = name.find('@');
  if (at == std::string_view::npos) {
    return BH_ERROR(kInvalidArgument, "'{}' is not a snapshot name (VOLUME@SNAPSHOT)", name);
  }
  if (name.find('@', at + 1) != std::string_view::npos) {
    return BH_ERROR(kInvalidArgument, "'{}': more than one '@'", name);
  }
  BH_RETURN_IF_ERROR(CheckComponent(name.substr(0, at), "volume", name));
  return CheckComponent(name.substr(at + 1), "snapshot", name);
}

Status ValidateHoldTag(std::string_view tag) {
  if (tag.empty()) return BH_ERROR(kInvalidArgument, "empty hold tag");
  if (tag.size() > 256) return BH_ERROR(kInvalidArgument, "hold tag longer than 256 characters");
  if (tag.find_first_of(std::string_view("\0\n", 2)) != std::string_view::npos) {
    return BH_ERROR(kInvalidArgument, "hold tag contains NUL or a newline");
  }
  return Status::Ok();
}

std::string PropertySource(const Dataset& ds, std::string_view prop) {
  if (prop.find(':') != std::string_view::npos) {
    return ds.props.user.contains(std::string(prop)) ? "local" : "-";
  }
  if (ds.is_snapshot()) return "-";
  if (prop == "volsize") return "local";
  if (prop == "refreservation" && ds.props.refreservation != 0) return "local";
  if (prop == "compression" || prop == "checksum" || prop == "readonly" ||
      prop == "refreservation") {
    return ds.props.local.contains(std::string(prop)) ? "local" : "default";
  }
  return "-";
}

}  // namespace blockhaus::volume
