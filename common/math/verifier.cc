#include "common/math/verifier.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "common/math/latex_expr.h"

namespace swarr {
namespace {

constexpr size_t kNpos = std::string_view::npos;
// Normalised answers longer than this are compared as strings only.
constexpr size_t kMaxCompareBytes = 4096;
// Lists / tuples / matrices longer than this are compared as strings only.
constexpr size_t kMaxElements = 64;
// Nesting of tuples inside tuples inside sets ...
constexpr int kMaxStructureDepth = 4;
// Relative tolerance for values computed in floating point.
constexpr double kRelTol = 1e-9;

bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
// std::string_view helpers (this absl's string_view is not std::string_view).
bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}
char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
std::string Lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = ToLower(c);
  return r;
}
bool EqualsIgnoreCase(std::string_view a, std::string_view b) { return Lower(a) == Lower(b); }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool IsAlnum(char c) { return IsLetter(c) || IsDigit(c); }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Trims and drops trailing periods (sentence ends): "5." -> "5".
std::string_view TrimPeriods(std::string_view s) {
  s = Trim(s);
  while (!s.empty() && s.back() == '.') s = Trim(s.substr(0, s.size() - 1));
  return s;
}

// Index of the '}' closing the '{' at s[open], skipping escaped characters (`\{`, `\}`).
size_t MatchBrace(std::string_view s, size_t open) {
  size_t depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\') {
      ++i;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}') {
      if (depth == 0) return kNpos;
      if (--depth == 0) return i;
    }
  }
  return kNpos;
}

bool IsOpen(char c) { return c == '(' || c == '[' || c == '{'; }
bool IsClose(char c) { return c == ')' || c == ']' || c == '}'; }

// Index of the bracket closing the one at s[0], any of ([{ vs )]} counting alike (so
// intervals "(3,4]" match); `\{` counts as a brace. kNpos if unbalanced.
size_t MatchAnyBracket(std::string_view s) {
  size_t depth = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '\\' && i + 1 < s.size() && (s[i + 1] == '{' || s[i + 1] == '}')) {
      c = s[++i];
    } else if (c == '\\') {
      continue;
    }
    if (IsOpen(c)) {
      ++depth;
    } else if (IsClose(c)) {
      if (depth == 0) return kNpos;
      if (--depth == 0) return i;
    }
  }
  return kNpos;
}

// Splits at occurrences of `sep` outside any brackets. A command separator (`\cup`) must
// not continue with a letter.
std::vector<std::string_view> SplitTopLevel(std::string_view s, std::string_view sep) {
  std::vector<std::string_view> parts;
  size_t depth = 0, start = 0;
  const bool is_command = sep.size() > 1 && sep[0] == '\\' && IsLetter(sep[1]);
  for (size_t i = 0; i < s.size(); ++i) {
    if (depth == 0 && s.compare(i, sep.size(), sep) == 0 &&
        !(is_command && i + sep.size() < s.size() && IsLetter(s[i + sep.size()]))) {
      parts.push_back(s.substr(start, i - start));
      i += sep.size() - 1;
      start = i + 1;
      continue;
    }
    char c = s[i];
    if (c == '\\' && i + 1 < s.size()) {
      char d = s[i + 1];
      if (d == '{' || d == '}') {
        c = d;
        ++i;
      } else if (!IsLetter(d)) {
        ++i;  // `\\`, `\,`: not brackets
        continue;
      }
    }
    if (IsOpen(c)) {
      ++depth;
    } else if (IsClose(c) && depth > 0) {
      --depth;
    }
  }
  parts.push_back(s.substr(start));
  return parts;
}

// ---------------------------------------------------------------------------------------
// Extraction.

// The rest of the line after the last occurrence of `marker` (ASCII case-insensitive),
// cleaned: "The answer is: $\frac12$. I hope" -> "\frac12", "is 12,000. I hope" ->
// "12,000". `at` receives the marker's position.
std::optional<std::string> AfterMarker(std::string_view text, std::string_view marker, size_t* at = nullptr) {
  if (text.size() < marker.size()) return std::nullopt;
  size_t found = kNpos;
  for (size_t p = text.size() - marker.size() + 1; p-- > 0;) {
    bool match = true;
    for (size_t k = 0; k < marker.size() && match; ++k) {
      match = ToLower(text[p + k]) == marker[k];
    }
    if (match) {
      found = p;
      break;
    }
  }
  if (found == kNpos) return std::nullopt;
  if (at) *at = found;
  std::string_view rest = text.substr(found + marker.size());
  rest = rest.substr(0, rest.find('\n'));
  rest = Trim(rest);
  if (!rest.empty() && rest.front() == ':') rest = Trim(rest.substr(1));
  if (!rest.empty() && rest.front() == '$') {
    // "$...$" (or "$$...$$"): the math span only.
    size_t open = rest.find_first_not_of('$');
    size_t close = open == kNpos ? kNpos : rest.find('$', open);
    if (close != kNpos) rest = rest.substr(open, close - open);
  } else if (StartsWith(rest, "\\(") || StartsWith(rest, "\\[")) {
    // "\\(...\\)" or "\\[...\\]": the math span only.
    size_t close = rest.find(rest[1] == '(' ? "\\)" : "\\]", 2);
    if (close != kNpos) rest = rest.substr(2, close - 2);
  } else {
    rest = rest.substr(0, rest.find(". "));  // the end of the sentence
  }
  rest = TrimPeriods(rest);
  if (rest.empty()) return std::nullopt;
  return std::string(rest);
}

// A region of LaTeX math in a completion: `$...$`, `$$...$$`, `\(...\)`, `\[...\]`.
struct MathSpan {
  size_t begin = 0, end = 0;                    // the whole span, delimiters included
  size_t content_begin = 0, content_end = 0;    // between the delimiters
  bool candidate = false;  // a usable answer span (inline spans must be on one line)
};

// Index of `pat` at or after `from` that is not preceded by a backslash (`\$`); kNpos.
size_t FindUnescaped(std::string_view s, std::string_view pat, size_t from) {
  while (from < s.size()) {
    size_t p = s.find(pat, from);
    if (p == kNpos) return kNpos;
    if (p == 0 || s[p - 1] != '\\') return p;
    from = p + 1;
  }
  return kNpos;
}

// All math spans, left to right. A span that is not closed shields the rest of the text
// (not a candidate); a lone `$` is a currency sign, not a span.
std::vector<MathSpan> ScanMath(std::string_view s) {
  std::vector<MathSpan> spans;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const char c = s[i];
    if (c == '\\' && i + 1 < n) {
      const char d = s[i + 1];
      if (d == '(' || d == '[') {
        const size_t close = s.find(d == '(' ? "\\)" : "\\]", i + 2);
        if (close == kNpos) {
          spans.push_back({i, n, i + 2, n, false});
          break;
        }
        const bool one_line = s.substr(i + 2, close - i - 2).find('\n') == kNpos;
        spans.push_back({i, close + 2, i + 2, close, d == '[' || one_line});
        i = close + 2;
        continue;
      }
      i += 2;
      continue;
    }
    if (c == '$') {
      if (i + 1 < n && s[i + 1] == '$') {
        const size_t close = FindUnescaped(s, "$$", i + 2);
        if (close == kNpos) {
          spans.push_back({i, n, i + 2, n, false});
          break;
        }
        spans.push_back({i, close + 2, i + 2, close, true});
        i = close + 2;
        continue;
      }
      const size_t close = FindUnescaped(s, "$", i + 1);
      if (close == kNpos) {  // a currency sign
        ++i;
        continue;
      }
      const std::string_view content = s.substr(i + 1, close - i - 1);
      spans.push_back({i, close + 1, i + 1, close, content.find('\n') == kNpos && !Trim(content).empty()});
      i = close + 1;
      continue;
    }
    ++i;
  }
  return spans;
}

// Length of a `%`, `\%`, "percent", "percentage" or "pct" at s[i] after optional spaces
// (whole words only); 0 if none.
size_t PercentSuffix(std::string_view s, size_t i) {
  size_t j = i;
  while (j < s.size() && j - i < 2 && s[j] == ' ') ++j;
  if (j < s.size() && s[j] == '%') return j + 1 - i;
  if (s.compare(j, 2, "\\%") == 0) return j + 2 - i;
  for (std::string_view w : {"percentage", "percent", "pct"}) {
    if (s.size() - j >= w.size() && EqualsIgnoreCase(s.substr(j, w.size()), w) &&
        (j + w.size() == s.size() || !IsLetter(s[j + w.size()]))) {
      return j + w.size() - i;
    }
  }
  return 0;
}

bool IsUnitWord(std::string_view w);

// Letters right after a number that are still a unit, not a variable or a word: "100m²",
// "15cm", "2kg".
bool IsAttachedUnit(std::string_view w) {
  return w == "m" || w == "g" || w == "s" || w == "h" || w == "l" || w == "ml" || w == "kg" || IsUnitWord(w);
}

struct NumberToken {
  size_t begin = 0, end = 0;                // with sign and percent suffix
  size_t digits_begin = 0, digits_end = 0;  // the number itself
  std::string value;   // decimal point for a decimal comma, no space separators, `%` kept
  bool valid = false;  // false: part of a word or of a larger expression
};

bool IsOperatorAt(std::string_view s, size_t i) {
  const char c = s[i];
  if (c == '+' || c == '*' || c == '/' || c == '^' || c == '-') return true;
  return s.compare(i, 2, "\xc3\x97") == 0 || s.compare(i, 2, "\xc3\xb7") == 0;  // × ÷
}

