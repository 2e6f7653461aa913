// MODE SENSE and MODE SELECT (6 and 10) over the caching (08h), control
// (0Ah) and informational exceptions (1Ch) pages and the logical block
// provisioning subpage (1Ch/02h, SBC-3 §6.4.6; only when the unit has a
// soft threshold). Part of the SPC-4 set; the theory of operation is in
// spc.cc (Data structures: nothing is changeable, WCE=1).

#include <algorithm>
#include <cstring>
#include <optional>

#include "export/scsi/internal/unit.h"

namespace blockhaus::scsi::internal {
namespace {

enum class PageControl : uint8_t { kCurrent = 0, kChangeable = 1, kDefault = 2, kSaved = 3 };

// SBC-3 §6.4.5: WCE=1 (writes are acknowledged before they are durable).
void AppendCaching(std::vector<uint8_t>* d, PageControl pc) {
  uint8_t p[2 + mode::kCachingPageLength] = {};
  p[0] = mode::kCachingPage;
  p[1] = mode::kCachingPageLength;
  if (pc != PageControl::kChangeable) p[2] = 0x04;   // WCE
  d->insert(d->end(), p, p + sizeof(p));
}

// SPC-4 §7.5.7: unrestricted reordering (QUEUE ALGORITHM MODIFIER 1),
// fixed-format sense (D_SENSE=0).
void AppendControl(std::vector<uint8_t>* d, PageControl pc) {
  uint8_t p[2 + mode::kControlPageLength] = {};
  p[0] = mode::kControlPage;
  p[1] = mode::kControlPageLength;
  if (pc != PageControl::kChangeable) {
    p[3] = 0x10;
    EncodeBE16(&p[8], 0xffff);   // BUSY TIMEOUT PERIOD: unlimited
  }
  d->insert(d->end(), p, p + sizeof(p));
}

// SPC-4 §7.5.13: DEXCPT=1, no informational exceptions are reported.
void AppendInformationalExceptions(std::vector<uint8_t>* d, PageControl pc) {
  uint8_t p[2 + mode::kInformationalExceptionsPageLength] = {};
  p[0] = mode::kInformationalExceptionsPage;
  p[1] = mode::kInformationalExceptionsPageLength;
  if (pc != PageControl::kChangeable) p[2] = 0x08;
  d->insert(d->end(), p, p + sizeof(p));
}

// SBC-3 §6.4.6: SITUA=0 (the attention goes to every I_T nexus) and one
// enabled soft threshold on the available LBA mapping resources, armed
// decreasing. Nothing is changeable.
void AppendLogicalBlockProvisioning(std::vector<uint8_t>* d, PageControl pc,
                                    const SoftThreshold& t) {
  uint8_t p[mode::kLbpPageHeaderLength + mode::kThresholdDescriptorLength] = {};
  p[0] = mode::kSubpageFormat | mode::kInformationalExceptionsPage;
  p[1] = mode::kLogicalBlockProvisioningSubpage;
  EncodeBE16(&p[2], static_cast<uint16_t>(sizeof(p) - 4));
  if (pc != PageControl::kChangeable) {
    uint8_t* desc = &p[mode::kLbpPageHeaderLength];
    desc[0] = mode::kThresholdEnabled | mode::kThresholdTypeSoft | mode::kThresholdArmingDecreasing;
    desc[1] = mode::kResourceAvailableLbaMapping;
    EncodeBE32(&desc[4], t.count);
  }
  d->insert(d->end(), p, p + sizeof(p));
}

// Appends what `page`/`subpage` select (subpage FFh: the page and all its
// subpages); false for a page or subpage we do not have.
bool AppendPages(std::vector<uint8_t>* d, uint8_t page, uint8_t subpage, PageControl pc,
                 const std::optional<SoftThreshold>& lbp) {
  const bool all_sub = subpage == mode::kAllSubpages;
  if (page == mode::kInformationalExceptionsPage &&
      subpage == mode::kLogicalBlockProvisioningSubpage) {
    if (!lbp) return false;
    AppendLogicalBlockProvisioning(d, pc, *lbp);
    return true;
  }
  if (subpage != 0 && !all_sub) return false;
  switch (page) {
    case mode::kCachingPage: AppendCaching(d, pc); return true;
    case mode::kControlPage: AppendControl(d, pc); return true;
    case mode::kInformationalExceptionsPage:
      AppendInformationalExceptions(d, pc);
      if (all_sub && lbp) AppendLogicalBlockProvisioning(d, pc, *lbp);
      return true;
    case mode::kAllPages:
      AppendCaching(d, pc);
      AppendControl(d, pc);
      AppendInformationalExceptions(d, pc);
      if (all_sub && lbp) AppendLogicalBlockProvisioning(d, pc, *lbp);
      return true;
    default:
      return false;
  }
}

void AppendBlockDescriptor(std::vector<uint8_t>* d, uint64_t blocks, uint32_t lbs, bool longlba) {
  if (longlba) {
    uint8_t b[mode::kLongBlockDescriptorLength] = {};
    EncodeBE64(b, blocks);
    EncodeBE32(b + 12, lbs);
    d->insert(d->end(), b, b + sizeof(b));
  } else {
    uint8_t b[mode::kShortBlockDescriptorLength] = {};
    EncodeBE32(b, static_cast<uint32_t>(std::min<uint64_t>(blocks, 0xffffffffu)));
    b[5] = static_cast<uint8_t>(lbs >> 16);
    b[6] = static_cast<uint8_t>(lbs >> 8);
    b[7] = static_cast<uint8_t>(lbs);
    d->insert(d->end(), b, b + sizeof(b));
  }
}

bool ReadOnly(const Ctx& c) { return c.unit.options().read_only || c.dev.read_only(); }

}  // namespace

// SPC-4 §6.11 / §6.12.
void ModeSense(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  bool ten = cdb[0] == op::kModeSense10;
  bool dbd = cdb[1] & 0x08;
  bool llbaa = ten && (cdb[1] & 0x10);
  auto pc = static_cast<PageControl>(cdb[2] >> 6);
  uint8_t page = cdb[2] & 0x3f;
  uint8_t subpage = cdb[3];
  uint32_t alloc = ten ? DecodeBE16(cdb + 7) : cdb[4];
  if (pc == PageControl::kSaved) {
    return CheckCondition(c.rsp, SenseKey::kIllegalRequest, asc::kSavingParametersNotSupported);
  }
  size_t header = ten ? 8 : 4;
  std::vector<uint8_t> d(header, 0);
  uint8_t dsp = static_cast<uint8_t>((ReadOnly(c) ? 0x80 : 0) | 0x10);   // WP, DPOFUA
  if (!dbd) AppendBlockDescriptor(&d, c.dev.size() / c.unit.lbs(), c.unit.lbs(), llbaa);
  size_t bdl = d.size() - header;
  if (!AppendPages(&d, page, subpage, pc, SoftThresholdOf(c.unit, c.dev))) return InvalidField(c);
  if (ten) {
    EncodeBE16(&d[0], static_cast<uint16_t>(d.size() - 2));
    d[3] = dsp;
    d[4] = llbaa && !dbd ? 0x01 : 0x00;   // LONGLBA
    EncodeBE16(&d[6], static_cast<uint16_t>(bdl));
  } else {
    d[0] = static_cast<uint8_t>(d.size() - 1);
    d[2] = dsp;
    d[3] = static_cast<uint8_t>(bdl);
  }
  ReturnData(c, std::move(d), alloc);
}

namespace {

// Checks one page of a MODE SELECT list against the current values
// (nothing is changeable). `p` has `len` bytes, the page header included.
bool PageMatchesCurrent(const uint8_t* p, size_t len, const std::optional<SoftThreshold>& lbp) {
  const uint8_t code = p[0] & 0x3f;
  const uint8_t subpage = (p[0] & mode::kSubpageFormat) ? p[1] : 0;
  if (code == mode::kAllPages || subpage == mode::kAllSubpages) return false;
  std::vector<uint8_t> cur;
  if (!AppendPages(&cur, code, subpage, PageControl::kCurrent, lbp)) return false;
  if (cur.size() != len) return false;
  // PS (byte 0 bit 7) is reserved in MODE SELECT data; compare the rest.
  return (p[0] & 0x7f) == cur[0] && std::memcmp(p + 1, cur.data() + 1, len - 1) == 0;
}

}  // namespace

// SPC-4 §6.9 / §6.10: accepts exactly the current values.
void ModeSelect(Ctx& c) {
  const uint8_t* cdb = c.cdb();
  bool ten = cdb[0] == op::kModeSelect10;
  uint32_t plen = ten ? DecodeBE16(cdb + 7) : cdb[4];
  c.rsp->transfer_length = plen;
  if (cdb[1] & 0x01) {   // SP: pages cannot be saved
    return CheckCondition(c.rsp, SenseKey::kIllegalRequest, asc::kSavingParametersNotSupported);
  }
  if (plen == 0) return;
  if (!(cdb[1] & 0x10)) return InvalidField(c);   // PF=0: vendor-specific pages
  size_t header = ten ? 8 : 4;
  if (c.cmd.data_out.size() < plen || plen < header) {
    return CheckCondition(c.rsp, SenseKey::kIllegalRequest, asc::kParameterListLengthError);
  }
  const uint8_t* d = c.cmd.data_out.data();
  size_t bdl = ten ? DecodeBE16(d + 6) : d[3];
  if (header + bdl > plen) return InvalidParameter(c);
  bool longlba = ten && (d[4] & 0x01);
  size_t bd_size = longlba ? mode::kLongBlockDescriptorLength : mode::kShortBlockDescriptorLength;
  if (bdl % bd_size != 0) return InvalidParameter(c);
  for (size_t off = header; off < header + bdl; off += bd_size) {
    uint32_t lbs = longlba ? DecodeBE32(d + off + 12) : DecodeBE24(d + off + 5);
    if (lbs != c.unit.lbs()) return InvalidParameter(c);
  }
  // Each step consumes the page header (at least 2 bytes, 4 for a subpage):
  // bounded by plen.
  const std::optional<SoftThreshold> lbp = SoftThresholdOf(c.unit, c.dev);
  for (size_t off = header + bdl; off < plen;) {
    const bool spf = d[off] & mode::kSubpageFormat;
    if (plen - off < (spf ? 4u : 2u)) return InvalidParameter(c);
    size_t len = spf ? 4 + size_t{DecodeBE16(d + off + 2)} : 2 + size_t{d[off + 1]};
    if (len > plen - off || !PageMatchesCurrent(d + off, len, lbp)) return InvalidParameter(c);
    off += len;
  }
}

}  // namespace blockhaus::scsi::internal
