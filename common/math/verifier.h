// The math answer verifier: the RL reward. Extracts the final answer of a model completion
// and decides whether it is mathematically the same as the reference answer.
//
// Design rule: a false positive (a wrong answer rewarded) is worse than a false negative.
// When in doubt, answers are NOT equivalent. The full rule book, with the decisions on
// percent and on decimals vs fractions, is docs/verifier.md; the summary:
//
//  * Normalisation (both sides): `$`, `\(`, `\)`, `\[`, `\]`, `\left`, `\right`,
//    `\displaystyle`, spacing (`\! \, \; \: \quad ~`), degrees (`^\circ`), `\text{}` /
//    `\mbox{}` units (`5\text{ cm}^2` -> 5) and plain unit words (`18 dollars`), a trailing
//    period, `x =` / `x \in` in front of the value, thousands separators (`10,\!080`,
//    `58,500`, `{,}`), `\dfrac` / `\tfrac` -> `\frac`, an outer `\boxed{}`.
//  * Exact numbers (integers of any length, decimals, `\frac{a}{b}`, `a/b`, mixed numbers
//    `1\frac{4}{5}` = 9/5 and `7 3/4`) compare exactly as rationals: 0.5 == \frac{1}{2}.
//  * A decimal equals a value that has no exact short decimal form (1/3, \sqrt{2}, \pi) only
//    when it has at least 4 significant digits and is that value rounded or truncated to the
//    decimal's places: 0.3333 == 1/3, 0.333 != 1/3, 3.1416 == \pi, 3.14 != \pi.
//  * Percent: `50\%` == `50` and `50\%` == `0.5` (exactly one side carries the percent sign);
//    `50` != `0.5` (no percent sign anywhere).
//  * Other expressions (`2\sqrt{3}` vs `\sqrt{12}`, `3\pi`, `10^{3}`, `1.5\times10^3`) are
//    evaluated numerically (latex_expr.h) and compared with relative tolerance 1e-9.
//    Expressions with variables are compared at several fixed pseudo-random points and need
//    the same set of variables; equations (`5x-7y+11z+4=0`) compare as proportional
//    left-minus-right sides.
//  * Structures: tuples `(1,2)` and intervals `[1,2)` compare element-wise with the same
//    brackets; sets `\{1,2\}` / `{1,2}`, bare lists `1, 2` (also `;`-separated), unions
//    `A \cup B` and `a \pm b` compare order-insensitively; matrices element-wise. Names on
//    one side only are labels (`AB=4, CD=5` == `4, 5`; `p=5,q=2;p=7,q=2` == `(5,2),(7,2)`).
//  * Chains and labels: `x = 5+5+1 = 11` -> 11, `\frac12 = \frac{10}{9}` -> 10/9,
//    `(p,q) = (3,2)` -> (3,2), `V_1:V_2 = 11:21` -> 11:21, `1/3 \approx 0.33` -> 1/3.
//  * Inequalities compare with each other (`5 \ge x` == `x \le 5`) and, from the reference
//    side, with the interval they describe (`-2 \le x \le 7` vs a predicted `[-2,7]`); see
//    CompareOptions for the other direction.
//  * Multiple choice: `(B)`, `B`, `\text{(B)}`, `\textbf{(B)}` are the letter B.
//  * Text answers compare by normalised string (case-insensitive for words).
//
// All functions are pure, thread-safe, never throw, and bound their work: nesting depth,
// expression size and list lengths are capped; inputs beyond the caps fall back to string
// comparison. Typical cost: a few microseconds per Verify (docs/verifier.md).
#ifndef SWARR_COMMON_MATH_VERIFIER_H_
#define SWARR_COMMON_MATH_VERIFIER_H_

#include <optional>
#include <string>
#include <string_view>

namespace swarr {

struct ExtractOptions {
  // When no \boxed{}, "The answer is" or "####" answer is present and the last math span
  // does not come after it, use the last standalone number in the completion (`-12`,
  // `3.5`, `1,000`, `3/4`, `28 percent`). Default true.
  bool fallback_last_number = true;
  // Lenient number forms in that fallback (Math-Verify reads them too): a decimal comma
  // (`2,74` = 2.74, `0,111` = 0.111; groups of three stay thousands: `1,234` = 1234) and a
  // space as thousands separator (`1 000`). Default true; `swarr verify --strict` turns
  // them off.
  bool lenient_numbers = true;
};

// The final answer of a model completion, trimmed, in this order of preference:
//  1. the content of the last \boxed{...} / \fbox{...} (nested braces; also `\boxed 5`);
//     boxes right before it that are separated from it only by a connective (`,`, `and`,
//     `or`, `\quad`, math delimiters, at most four words) join it as a list:
//     `\boxed{1} and \boxed{-2}` -> "1, -2"; a "final answer is X" written after the last
//     box (X starting like an answer: digit, `$`, `-`, bracket, command) replaces it;
//  2. the rest of the line after the last "answer is" (case-insensitive; "The answer is:
//     $5$." -> "5");
//  3. the rest of the line after the last "####" (GSM8K);
//  4. whichever ends last of: the last LaTeX math span (`$...$`, `$$...$$`, `\(...\)`,
//     `\[...\]`; inline spans on one line; spans joined by `,`/`and`/`or` form a list;
//     a `%`/`percent` right after it is kept) and, if options.fallback_last_number, the
//     last standalone number outside math spans. A number inside a word (`AZYUK2A`),
//     attached to an operator (`5-3`, `(1/2)/(3/4)`), an exponent or a tuple is not an
//     answer: then the result is nullopt, not a digit picked out of it.
// A rule whose result is empty (or an unbalanced last \boxed{) falls through to the next.
// nullopt if none applies.
std::optional<std::string> ExtractAnswer(std::string_view completion, const ExtractOptions& options = {});

// Content of the last \boxed{...} / \fbox{...} only (used to read MATH solutions), verbatim.
// nullopt if there is none or it is unbalanced.
std::optional<std::string> LastBoxed(std::string_view text);

struct CompareOptions {
  // Inequalities vs intervals. A reference relation (`-2 \le x \le 7`, `x > 3`) always
  // matches the same set written as an interval (`[-2,7]`, `x \in (3, \infty)`). A
  // predicted relation matches a reference interval only when this is true: by default a
  // model that restates the inequality of the question instead of solving it is not
  // rewarded (Math-Verify's allow_set_relation_comp, same default).
  bool allow_set_relation = false;
};

// Whether two final answers are mathematically the same (prediction vs reference). The
// relation is symmetric except for inequality-vs-interval (CompareOptions). Empty answers
// are never equivalent to anything.
bool AnswersEquivalent(std::string_view prediction, std::string_view reference, const CompareOptions& options = {});

struct VerifyResult {
  bool correct = false;
  std::string extracted;  // the extracted answer; "" if nothing was extracted
};

// ExtractAnswer(completion, options), then AnswersEquivalent(extracted, reference_answer).
VerifyResult Verify(std::string_view completion, std::string_view reference_answer,
                    const ExtractOptions& options = {}, const CompareOptions& compare = {});

}  // namespace swarr

#endif  // SWARR_COMMON_MATH_VERIFIER_H_