// Whether the number s[begin, end) stands alone: not inside a word (`AZYUK2A`, `abc2`), not
// an operand of an operator (`5-3`, `2^3`, `(1/2) / (3/4)`), not an element of a tuple or
// bracketed expression (`(7, 6)`), not a subscript / exponent / command argument.
bool StandsAlone(std::string_view s, size_t begin, size_t end) {
  const size_t n = s.size();
  if (begin > 0) {
    const char l = s[begin - 1];
    if (l == '_' || l == '^' || l == '\\' || l == '{' || l == '.') return false;
    if (IsLetter(l) && begin >= 2 && IsLetter(s[begin - 2])) return false;  // a word
    if (l == ',' && begin >= 2 && IsDigit(s[begin - 2])) return false;       // "3,75" strict, "1,2,3"
  }
  // Left operand: skip a sign, spaces and opening parentheses.
  size_t l = begin;
  const bool sign = l > 0 && s[l - 1] == '-' && (l == 1 || !(IsAlnum(s[l - 2]) || s[l - 2] == ')'));
  if (sign) --l;
  while (l > 0 && (s[l - 1] == ' ' || s[l - 1] == '(')) --l;
  if (l > 0 && IsLetter(s[l - 1])) {
    size_t w = l - 1;
    while (w > 0 && IsLetter(s[w - 1])) --w;
    if (w > 0 && s[w - 1] == '\\') return false;  // after a command: "5 \times 3", "\sqrt 3"
  }
  if (l > 0) {
    const size_t k = l - 1;
    if (sign && IsOperatorAt(s, k)) {
      return false;  // "2 * -3", "5 - -3"
    } else if (s[k] == '-') {
      size_t m = k;
      while (m > 0 && s[m - 1] == ' ') --m;
      if (m > 0 && (IsAlnum(s[m - 1]) || s[m - 1] == ')')) return false;  // binary minus
    } else if (IsOperatorAt(s, k) || (k >= 1 && IsOperatorAt(s, k - 1) && static_cast<unsigned char>(s[k]) >= 0x80)) {
      return false;  // the second byte of a `×` / `÷` also ends an operator
    }
  }
  if (end < n) {
    const char r = s[end];
    if (r == '^' || r == '_' || r == '!') return false;
    if (IsLetter(r)) {
      size_t e = end;
      while (e < n && IsLetter(s[e])) ++e;
      if (!IsAttachedUnit(Lower(s.substr(end, e - end)))) return false;
    }
  }
  // Right operand: skip spaces and closing parentheses.
  size_t r = end;
  bool closing = false;
  while (r < n && (s[r] == ' ' || s[r] == ')' || s[r] == ']')) closing |= s[r++] != ' ';
  if (r < n && IsOperatorAt(s, r) && s[r] != '-') {
    size_t m = r + 1;
    while (m < n && (s[m] == ' ' || static_cast<unsigned char>(s[m]) >= 0x80)) ++m;
    if (m < n && (IsAlnum(s[m]) || s[m] == '(' || s[m] == '\\' || s[m] == '.')) return false;
  }
  if (r < n && s[r] == '-' && r + 1 < n && (IsAlnum(s[r + 1]) || s[r + 1] == '(')) return false;
  for (std::string_view op : {"\\times", "\\cdot", "\\div", "\\pm", "\\mp"}) {
    if (s.compare(r, op.size(), op) == 0 && (r + op.size() == n || !IsLetter(s[r + op.size()]))) return false;
  }
  if (closing) {
    // Last inside brackets: not an element of a tuple "(4, 6)" or the end of an expression
    // "(2 + 6)"; a computed result "(9 * 2 = 18)" or a remark "(which is 6)" is fine.
    size_t depth = 0;
    for (size_t k = begin; k-- > 0 && begin - k < 200;) {
      const char c = s[k];
      if (c == '\n') break;
      if (c == ')' || c == ']') ++depth;
      if (c == '(' || c == '[') {
        if (depth > 0) {
          --depth;
          continue;
        }
        const std::string_view before = Trim(s.substr(k + 1, begin - k - 1));
        if (before.empty() || before.back() == '=') return true;
        for (char b : before) {
          if (b == ',' || b == ';' || b == '+' || b == '-' || b == '*' || b == '/' || b == '^') return false;
        }
        return true;
      }
    }
  }
  return true;
}

// The number starting at s[i] (a digit, or '.' before a digit), with its sign, thousands
// separators, decimal part, `/denominator` and percent suffix.
NumberToken ReadNumber(std::string_view s, size_t i, bool lenient) {
  const size_t n = s.size();
  NumberToken t;
  size_t j = i;
  while (j < n && IsDigit(s[j])) ++j;
  const std::string_view int_part = s.substr(i, j - i);
  t.value = std::string(int_part);
  bool grouped = false;
  if (!int_part.empty() && int_part.size() <= 3 && int_part[0] != '0') {
    char sep = 0;
    while (j + 3 < n) {
      const char c = s[j];
      const bool is_sep = (c == ',' || (lenient && c == ' ')) && (sep == 0 || sep == c);
      if (!is_sep || !IsDigit(s[j + 1]) || !IsDigit(s[j + 2]) || !IsDigit(s[j + 3]) ||
          (j + 4 < n && IsDigit(s[j + 4]))) {
        break;
      }
      sep = c;
      if (c == ',') t.value += ',';
      t.value.append(s.data() + j + 1, 3);
      j += 4;
      grouped = true;
    }
  }
  if (j + 1 < n && s[j] == '.' && IsDigit(s[j + 1])) {
    size_t k = j + 1;
    while (k < n && IsDigit(s[k])) ++k;
    t.value.append(s.data() + j, k - j);
    j = k;
  } else if (lenient && !grouped && !int_part.empty() && j + 1 < n && s[j] == ',' && IsDigit(s[j + 1])) {
    // A decimal comma: "2,74", "0,111", "1000,99"; not in a list "1,2,3".
    size_t k = j + 1;
    while (k < n && IsDigit(s[k])) ++k;
    const bool list_after = k + 1 < n && s[k] == ',' && IsDigit(s[k + 1]);
    const bool list_before = i >= 2 && s[i - 1] == ',' && IsDigit(s[i - 2]);
    const bool three = k - j - 1 == 3 && int_part[0] != '0' && int_part.size() <= 3;
    if (!list_after && !list_before && !three) {
      t.value += '.';
      t.value.append(s.data() + j + 1, k - j - 1);
      j = k;
    }
  }
  if (j + 1 < n && s[j] == '/' && IsDigit(s[j + 1])) {
    size_t k = j + 1;
    while (k < n && IsDigit(s[k])) ++k;
    t.value.append(s.data() + j, k - j);
    j = k;
  }
  t.begin = i;
  t.end = j;
  if (i > 0 && s[i - 1] == '-' && (i == 1 || !(IsAlnum(s[i - 2]) || s[i - 2] == ')'))) {
    t.begin = i - 1;
    t.value.insert(t.value.begin(), '-');
  }
  t.digits_begin = i;
  t.digits_end = j;
  if (const size_t pct = PercentSuffix(s, j)) {
    t.value += '%';
    t.end = j + pct;
  }
  return t;
}

// `\frac{12}{7}` (also \dfrac, \tfrac, \cfrac) at s[i] written outside math; its length or 0.
size_t BareFraction(std::string_view s, size_t i) {
  size_t j = i + 1;
  while (j < s.size() && IsLetter(s[j])) ++j;
  const std::string_view name = s.substr(i + 1, j - i - 1);
  if (name != "frac" && name != "dfrac" && name != "tfrac" && name != "cfrac") return 0;
  for (int arg = 0; arg < 2; ++arg) {
    if (j >= s.size() || s[j] != '{') return 0;
    size_t k = j + 1;
    while (k < s.size() && IsDigit(s[k])) ++k;
    if (k == j + 1 || k >= s.size() || s[k] != '}') return 0;
    j = k + 1;
  }
  return j - i;
}

// The last number outside math spans (nullopt if none).
std::optional<NumberToken> LastNumberToken(std::string_view s, const std::vector<MathSpan>& spans, bool lenient) {
  std::optional<NumberToken> last;
  size_t next_span = 0;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (next_span < spans.size() && i >= spans[next_span].begin) {
      i = std::max(i, spans[next_span].end);
      ++next_span;
      continue;
    }
    const char c = s[i];
    if (c == '\\') {
      if (const size_t len = BareFraction(s, i)) {
        NumberToken t;
        t.begin = (i > 0 && s[i - 1] == '-') ? i - 1 : i;
        t.end = i + len;
        t.value = std::string(s.substr(t.begin, t.end - t.begin));
        t.digits_begin = t.digits_end = kNpos;  // stands alone by construction
        last = std::move(t);
        i += len;
        continue;
      }
      ++i;
      while (i < n && IsLetter(s[i])) ++i;
      continue;
    }
    if (IsDigit(c) || (c == '.' && i + 1 < n && IsDigit(s[i + 1]) && (i == 0 || !IsDigit(s[i - 1])))) {
      NumberToken t = ReadNumber(s, i, lenient);
      i = std::max(t.end, i + 1);
      last = std::move(t);
      continue;
    }
    ++i;
  }
  // Only the last one matters: check its surroundings once.
  if (last) {
    last->valid = last->digits_begin == kNpos || StandsAlone(s, last->digits_begin, last->digits_end);
  }
  return last;
}

// Text between two answer pieces that makes them one answer: spaces, `,` `;`, math
// delimiters, `\quad`, `\text{...}` braces, and at most four words of which one is "and" /
// "or" ("\boxed{1} papers and \boxed{2}", "\boxed{(3,3)} \text{ for part (a) and }").
bool IsJoinGlue(std::string_view g) {
  int words = 0;
  bool connective = false;
  size_t i = 0;
  while (i < g.size()) {
    const char c = g[i];
    if (IsSpace(c) || c == ',' || c == ';' || c == '$' || c == '~' || c == '{' || c == '}' || c == '(' ||
        c == ')' || c == '=' || c == '&') {
      ++i;
      continue;
    }
    if (c == '_' && i + 1 < g.size() && IsAlnum(g[i + 1])) {  // y_2 =
      i += 2;
      while (i < g.size() && IsDigit(g[i])) ++i;
      continue;
    }
    if (c == '\\') {
      size_t j = i + 1;
      if (j >= g.size() || !IsLetter(g[j])) {
        i = j + 1;  // \( \) \[ \] \, \; `\\`
        continue;
      }
      while (j < g.size() && IsLetter(g[j])) ++j;
      const std::string_view name = g.substr(i + 1, j - i - 1);
      if (!(name == "quad" || name == "qquad" || name == "text" || name == "textbf" || name == "mbox" ||
            name == "textrm" || name == "mathrm" || name == "textnormal" || name == "hspace")) {
        return false;
      }
      i = j;
      continue;
    }
    if (IsLetter(c)) {
      size_t j = i;
      while (j < g.size() && IsLetter(g[j])) ++j;
      const std::string w = Lower(g.substr(i, j - i));
      if (w == "and" || w == "or") connective = true;
      ++words;
      i = j;
      continue;
    }
    return false;
  }
  return words == 0 || (connective && words <= 4);
}

struct BoxPos {
  size_t begin = 0, end = 0;
  std::string_view content;
};

