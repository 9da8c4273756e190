// The synthetic task family of the embedded SWARR experiment (`swarr demo`, issue 6): the
// "lagged sum", in which the usual (SA-style) solution refers back to an early intermediate
// result far outside a sliding window, while an equally correct window-friendly style carries
// what it needs forward inside the window. docs/demo-task.md explains the design and gives the
// measured token distances.
//
// Problem: m seed digits x_1..x_m and a step count N. Every new term is the previous term plus
// the term m places back, mod 10: x_n = (x_{n-1} + x_{n-m}) mod 10 for n = m+1..m+N. The answer
// is the last term x_{m+N}.
//
//   prompt                 "Q:38152,9|"           seeds 3 8 1 5 2, N = 9
//   SA-style solution      "9:2+3=5,8:5+8=3,...,1:3+9=2,A2"
//       step "c:a+b=s,": c counts down from N to 1, a = x_{n-1} (the previous result, 6
//       characters back), b = x_{n-m} (the result of m steps earlier: 8m-6 characters back),
//       s = (a + b) mod 10.
//   window-friendly        "9:38152=5,8:81525=3,...,1:...=2,A2"
//       step "c:r_1..r_m=s,": restates the last m terms r = (x_{n-m}..x_{n-1}) (copied from
//       the previous step), then s = (r_1 + r_m) mod 10. Nothing it needs is more than m+5
//       characters back.
//
// Every character is one token (CharVocab of synthetic.h, or configs/demo/tokenizer.json).
// Task specs (DataSpec.synthetic_task): "lagsum" or "lagsum:key=value,..." with
//   m=5        lag = number of seeds (2..9)
//   n=6-9      step count N, uniform in the range (or one value "n=8"); 1 <= N <= 9
//   wf=0.1     share of responses written window-friendly (the rest SA-style); default 0
//   split=eval held-out problems (a fixed 10% of the problem space, by hash); "train" (the
//              default) never yields them; "all" ignores the split
// e.g. "lagsum:wf=0.2" (pretraining mix), "lagsum:wf=0.1" (SFT data), "lagsum" (RL prompts),
// "lagsum:split=eval" (held-out evaluation set).
#ifndef SWARR_COMMON_MATH_WINDOW_TASK_H_
#define SWARR_COMMON_MATH_WINDOW_TASK_H_

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace swarr {
namespace window_task {

inline constexpr char kFamily[] = "lagsum";

enum class Split { kTrain, kEval, kAll };

struct LagSumSpec {
  int lag = 5;        // m
  int min_steps = 6;  // N range
  int max_steps = 9;
  double wf_share = 0;
  Split split = Split::kTrain;
};

// True if `task` names this family ("lagsum" or "lagsum:...").
bool IsLagSumTask(std::string_view task);
// kInvalidArgument naming the bad key or value.
absl::StatusOr<LagSumSpec> ParseLagSumSpec(std::string_view task);

struct LagSumProblem {
  std::vector<int> seeds;  // x_1..x_m
  int steps = 0;           // N
  std::vector<int> terms;  // x_1..x_{m+N}
  std::string prompt;      // "Q:<seeds>,<N>|"
  std::string answer;      // x_{m+N}, one digit
};

// The problem of these seeds (digits 0..9, 2..9 of them) and step count (1..9).
LagSumProblem MakeLagSumProblem(const std::vector<int>& seeds, int steps);
// Whether a problem is in the held-out evaluation split (hash of seeds and N).
bool IsHeldOut(const LagSumProblem& problem);
// A random problem of the spec's lag, step range and split.
LagSumProblem DrawLagSumProblem(const LagSumSpec& spec, std::mt19937_64& rng);

enum class Style { kSa, kWindowFriendly, kMixed, kOther };
const char* StyleName(Style style);

// The solution text (the SFT target, without <eos>) in either style.
std::string Solution(const LagSumProblem& problem, Style style);  // style: kSa or kWindowFriendly

// A random problem of the spec and its response: window-friendly with probability wf_share.
struct LagSumExample {
  LagSumProblem problem;
  Style style = Style::kSa;
  std::string response;
};
LagSumExample DrawLagSumExample(const LagSumSpec& spec, std::mt19937_64& rng);

// The style of a completion (generated text after the prompt): the form of its complete
// steps ("c:a+b=s" SA-style, "c:<lag digits>=s" window-friendly). kMixed if both forms occur,
// kOther if there is no complete step or one of neither form.
Style ClassifyStyle(std::string_view completion, int lag);
inline bool IsWindowFriendly(std::string_view completion, int lag) {
  return ClassifyStyle(completion, lag) == Style::kWindowFriendly;
}

// The answer checker: the completion ends with "A<answer>" (trailing whitespace ignored), the
// answer written once after the last 'A'. Intermediate steps are not checked.
bool CheckAnswer(std::string_view completion, std::string_view answer);

// --- Token distances -----------------------------------------------------------------------
// One generated character of a solution and how far back what it needs is. Positions index the
// whole text prompt + solution (one character = one token). `distance` is, over the quantities
// the character is computed from (terms x_j and the step counter), the largest distance to the
// nearest earlier character that holds that quantity (a copy in the prompt, a result, a
// restated operand); 0 for characters that need no content (':', '+', '=', ',').
struct TokenDependency {
  int position = 0;
  char ch = 0;
  int step = 0;  // 1..N; N+1 for the final "A<answer>"
  int distance = 0;
};
std::vector<TokenDependency> DependencyDistances(const LagSumProblem& problem, Style style);

// Per SA step 1..N, a certified information distance for its far operand b = x_{n-m}: another
// problem with the same N whose SA text agrees with this one on every token within D-1 tokens
// before b but needs a different b. Any model whose receptive field is shorter than D tokens
// back (a sliding window W through L layers reaches L*(W-1)+1 back) therefore writes the wrong
// b for one of the two: the step cannot be done under such a window, whatever the model
// learnt. (The alternative keeps x_{n-m+1}..x_{n-1} and changes x_{n-m}; the recurrence is
// run backwards for the earlier terms.)
std::vector<int> SaCertifiedDistances(const LagSumProblem& problem);

// Largest distance (tokens back) that an L-layer model with window W can use to write a token:
// its query is the previous token, whose receptive field spans L*(W-1) more.
inline int ReceptiveDistance(int window, int layers) { return layers * (window - 1) + 1; }

}  // namespace window_task
}  // namespace swarr

#endif  // SWARR_COMMON_MATH_WINDOW_TASK_H_
