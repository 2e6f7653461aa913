#include "core/base/units.h"

#include <cctype>

#include "core/base/format.h"

namespace blockhaus {
namespace {

constexpr std::string_view kSuffixes = "KMGTPE";

// Returns the shift for a suffix, 0 for none, or -1 when it is not a size unit.
int SuffixShift(std::string_view suffix) {
  if (suffix.empty()) return 0;
  char c = static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0])));
  std::string_view rest = suffix.substr(1);
  if (c == 'B' && rest.empty()) return 0;
  size_t pos = kSuffixes.find(c);
  if (pos == std::string_view::npos) return -1;
  if (!rest.empty() && rest != "B" && rest != "b" && rest != "iB" && rest != "ib") return -1;
  return static_cast<int>(10 * (pos + 1));
}

}  // namespace

Result<uint64_t> ParseSize(std::string_view text) {
  size_t i = 0;
  unsigned __int128 whole = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    whole = whole * 10 + static_cast<unsigned>(text[i] - '0');
    if (whole > (static_cast<unsigned __int128>(1) << 64)) break;
    ++i;
  }
  if (i == 0) return BH_ERROR(kInvalidArgument, "'{}' is not a size (try 512, 4K, 1.5G, 2T)", text);
  unsigned __int128 frac_num = 0, frac_den = 1;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (frac_den >= 1000000000000ull) {
        return BH_ERROR(kInvalidArgument, "'{}' has too many decimals", text);
      }
      frac_num = frac_num * 10 + static_cast<unsigned>(text[i] - '0');
      frac_den *= 10;
      ++i;
    }
  }
  int shift = SuffixShift(text.substr(i));
  if (shift < 0) return BH_ERROR(kInvalidArgument, "'{}' has an unknown size unit", text);
  unsigned __int128 bytes = (whole << shift) + ((frac_num << shift) / frac_den);
  if (((frac_num << shift) % frac_den) != 0) {
    return BH_ERROR(kInvalidArgument, "'{}' is not a whole number of bytes", text);
  }
  if (whole > (static_cast<unsigned __int128>(1) << 64) ||
      bytes >= (static_cast<unsigned __int128>(1) << 64)) {
    return BH_ERROR(kInvalidArgument, "'{}' is too large (the limit is 16E - 1)", text);
  }
  return static_cast<uint64_t>(bytes);
}

std::string FormatSize(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{}", bytes);
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1024 && unit < kSuffixes.size()) {
    v /= 1024;
    ++unit;
  }
  int decimals = v < 10 ? 2 : (v < 100 ? 1 : 0);
  return fmt::format("{:.{}f}{}", v, decimals, kSuffixes[unit - 1]);
}

}  // namespace blockhaus