// Every balanced \boxed{...} / \fbox{...} at top level (not nested in another box).
std::vector<BoxPos> FindBoxes(std::string_view s) {
  std::vector<BoxPos> boxes;
  size_t i = 0;
  while (i < s.size()) {
    size_t p = s.find('\\', i);
    if (p == kNpos) break;
    size_t name_len = 0;
    if (s.compare(p, 6, "\\boxed") == 0) name_len = 6;
    if (s.compare(p, 5, "\\fbox") == 0) name_len = 5;
    size_t j = p + name_len;
    if (name_len == 0 || (j < s.size() && IsLetter(s[j]))) {
      i = p + 1;
      continue;
    }
    while (j < s.size() && IsSpace(s[j])) ++j;
    if (j >= s.size() || s[j] != '{') {
      i = j;
      continue;
    }
    const size_t close = MatchBrace(s, j);
    if (close == kNpos) break;
    boxes.push_back({p, close + 1, s.substr(j + 1, close - j - 1)});
    i = close + 1;
  }
  return boxes;
}

// The last box, with the boxes before it that form one answer with it ("1, -2").
std::optional<std::string> JoinedBoxes(std::string_view s) {
  std::optional<std::string> last = LastBoxed(s);
  if (!last) return std::nullopt;
  const std::vector<BoxPos> boxes = FindBoxes(s);
  if (boxes.empty() || boxes.back().content != *last) return last;
  constexpr size_t kMaxJoined = 16;
  size_t first = boxes.size() - 1;
  while (first > 0 && boxes.size() - first < kMaxJoined &&
         IsJoinGlue(s.substr(boxes[first - 1].end, boxes[first].begin - boxes[first - 1].end)) &&
         !Trim(boxes[first - 1].content).empty()) {
    --first;
  }
  if (first == boxes.size() - 1) return last;
  std::vector<std::string_view> parts;
  for (size_t k = first; k < boxes.size(); ++k) {
    const std::string_view c = Trim(boxes[k].content);
    if (std::find(parts.begin(), parts.end(), c) == parts.end()) parts.push_back(c);
  }
  std::string joined;
  for (std::string_view part : parts) {
    if (!joined.empty()) joined += ", ";
    joined.append(part.data(), part.size());
  }
  return joined;
}

// Spans joined by exactly one connective: "$1$, $2$ and $3$", "$21,16$ or $11$".
bool IsSpanConnective(std::string_view g) {
  g = Trim(g);
  if (!g.empty() && g.front() == ',') g = Trim(g.substr(1));
  if (g.empty()) return true;
  const std::string w = Lower(g);
  return w == "and" || w == "or";
}

// ---------------------------------------------------------------------------------------
// Normalisation of a whole answer.

bool IsTextCommand(std::string_view name) {
  return name == "text" || name == "mbox" || name == "textrm" || name == "mathrm" || name == "textbf" ||
         name == "mathbf" || name == "textit" || name == "mathit" || name == "textsf" || name == "mathsf" ||
         name == "textnormal" || name == "operatorname" || name == "emph" || name == "boldsymbol" ||
         name == "textup";
}
// Commands whose content may be a unit to drop (`5\text{ cm}`); bold / italic are not.
bool IsUnitCommand(std::string_view name) {
  return name == "text" || name == "mbox" || name == "textrm" || name == "mathrm" || name == "textnormal" ||
         name == "textup";
}
// Words, optionally with `^2`, `/`, `.`: "cm", "sq. ft", "km/h", "inches^2".
bool IsUnitLike(std::string_view t) {
  bool letter = false;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (IsLetter(c)) {
      letter = true;
    } else if (IsDigit(c)) {
      if (i == 0 || (t[i - 1] != '^' && !IsDigit(t[i - 1]))) return false;
    } else if (!(c == ' ' || c == '.' || c == '/' || c == '^')) {
      return false;
    }
  }
  return letter;
}

size_t CountDigits(std::string_view s) { return std::count_if(s.begin(), s.end(), IsDigit); }

// One left-to-right pass: drops `$`, delimiters, sizing and spacing commands, maps
// \dfrac/\tfrac to \frac and \leq/\geq to \le/\ge, `\%` to `%`.
std::string CleanPass(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const size_t n = s.size();
  for (size_t i = 0; i < n; ++i) {
    char c = s[i];
    if (c == '$') continue;
    if (c == '~' || IsSpace(c)) {
      out += ' ';
      continue;
    }
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i + 1 >= n) break;  // a trailing lone backslash
    char d = s[i + 1];
    if (!IsLetter(d)) {
      ++i;
      switch (d) {
        case '!':
          // `10,\!080`, `11,\! 111`: a thousands separator; swallow the spaces after it.
          if (!out.empty() && out.back() == ',') {
            while (i + 1 < n && IsSpace(s[i + 1])) ++i;
          }
          break;
        case ',': case ';': case ':': case ' ': case '>': case '\n': case '\t':
          out += ' ';
          break;
        case '$': case '(': case ')': case '[': case ']':
          break;
        case '%':
          out += '%';
          break;
        default:
          out += '\\';
          out += d;
      }
      continue;
    }
    size_t j = i + 1;
    while (j < n && IsLetter(s[j])) ++j;
    std::string_view name = s.substr(i + 1, j - i - 1);
    if (name == "left" || name == "right" || name == "bigl" || name == "bigr" || name == "Bigl" || name == "Bigr" ||
        name == "big" || name == "Big" || name == "bigg" || name == "Bigg" || name == "displaystyle" ||
        name == "textstyle" || name == "limits" || name == "nolimits") {
      if ((name == "left" || name == "right") && j < n && s[j] == '.') ++j;  // \left. \right.
      i = j - 1;
      continue;
    }
    if (name == "dfrac" || name == "tfrac" || name == "cfrac") {
      out += "\\frac";
    } else if (name == "quad" || name == "qquad" || name == "enspace" || name == "thinspace" ||
               name == "medspace" || name == "thickspace") {
      out += ' ';
    } else if (name == "leq" || name == "leqslant") {
      out += "\\le";
    } else if (name == "geq" || name == "geqslant") {
      out += "\\ge";
    } else if (name == "neq") {
      out += "\\ne";
    } else if (name == "lt") {
      out += '<';
    } else if (name == "gt") {
      out += '>';
    } else if ((StartsWith(name, "qquad") || StartsWith(name, "quad")) && name != "quad" && name != "qquad") {
      // `\quadx_2`: a space glued to a variable.
      const size_t skip = StartsWith(name, "qquad") ? 5 : 4;
      out += ' ';
      out.append(name.data() + skip, name.size() - skip);
    } else if (name == "degree" || name == "degrees") {
      // dropped
    } else {
      out += '\\';
      out.append(name.data(), name.size());
    }
    i = j - 1;
  }
  return out;
}

// \text{...}-like groups: units next to a number are dropped (with a `^2` after them),
// " and " / " or " become commas, "percent" becomes %, anything else is unwrapped.
std::string TextPass(const std::string& s) {
  const size_t n = s.size();
  const size_t total_digits = CountDigits(s);
  std::string out;
  out.reserve(n);
  size_t i = 0;
  while (i < n) {
    if (s[i] != '\\') {
      out += s[i++];
      continue;
    }
    size_t j = i + 1;
    while (j < n && IsLetter(s[j])) ++j;
    if (j == i + 1) {  // control symbol: copy both characters
      out.append(s, i, std::min<size_t>(2, n - i));
      i += 2;
      continue;
    }
    std::string_view name(s.data() + i + 1, j - i - 1);
    size_t k = j;
    while (k < n && s[k] == ' ') ++k;
    size_t close = (IsTextCommand(name) && k < n && s[k] == '{') ? MatchBrace(s, k) : kNpos;
    if (close == kNpos) {
      out.append(s, i, j - i);
      i = j;
      continue;
    }
    std::string_view content(s.data() + k + 1, close - k - 1);
    std::string_view trimmed = Trim(content);
    std::string lower = Lower(trimmed);
    size_t next = close + 1;
    if (lower == "and" || lower == "or" || lower == ",") {
      out += ", ";  // with a space: "12\\text{ and }130" is not 12,130
    } else if (lower == "percent" || trimmed == "%" || trimmed == "\\%") {
      out += '%';
    } else if (IsUnitCommand(name) && IsUnitLike(trimmed) && total_digits > CountDigits(content)) {
      for (std::string_view exp : {"^2", "^3", "^{2}", "^{3}"}) {
        if (s.compare(next, exp.size(), exp) == 0) {
          next += exp.size();
          break;
        }
      }
      out += ' ';
    } else {
      out.append(content.data(), content.size());
    }
    i = next;
  }
  return out;
}

std::string CollapseSpaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (IsSpace(c)) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  return std::string(Trim(out));
}

bool IsUnitWord(std::string_view w) {
  static constexpr std::string_view kUnits[] = {
      "cm", "mm", "km", "meter", "meters", "metre", "metres", "centimeter", "centimeters", "kilometer",
      "kilometers", "millimeter", "millimeters", "inch", "inches", "foot", "feet", "ft", "yard", "yards", "yd",
      "mile", "miles", "unit", "units", "sq", "square", "cubic", "degree", "degrees", "deg", "radian", "radians",
      "dollar", "dollars", "cent", "cents", "hour", "hours", "hr", "hrs", "minute", "minutes", "min", "mins",
      "second", "seconds", "sec", "day", "days", "week", "weeks", "month", "months", "year", "years", "mph",
      "kph", "pound", "pounds", "lb", "lbs", "ounce", "ounces", "oz", "gram", "grams", "kg", "kilogram",
      "kilograms", "liter", "liters", "litre", "litres", "ml", "gallon", "gallons", "cup", "cups", "per",
      "points", "people", "students", "times", "ways", "percent", "percentage", "pct", "yuan", "euros", "euro",
  };
  for (auto u : kUnits) {
    if (u == w) return true;
  }
  return false;
}

