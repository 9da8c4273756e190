// Built-in synthetic tasks for toy runs and tests, over a fixed character vocabulary
// (no tokenizer.json needed): id 0 <pad>, 1 <bos>, 2 <eos>, then one id per character of
// kSyntheticAlphabet. Models for these tasks use vocab_size = CharVocab::kSize.
#ifndef SWARR_COMMON_MATH_SYNTHETIC_H_
#define SWARR_COMMON_MATH_SYNTHETIC_H_

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace swarr {

class CharVocab {
 public:
  static constexpr char kAlphabet[] = "0123456789+-*=:,|$ QA";
  static constexpr int64_t kPad = 0, kBos = 1, kEos = 2;
  static constexpr int64_t kSize = 3 + static_cast<int64_t>(sizeof(kAlphabet) - 1);

  // kInvalidArgument names the first character outside the alphabet and its offset.
  static absl::StatusOr<std::vector<int64_t>> Encode(std::string_view text);
  // Special ids decode to nothing; ids outside the vocabulary to '?'.
  static std::string Decode(const std::vector<int64_t>& ids);
};

struct SyntheticProblem {
  std::string prompt;    // e.g. "Q:3+5="
  std::string response;  // the target solution text, e.g. "8"
  std::string answer;    // the final answer the reward checks, e.g. "8"
};

// Names of the built-in tasks:
//   "sum_digits": "Q:a+b=" with one-digit a, b; response and answer: a + b in decimal.
//   "lagsum[:m=5,n=6-9,wf=0.1,split=eval]": the lagged-sum family of the embedded SWARR
//       experiment (common/math/window_task.h): response = a full solution, SA-style or (with
//       probability wf) window-friendly, ending "A<answer>"; answer = one digit.
// kInvalidArgument for an unknown name (listing the known ones) or bad task parameters.
absl::Status ValidateSyntheticTask(const std::string& task);
// REQUIRES: ValidateSyntheticTask(task).ok().
SyntheticProblem MakeSyntheticProblem(const std::string& task, std::mt19937_64& rng);

}  // namespace swarr

#endif  // SWARR_COMMON_MATH_SYNTHETIC_H_
