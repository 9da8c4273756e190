// Torch-facing wrapper of the CUDA decode-attention kernel (cuda/ring_decode.h).
#ifndef SWARR_COMMON_ATTENTION_RING_DECODE_OP_H_
#define SWARR_COMMON_ATTENTION_RING_DECODE_OP_H_

#include <ATen/core/Tensor.h>

#include "common/attention/attention.h"

namespace swarr {

// True when SWARR was built with SWARR_WITH_CUDA (the kernel exists).
bool RingDecodeKernelBuilt();

// One decode step over cache slots, same values as MaskedAttention with Tq = 1.
//   q: [B, H, 1, D]   k, v: [B, S, Hkv, D] (cache layout, any strides with unit last dim)
//   q_pos: int64 [B, 1]   k_pos: int64 [B, S]   returns [B, H, 1, D]
// REQUIRES: CUDA tensors of float32 or bfloat16, D <= 256; throws c10::Error otherwise.
at::Tensor RingDecodeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& q_pos, const at::Tensor& k_pos, const AttentionSpec& spec);

// Decode attention through LibTorch's FlashAttention-2 (varlen, `seqused_k`), for caches
// that keep SWARR's ring invariant without sinks: the slots a query sees are exactly
// slots [0, min(q_pos + 1, S)) of its row — a sliding layer whose ring (S = W slots) holds
// the last W positions, or a full layer (slot = position). Unused rows (q_pos < 0) see no
// key; their output is unspecified. Tensor cores make it bandwidth-bound where the plain
// kernel is not (GQA groups of 4-8 heads).
//   q: [B, H, 1, D]   k, v: [B, S, Hkv, D], rows contiguous   q_pos: int64 [B, 1]
// Available with a CUDA LibTorch >= 2 for bfloat16 / float16 and head_dim % 8 == 0, <= 256.
bool FlashDecodeSupported(const at::Tensor& q, const at::Tensor& k, const AttentionSpec& spec);
// `all_full`: every row sees all S slots (full rings); then the dense FlashAttention-2 path
// runs (query heads of a group folded into one tile, split-KV), without `seqused_k`.
// The varlen path's per-row metadata (slots used, cumulative offsets) for caches of S slots:
// the same for every layer of one step, so a caller may build it once and pass it.
struct FlashDecodeMeta {
  at::Tensor used, cu_q, cu_k;
};
FlashDecodeMeta MakeFlashDecodeMeta(const at::Tensor& q_pos, int64_t S);
at::Tensor FlashRingDecodeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& q_pos, const AttentionSpec& spec, bool all_full = false,
                                    const FlashDecodeMeta* meta = nullptr);

}  // namespace swarr

#endif  // SWARR_COMMON_ATTENTION_RING_DECODE_OP_H_
