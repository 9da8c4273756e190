// Causal attention with optional sliding window and attention sinks.
//
// Window semantics (HF's; docs/architecture.md "Window semantics"): with window W > 0 a
// query at absolute position q sees keys at positions k with  q - W < k <= q  (W keys
// including itself), plus the first S positions (k < S) when `sinks` = S > 0. W = 0 means
// full causal attention (k <= q).
//
// Two implementations with identical semantics:
//  * MaskedAttention: plain torch ops with an explicit mask built from per-key absolute
//    positions. It is the reference, and also what cached decoding uses (the ring buffer
//    holds keys in slot order with their positions).
//  * BandAttention: every query block against only the keys it can see (one batched
//    product over all blocks, keys gathered with unfold), so time and memory grow as
//    O(T * (W + block)) instead of O(T^2). Used for training and scoring.
// Both are differentiable through autograd and run on any device/dtype torch supports;
// scores are softmaxed in float32 (as HF's eager attention does).
#ifndef SWARR_COMMON_ATTENTION_ATTENTION_H_
#define SWARR_COMMON_ATTENTION_ATTENTION_H_

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace swarr {

struct AttentionSpec {
  int64_t window = 0;  // 0 = full causal attention
  int64_t sinks = 0;   // first `sinks` positions always visible (sliding layers only)
  double scale = 1.0;  // multiplies q.k (usually 1/sqrt(head_dim))
};

// Boolean mask [B, Tq, Tk]: true where the query at q_pos may attend the key at k_pos.
// Keys with a negative position are empty slots and never visible.
//   q_pos: int64 [B, Tq]; k_pos: int64 [B, Tk]
at::Tensor VisibilityMask(const at::Tensor& q_pos, const at::Tensor& k_pos, const AttentionSpec& spec);

// Reference attention over explicit key positions; supports GQA (H a multiple of Hkv).
//   q: [B, H, Tq, D]   k, v: [B, Hkv, Tk, D]   q_pos: [B, Tq]   k_pos: [B, Tk]
//   returns [B, H, Tq, D] in q's dtype.
// REQUIRES: every query sees at least one key (true whenever its own key is included).
at::Tensor MaskedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& q_pos, const at::Tensor& k_pos, const AttentionSpec& spec);

// Self-attention of a whole sequence at positions 0..T-1 over the band of visible keys.
// `block` is the query block size (0 = clamp(W / 4, 16, 128)). W = 0 or W >= T falls back
// to ReferenceSelfAttention, which is then the same amount of work.
//   q: [B, H, T, D]   k, v: [B, Hkv, T, D]   returns [B, H, T, D]
at::Tensor BandAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const AttentionSpec& spec, int64_t block = 0);

// Same values as BandAttention via one MaskedAttention over the whole T x T score matrix:
// the O(T^2) baseline for tests and benchmarks.
at::Tensor ReferenceSelfAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const AttentionSpec& spec);

}  // namespace swarr

#endif  // SWARR_COMMON_ATTENTION_ATTENTION_H_
