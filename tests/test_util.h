// Helpers shared by the test binaries.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/base/buffer.h"

namespace blockhaus {
// Tests compare a READ's data (a Buffer) with the bytes they expect.
inline bool operator==(const Buffer& a, const std::vector<uint8_t>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}
// The bytes of a Buffer as the std::vector tests build their data in.
inline std::vector<uint8_t> Bytes(const Buffer& b) { return {b.begin(), b.end()}; }
}  // namespace blockhaus

namespace blockhaus::testing {

// A fresh directory under $TMPDIR, removed with everything in it at scope end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bh-test-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Deterministic block contents: the same (seed, tag) always gives the same
// bytes; half of each block is a repeating pattern so compression has work.
inline std::vector<uint8_t> PatternBlock(size_t size, uint64_t seed, uint64_t tag) {
  std::vector<uint8_t> b(size);
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + tag);
  for (size_t i = 0; i < size; i += 8) {
    uint64_t v = (i < size / 2) ? rng() : (tag * 0x0101010101010101ull);
    for (size_t j = 0; j < 8 && i + j < size; ++j) b[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  return b;
}

// Seed for randomized tests: $BH_SEED when set, else random. Tests print it.
inline uint64_t TestSeed() {
  const char* env = std::getenv("BH_SEED");
  if (env != nullptr && env[0] != '\0') return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

}  // namespace blockhaus::testing
