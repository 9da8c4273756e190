#include "common/math/latex_expr.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace swarr {
namespace {

bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

constexpr std::string_view kGreek[] = {
    "alpha", "beta",  "gamma",  "delta", "epsilon", "varepsilon", "zeta",  "eta",   "theta",
    "vartheta", "iota", "kappa", "lambda", "mu",   "nu",         "xi",    "rho",   "sigma",
    "tau",   "upsilon", "phi",  "varphi", "chi",  "psi",        "omega", "Gamma", "Delta",
    "Theta", "Lambda", "Xi",    "Sigma", "Phi",   "Psi",        "Omega",
};

}  // namespace

// Recursive-descent parser emitting a postfix program. Every recursive entry point goes
// through Enter(), which bounds the depth.
class LatexParser {
 public:
  explicit LatexParser(std::string_view s) : s_(s) {}

  absl::StatusOr<LatexExpression> Run() {
    if (s_.size() > LatexExpression::kMaxInputBytes) return absl::InvalidArgumentError("expression too long");
    if (!ParseExpr()) return Error();
    SkipSpace();
    if (pos_ != s_.size()) return Fail("unexpected character"), Error();
    if (out_.program_.empty()) return absl::InvalidArgumentError("empty expression");
    // Sort variables and remap their indices.
    std::vector<std::string> sorted = names_;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int> remap(names_.size());
    for (size_t k = 0; k < names_.size(); ++k) {
      remap[k] = static_cast<int>(std::lower_bound(sorted.begin(), sorted.end(), names_[k]) - sorted.begin());
    }
    for (auto& instr : out_.program_) {
      if (instr.op == LatexExpression::Op::kVar) instr.index = remap[instr.index];
    }
    out_.variables_ = std::move(sorted);
    return std::move(out_);
  }

 private:
  using Op = LatexExpression::Op;

  // RAII depth guard.
  struct Depth {
    explicit Depth(LatexParser* p) : p(p) { ++p->depth_; }
    ~Depth() { --p->depth_; }
    bool ok() const { return p->depth_ <= LatexExpression::kMaxDepth; }
    LatexParser* p;
  };

  absl::Status Error() const {
    return absl::InvalidArgumentError(absl::StrCat(error_.empty() ? "parse error" : error_, " at offset ", error_pos_));
  }
  bool Fail(const char* why) {
    if (error_.empty()) {
      error_ = why;
      error_pos_ = pos_;
    }
    return false;
  }
  bool Emit(Op op, double value = 0, int index = 0) {
    if (out_.program_.size() >= LatexExpression::kMaxProgramSize) return Fail("expression too large");
    out_.program_.push_back({op, value, index});
    return true;
  }

  void SkipSpace() {
    while (pos_ < s_.size() && IsSpace(s_[pos_])) ++pos_;
  }
  char Peek() {
    SkipSpace();
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }
  // The command name at pos_ (which must be '\\'), without consuming it.
  std::string_view PeekCommand() {
    SkipSpace();
    if (pos_ >= s_.size() || s_[pos_] != '\\') return {};
    size_t e = pos_ + 1;
    while (e < s_.size() && IsLetter(s_[e])) ++e;
    if (e == pos_ + 1 && e < s_.size()) ++e;  // control symbol like "\,"
    return s_.substr(pos_ + 1, e - pos_ - 1);
  }
  void ConsumeCommand(std::string_view name) { pos_ += 1 + name.size(); }

  static bool IsFunction(std::string_view c) {
    return c == "sin" || c == "cos" || c == "tan" || c == "cot" || c == "sec" || c == "csc" || c == "ln" ||
           c == "exp";
  }
  static bool IsGreek(std::string_view c) {
    for (auto g : kGreek) {
      if (g == c) return true;
    }
    return false;
  }
  static bool IsSkippable(std::string_view c) {
    return c == "left" || c == "right" || c == "," || c == "!" || c == ";" || c == ":" || c == " " ||
           c == "displaystyle";
  }

