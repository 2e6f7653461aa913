#include "core/pool/label_format.h"

#include <cstring>

#include "core/base/endian.h"
#include "core/checksum/checksum.h"

namespace blockhaus::core {
namespace {

constexpr uint8_t kMagic[8] = {'B', 'H', 'P', 'O', 'O', 'L', 0, 1};
constexpr size_t kNameOffset = 64;
constexpr size_t kPathOffset = 320;
constexpr size_t kCrcOffset = 4092;

Status CheckGeometry(const PoolLabel& l) {
  if (l.ashift < 9 || l.ashift > 16) {
    return BH_ERROR(kCorruption, "label: ashift {} is outside 9..16", l.ashift);
  }
  uint64_t sector = uint64_t{1} << l.ashift;
  if (l.guid == 0 || l.slab_size == 0 || l.slab_size % sector != 0 ||
      l.data_start % sector != 0 || l.data_start >= l.data_size) {
    return BH_ERROR(kCorruption,
                    "label: impossible geometry (guid {:#x}, size {}, start {}, slab {})",
                    l.guid, l.data_size, l.data_start, l.slab_size);
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> EncodeLabel(const PoolLabel& label) {
  if (label.name.empty() || label.name.size() > kLabelMaxName ||
      label.data_path.size() > kLabelMaxPath) {
    return BH_ERROR(kInvalidArgument, "pool name or data path too long for the label");
  }
  std::string out(kLabelSize, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  std::memcpy(p, kMagic, sizeof(kMagic));
  EncodeLE32(p + 8, kLabelVersion);
  EncodeLE32(p + 12, label.ashift);
  EncodeLE64(p + 16, label.guid);
  EncodeLE64(p + 24, label.create_time);
  EncodeLE64(p + 32, label.data_size);
  EncodeLE64(p + 40, label.data_start);
  EncodeLE64(p + 48, label.slab_size);
  EncodeLE16(p + 56, static_cast<uint16_t>(label.name.size()));
  EncodeLE16(p + 58, static_cast<uint16_t>(label.data_path.size()));
  std::memcpy(p + kNameOffset, label.name.data(), label.name.size());
  std::memcpy(p + kPathOffset, label.data_path.data(), label.data_path.size());
  EncodeLE32(p + kCrcOffset, Crc32c(ConstByteSpan(p, kCrcOffset)));
  return out;
}

Result<PoolLabel> DecodeLabel(std::string_view encoded) {
  if (encoded.size() != kLabelSize) {
    return BH_ERROR(kCorruption, "label: {} bytes, expected {}", encoded.size(), kLabelSize);
  }
  const auto* p = reinterpret_cast<const uint8_t*>(encoded.data());
  if (std::memcmp(p, kMagic, sizeof(kMagic)) != 0) {
    return BH_ERROR(kCorruption, "label: bad magic (not a Blockhaus pool)");
  }
  if (DecodeLE32(p + kCrcOffset) != Crc32c(ConstByteSpan(p, kCrcOffset))) {
    return BH_ERROR(kCorruption, "label: checksum mismatch");
  }
  uint32_t version = DecodeLE32(p + 8);
  if (version != kLabelVersion) {
    return BH_ERROR(kNotSupported, "label: format version {} (this build reads {})", version,
                    kLabelVersion);
  }
  PoolLabel l;
  l.ashift = DecodeLE32(p + 12);
  l.guid = DecodeLE64(p + 16);
  l.create_time = DecodeLE64(p + 24);
  l.data_size = DecodeLE64(p + 32);
  l.data_start = DecodeLE64(p + 40);
  l.slab_size = DecodeLE64(p + 48);
  size_t name_len = DecodeLE16(p + 56);
  size_t path_len = DecodeLE16(p + 58);
  if (name_len == 0 || name_len > kLabelMaxName || path_len > kLabelMaxPath) {
    return BH_ERROR(kCorruption, "label: name length {} or path length {} out of range",
                    name_len, path_len);
  }
  l.name.assign(encoded.substr(kNameOffset, name_len));
  l.data_path.assign(encoded.substr(kPathOffset, path_len));
  BH_RETURN_IF_ERROR(CheckGeometry(l));
  return l;
}

}  // namespace blockhaus::core
