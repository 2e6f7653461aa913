// fuzz_chap (TESTING.md C3): CHAP values in every encoding through the one
// bounded decoder, CHAP_I parsing, and a full Verify with fuzzed keys.
// The decoder's output must never exceed its bound.
//
// Input: u8 selector, then text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "export/iscsi/chap.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace blockhaus::iscsi;
  if (size < 1) return 0;
  const size_t bound = 1 + data[0] % 64;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  auto decoded = DecodeChapBinary(text, bound);
  if (decoded && (decoded->size() > bound || decoded->empty())) std::abort();
  (void)ParseChapIdentifier(text);
  std::vector<KeyValue> keys;
  if (ParseKeyValues({data + 1, size - 1}, &keys) == TextError::kOk) {
    ChapCredentials creds{"user", "secret-123456", (data[0] & 1) ? "tgt" : "", "tsecret-12345"};
    ChapAuthenticator a(creds);
    std::vector<KeyValue> reply;
    const std::string* alg = FindKey(keys, "CHAP_A");
    if (a.Challenge(alg ? *alg : "5", &reply)) {
      // Without the secret the fuzzer cannot answer a fresh challenge.
      if (a.Verify(keys, &reply)) std::abort();
    }
  }
  return 0;
}
