#include "learner/logprobs.h"

#include <algorithm>
#include <cstring>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace swarr {

absl::StatusOr<SequenceBatch> PackSequences(const std::vector<std::vector<int64_t>>& prompts,
                                            const std::vector<std::vector<int64_t>>& completions,
                                            int64_t vocab_size) {
  if (prompts.empty()) return absl::InvalidArgumentError("empty batch: no trajectories");
  if (prompts.size() != completions.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prompts.size(), " prompts but ", completions.size(), " completions"));
  }
  const int64_t n = static_cast<int64_t>(prompts.size());
  size_t max_len = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (prompts[i].empty()) return absl::InvalidArgumentError(absl::StrCat("trajectory ", i, ": empty prompt"));
    if (completions[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("trajectory ", i, ": empty completion"));
    }
    for (const auto* part : {&prompts[i], &completions[i]}) {
      for (size_t j = 0; j < part->size(); ++j) {
        const int64_t id = (*part)[j];
        if (id < 0 || id >= vocab_size) {
          return absl::InvalidArgumentError(absl::StrCat("trajectory ", i, ": ",
                                                         part == &prompts[i] ? "prompt" : "completion", " token ",
                                                         j, " is ", id, ", outside [0, ", vocab_size, ")"));
        }
      }
    }
    max_len = std::max(max_len, prompts[i].size() + completions[i].size());
  }
  const int64_t L = static_cast<int64_t>(max_len);
  SequenceBatch batch;
  batch.tokens = at::zeros({n, L}, at::kLong);
  batch.mask = at::zeros({n, L - 1}, at::kFloat);
  int64_t* tok = batch.tokens.data_ptr<int64_t>();
  float* mask = batch.mask.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    const auto& p = prompts[i];
    const auto& c = completions[i];
    int64_t* row = tok + i * L;
    std::copy(p.begin(), p.end(), row);
    std::copy(c.begin(), c.end(), row + p.size());
    // Completion token k sits at position |p| + k and is predicted at position |p| + k - 1.
    float* mrow = mask + i * (L - 1);
    std::fill(mrow + p.size() - 1, mrow + p.size() - 1 + c.size(), 1.0f);
  }
  return batch;
}

TokenLogProbs ComputeTokenLogProbs(const Model& model, const at::Tensor& tokens, double temperature,
                                   bool with_entropy) {
  TORCH_CHECK(temperature > 0, "ComputeTokenLogProbs: temperature must be > 0, got ", temperature);
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(0) > 0 && tokens.size(1) >= 2,
              "ComputeTokenLogProbs: tokens must be [N, L] with N >= 1, L >= 2, got ", tokens.sizes());
  const int64_t L = tokens.size(1);
  at::Tensor logits = model.Logits(tokens).narrow(1, 0, L - 1);  // [N, L-1, V]
  // Softmax in at least float32 (the rollout computes it from float32 logits).
  if (logits.scalar_type() != at::kDouble) logits = logits.to(at::kFloat);
  const at::Tensor logp_all = at::log_softmax(logits / temperature, -1);  // [N, L-1, V]
  const at::Tensor targets = tokens.narrow(1, 1, L - 1).to(logp_all.device()).unsqueeze(-1);
  TokenLogProbs out;
  out.logprobs = logp_all.gather(-1, targets).squeeze(-1);  // [N, L-1]
  if (with_entropy) out.entropy = -(logp_all.exp() * logp_all).sum(-1);
  return out;
}

}  // namespace swarr