// "18 dollars" -> "18", "864 square inches" -> "864", "50 percent" -> "50%". Only words
// from a fixed list, only after something containing a digit.
std::string StripUnitWords(std::string s) {
  bool percent = false;
  for (int round = 0; round < 4; ++round) {
    size_t space = s.rfind(' ');
    if (space == std::string::npos) break;
    std::string word = Lower(std::string_view(s).substr(space + 1));
    while (!word.empty() && word.back() == '.') word.pop_back();
    for (std::string_view exp : {"^2", "^3", "^{2}", "^{3}"}) {
      if (EndsWith(word, exp)) word.resize(word.size() - exp.size());
    }
    std::string_view rest = Trim(std::string_view(s).substr(0, space));
    if (!IsUnitWord(word) || CountDigits(rest) == 0) break;
    if (word == "percent" || word == "percentage" || word == "pct") percent = true;
    s = std::string(rest);
  }
  if (percent) s += '%';
  return s;
}

bool IsGreekName(std::string_view c) {
  static constexpr std::string_view kNames[] = {"alpha", "beta", "gamma", "delta", "theta", "lambda", "mu",
                                                "phi",   "varphi", "psi", "omega", "rho", "sigma", "tau"};
  for (auto g : kNames) {
    if (g == c) return true;
  }
  return false;
}

// A name that can stand left of `=` in "x = 5": x, x_1, x_{12}, \theta, f(x).
bool IsVariableName(std::string_view v) {
  v = Trim(v);
  if (v.empty()) return false;
  size_t i = 0;
  if (IsLetter(v[0])) {
    i = 1;
  } else if (v[0] == '\\') {
    size_t j = 1;
    while (j < v.size() && IsLetter(v[j])) ++j;
    if (!IsGreekName(v.substr(1, j - 1))) return false;
    i = j;
  } else {
    return false;
  }
  std::string_view rest = v.substr(i);
  if (rest.empty()) return true;
  if (rest[0] == '_') {
    rest.remove_prefix(1);
    if (rest.size() == 1 && IsAlnum(rest[0])) return true;
    if (rest.size() >= 3 && rest.front() == '{' && rest.back() == '}') {
      return std::all_of(rest.begin() + 1, rest.end() - 1, IsAlnum);
    }
    return false;
  }
  // f(x)
  return rest.size() == 3 && rest[0] == '(' && IsLetter(rest[1]) && rest[2] == ')' && IsLetter(v[0]) && i == 1;
}

// "x = 5" -> "5", "x \in [1,2]" -> "[1,2]". Only a single top-level `=` whose left side is
// a variable name.
std::string StripVariablePrefix(std::string s) {
  for (const std::string_view sep : {"\\in", "="}) {
    std::vector<std::string_view> parts = SplitTopLevel(s, sep);
    if (parts.size() != 2) continue;
    if (sep == "=") {
      // Not part of <=, >=, ==, !=, :=.
      std::string_view left = parts[0];
      if (!left.empty() && (left.back() == '<' || left.back() == '>' || left.back() == '!' || left.back() == ':')) {
        continue;
      }
      if (!parts[1].empty() && parts[1].front() == '=') continue;
    }
    if (!IsVariableName(parts[0])) continue;
    s = std::string(Trim(parts[1]));
  }
  return s;
}

// Whole-string thousands separators: "-1,234,567.5%" -> "-1234567.5%".
std::string StripThousands(std::string s) {
  size_t i = 0;
  const size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  size_t lead = 0;
  while (i < n && IsDigit(s[i])) ++i, ++lead;
  if (lead < 1 || lead > 3) return s;
  int groups = 0;
  while (i + 3 < n + 0 && s[i] == ',' && IsDigit(s[i + 1]) && IsDigit(s[i + 2]) && IsDigit(s[i + 3])) {
    i += 4;
    ++groups;
  }
  if (groups == 0) return s;
  if (i < n && s[i] == '.') {
    ++i;
    while (i < n && IsDigit(s[i])) ++i;
  }
  if (i < n && s[i] == '%') ++i;
  if (i != n) return s;
  s.erase(std::remove(s.begin(), s.end(), ','), s.end());
  return s;
}

// `\\frac` with a doubled backslash (an escaping slip in "\\\\frac{1}{2}") -> `\frac`; a
// row break `\\` before other text stays.
std::string FixDoubledBackslashes(std::string_view s) {
  static constexpr std::string_view kCommands[] = {
      "frac", "dfrac", "tfrac", "cfrac", "sqrt", "left", "right", "le", "leq", "ge", "geq", "lt", "gt", "ne",
      "neq", "pi", "cdot", "times", "text", "mathrm", "infty", "pm", "cup", "in", "boxed", "approx", "circ"};
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 2 < s.size() && s[i + 1] == '\\' && IsLetter(s[i + 2])) {
      size_t j = i + 2;
      while (j < s.size() && IsLetter(s[j])) ++j;
      const std::string_view name = s.substr(i + 2, j - i - 2);
      out += '\\';
      if (std::find(std::begin(kCommands), std::end(kCommands), name) == std::end(kCommands)) out += '\\';
      ++i;
      continue;
    }
    out += s[i];
  }
  return out;
}

// `14{,}916`, `14 {, }916` -> `14,916`.
std::string JoinBracedCommas(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    size_t len = 0;
    if (s.compare(i, 3, "{,}") == 0) len = 3;
    if (s.compare(i, 4, "{, }") == 0) len = 4;
    if (len == 0) {
      out += s[i];
      continue;
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += ',';
    i += len - 1;
    while (i + 1 < s.size() && s[i + 1] == ' ') ++i;
  }
  return out;
}

// Plain connective words between answers: "12 and 13", "(11,7)or(7,11)" -> lists.
std::string ReplaceConnectives(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    size_t len = 0;
    for (std::string_view w : {"and", "or"}) {
      if (s.compare(i, w.size(), w) != 0) continue;
      const char before = i > 0 ? s[i - 1] : ' ';
      const char after = i + w.size() < s.size() ? s[i + w.size()] : ' ';
      const bool spaced = before == ' ' && after == ' ';
      const bool bracketed = before == ')' && after == '(';
      if ((spaced || bracketed) && i > 0 && i + w.size() < s.size()) len = w.size();
    }
    if (len == 0) {
      out += s[i];
      continue;
    }
    out += ", ";
    i += len - 1;
  }
  return out;
}

// Whether `t` has no free letters (letters only in command names): "\frac{1}{\sqrt6}",
// "7:32", "(3,2)"; and at least one digit or constant.
bool IsConstantText(std::string_view t) {
  bool value = false;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (c == '\\') {
      size_t j = i + 1;
      while (j < t.size() && IsLetter(t[j])) ++j;
      const std::string_view name = t.substr(i + 1, j - i - 1);
      if (name == "pi" || name == "infty") value = true;
      if (name == "text" || name == "mathrm" || name == "mathbf" || name == "operatorname" || IsGreekName(name)) {
        return false;
      }
      i = j > i + 1 ? j - 1 : i + 1;
      continue;
    }
    if (IsLetter(c)) return false;
    if (IsDigit(c)) value = true;
  }
  return value;
}

// A name standing left of `=` for a value: `x`, `x_1`, `f(x)`, `(p,q)`, `AB`, `|AB|`,
// `V_{1}:V_{2}`, `S_{MBCN}:S`, `\frac{NO}{BO}`, `\angle ABC`. No digits outside
// subscripts, no operators.
bool IsLabel(std::string_view v) {
  v = Trim(v);
  if (v.empty()) return false;
  bool letter = false;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '_') {
      ++i;
      if (i < v.size() && v[i] == '{') {
        const size_t close = MatchBrace(v, i);
        if (close == kNpos) return false;
        i = close;
      }
      continue;
    }
    if (c == '\\') {
      size_t j = i + 1;
      while (j < v.size() && IsLetter(v[j])) ++j;
      const std::string_view name = v.substr(i + 1, j - i - 1);
      if (!(name == "frac" || name == "overline" || name == "angle" || name == "triangle" || name == "vert" ||
            name == "mathrm" || name == "mathbf" || name == "text" || IsGreekName(name))) {
        return false;
      }
      if (IsGreekName(name)) letter = true;
      i = j - 1;
      continue;
    }
    if (IsLetter(c)) {
      letter = true;
      continue;
    }
    if (!(c == ' ' || c == ':' || c == '|' || c == '(' || c == ')' || c == ',' || c == '/' || c == '\'' ||
          c == '{' || c == '}')) {
      return false;
    }
  }
  return letter;
}

// Chains and labels: "x = 5+5+1 = 7 = 11" -> "11" (the last side of a chain of three or
// more, when the answer is not a list); "\frac{1}{2} = \frac{10}{9}" -> "\frac{10}{9}" (a
// computation: constant = constant); "(p,q) = (3,2)", "V_1:V_2 = 11:21" -> the value (a
// label and a constant); "1/3 \approx 0.33" -> "1/3", "x \approx 11" -> "11".
std::string ReduceEquation(std::string s) {
  const bool is_list = SplitTopLevel(s, ",").size() > 1 || SplitTopLevel(s, ";").size() > 1;
  std::vector<std::string_view> parts = SplitTopLevel(s, "=");
  bool plain = parts.size() >= 2;
  for (size_t k = 0; k + 1 < parts.size() && plain; ++k) {
    const std::string_view l = parts[k];
    plain = !l.empty() && l.back() != '<' && l.back() != '>' && l.back() != '!' && l.back() != ':' &&
            !parts[k + 1].empty() && parts[k + 1].front() != '=';
  }
  if (plain && parts.size() >= 3 && !is_list) {
    s = std::string(Trim(parts.back()));
  } else if (plain && parts.size() == 2) {
    const std::string_view l = Trim(parts[0]), r = Trim(parts[1]);
    if (!l.empty() && !r.empty() && IsConstantText(r) && ((!is_list && IsConstantText(l)) || IsLabel(l))) {
      s = std::string(r);
    }
  }
  parts = SplitTopLevel(s, "\\approx");
  if (parts.size() == 2) {
    const std::string_view l = Trim(parts[0]), r = Trim(parts[1]);
    if (!l.empty() && !r.empty()) s = std::string(IsVariableName(l) ? r : l);
  }
  return s;
}

