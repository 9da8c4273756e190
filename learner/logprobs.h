// The learner's per-token log-probs, with exactly the rollout's definition (sampler.h): the
// log-prob of token t+1 under softmax(logits_t / temperature) over the WHOLE vocabulary
// (before top-k / top-p), where logits_t comes from the prefix 0..t. Scoring a generated
// sequence with the sampling temperature therefore reproduces the behaviour log-probs the
// rollout server reported (up to float rounding); greedy rollouts are scored at temperature 1.
//
// Batches are right-padded: with causal attention, padding after a sequence cannot change
// its values, so no attention mask is needed.
#ifndef SWARR_LEARNER_LOGPROBS_H_
#define SWARR_LEARNER_LOGPROBS_H_

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/model/model.h"

namespace swarr {

struct SequenceBatch {
  at::Tensor tokens;  // [N, L] int64 on the CPU, prompt + completion, right-padded with 0
  // [N, L-1] float32 on the CPU: 1 where position t+1 is a completion token (predicted from
  // prefix 0..t), 0 for prompt and padding. Row i has exactly completions[i].size() ones.
  at::Tensor mask;
  std::vector<int64_t> lengths;  // prompt + completion tokens of each row (the rest is padding)
};

// Packs trajectories (prompt ids, completion ids) into a right-padded batch;
// L = max_i (|prompt_i| + |completion_i|).
// kInvalidArgument for an empty batch, prompts/completions of different counts, or (naming
// the trajectory index) an empty prompt or completion, or an id outside [0, vocab_size).
absl::StatusOr<SequenceBatch> PackSequences(const std::vector<std::vector<int64_t>>& prompts,
                                            const std::vector<std::vector<int64_t>>& completions,
                                            int64_t vocab_size);

struct TokenLogProbs {
  at::Tensor logprobs;  // [N, L-1]: log_softmax(logits[:, t] / temperature)[tokens[:, t+1]]
  at::Tensor entropy;   // [N, L-1]: entropy of that distribution (nats); undefined unless asked
};

// How ScoreSequences keeps memory bounded (LearnerMemory in the config schema).
struct ScoringOptions {
  // Rows packed end to end through Model::PackedHidden (no padding, FlashAttention-2 varlen
  // on CUDA) instead of one padded [N, L] batch.
  bool packed = false;
  // Hidden rows per chunk of the output projection + softmax (FusedTokenLogProbs); 0 = no
  // chunking: unpacked, that is ComputeTokenLogProbs itself (the CPU default).
  int64_t chunk_tokens = 0;
  bool checkpoint_layers = false;  // activation checkpointing per decoder layer
  int64_t checkpoint_layer_count = 0;  // of the first this many layers only; 0 = all
  bool flash_attention = true;     // where Model::PackedHidden can use it
};

// The trainers' scorer. With chunk_tokens > 0 or packed, memory-safe: the same values as
// ComputeTokenLogProbs at every position where batch.mask is 1 (0 elsewhere), computed only at
// those positions, with the
// vocabulary projection and softmax chunked (no [tokens, V] float32 tensor larger than
// chunk_tokens x V, forward or backward) and, if asked, sequences packed and layers
// checkpointed. Outputs [N, L-1] float32 (float64 for a float64 model) on the model's
// device; differentiable (log-probs and entropy) when grad mode is on.
// REQUIRES: batch from PackSequences (lengths set), temperature > 0; throws c10::Error.
TokenLogProbs ScoreSequences(const Model& model, const SequenceBatch& batch, double temperature, bool with_entropy,
                             const ScoringOptions& options);

// Scores a whole batch with one Model::Logits pass (band attention): the unchunked
// reference, O(N x L x V) memory. Outputs are float32
// (float64 if the model computes in float64) on the model's device, differentiable w.r.t.
// the model's parameters when grad mode is on. Values where the mask is 0 are unspecified
// but finite (prompt positions are real log-probs; padding scores pad tokens).
//   tokens: int64 [N, L] on any device, L >= 2
// REQUIRES: temperature > 0; ids in the vocabulary (PackSequences checks them). Violations
// throw c10::Error (LibTorch's), which the trainer's CatchTorch boundary turns into a Status.
// Memory: keeps [N, L-1, V] log-probs alive for the backward pass.
TokenLogProbs ComputeTokenLogProbs(const Model& model, const at::Tensor& tokens, double temperature,
                                   bool with_entropy);

}  // namespace swarr

#endif  // SWARR_LEARNER_LOGPROBS_H_
