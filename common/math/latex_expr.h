// A small, safe numeric evaluator for LaTeX-ish math expressions, used by the answer
// verifier (verifier.h) to decide whether two answers have the same value.
//
// Understood: numbers (`12`, `3.5`, `.25`, `1.5e-3`), + - * / ^, parentheses / braces /
// brackets as grouping, unary minus, postfix `!` (integers up to 170), `\frac{a}{b}` (also
// `\frac12`, `\frac 59`, `\frac{270}7`), `\sqrt{x}`, `\sqrt2`, `\sqrt[n]{x}`, `\pi`, `\cdot`,
// `\times`, `\div`, implicit multiplication (`2\sqrt{3}`, `3\pi`, `2x`, `(a+1)(b+2)`), the
// functions `\sin \cos \tan \cot \sec \csc \ln \exp` (`\sin x`, `\sin(2x)`, `\sin^2 x`), and
// free variables: single ASCII letters and Greek-letter commands (`\theta`). `e` and `i`
// are plain variables, not constants. LaTeX superscripts take one character unless braced
// (`x^23` is x^2 * 3). Two numbers side by side (`2 3`) and runs of three or more letters
// (words) are rejected rather than multiplied.
//
// Safety: the parser is recursive descent with a nesting limit (kMaxDepth) and an input
// length limit (kMaxInputBytes); it compiles to a postfix program, so evaluation is an
// iterative stack machine. No exceptions, no recursion proportional to input length.
//
// Thread safety: LatexExpression is immutable after Parse; Evaluate is const and may be
// called concurrently.
#ifndef SWARR_COMMON_MATH_LATEX_EXPR_H_
#define SWARR_COMMON_MATH_LATEX_EXPR_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace swarr {

class LatexExpression {
 public:
  static constexpr int kMaxDepth = 64;              // nesting of groups / operators
  static constexpr size_t kMaxInputBytes = 2048;    // longer text is not evaluated
  static constexpr size_t kMaxProgramSize = 4096;   // postfix instructions

  // kInvalidArgument (with the offset and reason) when `text` is not an expression of the
  // grammar above or exceeds the limits.
  static absl::StatusOr<LatexExpression> Parse(std::string_view text);

  // Free variables, sorted, each once: "x", "\\theta".
  const std::vector<std::string>& variables() const { return variables_; }

  // Value with variables()[k] bound to values[k]. nullopt when `values` has the wrong size
  // or the result is not a finite number (division by zero, sqrt of a negative, overflow).
  std::optional<double> Evaluate(const std::vector<double>& values = {}) const;

 private:
  enum class Op : unsigned char {
    kConst, kVar, kAdd, kSub, kMul, kDiv, kPow, kNeg, kSqrt, kRoot, kFact,
    kSin, kCos, kTan, kCot, kSec, kCsc, kLn, kExp,
  };
  struct Instr {
    Op op;
    double value = 0;  // kConst
    int index = 0;     // kVar
  };
  friend class LatexParser;

  std::vector<Instr> program_;
  std::vector<std::string> variables_;
};

}  // namespace swarr

#endif  // SWARR_COMMON_MATH_LATEX_EXPR_H_
