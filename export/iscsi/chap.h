// CHAP authentication for iSCSI login (RFC 7143 §12.1.3, RFC 1994).
//
// ChapAuthenticator is the target side of one CHAP exchange: it picks the
// algorithm from the initiator's CHAP_A list (SHA-256 = 7 preferred, MD5 =
// 5 required), issues a fresh 16-byte challenge from getrandom() with a
// random identifier, checks CHAP_N/CHAP_R in constant time, and answers
// mutual CHAP. Every failure looks the same to the caller (false), which
// maps it to login status 0x0201 (TESTING.md SR-A7).
//
// DecodeChapBinary is the one bounded decoder for CHAP binary values in
// both RFC 7143 §6.1 encodings ("0x" hex, "0b" base64): the output size is
// computed from the input length and checked against the bound before a
// single byte is written (CVE-2018-14633 and its 2026 base64 sibling).
//
// ChapLimiter slows down repeated failures per source address and per
// initiator name (SR-A7, SR-L10).
//
// Thread safety: ChapAuthenticator is thread-compatible (one per login);
// ChapLimiter is thread-safe; the free functions are pure.
// This is the only file pair in export/ that uses OpenSSL.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/endian.h"
#include "core/base/thread_annotations.h"
#include "export/iscsi/target_directory.h"
#include "export/iscsi/text.h"

namespace blockhaus::iscsi {

enum class ChapAlgorithm : uint8_t { kMd5 = 5, kSha256 = 7 };

inline constexpr size_t kChapChallengeBytes = 16;
inline constexpr size_t kChapMaxBinary = 1024;

size_t ChapDigestSize(ChapAlgorithm algorithm);

// RFC 1994 §4.1: Hash(identifier || secret || challenge).
std::vector<uint8_t> ChapResponse(ChapAlgorithm algorithm, uint8_t id, std::string_view secret,
                                  ConstByteSpan challenge);

// Decodes "0x<hex>" or "0b<base64>" into at most `max_bytes`. nullopt for
// empty, odd-nibble, bad characters, bad padding, other prefixes, or a
// result longer than `max_bytes`.
std::optional<std::vector<uint8_t>> DecodeChapBinary(std::string_view text, size_t max_bytes);
std::string EncodeChapHex(ConstByteSpan bytes);
// CHAP_I: a decimal (or 0x hex) integer 0..255.
std::optional<uint8_t> ParseChapIdentifier(std::string_view text);
// Constant-time equality of two byte strings (CRYPTO_memcmp; lengths are
// compared first, they are not secret).
bool ConstantTimeEqual(ConstByteSpan a, ConstByteSpan b);
// getrandom(2); aborts if the kernel cannot supply randomness.
void FillRandom(ByteSpan out);

class ChapAuthenticator {
 public:
  explicit ChapAuthenticator(const ChapCredentials& credentials);
  ~ChapAuthenticator();

  // Initiator sent CHAP_A=<list>. Appends CHAP_A, CHAP_I, CHAP_C to *reply.
  // False when the list has no algorithm we support.
  bool Challenge(std::string_view chap_a, std::vector<KeyValue>* reply);
  // Initiator sent CHAP_N and CHAP_R (and CHAP_I/CHAP_C for mutual CHAP).
  // Appends the target's CHAP_N/CHAP_R for mutual CHAP. False on failure.
  bool Verify(const std::vector<KeyValue>& keys, std::vector<KeyValue>* reply);

  bool challenged() const { return challenged_; }

 private:
  bool VerifyMutual(const std::string* id_text, const std::string* challenge_text,
                    std::vector<KeyValue>* reply);
  ChapCredentials credentials_;
  ChapAlgorithm algorithm_ = ChapAlgorithm::kMd5;
  uint8_t id_ = 0;
  std::vector<uint8_t> challenge_;
  bool challenged_ = false;
};

// Failure backoff: after `free_failures` failures from one key (source
// address or initiator name) within `window`, each further login attempt
// from it waits min(base << (n - free_failures), max) before its answer.
class ChapLimiter {
 public:
  struct Options {
    int free_failures = 5;
    std::chrono::milliseconds base{1000};
    std::chrono::milliseconds max{30000};
    std::chrono::seconds window{300};
    size_t max_entries = 4096;  // bounded memory under address churn
  };
  ChapLimiter() : ChapLimiter(Options{}) {}
  explicit ChapLimiter(const Options& options) : options_(options) {}

  // How long to hold the answer to an attempt from (source, initiator).
  std::chrono::milliseconds Delay(const std::string& source, const std::string& initiator);
  void RecordFailure(const std::string& source, const std::string& initiator);
  void RecordSuccess(const std::string& source, const std::string& initiator);

 private:
  struct Entry {
    int failures = 0;
    std::chrono::steady_clock::time_point last;
  };
  std::chrono::milliseconds DelayFor(const std::string& key, std::chrono::steady_clock::time_point now)
      BH_REQUIRES(mu_);
  void Bump(const std::string& key, std::chrono::steady_clock::time_point now) BH_REQUIRES(mu_);

  Options options_;
  Mutex mu_;
  std::map<std::string, Entry> entries_ BH_GUARDED_BY(mu_);
};

}  // namespace blockhaus::iscsi