// The whole-answer normalisation, before splitting into elements.
std::string NormalizeTop(std::string_view raw, bool keep_equation = false) {
  std::string s = FixDoubledBackslashes(Trim(raw));
  if (s.find("\\boxed") != std::string::npos || s.find("\\fbox") != std::string::npos) {
    if (auto b = LastBoxed(s)) s = *b;
  }
  s = JoinBracedCommas(s);
  s = absl::StrReplaceAll(s, {{"\xe2\x88\x92", "-"},     // U+2212 minus
                              {"\xcf\x80", "\\pi "},     // π
                              {"\xc3\x97", "\\times "},  // ×
                              {"\xc2\xb7", "\\cdot "},   // ·
                              {"\xc2\xb0", ""},          // °
                              {"\xe2\x88\x9e", "\\infty "},
                              {"\xe2\x89\xa4", "\\le "},     // ≤
                              {"\xe2\x89\xa5", "\\ge "},     // ≥
                              {"\xe2\x89\xa0", "\\ne "},     // ≠
                              {"\xe2\x89\x88", "\\approx "},  // ≈
                              {"^{\\circ}", ""},
                              {"^\\circ", ""},
                              {"^{\\circ }", ""}});
  s = CleanPass(s);
  s = absl::StrReplaceAll(s, {{"<=", "\\le "}, {">=", "\\ge "}, {"!=", "\\ne "}});
  for (int pass = 0; pass < 2; ++pass) s = TextPass(s);
  s = CollapseSpaces(s);
  s = std::string(TrimPeriods(s));
  s = StripUnitWords(std::move(s));
  s = ReplaceConnectives(s);
  s = ReduceEquation(std::move(s));
  if (!keep_equation) s = StripVariablePrefix(std::move(s));
  s = StripThousands(std::move(s));
  return s;
}

