// Theory of operation: CHAP (RFC 7143 §12.1.3, RFC 1994)
//
// Overview
//   Security stage of a login, target side:
//     I: AuthMethod=CHAP            T: AuthMethod=CHAP
//     I: CHAP_A=7,5                 T: CHAP_A=7 CHAP_I=<id> CHAP_C=0x<16 bytes>
//     I: CHAP_N=<user> CHAP_R=0x<digest> [CHAP_I=<id'> CHAP_C=<c'>]
//     T: [CHAP_N=<target user> CHAP_R=Hash(id' || target secret || c')]
//   login.cc drives the order; this file owns the cryptography and the
//   decoding of every CHAP value.
//
// Data structures & on-disk format
//   Nothing persisted. The challenge and identifier live in the
//   authenticator for one login and are wiped in its destructor. The
//   limiter keeps a bounded map of failure counts.
//
// Invariants
//   * A challenge is 16 bytes from getrandom(), new for each authenticator
//     (one per login), so a captured CHAP_R never verifies twice (SR-A4).
//   * CHAP_R must decode to exactly the digest size; the decoder checks the
//     size implied by the text length before decoding (SR-A6).
//   * Responses are compared with CRYPTO_memcmp (SR-A7).
//   * Mutual CHAP fails when the initiator's challenge equals ours
//     (reflection) or when initiator and target secrets are the same
//     (RFC 7143 §9.2.1, SR-A5).
//
// Concurrency & lock order
//   ChapLimiter::mu_ is a leaf lock. Everything else is per connection.
//
// Crash consistency
//   Not applicable.
//
// Failure handling
//   Every failure returns false without saying why; the login answers
//   0x0201 after the limiter's delay. OpenSSL digest failures (allocation)
//   are fatal (BH_CHECK): a wrong digest must never authenticate.
//
// Tunables
//   ChapLimiter::Options (5 free failures, 1 s doubling to 30 s).

#include "export/iscsi/chap.h"

#include <sys/random.h>

#include <algorithm>
#include <cerrno>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/base/check.h"

namespace blockhaus::iscsi {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::optional<std::vector<uint8_t>> DecodeHex(std::string_view digits, size_t max_bytes) {
  if (digits.empty() || digits.size() % 2 != 0) return std::nullopt;
  if (digits.size() / 2 > max_bytes) return std::nullopt;
  std::vector<uint8_t> out(digits.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = HexValue(digits[2 * i]);
    const int lo = HexValue(digits[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>((hi << 4) | lo);
  }
  return out;
}

std::optional<std::vector<uint8_t>> DecodeBase64(std::string_view text, size_t max_bytes) {
  if (text.empty() || text.size() % 4 != 0) return std::nullopt;
  size_t pad = 0;
  if (text.back() == '=') pad = (text[text.size() - 2] == '=') ? 2 : 1;
  const size_t n = text.size() / 4 * 3 - pad;
  if (n == 0 || n > max_bytes) return std::nullopt;  // checked before writing
  std::vector<uint8_t> out;
  out.reserve(n);
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    const bool last = i + 4 == text.size();
    for (size_t j = 0; j < 4; ++j) {
      const char c = text[i + j];
      if (c == '=' && last && j >= 4 - pad) {
        v[j] = 0;
        continue;
      }
      v[j] = Base64Value(c);
      if (v[j] < 0) return std::nullopt;
    }
    const uint32_t w = (uint32_t(v[0]) << 18) | (uint32_t(v[1]) << 12) | (uint32_t(v[2]) << 6) |
                       uint32_t(v[3]);
    const size_t take = last ? 3 - pad : 3;
    for (size_t j = 0; j < take; ++j) out.push_back(static_cast<uint8_t>(w >> (16 - 8 * j)));
  }
  BH_CHECK(out.size() == n);
  return out;
}

const EVP_MD* Md(ChapAlgorithm algorithm) {
  switch (algorithm) {
    case ChapAlgorithm::kMd5: return EVP_md5();
    case ChapAlgorithm::kSha256: return EVP_sha256();
  }
  return EVP_md5();
}

}  // namespace

size_t ChapDigestSize(ChapAlgorithm algorithm) {
  switch (algorithm) {
    case ChapAlgorithm::kMd5: return 16;
    case ChapAlgorithm::kSha256: return 32;
  }
  return 16;
}

std::vector<uint8_t> ChapResponse(ChapAlgorithm algorithm, uint8_t id, std::string_view secret,
                                  ConstByteSpan challenge) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  BH_CHECK(ctx != nullptr);
  std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
  unsigned int n = 0;
  const bool ok = EVP_DigestInit_ex(ctx, Md(algorithm), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, &id, 1) == 1 &&
                  EVP_DigestUpdate(ctx, secret.data(), secret.size()) == 1 &&
                  EVP_DigestUpdate(ctx, challenge.data(), challenge.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx, out.data(), &n) == 1;
  EVP_MD_CTX_free(ctx);
  BH_CHECK(ok && n == ChapDigestSize(algorithm));
  out.resize(n);
  return out;
}