  // Whether the next token can begin a factor of an implicit product.
  bool StartsFactor() {
    char c = Peek();
    if (IsDigit(c) || c == '.' || IsLetter(c) || c == '(' || c == '{' || c == '[') return true;
    if (c == '\\') {
      std::string_view cmd = PeekCommand();
      return cmd == "frac" || cmd == "sqrt" || cmd == "pi" || IsGreek(cmd) || IsFunction(cmd);
    }
    return false;
  }

  bool ParseExpr() {
    Depth d(this);
    if (!d.ok()) return Fail("nested too deeply");
    if (!ParseTerm()) return false;
    for (;;) {
      char c = Peek();
      if (c == '+' || c == '-') {
        ++pos_;
        if (!ParseTerm()) return false;
        if (!Emit(c == '+' ? Op::kAdd : Op::kSub)) return false;
      } else {
        return true;
      }
    }
  }

  bool ParseTerm() {
    Depth d(this);
    if (!d.ok()) return Fail("nested too deeply");
    if (!ParseUnary()) return false;
    for (;;) {
      char c = Peek();
      if (c == '*' || c == '/') {
        ++pos_;
        if (!ParseUnary()) return false;
        if (!Emit(c == '*' ? Op::kMul : Op::kDiv)) return false;
        continue;
      }
      if (c == '\\') {
        std::string_view cmd = PeekCommand();
        if (cmd == "cdot" || cmd == "times" || cmd == "div") {
          ConsumeCommand(cmd);
          if (!ParseUnary()) return false;
          if (!Emit(cmd == "div" ? Op::kDiv : Op::kMul)) return false;
          continue;
        }
        if (IsSkippable(cmd)) {
          ConsumeCommand(cmd);
          continue;
        }
      }
      if (StartsFactor()) {
        // Implicit multiplication; two bare numbers side by side ("2 3") are not a product.
        if ((IsDigit(c) || c == '.') && last_was_number_) return Fail("two numbers side by side");
        if (!ParsePower()) return false;
        if (!Emit(Op::kMul)) return false;
        continue;
      }
      return true;
    }
  }

  bool ParseUnary() {
    Depth d(this);
    if (!d.ok()) return Fail("nested too deeply");
    char c = Peek();
    if (c == '-' || c == '+') {
      ++pos_;
      if (!ParseUnary()) return false;
      return c == '-' ? Emit(Op::kNeg) : true;
    }
    return ParsePower();
  }

  // primary [!]* [^ exponent]
  bool ParsePower() {
    Depth d(this);
    if (!d.ok()) return Fail("nested too deeply");
    if (!ParsePrimary()) return false;
    while (Peek() == '!') {
      ++pos_;
      last_was_number_ = false;
      if (!Emit(Op::kFact)) return false;
    }
    if (Peek() == '^') {
      ++pos_;
      if (!ParseExponent()) return false;
      last_was_number_ = false;
      if (!Emit(Op::kPow)) return false;
    }
    return true;
  }

  // After '^': a braced / parenthesised group, or one character / command, optionally signed.
  bool ParseExponent() {
    Depth d(this);
    if (!d.ok()) return Fail("nested too deeply");
    char c = Peek();
    if (c == '-' || c == '+') {
      ++pos_;
      if (!ParseExponent()) return false;
      return c == '-' ? Emit(Op::kNeg) : true;
    }
    return ParseArg();
  }

  // A macro argument: {expr}, or a single digit / letter, or a command primary (\pi).
  bool ParseArg() {
    Depth d(this);
    if (!d.ok()) return Fail("nested too deeply");
    char c = Peek();
    if (c == '{' || c == '(') return ParsePrimary();
    if (IsDigit(c)) {
      ++pos_;
      last_was_number_ = true;
      return Emit(Op::kConst, c - '0');
    }
    if (IsLetter(c)) {
      ++pos_;
      last_was_number_ = false;
      return EmitVar(std::string(1, c));
    }
    if (c == '\\') return ParsePrimary();
    return Fail("missing argument");
  }

