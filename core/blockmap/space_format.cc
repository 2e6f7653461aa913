#include "core/blockmap/space_format.h"

#include "core/base/endian.h"

namespace blockhaus::core {
namespace {

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

void PutTally(uint8_t* p, const SpaceTally& t) {
  EncodeLE64(p, t.phys);
  EncodeLE64(p + 8, t.logical);
}

SpaceTally GetTally(const uint8_t* p) { return SpaceTally{DecodeLE64(p), DecodeLE64(p + 8)}; }

Status CheckHeader(std::string_view encoded, size_t size, const char* what) {
  if (encoded.size() != size) {
    return BH_ERROR(kCorruption, "{} record of {} bytes, expected {}", what, encoded.size(), size);
  }
  if (Bytes(encoded)[0] != kSpaceVersion) {
    return BH_ERROR(kCorruption, "{} record version {} is unknown", what, Bytes(encoded)[0]);
  }
  return Status::Ok();
}

}  // namespace

std::string SpaceLineageKey(uint64_t lineage) {
  std::string k;
  PutBE64(&k, lineage);
  return k;
}

std::string SpaceSnapshotKey(uint64_t lineage, uint64_t txg) {
  std::string k = SpaceLineageKey(lineage);
  k.push_back(static_cast<char>(kSpaceKeySnapshot));
  PutBE64(&k, txg);
  return k;
}

std::string SpaceDeadKey(uint64_t lineage, uint64_t death_lo, uint64_t birth_hi) {
  std::string k = SpaceLineageKey(lineage);
  k.push_back(static_cast<char>(kSpaceKeyDead));
  PutBE64(&k, death_lo);
  PutBE64(&k, birth_hi);
  return k;
}

std::string EncodeLineageSpace(const LineageSpace& s) {
  std::string out(kLineageSpaceSize, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  p[0] = kSpaceVersion;
  PutTally(p + 8, s.total);
  PutTally(p + 24, s.head);
  PutTally(p + 40, s.head_new);
  PutTally(p + 56, s.shadowed);
  PutTally(p + 72, s.freeing);
  EncodeLE64(p + 88, s.reservation);
  return out;
}

Status DecodeLineageSpace(std::string_view encoded, LineageSpace* s) {
  BH_RETURN_IF_ERROR(CheckHeader(encoded, kLineageSpaceSize, "lineage space"));
  const uint8_t* p = Bytes(encoded);
  s->total = GetTally(p + 8);
  s->head = GetTally(p + 24);
  s->head_new = GetTally(p + 40);
  s->shadowed = GetTally(p + 56);
  s->freeing = GetTally(p + 72);
  s->reservation = DecodeLE64(p + 88);
  return Status::Ok();
}

std::string EncodeSnapshotSpace(const SnapshotSpace& s) {
  std::string out(kSnapshotSpaceSize, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  p[0] = kSpaceVersion;
  PutTally(p + 8, s.referenced);
  PutTally(p + 24, s.written);
  PutTally(p + 40, s.shadowed);
  return out;
}

Result<SnapshotSpace> DecodeSnapshotSpace(std::string_view encoded) {
  BH_RETURN_IF_ERROR(CheckHeader(encoded, kSnapshotSpaceSize, "snapshot space"));
  const uint8_t* p = Bytes(encoded);
  return SnapshotSpace{GetTally(p + 8), GetTally(p + 24), GetTally(p + 40)};
}

std::string EncodeSpaceTally(const SpaceTally& t) {
  std::string out(kSpaceTallySize, '\0');
  PutTally(reinterpret_cast<uint8_t*>(out.data()), t);
  return out;
}

Result<SpaceTally> DecodeSpaceTally(std::string_view encoded) {
  if (encoded.size() != kSpaceTallySize) {
    return BH_ERROR(kCorruption, "space tally of {} bytes, expected {}", encoded.size(),
                    kSpaceTallySize);
  }
  return GetTally(Bytes(encoded));
}

Result<SpaceKey> DecodeSpaceKey(std::string_view key) {
  SpaceKey k;
  const uint8_t* p = Bytes(key);
  if (key.size() == 8) {
    k.lineage = DecodeBE64(p);
    return k;
  }
  if (key.size() == 17 && p[8] == kSpaceKeySnapshot) {
    return SpaceKey{DecodeBE64(p), kSpaceKeySnapshot, DecodeBE64(p + 9), 0};
  }
  if (key.size() == 25 && p[8] == kSpaceKeyDead) {
    return SpaceKey{DecodeBE64(p), kSpaceKeyDead, DecodeBE64(p + 9), DecodeBE64(p + 17)};
  }
  return BH_ERROR(kCorruption, "space key of {} bytes does not decode", key.size());
}

}  // namespace blockhaus::core
