// RL losses for on-policy training (GRPO / PPO-clip) over ATen tensors: group-normalised
// advantages, the k3 KL estimator and the clipped policy loss with clip-higher, optional KL
// to a frozen reference, entropy bonus and truncated importance weights for the
// behaviour/learner mismatch. docs/rl-losses.md gives the formulas and sign conventions.
//
// Tensors may be float32 or float64 on any device; auxiliary inputs are converted to the
// dtype and device of the primary input (`rewards`, `logprobs`). Functions are pure and
// thread-compatible. LibTorch errors are returned as kInternal, never thrown.
#ifndef SWARR_LEARNER_LOSSES_H_
#define SWARR_LEARNER_LOSSES_H_

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace swarr {

struct AdvantageOptions {
  // false: A_i = r_i - mean(group) (Dr. GRPO); true: also divided by std(group) + eps (GRPO).
  bool divide_by_std = false;
  double eps = 1e-6;  // > 0 when divide_by_std; keeps zero-variance groups at A = 0
  // false: no baseline, A_i = r_i (with 0/1 rewards: fine-tuning on the correct samples only,
  // i.e. online rejection-sampling fine-tuning, a baseline method for RL). Excludes divide_by_std.
  bool subtract_mean = true;
};

// Group-normalised advantages. For each group g (rows sharing a group id):
//   A_i = r_i - mean_g(r)                      [ / (std_g(r) + eps) if divide_by_std ]
// with the population std (divide by the group size). A group of one gets A = 0.
// subtract_mean = false: A_i = r_i (no baseline, any group).
//   rewards:   [N] floating point, finite
//   group_ids: [N] integral, any values, groups need not be contiguous
//   returns    [N] in the dtype and on the device of `rewards` (no grad)
// kInvalidArgument (naming the tensor) for N == 0, wrong rank/dtype, mismatched lengths,
// non-finite rewards, or eps <= 0 with divide_by_std.
absl::StatusOr<at::Tensor> GroupAdvantages(const at::Tensor& rewards, const at::Tensor& group_ids,
                                           const AdvantageOptions& options);

// k3 estimator of KL(pi || ref) per token (Schulman): with d = ref - logp,
//   k3 = exp(d) - d - 1   (>= 0, == 0 iff equal; unbiased for KL when sampled from pi).
//   logprobs, ref_logprobs: [N, T] (same shape)  ->  [N, T], differentiable in both.
at::Tensor K3Kl(const at::Tensor& logprobs, const at::Tensor& ref_logprobs);

// DAPO's soft overlong punishment (Yu et al. 2025, eq. 13), added to the reward of a
// completion of `length` tokens when at most `max_length` may be generated:
//   0                                             length <= max_length - buffer
//   penalty * ((max_length - buffer) - length) / buffer   max_length - buffer < length <= max_length
//   -penalty                                      length > max_length
// buffer <= 0 or penalty == 0: 0 (off). buffer is capped at max_length.
double SoftOverlongPenalty(int64_t length, int64_t max_length, int64_t buffer, double penalty);

// KL in the reward (the PPO-RLHF form, beside the k3 loss term): the k1 estimate of
// KL(pi || ref) summed over each sequence's masked tokens,
//   kl_i = sum_t mask[i, t] * (logprobs[i, t] - ref_logprobs[i, t])
// logprobs, ref_logprobs, mask: [N, T] -> [N] (no grad; dtype/device of logprobs).
// A trajectory's reward becomes r_i - kl_reward_coef * kl_i before its group's advantages.
at::Tensor SequenceKlK1(const at::Tensor& logprobs, const at::Tensor& ref_logprobs, const at::Tensor& mask);

enum class LossAggregation {
  // sum over every masked token of the batch / number of masked tokens (DAPO): each token
  // weighs the same, long sequences weigh more.
  kTokenMean,
  // mean over sequences of (mean over that sequence's masked tokens) (original GRPO).
  // Sequences with no masked token are left out of the outer mean.
  kSequenceMean,
};

struct PolicyLossOptions {
  double clip_low = 0.2;    // ratio lower bound 1 - clip_low; in [0, 1)
  double clip_high = 0.28;  // ratio upper bound 1 + clip_high (clip-higher, DAPO); >= 0
  LossAggregation aggregation = LossAggregation::kTokenMean;
  double kl_coef = 0.0;       // >= 0; > 0 adds kl_coef * k3 KL to the reference (needs ref_logprobs)
  double entropy_coef = 0.0;  // >= 0; > 0 subtracts entropy_coef * entropy (needs entropy)
  // > 0: each token's policy-gradient term is multiplied by the truncated importance weight
  // min(exp(old - behaviour), C) (detached), correcting the rollout-server/learner mismatch;
  // 0 = off (weight 1).
  double max_importance_weight = 0.0;
};

struct PolicyLossInputs {
  at::Tensor logprobs;            // [N, T] current policy, differentiable
  at::Tensor old_logprobs;        // [N, T] learner's log-probs at the start of this update (proximal policy)
  at::Tensor behaviour_logprobs;  // [N, T] what the rollout server sampled with; undefined = old_logprobs
  at::Tensor ref_logprobs;        // [N, T] frozen reference, or undefined
  at::Tensor entropy;             // [N, T] per-token entropy of the current policy, or undefined
  at::Tensor advantages;          // [N]
  at::Tensor mask;                // [N, T] 1 for completion tokens, 0 for prompt/padding (any dtype)
};

struct PolicyLossOutput {
  at::Tensor loss;        // scalar (dtype of logprobs), differentiable w.r.t. logprobs / entropy
  double clip_frac = 0;   // share of masked tokens where the clipped branch was taken (gradient zeroed)
  double kl = 0;          // masked token-mean k3 KL (0 without a reference)
  double entropy = 0;     // masked token-mean entropy (0 without)
  double importance_weight_mean = 1;  // masked token-mean of the truncated weights (1 when off)
  double truncated_frac = 0;          // share of masked tokens whose weight was truncated
};

// kInvalidArgument naming the option: clip_low outside [0, 1), or a negative clip_high,
// kl_coef, entropy_coef or max_importance_weight. PolicyLoss checks this itself.
absl::Status ValidatePolicyLossOptions(const PolicyLossOptions& options);

// PPO-clip with clip-higher. Per token t of sequence i (A = advantages[i]):
//   ratio  = exp(logprobs - old_logprobs)
//   pg     = -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A)
//   w      = min(exp(old_logprobs - behaviour_logprobs), max_importance_weight)  (detached; 1 if off)
//   loss_t = w * pg + kl_coef * K3Kl(logprobs, ref_logprobs) - entropy_coef * entropy
// aggregated over masked tokens as `options.aggregation` says. The clipped branch is taken
// where clip(ratio) * A < ratio * A (A > 0 and ratio > 1 + clip_high, or A < 0 and
// ratio < 1 - clip_low); there the gradient of pg is zero. Values at mask == 0 do not reach
// the loss or its gradient (they must still be finite).
// kInvalidArgument naming the tensor/option for: undefined or mismatched shapes, an empty
// batch (N == 0 or T == 0), a mask that is not 0/1 or is all zero, non-finite advantages /
// old / behaviour / reference log-probs / entropy, a coefficient without its tensor, or
// options out of range.
absl::StatusOr<PolicyLossOutput> PolicyLoss(const PolicyLossInputs& inputs, const PolicyLossOptions& options);

}  // namespace swarr

#endif  // SWARR_LEARNER_LOSSES_H_