  bool EmitVar(std::string name) {
    auto it = std::find(names_.begin(), names_.end(), name);
    int index = static_cast<int>(it - names_.begin());
    if (it == names_.end()) names_.push_back(std::move(name));
    return Emit(Op::kVar, 0, index);
  }

  bool ParseGroup(char close) {
    ++pos_;  // the opening bracket
    if (!ParseExpr()) return false;
    if (Peek() != close) return Fail("unbalanced group");
    ++pos_;
    last_was_number_ = false;
    return true;
  }

  bool ParseNumber() {
    size_t start = pos_;
    while (pos_ < s_.size() && IsDigit(s_[pos_])) ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      while (pos_ < s_.size() && IsDigit(s_[pos_])) ++pos_;
    }
    if (pos_ == start + 1 && s_[start] == '.') return Fail("lone '.'");
    // Scientific notation only when digits follow the exponent marker.
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      size_t e = pos_ + 1;
      if (e < s_.size() && (s_[e] == '+' || s_[e] == '-')) ++e;
      if (e < s_.size() && IsDigit(s_[e])) {
        while (e < s_.size() && IsDigit(s_[e])) ++e;
        pos_ = e;
      }
    }
    double v = 0;
    if (!absl::SimpleAtod(absl::string_view(s_.data() + start, pos_ - start), &v)) return Fail("bad number");
    last_was_number_ = true;
    return Emit(Op::kConst, v);
  }

  bool ParsePrimary() {
    Depth d(this);
    if (!d.ok()) return Fail("nested too deeply");
    char c = Peek();
    if (IsDigit(c) || c == '.') return ParseNumber();
    if (c == '(') return ParseGroup(')');
    if (c == '{') return ParseGroup('}');
    if (c == '[') return ParseGroup(']');
    if (IsLetter(c)) {
      // Words (three or more letters in a row) are text, not products of variables.
      size_t e = pos_;
      while (e < s_.size() && IsLetter(s_[e])) ++e;
      if (e - pos_ >= 3) return Fail("word");
      ++pos_;
      last_was_number_ = false;
      return EmitVar(std::string(1, c));
    }
    if (c != '\\') return Fail("unexpected character");
    std::string_view cmd = PeekCommand();
    ConsumeCommand(cmd);
    last_was_number_ = false;
    if (IsSkippable(cmd)) return ParsePrimary();
    if (cmd == "frac" || cmd == "dfrac" || cmd == "tfrac" || cmd == "cfrac") {
      if (!ParseArg() || !ParseArg()) return false;
      last_was_number_ = false;
      return Emit(Op::kDiv);
    }
    if (cmd == "sqrt") {
      if (Peek() == '[') {
        if (!ParseGroup(']')) return false;
        if (!ParseArg()) return false;
        last_was_number_ = false;
        return Emit(Op::kRoot);
      }
      if (!ParseArg()) return false;
      last_was_number_ = false;
      return Emit(Op::kSqrt);
    }
    if (cmd == "pi") return Emit(Op::kConst, 3.14159265358979323846);
    if (IsGreek(cmd)) return EmitVar("\\" + std::string(cmd));
    if (IsFunction(cmd)) return ParseFunction(cmd);
    return Fail("unsupported command");
  }

  // \sin x, \sin(2x), \sin^2 x, \sin 2x: the argument is a group or an implicit product.
  bool ParseFunction(std::string_view cmd) {
    Op op = cmd == "sin"   ? Op::kSin
            : cmd == "cos" ? Op::kCos
            : cmd == "tan" ? Op::kTan
            : cmd == "cot" ? Op::kCot
            : cmd == "sec" ? Op::kSec
            : cmd == "csc" ? Op::kCsc
            : cmd == "ln"  ? Op::kLn
                           : Op::kExp;
    size_t power_begin = 0, power_end = 0;
    if (Peek() == '^') {
      // Parse the power into a side buffer: it applies after the function.
      ++pos_;
      power_begin = out_.program_.size();
      if (!ParseExponent()) return false;
      power_end = out_.program_.size();
    }
    std::vector<LatexExpression::Instr> power(out_.program_.begin() + power_begin, out_.program_.begin() + power_end);
    out_.program_.resize(power_begin == power_end ? out_.program_.size() : power_begin);
    char c = Peek();
    if (c == '(' || c == '{') {
      if (!ParsePrimary()) return false;
    } else {
      if (!ParsePower()) return false;
      while (StartsFactor()) {
        if (PeekCommand().size() > 0 && IsFunction(PeekCommand())) break;
        if (!ParsePower()) return false;
        if (!Emit(Op::kMul)) return false;
      }
    }
    if (!Emit(op)) return false;
    if (!power.empty()) {
      for (const auto& instr : power) {
        if (!Emit(instr.op, instr.value, instr.index)) return false;
      }
      if (!Emit(Op::kPow)) return false;
    }
    last_was_number_ = false;
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool last_was_number_ = false;
  std::string error_;
  size_t error_pos_ = 0;
  std::vector<std::string> names_;
  LatexExpression out_;
};

