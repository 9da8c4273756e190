// Training self-attention over packed variable-length sequences through LibTorch's
// FlashAttention-2 (CUDA builds with LibTorch >= 2.5, which has the sliding-window
// arguments). Same window semantics as attention.h: a query at position q sees keys
// q - W < k <= q of its own sequence (W = 0: k <= q); no attention across sequences.
// Sinks (sliding layers only): the kernel has none, so their keys that lie outside a query's
// window are attended separately and merged by log-sum-exp, with an exact backward pass.
#ifndef SWARR_COMMON_ATTENTION_FLASH_TRAIN_H_
#define SWARR_COMMON_ATTENTION_FLASH_TRAIN_H_

#include <cstdint>

#include <ATen/core/Tensor.h>

#include "common/attention/attention.h"

namespace swarr {

// True when this build can run the windowed FlashAttention-2 at all.
bool FlashTrainAttentionBuilt();

// True if FlashVarlenSelfAttention accepts q (CUDA, bfloat16/float16, head_dim % 8 == 0 and
// <= 256) with this spec in this build.
bool FlashTrainAttentionSupports(const at::Tensor& q, const AttentionSpec& spec);

// q: [total, H, D]   k, v: [total, Hkv, D] (H a multiple of Hkv), sequence i at rows
// [cu_seqlens[i], cu_seqlens[i+1]) with positions 0..len-1; cu_seqlens int32 [n+1] on q's
// device; max_len = the longest sequence. Returns [total, H, D]. Differentiable w.r.t.
// q, k, v through LibTorch's autograd (FlashAttention-2 backward with the same window).
// Throws c10::Error where !FlashTrainAttentionSupports.
at::Tensor FlashVarlenSelfAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& cu_seqlens, int64_t max_len, const AttentionSpec& spec);

}  // namespace swarr

#endif  // SWARR_COMMON_ATTENTION_FLASH_TRAIN_H_
