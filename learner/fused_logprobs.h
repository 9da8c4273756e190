// Token log-probs (and entropies) straight from the last hidden states and the LM head, without
// ever holding the [tokens, V] logits: a fused, chunked linear + log-softmax + entropy op, as
// Liger-Kernel's fused linear cross-entropy does it.
//
// For a 152k vocabulary an RL minibatch's [N, V] float32 logits and log-softmax take tens of GB;
// this op processes `chunk_tokens` rows of `hidden` at a time, so the largest temporary is a
// few [chunk_tokens, V] tensors, in the forward and in the backward pass alike. The backward
// pass recomputes each chunk's logits from the saved inputs (one more [chunk, H] x [H, V]
// product per chunk) instead of keeping them.
//
// The definition is the learner's (logprobs.h): the log-prob of targets[i] under
// softmax(logits_i / temperature) over the whole vocabulary, logits_i = hidden_i . weight^T,
// and the entropy (nats) of that distribution.
#ifndef SWARR_LEARNER_FUSED_LOGPROBS_H_
#define SWARR_LEARNER_FUSED_LOGPROBS_H_

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace swarr {

struct FusedLogProbOptions {
  // Sampling temperature, > 0: log-probs of softmax(logits / temperature).
  double temperature = 1.0;
  // Rows of `hidden` (tokens) processed at once, > 0. Peak extra memory in either pass is
  // about two [chunk_tokens, V] float32 buffers (plus one in the inputs' dtype when that is
  // not float32), and in the backward pass the gradients: [N, H], and [V, H] accumulated in
  // float32. Larger chunks mean fewer, larger matrix products.
  int64_t chunk_tokens = 1024;
  // Also compute (and differentiate) the entropy.
  bool with_entropy = false;
};

struct FusedLogProbs {
  at::Tensor logprobs;  // [N]: log_softmax(hidden . weight^T / temperature)[targets]
  at::Tensor entropy;   // [N]: entropy of that distribution (nats); undefined unless asked
};

// Outputs are float32 (float64 if the inputs are float64) on the inputs' device. The logits
// of each chunk are computed in the inputs' dtype (e.g. bf16 on the GPU) and upcast to float32
// (kept in float64) for the softmax.
//   hidden:  [N, H] floating point (any dtype, any strides)
//   weight:  [V, H] the LM head, same dtype and device as hidden
//   targets: [N] int64 on the same device, ids in [0, V)
// Differentiable w.r.t. hidden and weight when grad mode is on and either requires grad: the
// logprobs and the entropy each carry gradients, and an output left out of the loss costs
// nothing in the backward pass. The weight's gradient is accumulated in float32 (float64) over
// the chunks and cast to the weight's dtype at the end. No double backward.
// Without grad (at::NoGradGuard, or no input requiring grad) it is a plain chunked forward
// pass that saves nothing.
// REQUIRES: temperature > 0, chunk_tokens > 0, the shapes, dtypes and ids above. Violations
// throw c10::Error naming the problem (checking the ids reads their min and max: one device
// synchronisation on the GPU).
FusedLogProbs FusedTokenLogProbs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                 const FusedLogProbOptions& options);

}  // namespace swarr

#endif  // SWARR_LEARNER_FUSED_LOGPROBS_H_