std::optional<std::vector<uint8_t>> DecodeChapBinary(std::string_view text, size_t max_bytes) {
  if (text.size() < 3 || text[0] != '0') return std::nullopt;
  if (text[1] == 'x' || text[1] == 'X') return DecodeHex(text.substr(2), max_bytes);
  if (text[1] == 'b' || text[1] == 'B') return DecodeBase64(text.substr(2), max_bytes);
  return std::nullopt;
}

std::string EncodeChapHex(ConstByteSpan bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "0x";
  for (uint8_t b : bytes) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return s;
}

std::optional<uint8_t> ParseChapIdentifier(std::string_view text) {
  std::optional<uint64_t> n = ParseNumber(text);
  if (!n || *n > 255) return std::nullopt;
  return static_cast<uint8_t>(*n);
}

bool ConstantTimeEqual(ConstByteSpan a, ConstByteSpan b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void FillRandom(ByteSpan out) {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::getrandom(out.data() + done, out.size() - done, 0);
    if (n < 0 && errno == EINTR) continue;
    BH_CHECK(n > 0);
    done += static_cast<size_t>(n);
  }
}

ChapAuthenticator::ChapAuthenticator(const ChapCredentials& credentials)
    : credentials_(credentials) {}

ChapAuthenticator::~ChapAuthenticator() {
  OPENSSL_cleanse(challenge_.data(), challenge_.size());
  OPENSSL_cleanse(credentials_.secret.data(), credentials_.secret.size());
  OPENSSL_cleanse(credentials_.mutual_secret.data(), credentials_.mutual_secret.size());
}

bool ChapAuthenticator::Challenge(std::string_view chap_a, std::vector<KeyValue>* reply) {
  if (challenged_) return false;
  bool md5 = false;
  bool sha256 = false;
  size_t start = 0;
  while (start <= chap_a.size()) {  // chap_a is at most 255 bytes (text limits)
    size_t comma = chap_a.find(',', start);
    if (comma == std::string_view::npos) comma = chap_a.size();
    std::optional<uint64_t> n = ParseNumber(chap_a.substr(start, comma - start));
    if (n && *n == 5) md5 = true;
    if (n && *n == 7) sha256 = true;
    start = comma + 1;
  }
  if (!md5 && !sha256) {
    reply->push_back({"CHAP_A", "Reject"});
    return false;
  }
  algorithm_ = sha256 ? ChapAlgorithm::kSha256 : ChapAlgorithm::kMd5;
  challenge_.resize(kChapChallengeBytes);
  FillRandom(challenge_);
  FillRandom({&id_, 1});
  challenged_ = true;
  reply->push_back({"CHAP_A", std::to_string(static_cast<int>(algorithm_))});
  reply->push_back({"CHAP_I", std::to_string(id_)});
  reply->push_back({"CHAP_C", EncodeChapHex(challenge_)});
  return true;
}

