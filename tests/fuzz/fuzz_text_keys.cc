// fuzz_text_keys (TESTING.md C5): bytes as a key=value text segment, then
// the whole operational negotiation and SendTargets over it. Negotiated
// values must stay in the RFC 7143 §13 ranges.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "export/iscsi/discovery.h"
#include "export/iscsi/text.h"

namespace {

class OneTarget : public blockhaus::iscsi::TargetDirectory {
 public:
  OneTarget() {
    auto t = std::make_shared<blockhaus::iscsi::TargetConfig>();
    t->name = "iqn.2026-11.fuzz:t";
    t->allow = {{blockhaus::iscsi::AllowRule::Kind::kNetwork, "", "10.0.0.0/8"}};
    target_ = t;
  }
  std::shared_ptr<const blockhaus::iscsi::TargetConfig> Find(const std::string& n) const override {
    return n == target_->name ? target_ : nullptr;
  }
  std::vector<std::shared_ptr<const blockhaus::iscsi::TargetConfig>> List() const override {
    return {target_};
  }

 private:
  std::shared_ptr<const blockhaus::iscsi::TargetConfig> target_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blockhaus::iscsi;
  std::vector<KeyValue> keys;
  if (ParseKeyValues({data, size}, &keys) != TextError::kOk) return 0;
  static OneTarget directory;
  for (SessionType type : {SessionType::kNormal, SessionType::kDiscovery}) {
    Negotiator n(type, Offers{});
    std::vector<KeyValue> reply;
    for (const KeyValue& kv : keys) {
      if (kv.key == "SendTargets") {
        auto out = BuildSendTargets(directory, kv.value, type == SessionType::kDiscovery, "",
                                    "iqn.x", kv.value.size() % 2 ? "10.1.1.1" : "::1",
                                    "127.0.0.1:3260");
        TextReplySplitter split;
        split.Reset(std::move(out), 512);
        bool more = true;
        while (more) {
          if (split.Next(&more).size() > 512) std::abort();
        }
      } else {
        n.Negotiate(kv, &reply);
      }
    }
    const SessionParams p = n.Finish();
    if (p.initiator_max_recv_data_segment < 512 || p.initiator_max_recv_data_segment > 16777215) std::abort();
    if (p.first_burst_length > p.max_burst_length) std::abort();
    if (p.max_burst_length > 1024 * 1024 || p.max_burst_length < 512) std::abort();
    if (p.max_outstanding_r2t < 1 || p.max_outstanding_r2t > 4) std::abort();
    if (p.error_recovery_level != 0 || p.max_connections != 1) std::abort();
    if (EncodeKeyValues(reply).size() > 64 * 1024 * 4) std::abort();
  }
  return 0;
}
