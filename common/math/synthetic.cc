#include "common/math/synthetic.h"

#include <cstring>

#include "absl/strings/str_cat.h"

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
  return absl::InvalidArgumentError(absl::StrCat("unknown synthetic task '", task, "' (known: sum_digits)"));
}

SyntheticProblem MakeSyntheticProblem(const std::string& task, std::mt19937_64& rng) {
  (void)task;  // sum_digits is the only one so far
  const int a = static_cast<int>(rng() % 10), b = static_cast<int>(rng() % 10);
  SyntheticProblem p;
  p.prompt = absl::StrCat("Q:", a, "+", b, "=");
  p.answer = absl::StrCat(a + b);
  p.response = p.answer;
  return p;
}

}  // namespace swarr
