// Sizes as people write them: 512, 4K, 16k, 1.5G, 2T, 8MiB.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/base/status.h"

namespace blockhaus {

// Parses a byte count with an optional binary suffix (K M G T P E, any case,
// optionally followed by "B" or "iB") and an optional fraction ("1.5G").
// The result must be a whole number of bytes.
// Errors: InvalidArgument for empty text, signs, junk, fractions of a byte,
// and values of 2^64 bytes or more ("16E").
Result<uint64_t> ParseSize(std::string_view text);

// 1536 -> "1.50K"; exact below 1024 ("512"). ZFS-style human numbers.
std::string FormatSize(uint64_t bytes);

}  // namespace blockhaus