// Removes spaces except between two letters (`\pi r`) or two digits (`2 3` stays two
// numbers); `_{5}` -> `_5`, `^{2}` -> `^2`.
std::string Canonical(std::string_view s) {
  std::string a;
  a.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != ' ') {
      a += s[i];
      continue;
    }
    char prev = a.empty() ? '\0' : a.back();
    char next = i + 1 < s.size() ? s[i + 1] : '\0';
    if ((IsLetter(prev) && IsLetter(next)) || (IsDigit(prev) && IsDigit(next))) a += ' ';
  }
  std::string out;
  out.reserve(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if ((a[i] == '_' || a[i] == '^') && i + 3 < a.size() + 0 && a[i + 1] == '{' && IsAlnum(a[i + 2]) &&
        a[i + 3] == '}') {
      out += a[i];
      out += a[i + 2];
      i += 3;
      continue;
    }
    out += a[i];
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Scalars.

struct Scalar {
  std::string text;  // canonical
  bool percent = false;
};

using i128 = __int128;

// A mixed number "7 3/4", "1\frac{4}{5}", "2\frac12" (proper fraction only) as
// "\frac{31}{4}"; anything else unchanged.
std::string RewriteMixedNumber(const std::string& t) {
  size_t i = 0;
  const size_t n = t.size();
  bool neg = false;
  if (i < n && t[i] == '-') {
    neg = true;
    ++i;
  }
  auto read_int = [&](i128* v) {
    size_t b = i;
    *v = 0;
    while (i < n && IsDigit(t[i]) && i - b < 18) *v = *v * 10 + (t[i++] - '0');
    return i > b && !(i < n && IsDigit(t[i]));
  };
  i128 whole, num, den;
  if (!read_int(&whole)) return t;
  if (i < n && t[i] == ' ') {
    ++i;
  }
  size_t rest = i;
  bool ok = false;
  if (t.compare(i, 5, "\\frac") == 0) {
    i += 5;
    auto read_arg = [&](i128* v) {
      while (i < n && t[i] == ' ') ++i;
      if (i < n && t[i] == '{') {
        ++i;
        if (!read_int(v) || i >= n || t[i] != '}') return false;
        ++i;
        return true;
      }
      if (i < n && IsDigit(t[i])) {
        *v = t[i++] - '0';
        return true;
      }
      return false;
    };
    ok = read_arg(&num) && read_arg(&den) && i == n;
  } else if (rest > 0 && t[rest - 1] == ' ') {
    ok = read_int(&num) && i < n && t[i] == '/' && (++i, read_int(&den)) && i == n;
  }
  if (!ok || den == 0 || num >= den) return t;
  i128 top = whole * den + num;
  auto to_string = [](i128 v) {
    std::string r;
    do {
      r += static_cast<char>('0' + static_cast<int>(v % 10));
      v /= 10;
    } while (v > 0);
    std::reverse(r.begin(), r.end());
    return r;
  };
  return (neg ? "-" : "") + std::string("\\frac{") + to_string(top) + "}{" + to_string(den) + "}";
}

// Whole-element normalisation of one scalar.
Scalar NormalizeScalar(std::string_view raw) {
  Scalar out;
  // No "x =" stripping here: NormalizeTop did it for a whole answer, and inside a list the
  // names matter ("a=2, b=3" is not "b=2, a=3"); such elements compare as equations.
  std::string t(TrimPeriods(raw));
  if (!t.empty() && t.back() == '%') {
    out.percent = true;
    t = std::string(Trim(std::string_view(t).substr(0, t.size() - 1)));
  }
  if (!t.empty() && t.front() == '+') t = std::string(Trim(std::string_view(t).substr(1)));
  // Redundant outer ( ) or { }: "(B)" -> "B", "{5}" -> "5".
  for (int k = 0; k < 8 && t.size() >= 2; ++k) {
    char o = t.front(), c = t.back();
    if (!((o == '(' && c == ')') || (o == '{' && c == '}'))) break;
    if (MatchAnyBracket(t) != t.size() - 1) break;
    t = std::string(Trim(std::string_view(t).substr(1, t.size() - 2)));
  }
  t = StripThousands(std::move(t));
  t = RewriteMixedNumber(t);
  out.text = Canonical(t);
  return out;
}

// A plain decimal literal: [-]digits[.digits] (either side of the point may be empty, not
// both). `has_point` says whether there is a '.'.
bool IsLiteral(std::string_view t, bool* has_point = nullptr) {
  size_t i = 0;
  if (i < t.size() && t[i] == '-') ++i;
  size_t digits = 0;
  bool point = false;
  for (; i < t.size(); ++i) {
    if (IsDigit(t[i])) {
      ++digits;
    } else if (t[i] == '.' && !point) {
      point = true;
    } else {
      return false;
    }
  }
  if (has_point) *has_point = point;
  return digits > 0;
}
bool IsDecimalLiteral(std::string_view t) {
  bool point = false;
  return IsLiteral(t, &point) && point;
}

// "-007.500" -> "-7.5", "-0" -> "0": equal strings iff equal values, any length.
std::string CanonicalLiteral(std::string_view t) {
  bool neg = !t.empty() && t[0] == '-';
  if (neg) t.remove_prefix(1);
  size_t point = t.find('.');
  std::string_view ip = t.substr(0, point), fp = point == kNpos ? std::string_view() : t.substr(point + 1);
  while (!ip.empty() && ip.front() == '0') ip.remove_prefix(1);
  while (!fp.empty() && fp.back() == '0') fp.remove_suffix(1);
  std::string r = ip.empty() ? "0" : std::string(ip);
  if (!fp.empty()) r += "." + std::string(fp);
  if (neg && r != "0") r = "-" + r;
  return r;
}

struct Rational {
  i128 num = 0;
  i128 den = 1;  // > 0
};

// Decimal literal at t[*i] (no sign), at most 30 digits.
bool ReadDecimal(std::string_view t, size_t* i, Rational* r) {
  size_t digits = 0;
  bool point = false;
  r->num = 0;
  r->den = 1;
  for (; *i < t.size(); ++*i) {
    char c = t[*i];
    if (IsDigit(c)) {
      if (++digits > 30) return false;
      r->num = r->num * 10 + (c - '0');
      if (point) r->den *= 10;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      break;
    }
  }
  return digits > 0;
}

bool ReadSigned(std::string_view t, size_t* i, Rational* r) {
  bool neg = false;
  if (*i < t.size() && t[*i] == '-') {
    neg = true;
    ++*i;
  }
  if (!ReadDecimal(t, i, r)) return false;
  if (neg) r->num = -r->num;
  return true;
}

// Exact rational forms: 12, -3.5, \frac{a}{b}, \frac12, -\frac{3}{4}, a/b (a, b decimals).
std::optional<Rational> ParseRational(std::string_view t) {
  size_t i = 0;
  bool neg = false;
  if (i < t.size() && t[i] == '-') {
    neg = true;
    ++i;
  }
  Rational a, b;
  if (t.compare(i, 5, "\\frac") == 0) {
    i += 5;
    auto arg = [&](Rational* r) {
      if (i < t.size() && t[i] == '{') {
        ++i;
        if (!ReadSigned(t, &i, r) || i >= t.size() || t[i] != '}') return false;
        ++i;
        return true;
      }
      if (i < t.size() && IsDigit(t[i])) {
        r->num = t[i++] - '0';
        r->den = 1;
        return true;
      }
      return false;
    };
    if (!arg(&a) || !arg(&b) || i != t.size()) return std::nullopt;
  } else {
    if (!ReadDecimal(t, &i, &a)) return std::nullopt;
    if (i == t.size()) {
      b = Rational{1, 1};
    } else {
      if (t[i] != '/') return std::nullopt;
      ++i;
      if (!ReadSigned(t, &i, &b) || i != t.size()) return std::nullopt;
    }
  }
  // (a.num / a.den) / (b.num / b.den)
  if (b.num == 0) return std::nullopt;
  Rational r;
  if (__builtin_mul_overflow(a.num, b.den, &r.num) || __builtin_mul_overflow(a.den, b.num, &r.den)) {
    return std::nullopt;
  }
  if (r.den < 0) {
    r.den = -r.den;
    r.num = -r.num;
  }
  if (neg) r.num = -r.num;
  return r;
}

std::optional<bool> RationalEqual(const Rational& a, const Rational& b) {
  i128 l, r;
  if (__builtin_mul_overflow(a.num, b.den, &l) || __builtin_mul_overflow(b.num, a.den, &r)) return std::nullopt;
  return l == r;
}

i128 Gcd(i128 a, i128 b) {
  if (a < 0) a = -a;
  while (b != 0) {
    i128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Whether the value has a finite decimal expansion.
bool Terminates(const Rational& r) {
  i128 g = Gcd(r.num, r.den);
  i128 d = g == 0 ? r.den : r.den / g;
  while (d % 2 == 0) d /= 2;
  while (d % 5 == 0) d /= 5;
  return d == 1;
}

double ToDouble(const Rational& r) { return static_cast<double>(r.num) / static_cast<double>(r.den); }

bool Close(double a, double b, double abs_tol = 0) {
  if (a == b) return true;
  double diff = std::fabs(a - b);
  return diff <= kRelTol * std::max(std::fabs(a), std::fabs(b)) || diff <= abs_tol;
}

// A decimal literal stands for `value` (which has no short exact decimal form) when it has
// at least 4 significant digits and equals `value` rounded or truncated to its places.
bool DecimalApproximates(std::string_view literal, double value) {
  bool neg = !literal.empty() && literal[0] == '-';
  if (neg) literal.remove_prefix(1);
  if ((value < 0) != neg || value == 0) return false;
  size_t point = literal.find('.');
  if (point == kNpos) return false;
  const size_t places = literal.size() - point - 1;
  if (places == 0 || places > 15) return false;
  uint64_t m = 0;
  int significant = 0, total = 0;
  for (char c : literal) {
    if (c == '.') continue;
    if (++total > 18) return false;
    if (significant > 0 || c != '0') ++significant;
    m = m * 10 + static_cast<uint64_t>(c - '0');
  }
  if (significant < 4) return false;
  double y = std::fabs(value) * std::pow(10.0, static_cast<double>(places));
  if (!(y < 9e18)) return false;
  return m == static_cast<uint64_t>(std::llround(y)) || m == static_cast<uint64_t>(std::floor(y));
}

// DecimalApproximates for an exact rational, in integer arithmetic, so that long decimals
// work too: 0.0833333333333333 == 1/12 (16 places).
bool DecimalApproximatesRational(std::string_view literal, const Rational& value) {
  bool neg = !literal.empty() && literal[0] == '-';
  if (neg) literal.remove_prefix(1);
  if ((value.num < 0) != neg || value.num == 0) return false;
  const size_t point = literal.find('.');
  if (point == kNpos) return false;
  const size_t places = literal.size() - point - 1;
  if (places == 0 || places > 24) return false;
  i128 m = 0;
  int significant = 0, total = 0;
  for (char c : literal) {
    if (c == '.') continue;
    if (++total > 30) return false;
    if (significant > 0 || c != '0') ++significant;
    m = m * 10 + (c - '0');
  }
  if (significant < 4) return false;
  i128 scaled = value.num < 0 ? -value.num : value.num;
  for (size_t k = 0; k < places; ++k) {
    if (__builtin_mul_overflow(scaled, static_cast<i128>(10), &scaled)) return false;
  }
  const i128 q = scaled / value.den, rem = scaled % value.den;
  return m == q || (m == q + 1 && 2 * rem >= value.den);
}

bool IsWord(std::string_view t) {
  return t.size() >= 3 && std::all_of(t.begin(), t.end(), [](char c) { return IsLetter(c) || c == ' '; });
}

// Deterministic pseudo-random value in [0.5, 3.5) for variable k at trial t.
double PointValue(int trial, int k) {
  uint64_t z = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(trial * 131 + k + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return 0.5 + 3.0 * static_cast<double>(z >> 11) / static_cast<double>(1ull << 53);
}

// Same function of the same variables at fixed pseudo-random points (proportional: up to a
// nonzero constant factor, for equations).
bool SameFunction(const LatexExpression& x, const LatexExpression& y, bool proportional, double* ratio_out = nullptr) {
  if (x.variables() != y.variables()) return false;
  constexpr int kTrials = 5;
  int valid = 0;
  double ratio = 0;
  std::vector<double> values(x.variables().size());
  for (int t = 0; t < kTrials; ++t) {
    for (size_t k = 0; k < values.size(); ++k) values[k] = PointValue(t, static_cast<int>(k));
    std::optional<double> a = x.Evaluate(values), b = y.Evaluate(values);
    if (!a && !b) continue;
    if (!a || !b) return false;
    if (!proportional) {
      if (!Close(*a, *b, 1e-12)) return false;
    } else {
      if ((*a == 0) != (*b == 0)) return false;
      if (*a == 0) continue;
      double r = *a / *b;
      if (valid == 0) {
        ratio = r;
      } else if (!Close(r, ratio, 1e-12)) {
        return false;
      }
    }
    ++valid;
  }
  if (ratio_out) *ratio_out = ratio;
  return valid >= 3;
}

// Equation "L = R" -> "(L)-(R)"; nullopt if `t` is not a single equation.
std::optional<std::string> EquationDifference(const std::string& t) {
  std::vector<std::string_view> parts = SplitTopLevel(t, "=");
  if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) return std::nullopt;
  return "(" + std::string(parts[0]) + ")-(" + std::string(parts[1]) + ")";
}

// Value comparison of two canonical scalar texts; x is multiplied by `scale_x` (1 or 1/100).
bool CompareValues(const std::string& x, const std::string& y, bool percent_scaled) {
  if (!percent_scaled) {
    if (x == y) return true;
    if (IsWord(x) && IsWord(y)) return EqualsIgnoreCase(x, y);
    if (IsLiteral(x) && IsLiteral(y)) return CanonicalLiteral(x) == CanonicalLiteral(y);
  }
  std::optional<Rational> rx = ParseRational(x), ry = ParseRational(y);
  if (rx && percent_scaled && __builtin_mul_overflow(rx->den, static_cast<i128>(100), &rx->den)) rx.reset();
  if (rx && ry) {
    if (std::optional<bool> eq = RationalEqual(*rx, *ry)) {
      if (*eq) return true;
      if (!percent_scaled && IsDecimalLiteral(x) && !Terminates(*ry)) return DecimalApproximatesRational(x, *ry);
      if (IsDecimalLiteral(y) && !Terminates(*rx)) return DecimalApproximatesRational(y, *rx);
      return false;
    }
  }
  if (x.size() > LatexExpression::kMaxInputBytes || y.size() > LatexExpression::kMaxInputBytes) return false;
  auto ex = LatexExpression::Parse(x);
  auto ey = LatexExpression::Parse(y);
  if (!ex.ok() || !ey.ok()) {
    // Equations: proportional left-minus-right sides.
    if (percent_scaled) return false;
    auto dx = EquationDifference(x), dy = EquationDifference(y);
    if (!dx || !dy) return false;
    auto qx = LatexExpression::Parse(*dx), qy = LatexExpression::Parse(*dy);
    if (!qx.ok() || !qy.ok() || qx->variables().empty()) return false;
    return SameFunction(*qx, *qy, /*proportional=*/true);
  }
  if (!ex->variables().empty() || !ey->variables().empty()) {
    return !percent_scaled && SameFunction(*ex, *ey, /*proportional=*/false);
  }
  std::optional<double> vx = ex->Evaluate(), vy = ey->Evaluate();
  if (!vx || !vy) return false;
  if (percent_scaled) *vx /= 100;
  if (Close(*vx, *vy)) return true;
  if (!percent_scaled && IsDecimalLiteral(x) && !(ry && Terminates(*ry))) return DecimalApproximates(x, *vy);
  if (IsDecimalLiteral(y) && !(rx && Terminates(*rx))) return DecimalApproximates(y, *vx);
  return false;
}

bool ScalarValuesEquivalent(const Scalar& a, const Scalar& b) {
  if (a.text.empty() || b.text.empty()) return false;
  if (a.percent == b.percent) return CompareValues(a.text, b.text, false);
  // Exactly one side has a percent sign p%: the other may be p or p/100.
  const Scalar& p = a.percent ? a : b;
  const Scalar& q = a.percent ? b : a;
  return CompareValues(p.text, q.text, false) || CompareValues(p.text, q.text, true);
}

Scalar NormalizeScalar(std::string_view raw);

// The value of a labelled element "AB=4", "y_1=-2x^2+4x+3"; nullopt if unlabelled.
std::optional<std::string> LabelledValue(const std::string& t) {
  std::vector<std::string_view> sides = SplitTopLevel(t, "=");
  if (sides.size() != 2 || Trim(sides[1]).empty() || !IsLabel(sides[0])) return std::nullopt;
  const std::string_view l = sides[0];
  if (!l.empty() && (l.back() == '<' || l.back() == '>' || l.back() == '!' || l.back() == ':')) return std::nullopt;
  return std::string(Trim(sides[1]));
}

bool ScalarEquivalent(const Scalar& a, const Scalar& b) {
  if (ScalarValuesEquivalent(a, b)) return true;
  // Inside a list, a labelled element matches an unlabelled one by its value ("AB=4, CD=5"
  // vs "4, 5"); two labelled elements compare whole, so the names must agree.
  const std::optional<std::string> la = LabelledValue(a.text), lb = LabelledValue(b.text);
  if (la.has_value() == lb.has_value()) return false;
  if (la) {
    Scalar v = NormalizeScalar(*la);
    v.percent |= a.percent;
    return ScalarValuesEquivalent(v, b);
  }
  Scalar v = NormalizeScalar(*lb);
  v.percent |= b.percent;
  return ScalarValuesEquivalent(a, v);
}

// ---------------------------------------------------------------------------------------
// Structures.

struct Node {
  enum Kind { kScalar, kOrdered, kUnordered, kMatrix } kind = kScalar;
  // kOrdered: the brackets, e.g. '(' ']'. kUnordered: 'U' for a union, '{' for sets / lists,
  // 'p' for the two values of a \pm (compares like '{').
  char open = 0, close = 0;
  std::vector<Node> items;
  Scalar scalar;
};

Node ScalarNode(std::string_view t) {
  Node n;
  n.scalar = NormalizeScalar(t);
  return n;
}

Node ParseNode(std::string_view t, int depth);

Node ListNode(const std::vector<std::string_view>& parts, Node::Kind kind, char open, char close, int depth) {
  Node n;
  n.kind = kind;
  n.open = open;
  n.close = close;
  for (auto p : parts) {
    // "19, 46, and 82" leaves an empty element after the connective became a comma.
    if (kind == Node::kUnordered && Trim(p).empty()) continue;
    Node item = ParseNode(p, depth + 1);
    if (kind == Node::kUnordered && open == '{' && item.kind == Node::kUnordered && item.open == 'p') {
      // "\{1 \pm \sqrt{5}, -2\}": the two values of a \pm join the set.
      for (Node& v : item.items) n.items.push_back(std::move(v));
    } else {
      n.items.push_back(std::move(item));
    }
  }
  return n;
}

Node ParseNode(std::string_view t, int depth) {
  t = TrimPeriods(t);
  if (depth > kMaxStructureDepth) return ScalarNode(t);
  // `(\begin{pmatrix}...\end{pmatrix})`, `[\begin{array}...\end{array}]`: the matrix.
  if (t.size() >= 2 && (t.front() == '(' || t.front() == '[') && MatchAnyBracket(t) == t.size() - 1 &&
      StartsWith(Trim(t.substr(1, t.size() - 2)), "\\begin{")) {
    t = Trim(t.substr(1, t.size() - 2));
  }
  // Matrices.
  if (StartsWith(t, "\\begin{")) {
    size_t name_end = t.find('}');
    std::string_view name = t.substr(7, name_end == kNpos ? 0 : name_end - 7);
    std::string end = "\\end{" + std::string(name) + "}";
    if (name_end != kNpos && (EndsWith(name, "matrix") || name == "array") && EndsWith(t, end) &&
        t.size() >= end.size() + name_end + 1) {
      std::string_view body = t.substr(name_end + 1, t.size() - end.size() - name_end - 1);
      if (name == "array") {  // the column spec {cc}
        body = Trim(body);
        const size_t spec_end = StartsWith(body, "{") ? MatchBrace(body, 0) : kNpos;
        if (spec_end == kNpos) return ScalarNode(t);
        body = body.substr(spec_end + 1);
      }
      std::vector<std::string_view> rows = SplitTopLevel(body, "\\\\");
      while (!rows.empty() && Trim(rows.back()).empty()) rows.pop_back();
      if (!rows.empty() && rows.size() <= kMaxElements) {
        Node m;
        m.kind = Node::kMatrix;
        for (auto row : rows) {
          std::vector<std::string_view> cells = SplitTopLevel(row, "&");
          if (cells.size() > kMaxElements) return ScalarNode(t);
          m.items.push_back(ListNode(cells, Node::kOrdered, 'r', 'r', depth));
        }
        return m;
      }
    }
    return ScalarNode(t);
  }
  std::vector<std::string_view> parts = SplitTopLevel(t, "\\cup");
  if (parts.size() > kMaxElements) return ScalarNode(t);
  if (parts.size() > 1) return ListNode(parts, Node::kUnordered, 'U', 'U', depth);
  // Sets \{a, b\}.
  if (StartsWith(t, "\\{") && EndsWith(t, "\\}") && MatchAnyBracket(t) == t.size() - 1) {
    parts = SplitTopLevel(t.substr(2, t.size() - 4), ",");
    if (parts.size() > kMaxElements) return ScalarNode(t);
    return ListNode(parts, Node::kUnordered, '{', '}', depth);
  }
  // A braced list {1, 2, 3} (braces only group in LaTeX): a set.
  if (t.size() >= 2 && t.front() == '{' && t.back() == '}' && MatchAnyBracket(t) == t.size() - 1) {
    parts = SplitTopLevel(t.substr(1, t.size() - 2), ",");
    if (parts.size() > kMaxElements) return ScalarNode(t);
    if (parts.size() >= 2) return ListNode(parts, Node::kUnordered, '{', '}', depth);
  }
  // Tuples and intervals; `(0;-2;6)` separates with semicolons.
  if (t.size() >= 2 && (t.front() == '(' || t.front() == '[') && (t.back() == ')' || t.back() == ']') &&
      MatchAnyBracket(t) == t.size() - 1) {
    const std::string_view inner = t.substr(1, t.size() - 2);
    parts = SplitTopLevel(inner, ",");
    if (parts.size() == 1) parts = SplitTopLevel(inner, ";");
    if (parts.size() > kMaxElements) return ScalarNode(t);
    if (parts.size() >= 2) return ListNode(parts, Node::kOrdered, t.front(), t.back(), depth);
  }
  // Solutions separated by semicolons: "-12;-11;-10", "p=5,q=2;p=7,q=2" (a group of
  // assignments is the tuple of its values: (5,2)).
  parts = SplitTopLevel(t, ";");
  if (parts.size() > kMaxElements) return ScalarNode(t);
  if (parts.size() >= 2) {
    Node n = ListNode({}, Node::kUnordered, '{', '}', depth);
    for (std::string_view part : parts) {
      if (Trim(part).empty()) continue;
      std::vector<std::string_view> assignments = SplitTopLevel(part, ",");
      std::vector<std::string_view> values;
      for (std::string_view a : assignments) {
        std::vector<std::string_view> sides = SplitTopLevel(a, "=");
        if (sides.size() != 2 || !IsLabel(sides[0]) || Trim(sides[1]).empty()) break;
        values.push_back(Trim(sides[1]));
      }
      if (assignments.size() >= 2 && values.size() == assignments.size() && values.size() <= kMaxElements) {
        n.items.push_back(ListNode(values, Node::kOrdered, '(', ')', depth + 1));
      } else {
        n.items.push_back(ParseNode(part, depth + 1));
      }
    }
    return n;
  }
  // Bare lists "1, 2, 3" (order-insensitive, like a set).
  parts = SplitTopLevel(t, ",");
  if (parts.size() > kMaxElements) return ScalarNode(t);
  if (parts.size() >= 2) return ListNode(parts, Node::kUnordered, '{', '}', depth);
  // a \pm b -> {a + b, a - b}.
  parts = SplitTopLevel(t, "\\pm");
  if (parts.size() == 2) {
    std::string plus = std::string(parts[0]) + "+" + std::string(parts[1]);
    std::string minus = std::string(parts[0]) + "-" + std::string(parts[1]);
    Node n;
    n.kind = Node::kUnordered;
    n.open = 'p';  // compares like '{'; marks a \pm pair for flattening into a set
    n.close = '}';
    n.items.push_back(ScalarNode(plus));
    n.items.push_back(ScalarNode(minus));
    return n;
  }
  return ScalarNode(t);
}

// Scalar comparisons allowed per AnswersEquivalent call: matching nested unordered lists
// is quadratic per level, so a hostile "set of sets of sets" is cut off (as not equivalent).
constexpr int kMaxScalarComparisons = 4096;

// A canonical spelling of a node, to find elements written twice.
void AppendSignature(const Node& n, std::string* out) {
  if (n.kind == Node::kScalar) {
    *out += n.scalar.text;
    if (n.scalar.percent) *out += '%';
    return;
  }
  *out += static_cast<char>('0' + n.kind);
  *out += n.open;
  for (const Node& item : n.items) {
    AppendSignature(item, out);
    *out += '\x1f';
  }
  *out += n.close;
}

std::vector<const Node*> DistinctItems(const Node& n) {
  std::vector<const Node*> out;
  std::vector<std::string> seen;
  for (const Node& item : n.items) {
    std::string sig;
    AppendSignature(item, &sig);
    if (std::find(seen.begin(), seen.end(), sig) != seen.end()) continue;
    seen.push_back(std::move(sig));
    out.push_back(&item);
  }
  return out;
}

// How many elements are labelled scalars "name=value" (with distinct names).
int LabelledItems(const std::vector<const Node*>& items) {
  std::vector<std::string> names;
  for (const Node* item : items) {
    if (item->kind != Node::kScalar || !LabelledValue(item->scalar.text)) continue;
    std::string name(SplitTopLevel(item->scalar.text, "=")[0]);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(std::move(name));
  }
  return static_cast<int>(names.size());
}

bool NodesEquivalent(const Node& a, const Node& b, int* budget) {
  // A one-element set is its element: \{5\} vs 5; so is a list of one value written
  // several ways ("\boxed{15\frac{39}{40}} or \boxed{\frac{639}{40}}").
  if (a.kind == Node::kUnordered && !a.items.empty() && b.kind != Node::kUnordered) {
    for (const Node& x : a.items) {
      if (!NodesEquivalent(x, b, budget)) return false;
    }
    return true;
  }
  if (b.kind == Node::kUnordered && !b.items.empty() && a.kind != Node::kUnordered) {
    for (const Node& y : b.items) {
      if (!NodesEquivalent(a, y, budget)) return false;
    }
    return true;
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Node::kScalar:
      if (--*budget < 0) return false;
      return ScalarEquivalent(a.scalar, b.scalar);
    case Node::kOrdered:
    case Node::kMatrix:
      if (a.open != b.open || a.close != b.close || a.items.size() != b.items.size()) return false;
      for (size_t k = 0; k < a.items.size(); ++k) {
        if (!NodesEquivalent(a.items[k], b.items[k], budget)) return false;
      }
      return true;
    case Node::kUnordered: {
      if ((a.open == 'U') != (b.open == 'U')) return false;
      // A set: an element written twice counts once ("(3,17,3,7)" listed twice).
      const std::vector<const Node*> xs = DistinctItems(a), ys = DistinctItems(b);
      if (xs.size() != ys.size()) return false;
      // "AB=4, CD=5" vs "4, 5": names on one side only give the order.
      const int la = LabelledItems(xs), lb = LabelledItems(ys);
      if ((la == static_cast<int>(xs.size()) && lb == 0) || (lb == static_cast<int>(ys.size()) && la == 0)) {
        for (size_t k = 0; k < xs.size(); ++k) {
          if (!NodesEquivalent(*xs[k], *ys[k], budget)) return false;
        }
        return true;
      }
      std::vector<bool> used(ys.size(), false);
      for (const Node* x : xs) {
        bool found = false;
        for (size_t k = 0; k < ys.size() && !found; ++k) {
          if (!used[k] && NodesEquivalent(*x, *ys[k], budget)) used[k] = found = true;
        }
        if (!found) return false;
      }
      return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Inequalities.

enum class RelOp { kLt, kLe, kGt, kGe, kNe };

struct Relation {
  std::vector<std::string> sides;  // canonical texts
  std::vector<RelOp> ops;          // sides.size() - 1 of them
};

// A top-level chain "a < x \le b" (one or two operators) of a canonical answer; nullopt if
// there is none, or a side is empty, or the text is a list.
std::optional<Relation> ParseRelation(std::string_view t) {
  Relation r;
  size_t depth = 0, start = 0;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    std::optional<RelOp> op;
    size_t len = 1;
    if (c == '\\') {
      size_t j = i + 1;
      if (j < t.size() && !IsLetter(t[j])) {
        if (t[j] == '{') ++depth;
        if (t[j] == '}' && depth > 0) --depth;
        ++i;
        continue;
      }
      while (j < t.size() && IsLetter(t[j])) ++j;
      const std::string_view name = t.substr(i + 1, j - i - 1);
      if (name == "le") op = RelOp::kLe;
      if (name == "ge") op = RelOp::kGe;
      if (name == "ne") op = RelOp::kNe;
      len = j - i;
      if (!op) {
        i = j - 1;
        continue;
      }
    } else if (c == '<') {
      op = RelOp::kLt;
    } else if (c == '>') {
      op = RelOp::kGt;
    } else if (IsOpen(c)) {
      ++depth;
    } else if (IsClose(c) && depth > 0) {
      --depth;
    } else if (depth == 0 && (c == ',' || c == ';' || c == '=')) {
      return std::nullopt;
    }
    if (op && depth == 0) {
      r.sides.emplace_back(Trim(t.substr(start, i - start)));
      r.ops.push_back(*op);
      start = i + len;
    }
    if (op) i += len - 1;
  }
  if (r.ops.empty() || r.ops.size() > 2) return std::nullopt;
  r.sides.emplace_back(Trim(t.substr(start)));
  for (const std::string& side : r.sides) {
    if (side.empty()) return std::nullopt;
  }
  // One direction only: "a < x \le b" or "a > x > b"; \ne stands alone.
  const bool up = r.ops[0] == RelOp::kLt || r.ops[0] == RelOp::kLe;
  for (RelOp op : r.ops) {
    if (op == RelOp::kNe) {
      if (r.ops.size() != 1) return std::nullopt;
      continue;
    }
    if ((op == RelOp::kLt || op == RelOp::kLe) != up) return std::nullopt;
  }
  // Ascending: "a > x" becomes "x < a".
  if (r.ops[0] == RelOp::kGt || r.ops[0] == RelOp::kGe) {
    std::reverse(r.sides.begin(), r.sides.end());
    std::reverse(r.ops.begin(), r.ops.end());
    for (RelOp& op : r.ops) op = op == RelOp::kGt ? RelOp::kLt : RelOp::kLe;
  }
  return r;
}

// Same inequalities: per link, the same operator and left-minus-right sides that are
// positive multiples of each other (any nonzero multiple for \ne), with variables.
bool RelationsEquivalent(const Relation& a, const Relation& b) {
  if (a.ops != b.ops) return false;
  for (size_t k = 0; k < a.ops.size(); ++k) {
    const std::string da = "(" + a.sides[k] + ")-(" + a.sides[k + 1] + ")";
    const std::string db = "(" + b.sides[k] + ")-(" + b.sides[k + 1] + ")";
    if (da == db) continue;
    if (da.size() > LatexExpression::kMaxInputBytes || db.size() > LatexExpression::kMaxInputBytes) return false;
    auto ea = LatexExpression::Parse(da), eb = LatexExpression::Parse(db);
    if (!ea.ok() || !eb.ok() || ea->variables().empty()) return false;
    double ratio = 0;
    if (!SameFunction(*ea, *eb, /*proportional=*/true, &ratio)) return false;
    if (a.ops[k] != RelOp::kNe && !(ratio > 0)) return false;
  }
  return true;
}

// The interval an inequality in one variable describes: "-2 \le x < 7" -> "[-2,7)",
// "x \ge 5" -> "[5,\infty)"; nullopt for anything else.
std::optional<std::string> RelationAsInterval(const Relation& r) {
  auto is_const = [](const std::string& t) { return IsConstantText(t); };
  auto open = [](RelOp op) { return op == RelOp::kLt ? "(" : "["; };
  auto close = [](RelOp op) { return op == RelOp::kLt ? ")" : "]"; };
  for (RelOp op : r.ops) {
    if (op == RelOp::kNe) return std::nullopt;
  }
  if (r.ops.size() == 2) {
    if (!is_const(r.sides[0]) || is_const(r.sides[1]) || !is_const(r.sides[2])) return std::nullopt;
    return open(r.ops[0]) + r.sides[0] + "," + r.sides[2] + close(r.ops[1]);
  }
  if (!is_const(r.sides[0]) && is_const(r.sides[1])) return "(-\\infty," + r.sides[1] + close(r.ops[0]);
  if (is_const(r.sides[0]) && !is_const(r.sides[1])) return open(r.ops[0]) + r.sides[0] + ",\\infty)";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> LastBoxed(std::string_view text) {
  size_t best = kNpos, name_len = 0;
  for (std::string_view name : {std::string_view("\\boxed"), std::string_view("\\fbox")}) {
    size_t pos = text.size();
    for (;;) {
      size_t p = text.rfind(name, pos);
      if (p == kNpos) break;
      size_t end = p + name.size();
      if (end >= text.size() || !IsLetter(text[end])) {
        if (best == kNpos || p > best) {
          best = p;
          name_len = name.size();
        }
        break;
      }
      if (p == 0) break;
      pos = p - 1;
    }
  }
  if (best == kNpos) return std::nullopt;
  size_t j = best + name_len;
  while (j < text.size() && IsSpace(text[j])) ++j;
  if (j < text.size() && text[j] == '{') {
    size_t close = MatchBrace(text, j);
    if (close == kNpos) return std::nullopt;
    return std::string(text.substr(j + 1, close - j - 1));
  }
  // `\boxed 5`: the token up to whitespace or '$'.
  size_t e = j;
  while (e < text.size() && !IsSpace(text[e]) && text[e] != '$') ++e;
  if (e == j) return std::nullopt;
  return std::string(text.substr(j, e - j));
}

std::optional<std::string> ExtractAnswer(std::string_view completion, const ExtractOptions& options) {
  size_t marker_at = kNpos;
  std::optional<std::string> stated = AfterMarker(completion, "answer is", &marker_at);
  if (auto boxed = JoinedBoxes(completion)) {
    std::string_view t = Trim(*boxed);
    // "\boxed{255} ... The final answer is $10,455$": an answer stated after the last box
    // (and that looks like one) replaces it.
    size_t last_box = completion.rfind("\\boxed");
    const size_t fbox = completion.rfind("\\fbox");
    if (last_box == kNpos || (fbox != kNpos && fbox > last_box)) last_box = fbox;
    const bool final_answer =
        marker_at != kNpos && marker_at >= 6 && EqualsIgnoreCase(completion.substr(marker_at - 6, 6), "final ");
    const bool later = stated && final_answer && marker_at > last_box && !stated->empty() &&
                       (IsDigit(stated->front()) || std::string_view("$-([{.").find(stated->front()) != kNpos ||
                        (stated->front() == '\\' && stated->size() > 1 && IsLetter((*stated)[1])));
    if (!t.empty() && !later) return std::string(t);
  }
  if (stated) return stated;
  if (auto a = AfterMarker(completion, "####")) return a;
  // The last math span or the last number, whichever ends last.
  const std::vector<MathSpan> spans = ScanMath(completion);
  size_t last_span = spans.size();
  for (size_t k = spans.size(); k-- > 0;) {
    if (spans[k].candidate) {
      last_span = k;
      break;
    }
  }
  std::optional<NumberToken> number;
  if (options.fallback_last_number) number = LastNumberToken(completion, spans, options.lenient_numbers);
  if (number && (last_span == spans.size() || number->begin >= spans[last_span].end)) {
    if (!number->valid) return std::nullopt;
    return number->value;
  }
  if (last_span == spans.size()) return std::nullopt;
  // Spans joined by connectives form one list; a percent sign right after a span stays.
  constexpr size_t kMaxJoined = 8;
  size_t first = last_span;
  while (first > 0 && last_span - first + 1 < kMaxJoined && spans[first - 1].candidate &&
         IsSpanConnective(completion.substr(spans[first - 1].end, spans[first].begin - spans[first - 1].end))) {
    --first;
  }
  std::string out;
  for (size_t k = first; k <= last_span; ++k) {
    std::string_view content = Trim(completion.substr(spans[k].content_begin,
                                                      spans[k].content_end - spans[k].content_begin));
    while (!content.empty() && (content.back() == '.' || content.back() == ',')) {
      content = Trim(content.substr(0, content.size() - 1));
    }
    if (content.empty()) continue;
    if (!out.empty()) out += ", ";
    out.append(content.data(), content.size());
    if (PercentSuffix(completion, spans[k].end) && content.back() != '%') out += '%';
  }
  if (out.empty()) return std::nullopt;
  return out;
}

bool AnswersEquivalent(std::string_view prediction, std::string_view reference, const CompareOptions& options) {
  std::string_view p = Trim(prediction), r = Trim(reference);
  if (p.empty() || r.empty()) return false;
  if (p == r) return true;
  const std::string np = NormalizeTop(p), nr = NormalizeTop(r);
  if (np.empty() || nr.empty()) return false;
  const std::string cp = Canonical(np), cr = Canonical(nr);
  if (cp == cr) return true;
  if (np.size() > kMaxCompareBytes || nr.size() > kMaxCompareBytes) return false;
  int budget = kMaxScalarComparisons;
  // Inequalities: with each other, or as the interval they describe.
  const std::optional<Relation> rp = ParseRelation(cp), rr = ParseRelation(cr);
  if (rp && rr) return RelationsEquivalent(*rp, *rr);
  if (rp || rr) {
    if (rp && !options.allow_set_relation) return false;
    const std::optional<std::string> interval = RelationAsInterval(rp ? *rp : *rr);
    if (!interval) return false;
    return rp ? NodesEquivalent(ParseNode(*interval, 0), ParseNode(nr, 0), &budget)
              : NodesEquivalent(ParseNode(np, 0), ParseNode(*interval, 0), &budget);
  }
  if (NodesEquivalent(ParseNode(np, 0), ParseNode(nr, 0), &budget)) return true;
  // Two equations of which one was read as "y = <value>": compare them as equations
  // ("y=-\frac12x+\frac34" and "2x+4y-3=0" are the same line).
  if (p.find('=') == kNpos || r.find('=') == kNpos) return false;
  const std::string ep = NormalizeTop(p, /*keep_equation=*/true), er = NormalizeTop(r, /*keep_equation=*/true);
  if (ep == np && er == nr) return false;
  if (SplitTopLevel(ep, "=").size() != 2 || SplitTopLevel(er, "=").size() != 2) return false;
  return NodesEquivalent(ParseNode(ep, 0), ParseNode(er, 0), &budget);
}

VerifyResult Verify(std::string_view completion, std::string_view reference_answer, const ExtractOptions& options,
                    const CompareOptions& compare) {
  VerifyResult result;
  if (std::optional<std::string> extracted = ExtractAnswer(completion, options)) {
    result.extracted = std::move(*extracted);
    result.correct = AnswersEquivalent(result.extracted, reference_answer, compare);
  }
  return result;
}

}  // namespace swarr
