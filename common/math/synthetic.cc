#include "common/math/synthetic.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/math/window_task.h"

namespace swarr {

absl::StatusOr<std::vector<int64_t>> CharVocab::Encode(std::string_view text) {
  std::vector<int64_t> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char* p = std::strchr(kAlphabet, text[i]);
    if (text[i] == '\0' || p == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("character '", std::string(1, text[i]), "' at offset ", i,
                                                     " is not in the synthetic alphabet \"", kAlphabet, "\""));
    }
    ids.push_back(3 + (p - kAlphabet));
  }
  return ids;
}

std::string CharVocab::Decode(const std::vector<int64_t>& ids) {
  std::string out;
  for (int64_t id : ids) {
    if (id == kPad || id == kBos || id == kEos) continue;
    out.push_back(id >= 3 && id < kSize ? kAlphabet[id - 3] : '?');
  }
  return out;
}

absl::Status ValidateSyntheticTask(const std::string& task) {
  if (task == "sum_digits") return absl::OkStatus();
  if (window_task::IsLagSumTask(task)) return window_task::ParseLagSumSpec(task).status();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown synthetic task '", task, "' (known: sum_digits, lagsum[:m=..,n=..,wf=..,split=..])"));
}

SyntheticProblem MakeSyntheticProblem(const std::string& task, std::mt19937_64& rng) {
  if (window_task::IsLagSumTask(task)) {
    const window_task::LagSumExample e = window_task::DrawLagSumExample(*window_task::ParseLagSumSpec(task), rng);
    return SyntheticProblem{e.problem.prompt, e.response, e.problem.answer};
  }
  const int a = static_cast<int>(rng() % 10), b = static_cast<int>(rng() % 10);
  SyntheticProblem p;
  p.prompt = absl::StrCat("Q:", a, "+", b, "=");
  p.answer = absl::StrCat(a + b);
  p.response = p.answer;
  return p;
}

}  // namespace swarr
