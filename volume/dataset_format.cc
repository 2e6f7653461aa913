#include "volume/dataset_format.h"

#include <nlohmann/json.hpp>

#include "core/base/endian.h"

namespace blockhaus::volume {
namespace {

using nlohmann::json;

std::string Be64(uint64_t v) {
  std::string s;
  PutBE64(&s, v);
  return s;
}

// Reads a field of the expected JSON type, or returns Corruption.
template <typename T>
Status Field(const json& j, const char* key, T* out) {
  auto it = j.find(key);
  if (it == j.end()) return BH_ERROR(kCorruption, "dataset record lacks '{}'", key);
  if constexpr (std::is_same_v<T, std::string>) {
    if (!it->is_string()) return BH_ERROR(kCorruption, "dataset field '{}' is not a string", key);
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return BH_ERROR(kCorruption, "dataset field '{}' is not a bool", key);
  } else {
    if (!it->is_number_unsigned()) {
      return BH_ERROR(kCorruption, "dataset field '{}' is not an unsigned number", key);
    }
  }
  *out = it->get<T>();
  return Status::Ok();
}

json PropsJson(const VolumeProps& p) {
  return {{"volsize", p.volsize},
          {"volblocksize", p.volblocksize},
          {"compression", core::CompressionName(p.compression)},
          {"checksum", core::ChecksumTypeName(p.checksum)},
          {"refreservation", p.refreservation},
          {"readonly", p.readonly},
          {"user", p.user},
          {"local", p.local}};
}

Status DecodeProps(const json& j, VolumeProps* p) {
  if (!j.is_object()) return BH_ERROR(kCorruption, "dataset props are not an object");
  std::string comp, sum;
  BH_RETURN_IF_ERROR(Field(j, "volsize", &p->volsize));
  BH_RETURN_IF_ERROR(Field(j, "volblocksize", &p->volblocksize));
  BH_RETURN_IF_ERROR(Field(j, "compression", &comp));
  BH_RETURN_IF_ERROR(Field(j, "checksum", &sum));
  BH_RETURN_IF_ERROR(Field(j, "refreservation", &p->refreservation));
  BH_RETURN_IF_ERROR(Field(j, "readonly", &p->readonly));
  auto c = core::ParseCompression(comp);
  auto s = core::ParseChecksumType(sum);
  if (!c.ok() || !s.ok()) return BH_ERROR(kCorruption, "dataset has unknown compression or checksum");
  p->compression = *c;
  p->checksum = *s;
  auto user = j.find("user");
  if (user == j.end() || !user->is_object()) return BH_ERROR(kCorruption, "dataset user props");
  for (const auto& [k, v] : user->items()) {
    if (!v.is_string()) return BH_ERROR(kCorruption, "user property {} is not a string", k);
    p->user[k] = v.get<std::string>();
  }
  // Optional (records written before holds and sources existed lack it).
  if (auto local = j.find("local"); local != j.end()) {
    if (!local->is_array()) return BH_ERROR(kCorruption, "dataset 'local' is not an array");
    for (const auto& k : *local) {
      if (!k.is_string()) return BH_ERROR(kCorruption, "dataset 'local' entry is not a string");
      p->local.insert(k.get<std::string>());
    }
  }
  return Status::Ok();
}

std::string ToHex(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

Result<std::string> FromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return BH_ERROR(kCorruption, "free job cursor has odd length");
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return BH_ERROR(kCorruption, "free job cursor is not hex");
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

}  // namespace

std::string DatasetKey(uint64_t id) { return std::string(kDatasetPrefix) + Be64(id); }
std::string NameKey(std::string_view name) { return "name/" + std::string(name); }
std::string JobKey(uint64_t seq) { return std::string(kJobPrefix) + Be64(seq); }

std::string EncodeU64(uint64_t v) {
  std::string s;
  PutLE64(&s, v);
  return s;
}

Result<uint64_t> DecodeU64(std::string_view v) {
  if (v.size() != 8) return BH_ERROR(kCorruption, "counter of {} bytes", v.size());
  return DecodeLE64(reinterpret_cast<const uint8_t*>(v.data()));
}

std::string EncodeDataset(const Dataset& ds) {
  json j = {{"v", kDatasetFormatVersion}, {"id", ds.id},
            {"type", static_cast<unsigned>(ds.type)}, {"name", ds.name},
            {"lineage", ds.lineage}, {"txg", ds.txg}, {"volume_id", ds.volume_id},
            {"origin_id", ds.origin_id}, {"creation", ds.creation}, {"guid", ds.guid},
            {"props", PropsJson(ds.props)}};
  if (!ds.holds.empty()) j["holds"] = ds.holds;
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<Dataset> DecodeDataset(std::string_view encoded) {
  json j = json::parse(encoded, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return BH_ERROR(kCorruption, "dataset record is not JSON");
  uint64_t version = 0, type = 0;
  BH_RETURN_IF_ERROR(Field(j, "v", &version));
  if (version != kDatasetFormatVersion) {
    return BH_ERROR(kNotSupported, "dataset record version {}", version);
  }
  Dataset ds;
  BH_RETURN_IF_ERROR(Field(j, "id", &ds.id));
  BH_RETURN_IF_ERROR(Field(j, "type", &type));
  if (type != 1 && type != 2) return BH_ERROR(kCorruption, "dataset type {}", type);
  ds.type = static_cast<DatasetType>(type);
  BH_RETURN_IF_ERROR(Field(j, "name", &ds.name));
  BH_RETURN_IF_ERROR(Field(j, "lineage", &ds.lineage));
  BH_RETURN_IF_ERROR(Field(j, "txg", &ds.txg));
  BH_RETURN_IF_ERROR(Field(j, "volume_id", &ds.volume_id));
  BH_RETURN_IF_ERROR(Field(j, "origin_id", &ds.origin_id));
  BH_RETURN_IF_ERROR(Field(j, "creation", &ds.creation));
  BH_RETURN_IF_ERROR(Field(j, "guid", &ds.guid));
  auto props = j.find("props");
  if (props == j.end()) return BH_ERROR(kCorruption, "dataset record lacks props");
  BH_RETURN_IF_ERROR(DecodeProps(*props, &ds.props));
  if (auto holds = j.find("holds"); holds != j.end()) {
    if (!holds->is_object()) return BH_ERROR(kCorruption, "dataset holds are not an object");
    for (const auto& [tag, when] : holds->items()) {
      if (!when.is_number_unsigned()) return BH_ERROR(kCorruption, "hold {} has no time", tag);
      ds.holds[tag] = when.get<uint64_t>();
    }
  }
  uint32_t bs = ds.props.volblocksize;
  if (bs < kMinVolBlockSize || bs > kMaxVolBlockSize || (bs & (bs - 1)) != 0 ||
      ds.props.volsize % bs != 0) {
    return BH_ERROR(kCorruption, "dataset {} has volblocksize {} and volsize {}", ds.name, bs,
                    ds.props.volsize);
  }
  return ds;
}

std::string EncodeJob(const FreeJob& job) {
  json j = {{"v", kDatasetFormatVersion}, {"kind", static_cast<unsigned>(job.kind)},
            {"lineage", job.lineage}, {"birth_lo", job.birth_lo}, {"birth_hi", job.birth_hi},
            {"death_lo", job.death_lo}, {"death_hi", job.death_hi},
            {"freed", job.freed_bytes}, {"cursor", ToHex(job.cursor)},
            {"pass_freed", job.pass_freed}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

Result<FreeJob> DecodeJob(std::string_view encoded) {
  json j = json::parse(encoded, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return BH_ERROR(kCorruption, "free job is not JSON");
  FreeJob job;
  uint64_t kind = 0;
  BH_RETURN_IF_ERROR(Field(j, "kind", &kind));
  if (kind != 1 && kind != 2) return BH_ERROR(kCorruption, "free job kind {}", kind);
  job.kind = static_cast<FreeJob::Kind>(kind);
  BH_RETURN_IF_ERROR(Field(j, "lineage", &job.lineage));
  BH_RETURN_IF_ERROR(Field(j, "birth_lo", &job.birth_lo));
  BH_RETURN_IF_ERROR(Field(j, "birth_hi", &job.birth_hi));
  BH_RETURN_IF_ERROR(Field(j, "death_lo", &job.death_lo));
  BH_RETURN_IF_ERROR(Field(j, "death_hi", &job.death_hi));
  BH_RETURN_IF_ERROR(Field(j, "freed", &job.freed_bytes));
  std::string cursor_hex;
  BH_RETURN_IF_ERROR(Field(j, "cursor", &cursor_hex));
  BH_RETURN_IF_ERROR(Field(j, "pass_freed", &job.pass_freed));
  BH_ASSIGN_OR_RETURN(job.cursor, FromHex(cursor_hex));
  return job;
}

}  // namespace blockhaus::volume
