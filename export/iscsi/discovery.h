// SendTargets (RFC 7143 Appendix C, §11.10): what a discovery session (or
// a normal session asking about its own target) is told.
//
// Only targets the initiator may log in to are listed (TESTING.md SR-B3);
// each with TargetAddress = the portal the connection came in on. The
// reply can exceed the initiator's MaxRecvDataSegmentLength; TextReplySplitter
// cuts it into Text Response segments (SR-P6, SPDK #1442).
//
// Thread safety: pure functions; TextReplySplitter is thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "export/iscsi/target_directory.h"

namespace blockhaus::iscsi {

// value: "All" (discovery sessions only), a target name, or "" (the
// session's own target, `session_target`, for normal sessions).
std::vector<uint8_t> BuildSendTargets(const TargetDirectory& directory, const std::string& value,
                                      bool discovery, const std::string& session_target,
                                      const std::string& initiator, const std::string& peer_address,
                                      const std::string& portal);

// "127.0.0.1:3260", "[::1]:3260" (the TargetAddress form, without ",1").
std::string FormatPortal(const std::string& address, uint16_t port);

// Hands out a long reply in pieces of at most `max_segment` bytes.
class TextReplySplitter {
 public:
  void Reset(std::vector<uint8_t> text, uint32_t max_segment) {
    text_ = std::move(text);
    offset_ = 0;
    max_segment_ = max_segment == 0 ? 512 : max_segment;
  }
  // The next piece; `*more` says whether pieces remain after it.
  std::vector<uint8_t> Next(bool* more);
  bool active() const { return offset_ < text_.size(); }

 private:
  std::vector<uint8_t> text_;
  size_t offset_ = 0;
  uint32_t max_segment_ = 8192;
};

}  // namespace blockhaus::iscsi
