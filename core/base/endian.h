// Fixed-width little-endian (on-disk) and big-endian (keys, wire) encoding.
// Formats are built only from these helpers: no struct is cast over a buffer.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>

namespace blockhaus {

using ByteSpan = std::span<uint8_t>;
using ConstByteSpan = std::span<const uint8_t>;

inline void EncodeLE16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
}
inline void EncodeLE32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void EncodeLE64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline uint16_t DecodeLE16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
inline uint32_t DecodeLE32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline uint64_t DecodeLE64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline void EncodeBE32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
inline void EncodeBE64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
}
inline uint32_t DecodeBE32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | p[i];
  return v;
}
inline uint64_t DecodeBE64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

// Appends to a growing std::string buffer (RocksDB keys and values).
inline void PutBE64(std::string* out, uint64_t v) {
  uint8_t b[8];
  EncodeBE64(b, v);
  out->append(reinterpret_cast<const char*>(b), 8);
}
inline void PutLE64(std::string* out, uint64_t v) {
  uint8_t b[8];
  EncodeLE64(b, v);
  out->append(reinterpret_cast<const char*>(b), 8);
}
inline void PutLE32(std::string* out, uint32_t v) {
  uint8_t b[4];
  EncodeLE32(b, v);
  out->append(reinterpret_cast<const char*>(b), 4);
}

inline const uint8_t* AsBytes(const std::string& s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

}  // namespace blockhaus