bool ChapAuthenticator::Verify(const std::vector<KeyValue>& keys, std::vector<KeyValue>* reply) {
  if (!challenged_) return false;
  challenged_ = false;  // one answer per challenge
  const std::string* name = FindKey(keys, "CHAP_N");
  const std::string* response = FindKey(keys, "CHAP_R");
  if (name == nullptr || response == nullptr) return false;
  const size_t digest = ChapDigestSize(algorithm_);
  std::optional<std::vector<uint8_t>> got = DecodeChapBinary(*response, digest);
  const std::vector<uint8_t> want =
      ChapResponse(algorithm_, id_, credentials_.secret, challenge_);
  // Evaluate both checks whatever the outcome of the first (no early exit
  // that would tell an unknown user from a wrong response by timing).
  const bool name_ok = ConstantTimeEqual(
      {reinterpret_cast<const uint8_t*>(name->data()), name->size()},
      {reinterpret_cast<const uint8_t*>(credentials_.user.data()), credentials_.user.size()});
  const bool response_ok = got.has_value() && got->size() == digest && ConstantTimeEqual(*got, want);
  if (!(name_ok && response_ok)) return false;
  return VerifyMutual(FindKey(keys, "CHAP_I"), FindKey(keys, "CHAP_C"), reply);
}

bool ChapAuthenticator::VerifyMutual(const std::string* id_text, const std::string* challenge_text,
                                     std::vector<KeyValue>* reply) {
  const bool wants_mutual = !credentials_.mutual_user.empty();
  if (id_text == nullptr && challenge_text == nullptr) return !wants_mutual;
  if (id_text == nullptr || challenge_text == nullptr || !wants_mutual) return false;
  std::optional<uint8_t> id = ParseChapIdentifier(*id_text);
  std::optional<std::vector<uint8_t>> challenge = DecodeChapBinary(*challenge_text, kChapMaxBinary);
  if (!id || !challenge) return false;
  // Reflection: our own challenge sent back to make us compute its answer.
  if (ConstantTimeEqual(*challenge, challenge_)) return false;
  // The same secret in both directions lets an attacker reflect responses.
  if (ConstantTimeEqual(
          {reinterpret_cast<const uint8_t*>(credentials_.secret.data()), credentials_.secret.size()},
          {reinterpret_cast<const uint8_t*>(credentials_.mutual_secret.data()),
           credentials_.mutual_secret.size()})) {
    return false;
  }
  std::vector<uint8_t> answer = ChapResponse(algorithm_, *id, credentials_.mutual_secret, *challenge);
  reply->push_back({"CHAP_N", credentials_.mutual_user});
  reply->push_back({"CHAP_R", EncodeChapHex(answer)});
  return true;
}

std::chrono::milliseconds ChapLimiter::DelayFor(const std::string& key,
                                                std::chrono::steady_clock::time_point now) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::chrono::milliseconds(0);
  if (now - it->second.last > options_.window) {
    entries_.erase(it);
    return std::chrono::milliseconds(0);
  }
  const int over = it->second.failures - options_.free_failures;
  if (over < 0) return std::chrono::milliseconds(0);
  auto delay = options_.base * (int64_t{1} << std::min(over, 16));
  return std::min<std::chrono::milliseconds>(delay, options_.max);
}

std::chrono::milliseconds ChapLimiter::Delay(const std::string& source,
                                             const std::string& initiator) {
  MutexLock lock(&mu_);
  const auto now = std::chrono::steady_clock::now();
  return std::max(DelayFor("ip:" + source, now), DelayFor("in:" + initiator, now));
}

void ChapLimiter::Bump(const std::string& key, std::chrono::steady_clock::time_point now) {
  if (entries_.size() >= options_.max_entries && entries_.count(key) == 0) {
    // Drop the stalest entry: memory stays bounded under address churn.
    auto oldest = std::min_element(entries_.begin(), entries_.end(), [](auto& a, auto& b) {
      return a.second.last < b.second.last;
    });
    entries_.erase(oldest);
  }
  Entry& e = entries_[key];
  e.failures = std::min(e.failures + 1, 1000);
  e.last = now;
}

void ChapLimiter::RecordFailure(const std::string& source, const std::string& initiator) {
  MutexLock lock(&mu_);
  const auto now = std::chrono::steady_clock::now();
  Bump("ip:" + source, now);
  Bump("in:" + initiator, now);
}

void ChapLimiter::RecordSuccess(const std::string& source, const std::string& initiator) {
  MutexLock lock(&mu_);
  entries_.erase("ip:" + source);
  entries_.erase("in:" + initiator);
}

}  // namespace blockhaus::iscsi
