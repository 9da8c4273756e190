#include "common/tokenizer/unicode.h"

#include <utf8proc.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <memory>

namespace swarr {
namespace tokenizer_internal {
namespace {

// Second-byte range and length of a UTF-8 lead byte; length 0 for bytes that never lead.
struct Lead {
  int len;
  unsigned char lo, hi;
};

Lead LeadOf(unsigned char b) {
  if (b >= 0xC2 && b <= 0xDF) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Number of bytes of a well-formed prefix of the sequence led by s[i] (>= 1 only when the
// whole sequence is well formed is returned as lead.len; otherwise the maximal subpart).
int ValidPrefix(std::string_view s, size_t i, const Lead& lead) {
  if (lead.len == 0) return 0;
  size_t j = i + 1;
  if (j >= s.size()) return 1;
  auto b = static_cast<unsigned char>(s[j]);
  if (b < lead.lo || b > lead.hi) return 1;
  for (int k = 2; k < lead.len; ++k) {
    ++j;
    if (j >= s.size()) return k;
    b = static_cast<unsigned char>(s[j]);
    if (b < 0x80 || b > 0xBF) return k;
  }
  return lead.len;
}

bool IsWhiteSpace(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

bool IsHangul(char32_t cp) {
  return (cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0xA960 && cp <= 0xA97F) ||
         (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xD7B0 && cp <= 0xD7FF);
}

uint8_t ComputeClass(char32_t cp) {
  if (cp > 0x10FFFF) return 0;
  uint8_t bits = 0;
  if (IsWhiteSpace(cp)) bits |= kSpace;
  if (cp == '\r' || cp == '\n') bits |= kNewline;
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
  switch (p->category) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      bits |= kLetter;
      break;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      bits |= kNumber;
      break;
    default:
      break;
  }
  // Below U+0300 every code point is NFC-stable and never the second of a composition.
  // Above it, anything that combines, composes or has a canonical decomposition may change.
  if (cp >= 0x300 && (p->combining_class != 0 || p->comb_index != UINT16_MAX ||
                      (p->decomp_seqindex != UINT16_MAX && p->decomp_type == 0) || p->comp_exclusion ||
                      IsHangul(cp))) {
    bits |= kNeedsNfc;
  }
  return bits;
}

// Classes of the Basic Multilingual Plane, computed once (thread-safe static init).
const std::array<uint8_t, 0x10000>& BmpClasses() {
  static const std::array<uint8_t, 0x10000>* table = [] {
    auto* t = new std::array<uint8_t, 0x10000>();
    for (char32_t cp = 0; cp < 0x10000; ++cp) (*t)[cp] = ComputeClass(cp);
    return t;
  }();
  return *table;
}

}  // namespace

size_t FindInvalidUtf8(std::string_view s) {
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // Skip ASCII eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      ++i;
      continue;
    }
    const Lead lead = LeadOf(b);
    if (lead.len == 0 || ValidPrefix(s, i, lead) != lead.len) return i;
    i += lead.len;
  }
  return std::string_view::npos;
}

uint8_t CharClass(char32_t cp) {
  if (cp < 0x10000) return BmpClasses()[cp];
  return ComputeClass(cp);
}

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool MayNeedNfc(std::string_view s) {
  const char* p = s.data();
  const char* end = p + s.size();
  while (p < end) {
    if (static_cast<unsigned char>(*p) < 0x80) {
      ++p;
      continue;
    }
    int len;
    const char32_t cp = DecodeUtf8(p, &len);
    if (CharClass(cp) & kNeedsNfc) return true;
    p += len;
  }
  return false;
}

namespace {

std::string Utf8procNfc(std::string_view s) {
  if (s.empty()) return std::string();
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                   &dst, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(dst, &std::free);
  // utf8proc only fails on invalid UTF-8 or out of memory; the input was validated.
  if (n < 0) return std::string(s);
  return std::string(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
}

}  // namespace

std::string Nfc(std::string_view s) {
  if (!MayNeedNfc(s)) return std::string(s);
  // utf8proc 2.8 composes an LV syllable followed by U+11A7 into the LV syllable alone,
  // dropping the U+11A7 (its Hangul T index check accepts TBase itself). U+11A7 is a starter
  // that composes with nothing, so normalizing the text between occurrences is exact NFC.
  constexpr std::string_view kTBase = "\xE1\x86\xA7";
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t p = s.find(kTBase, start);
    if (p == std::string_view::npos) break;
    out += Utf8procNfc(s.substr(start, p - start));
    out += kTBase;
    start = p + kTBase.size();
  }
  out += Utf8procNfc(s.substr(start));
  return out;
}

std::string Utf8Lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    const Lead lead = LeadOf(b);
    const int valid = ValidPrefix(bytes, i, lead);
    if (lead.len != 0 && valid == lead.len) {
      out.append(bytes.data() + i, static_cast<size_t>(valid));
      i += static_cast<size_t>(valid);
    } else {
      out.append("\xEF\xBF\xBD");  // U+FFFD for the maximal ill-formed subpart
      i += static_cast<size_t>(valid > 0 ? valid : 1);
    }
  }
  return out;
}

}  // namespace tokenizer_internal
}  // namespace swarr
