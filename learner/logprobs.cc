#include "learner/logprobs.h"

#include <algorithm>
#include <cstring>

#include <ATen/ATen.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "learner/fused_logprobs.h"

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
    batch.lengths.push_back(static_cast<int64_t>(p.size() + c.size()));
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

TokenLogProbs ScoreSequences(const Model& model, const SequenceBatch& batch, double temperature, bool with_entropy,
                             const ScoringOptions& options) {
  TORCH_CHECK(temperature > 0, "ScoreSequences: temperature must be > 0, got ", temperature);
  TORCH_CHECK(options.chunk_tokens >= 0, "ScoreSequences: chunk_tokens must be >= 0, got ", options.chunk_tokens);
  // Unchunked and padded: the reference computation itself (the CPU default; bit-identical to
  // what the trainers did before chunking existed).
  if (!options.packed && options.chunk_tokens == 0) {
    return ComputeTokenLogProbs(model, batch.tokens, temperature, with_entropy);
  }
  const at::Tensor& tokens = batch.tokens;
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(0) > 0 && tokens.size(1) >= 2,
              "ScoreSequences: tokens must be [N, L] with N >= 1, L >= 2, got ", tokens.sizes());
  const int64_t N = tokens.size(0), L = tokens.size(1);
  TORCH_CHECK(static_cast<int64_t>(batch.lengths.size()) == N, "ScoreSequences: ", batch.lengths.size(),
              " lengths for ", N, " rows");
  // Scored positions (mask 1), as flat indices of the [N, L-1] output and of the hidden rows.
  const at::Tensor mask_cpu = batch.mask.to(at::kCPU, at::kFloat).contiguous();
  const float* mask = mask_cpu.data_ptr<float>();
  const at::Tensor tokens_cpu = tokens.to(at::kCPU).contiguous();
  const int64_t* tok = tokens_cpu.data_ptr<int64_t>();
  std::vector<int64_t> out_index, hidden_index, targets, offsets{0};
  for (int64_t i = 0; i < N; ++i) {
    const int64_t len = batch.lengths[i];
    TORCH_CHECK(len >= 2 && len <= L, "ScoreSequences: row ", i, " has length ", len, " outside [2, ", L, "]");
    for (int64_t t = 0; t + 1 < len; ++t) {
      if (mask[i * (L - 1) + t] == 0.f) continue;
      out_index.push_back(i * (L - 1) + t);
      hidden_index.push_back(options.packed ? offsets.back() + t : i * L + t);
      targets.push_back(tok[i * L + t + 1]);
    }
    offsets.push_back(offsets.back() + len);
  }
  const c10::Device device = model.device();
  at::Tensor hidden;  // [rows, hidden]
  if (options.packed) {
    std::vector<int64_t> packed;
    packed.reserve(static_cast<size_t>(offsets.back()));
    for (int64_t i = 0; i < N; ++i) packed.insert(packed.end(), tok + i * L, tok + i * L + batch.lengths[i]);
    PackedForwardOptions fwd;
    fwd.checkpoint_layers = options.checkpoint_layers;
    fwd.checkpoint_layer_count = options.checkpoint_layer_count;
    fwd.flash_attention = options.flash_attention;
    hidden = model.PackedHidden(at::tensor(packed, at::kLong), offsets, fwd);
  } else {
    hidden = model.Hidden(tokens);
    hidden = hidden.reshape({N * L, hidden.size(-1)});
  }
  const auto idx = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(device); };
  const at::Tensor rows = hidden.index_select(0, idx(hidden_index));
  FusedLogProbOptions fo;
  fo.temperature = temperature;
  fo.chunk_tokens = options.chunk_tokens > 0 ? options.chunk_tokens : std::max<int64_t>(1, rows.size(0));
  fo.with_entropy = with_entropy;
  FusedLogProbs lp = FusedTokenLogProbs(rows, model.lm_head(), idx(targets), fo);
  const at::Tensor where = idx(out_index);
  const auto scatter = [&](const at::Tensor& values) {
    return at::zeros({N * (L - 1)}, values.options()).index_copy(0, where, values).view({N, L - 1});
  };
  TokenLogProbs out;
  out.logprobs = scatter(lp.logprobs);
  if (with_entropy) out.entropy = scatter(lp.entropy);
  return out;
}

}  // namespace swarr
