// UTF-8 and Unicode helpers of the tokenizer (internal to common/tokenizer): validation,
// code-point decoding, the character classes the pre-tokenizer regexes use, NFC, and the
// lossy UTF-8 repair HF applies when decoding.
//
// Unicode data comes from utf8proc (the Unicode version of the installed libutf8proc).
// All functions are pure and thread-safe.
#ifndef SWARR_COMMON_TOKENIZER_UNICODE_H_
#define SWARR_COMMON_TOKENIZER_UNICODE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace swarr {
namespace tokenizer_internal {

// Debian's Abseil is built with its own absl::string_view (not std::string_view): convert at
// the boundary for absl::StrCat and heterogeneous hash-map lookups.
inline absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Byte offset of the first byte that does not start a well-formed UTF-8 sequence (overlong
// forms, surrogates and code points above U+10FFFF are ill-formed), or npos if `s` is valid.
size_t FindInvalidUtf8(std::string_view s);

// Character classes of the pre-tokenizer regexes, as bits of CharClass().
enum CharClassBits : uint8_t {
  kLetter = 1,    // \p{L}: Lu Ll Lt Lm Lo
  kNumber = 2,    // \p{N}: Nd Nl No
  kSpace = 4,     // \s: the Unicode White_Space property (what Oniguruma's \s matches)
  kNewline = 8,   // \r or \n (always also kSpace)
  kNeedsNfc = 16, // NFC might change text containing this code point (conservative)
};

// Class bits of a code point (any value; unassigned code points are "other" = 0).
uint8_t CharClass(char32_t cp);

// Decodes the code point starting at p[0]; sets *len to its byte length (1..4).
// REQUIRES: p points into valid UTF-8 with at least *len bytes available.
inline char32_t DecodeUtf8(const char* p, int* len) {
  const auto b0 = static_cast<unsigned char>(p[0]);
  if (b0 < 0x80) {
    *len = 1;
    return b0;
  }
  if (b0 < 0xE0) {
    *len = 2;
    return ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(p[1]) & 0x3Fu);
  }
  if (b0 < 0xF0) {
    *len = 3;
    return ((b0 & 0x0Fu) << 12) | ((static_cast<unsigned char>(p[1]) & 0x3Fu) << 6) |
           (static_cast<unsigned char>(p[2]) & 0x3Fu);
  }
  *len = 4;
  return ((b0 & 0x07u) << 18) | ((static_cast<unsigned char>(p[1]) & 0x3Fu) << 12) |
         ((static_cast<unsigned char>(p[2]) & 0x3Fu) << 6) | (static_cast<unsigned char>(p[3]) & 0x3Fu);
}

// Appends the UTF-8 encoding of `cp` (REQUIRES: a Unicode scalar value).
void AppendUtf8(char32_t cp, std::string* out);

// True if NFC(s) may differ from s (false means it certainly does not). REQUIRES: valid UTF-8.
bool MayNeedNfc(std::string_view s);

// NFC normalization of valid UTF-8 (Unicode canonical composition).
std::string Nfc(std::string_view s);

// `bytes` with every maximal ill-formed subsequence replaced by U+FFFD, the policy of Rust's
// String::from_utf8_lossy (and so of HF tokenizers' decode).
std::string Utf8Lossy(std::string_view bytes);

}  // namespace tokenizer_internal
}  // namespace swarr

#endif  // SWARR_COMMON_TOKENIZER_UNICODE_H_
