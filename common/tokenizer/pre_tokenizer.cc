#include "common/tokenizer/pre_tokenizer.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/unicode.h"

namespace swarr {
namespace tokenizer_internal {

const char kQwen2Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kLlama3Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kGpt2Regex[] = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

constexpr uint8_t kLN = kLetter | kNumber;
constexpr uint8_t kLNS = kLetter | kNumber | kSpace;

// Class bits of the code point at t[i] and its byte length.
inline uint8_t ClassAt(std::string_view t, size_t i, int* len) {
  const auto b = static_cast<unsigned char>(t[i]);
  if (b < 0x80) {
    *len = 1;
    return CharClass(b);
  }
  return CharClass(DecodeUtf8(t.data() + i, len));
}

inline uint8_t ClassAt(std::string_view t, size_t i) {
  int len;
  return ClassAt(t, i, &len);
}

inline bool IsOther(uint8_t c) { return (c & kLNS) == 0; }

// End of the run of code points from `i` whose class satisfies `pred`, at most `max` of them.
template <typename Pred>
size_t RunEnd(std::string_view t, size_t i, Pred pred, size_t max = static_cast<size_t>(-1)) {
  size_t count = 0;
  while (i < t.size() && count < max) {
    int len;
    if (!pred(ClassAt(t, i, &len))) break;
    i += static_cast<size_t>(len);
    ++count;
  }
  return i;
}

inline bool IsLetter(uint8_t c) { return (c & kLetter) != 0; }
inline bool IsNumber(uint8_t c) { return (c & kNumber) != 0; }

inline char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// After an apostrophe at t[i - 1]: end of a contraction 's 't 're 've 'm 'll 'd, or 0.
// Case-insensitive matching also accepts U+017F LATIN SMALL LETTER LONG S for 's' (it case
// folds to 's').
size_t ContractionEnd(std::string_view t, size_t i, bool case_insensitive) {
  const size_t n = t.size();
  if (i >= n) return 0;
  auto at = [&](size_t k) { return case_insensitive ? Lower(t[k]) : t[k]; };
  const char c = at(i);
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 1;
  if (i + 1 < n) {
    const char c2 = at(i + 1);
    if ((c == 'r' || c == 'v') && c2 == 'e') return i + 2;
    if (c == 'l' && c2 == 'l') return i + 2;
  }
  if (case_insensitive && i + 1 < n && t[i] == '\xC5' && t[i + 1] == '\xBF') return i + 2;
  return 0;
}

// \s*[\r\n]+ | \s+(?!\S) | \s+ at a whitespace code point (with_newline_rule: the first one).
size_t WhitespaceEnd(std::string_view t, size_t i, bool with_newline_rule) {
  size_t e = i, last_start = i, after_last_newline = 0;
  int count = 0;
  while (e < t.size()) {
    int len;
    const uint8_t c = ClassAt(t, e, &len);
    if (!(c & kSpace)) break;
    if (c & kNewline) after_last_newline = e + 1;
    last_start = e;
    e += static_cast<size_t>(len);
    ++count;
  }
  if (with_newline_rule && after_last_newline != 0) return after_last_newline;  // \s*[\r\n]+
  if (e == t.size()) return e;                                                  // \s+(?!\S) at the end
  if (count >= 2) return last_start;  // \s+(?!\S): all but the last whitespace
  return e;                           // \s+
}

size_t QwenPieceEnd(std::string_view t, size_t i, size_t max_digits) {
  const size_t n = t.size();
  int l0;
  const uint8_t c0 = ClassAt(t, i, &l0);
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (t[i] == '\'') {
    if (size_t e = ContractionEnd(t, i + 1, /*case_insensitive=*/true)) return e;
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (IsLetter(c0)) return RunEnd(t, i, IsLetter);
  if (!(c0 & (kLN | kNewline)) && i + l0 < n && IsLetter(ClassAt(t, i + l0))) {
    return RunEnd(t, i + l0, IsLetter);
  }
  // \p{N} (Qwen2) or \p{N}{1,3} (Llama 3)
  if (IsNumber(c0)) return RunEnd(t, i, IsNumber, max_digits);
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  size_t j = i;
  if (t[i] == ' ' && i + 1 < n && IsOther(ClassAt(t, i + 1))) j = i + 1;
  if (IsOther(ClassAt(t, j))) {
    size_t e = RunEnd(t, j, IsOther);
    while (e < n && (t[e] == '\r' || t[e] == '\n')) ++e;
    return e;
  }
  // Only whitespace is left.
  return WhitespaceEnd(t, i, /*with_newline_rule=*/true);
}

size_t Gpt2PieceEnd(std::string_view t, size_t i) {
  const size_t n = t.size();
  // 's|'t|'re|'ve|'m|'ll|'d
  if (t[i] == '\'') {
    if (size_t e = ContractionEnd(t, i + 1, /*case_insensitive=*/false)) return e;
  }
  // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`
  size_t j = i;
  if (t[i] == ' ' && i + 1 < n) j = i + 1;
  for (size_t start : {j, i}) {
    const uint8_t c = ClassAt(t, start);
    if (IsLetter(c)) return RunEnd(t, start, IsLetter);
    if (IsNumber(c)) return RunEnd(t, start, IsNumber);
    if (IsOther(c)) return RunEnd(t, start, IsOther);
    if (start == i) break;
  }
  return WhitespaceEnd(t, i, /*with_newline_rule=*/false);
}

}  // namespace

absl::StatusOr<SplitPattern> RecognizeSplitPattern(std::string_view regex) {
  if (regex == kQwen2Regex) return SplitPattern::kQwen2;
  if (regex == kLlama3Regex) return SplitPattern::kLlama3;
  if (regex == kGpt2Regex) return SplitPattern::kGpt2;
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported Split regex '", AsAbsl(regex),
      "' (supported: the Qwen2, Llama 3 and GPT-2 byte-level BPE patterns)"));
}

size_t PieceEnd(SplitPattern pattern, std::string_view text, size_t pos) {
  switch (pattern) {
    case SplitPattern::kQwen2:
      return QwenPieceEnd(text, pos, 1);
    case SplitPattern::kLlama3:
      return QwenPieceEnd(text, pos, 3);
    case SplitPattern::kGpt2:
      return Gpt2PieceEnd(text, pos);
  }
  return text.size();
}

std::vector<std::string_view> SplitPieces(SplitPattern pattern, std::string_view text) {
  std::vector<std::string_view> pieces;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = PieceEnd(pattern, text, pos);
    pieces.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return pieces;
}

}  // namespace tokenizer_internal
}  // namespace swarr
