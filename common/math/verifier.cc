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
// cleaned: "The answer is: $\frac12$. I hope" -> "\frac12".
std::optional<std::string> AfterMarker(std::string_view text, std::string_view marker) {
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
  std::string_view rest = text.substr(found + marker.size());
  rest = rest.substr(0, rest.find('\n'));
  rest = Trim(rest);
  if (!rest.empty() && rest.front() == ':') rest = Trim(rest.substr(1));
  if (!rest.empty() && rest.front() == '$') {
    // "$...$" (or "$$...$$"): the math span only.
    size_t open = rest.find_first_not_of('$');
    size_t close = open == kNpos ? kNpos : rest.find('$', open);
    if (close != kNpos) rest = rest.substr(open, close - open);
  }
  rest = TrimPeriods(rest);
  if (rest.empty()) return std::nullopt;
  return std::string(rest);
}

// The last number: -12, 3.5, .5, 1,000 (groups of three), 3/4.
std::optional<std::string> LastNumber(std::string_view s) {
  size_t best_begin = kNpos, best_end = 0;
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (!(IsDigit(s[i]) || (s[i] == '.' && i + 1 < n && IsDigit(s[i + 1])))) {
      ++i;
      continue;
    }
    size_t begin = i;
    while (i < n && IsDigit(s[i])) ++i;
    while (i + 3 < n && s[i] == ',' && IsDigit(s[i + 1]) && IsDigit(s[i + 2]) && IsDigit(s[i + 3]) &&
           (i + 4 == n || !IsDigit(s[i + 4]))) {
      i += 4;
    }
    if (i + 1 < n && s[i] == '.' && IsDigit(s[i + 1])) {
      ++i;
      while (i < n && IsDigit(s[i])) ++i;
    }
    if (i + 1 < n && s[i] == '/' && IsDigit(s[i + 1])) {
      ++i;
      while (i < n && IsDigit(s[i])) ++i;
    }
    if (begin > 0 && s[begin - 1] == '-' && (begin == 1 || !IsAlnum(s[begin - 2]))) --begin;
    best_begin = begin;
    best_end = i;
  }
  if (best_begin == kNpos) return std::nullopt;
  return std::string(s.substr(best_begin, best_end - best_begin));
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
      out += ',';
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
      "points", "people", "students", "times", "ways", "percent",
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
    if (word == "percent") percent = true;
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