absl::StatusOr<LatexExpression> LatexExpression::Parse(std::string_view text) { return LatexParser(text).Run(); }

std::optional<double> LatexExpression::Evaluate(const std::vector<double>& values) const {
  if (values.size() != variables_.size()) return std::nullopt;
  std::vector<double> stack;
  stack.reserve(program_.size());
  for (const Instr& in : program_) {
    switch (in.op) {
      case Op::kConst:
        stack.push_back(in.value);
        continue;
      case Op::kVar:
        stack.push_back(values[in.index]);
        continue;
      default:
        break;
    }
    const bool binary = in.op == Op::kAdd || in.op == Op::kSub || in.op == Op::kMul || in.op == Op::kDiv ||
                        in.op == Op::kPow || in.op == Op::kRoot;
    if (stack.size() < (binary ? 2u : 1u)) return std::nullopt;  // cannot happen for parsed programs
    double b = stack.back();
    if (binary) {
      stack.pop_back();
      double& a = stack.back();
      switch (in.op) {
        case Op::kAdd: a = a + b; break;
        case Op::kSub: a = a - b; break;
        case Op::kMul: a = a * b; break;
        case Op::kDiv: a = b == 0 ? NAN : a / b; break;
        case Op::kPow: a = std::pow(a, b); break;
        case Op::kRoot: {
          // a = index, b = radicand; odd integer roots of negatives are real.
          double n = a;
          if (b < 0 && n == std::floor(n) && std::fmod(std::fabs(n), 2.0) == 1.0) {
            a = -std::pow(-b, 1.0 / n);
          } else {
            a = n == 0 ? NAN : std::pow(b, 1.0 / n);
          }
          break;
        }
        default: return std::nullopt;
      }
      continue;
    }
    double& a = stack.back();
    switch (in.op) {
      case Op::kNeg: a = -b; break;
      case Op::kSqrt: a = b < 0 ? NAN : std::sqrt(b); break;
      case Op::kFact: {
        if (!(b >= 0 && b <= 170 && b == std::floor(b))) {
          a = NAN;
          break;
        }
        double f = 1;
        for (int k = 2; k <= static_cast<int>(b); ++k) f *= k;
        a = f;
        break;
      }
      case Op::kSin: a = std::sin(b); break;
      case Op::kCos: a = std::cos(b); break;
      case Op::kTan: a = std::tan(b); break;
      case Op::kCot: a = 1.0 / std::tan(b); break;
      case Op::kSec: a = 1.0 / std::cos(b); break;
      case Op::kCsc: a = 1.0 / std::sin(b); break;
      case Op::kLn: a = b <= 0 ? NAN : std::log(b); break;
      case Op::kExp: a = std::exp(b); break;
      default: return std::nullopt;
    }
  }
  if (stack.size() != 1 || !std::isfinite(stack.back())) return std::nullopt;
  return stack.back();
}

}  // namespace swarr
