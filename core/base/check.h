// BH_CHECK guards invariants whose violation would corrupt data; it stays on in
// release builds (ZFS VERIFY). BH_DCHECK is for debug-only invariants (ASSERT).
// A failed check prints the condition and its place, then aborts: a bug is not
// an error to report.
#pragma once

namespace blockhaus::internal {
[[noreturn]] void CheckFailed(const char* condition, const char* file, int line);
}  // namespace blockhaus::internal

#define BH_CHECK(cond)                                                  \
  do {                                                                  \
    if (__builtin_expect(!(cond), 0))                                   \
      ::blockhaus::internal::CheckFailed(#cond, __FILE__, __LINE__);    \
  } while (0)

#ifdef NDEBUG
#define BH_DCHECK(cond) \
  do {                  \
  } while (0 && (cond))
#else
#define BH_DCHECK(cond) BH_CHECK(cond)
#endif