// The whole-answer normalisation, before splitting into elements.
std::string NormalizeTop(std::string_view raw) {
  std::string s(Trim(raw));
  if (s.find("\\boxed") != std::string::npos || s.find("\\fbox") != std::string::npos) {
    if (auto b = LastBoxed(s)) s = *b;
  }
  s = absl::StrReplaceAll(s, {{"\xe2\x88\x92", "-"},     // U+2212 minus
                              {"\xcf\x80", "\\pi "},     // π
                              {"\xc3\x97", "\\times "},  // ×
                              {"\xc2\xb7", "\\cdot "},   // ·
                              {"\xc2\xb0", ""},          // °
                              {"\xe2\x88\x9e", "\\infty "},
                              {"{,}", ","},
                              {"^{\\circ}", ""},
                              {"^\\circ", ""},
                              {"^{\\circ }", ""}});
  s = CleanPass(s);
  for (int pass = 0; pass < 2; ++pass) s = TextPass(s);
  s = CollapseSpaces(s);
  s = std::string(TrimPeriods(s));
  s = StripUnitWords(std::move(s));
  s = StripVariablePrefix(std::move(s));
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
bool SameFunction(const LatexExpression& x, const LatexExpression& y, bool proportional) {
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
      if (!percent_scaled && IsDecimalLiteral(x) && !Terminates(*ry)) return DecimalApproximates(x, ToDouble(*ry));
      if (IsDecimalLiteral(y) && !Terminates(*rx)) return DecimalApproximates(y, ToDouble(*rx));
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

bool ScalarEquivalent(const Scalar& a, const Scalar& b) {
  if (a.text.empty() || b.text.empty()) return false;
  if (a.percent == b.percent) return CompareValues(a.text, b.text, false);
  // Exactly one side has a percent sign p%: the other may be p or p/100.
  const Scalar& p = a.percent ? a : b;
  const Scalar& q = a.percent ? b : a;
  return CompareValues(p.text, q.text, false) || CompareValues(p.text, q.text, true);
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
  // Matrices.
  if (StartsWith(t, "\\begin{")) {
    size_t name_end = t.find('}');
    std::string_view name = t.substr(7, name_end == kNpos ? 0 : name_end - 7);
    std::string end = "\\end{" + std::string(name) + "}";
    if (name_end != kNpos && EndsWith(name, "matrix") && EndsWith(t, end)) {
      std::string_view body = t.substr(name_end + 1, t.size() - end.size() - name_end - 1);
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
  // Tuples and intervals.
  if (t.size() >= 2 && (t.front() == '(' || t.front() == '[') && (t.back() == ')' || t.back() == ']') &&
      MatchAnyBracket(t) == t.size() - 1) {
    parts = SplitTopLevel(t.substr(1, t.size() - 2), ",");
    if (parts.size() > kMaxElements) return ScalarNode(t);
    if (parts.size() >= 2) return ListNode(parts, Node::kOrdered, t.front(), t.back(), depth);
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

bool NodesEquivalent(const Node& a, const Node& b, int* budget) {
  // A one-element set is its element: \{5\} vs 5.
  if (a.kind == Node::kUnordered && a.items.size() == 1 && b.kind != Node::kUnordered) {
    return NodesEquivalent(a.items[0], b, budget);
  }
  if (b.kind == Node::kUnordered && b.items.size() == 1 && a.kind != Node::kUnordered) {
    return NodesEquivalent(a, b.items[0], budget);
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
      if ((a.open == 'U') != (b.open == 'U') || a.items.size() != b.items.size()) return false;
      std::vector<bool> used(b.items.size(), false);
      for (const Node& x : a.items) {
        bool found = false;
        for (size_t k = 0; k < b.items.size() && !found; ++k) {
          if (!used[k] && NodesEquivalent(x, b.items[k], budget)) used[k] = found = true;
        }
        if (!found) return false;
      }
      return true;
    }
  }
  return false;
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
  if (auto boxed = LastBoxed(completion)) {
    std::string_view t = Trim(*boxed);
    if (!t.empty()) return std::string(t);
  }
  if (auto a = AfterMarker(completion, "answer is")) return a;
  if (auto a = AfterMarker(completion, "####")) return a;
  if (options.fallback_last_number) return LastNumber(completion);
  return std::nullopt;
}

bool AnswersEquivalent(std::string_view prediction, std::string_view reference) {
  std::string_view p = Trim(prediction), r = Trim(reference);
  if (p.empty() || r.empty()) return false;
  if (p == r) return true;
  const std::string np = NormalizeTop(p), nr = NormalizeTop(r);
  if (np.empty() || nr.empty()) return false;
  const std::string cp = Canonical(np), cr = Canonical(nr);
  if (cp == cr) return true;
  if (np.size() > kMaxCompareBytes || nr.size() > kMaxCompareBytes) return false;
  int budget = kMaxScalarComparisons;
  return NodesEquivalent(ParseNode(np, 0), ParseNode(nr, 0), &budget);
}

VerifyResult Verify(std::string_view completion, std::string_view reference_answer, const ExtractOptions& options) {
  VerifyResult result;
  if (std::optional<std::string> extracted = ExtractAnswer(completion, options)) {
    result.extracted = std::move(*extracted);
    result.correct = AnswersEquivalent(result.extracted, reference_answer);
  }
  return result;
}

}  // namespace swarr
