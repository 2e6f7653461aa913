#include "export/iscsi/discovery.h"

#include <algorithm>

#include "export/iscsi/login.h"
#include "export/iscsi/text.h"

namespace blockhaus::iscsi {

std::string FormatPortal(const std::string& address, uint16_t port) {
  if (address.find(':') != std::string::npos) return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

std::vector<uint8_t> BuildSendTargets(const TargetDirectory& directory, const std::string& value,
                                      bool discovery, const std::string& session_target,
                                      const std::string& initiator, const std::string& peer_address,
                                      const std::string& portal) {
  std::vector<std::shared_ptr<const TargetConfig>> targets;
  if (value == "All") {
    if (discovery) targets = directory.List();  // RFC 7143: All only in discovery sessions
  } else {
    const std::string& name = value.empty() ? session_target : value;
    if (!name.empty()) {
      if (auto t = directory.Find(name)) targets.push_back(std::move(t));
    }
  }
  std::sort(targets.begin(), targets.end(),
            [](const auto& a, const auto& b) { return a->name < b->name; });
  std::vector<uint8_t> out;
  for (const auto& t : targets) {
    if (!InitiatorAllowed(*t, initiator, peer_address)) continue;  // SR-B3
    AppendKeyValue("TargetName", t->name, &out);
    AppendKeyValue("TargetAddress", portal + "," + std::to_string(kTargetPortalGroupTag), &out);
  }
  return out;
}

std::vector<uint8_t> TextReplySplitter::Next(bool* more) {
  const size_t n = std::min<size_t>(max_segment_, text_.size() - offset_);
  std::vector<uint8_t> piece(text_.begin() + static_cast<ptrdiff_t>(offset_),
                             text_.begin() + static_cast<ptrdiff_t>(offset_ + n));
  offset_ += n;
  *more = offset_ < text_.size();
  if (!*more) {
    text_.clear();
    offset_ = 0;
  }
  return piece;
}

}  // namespace blockhaus::iscsi
