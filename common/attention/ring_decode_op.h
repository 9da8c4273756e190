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

}  // namespace swarr

#endif  // SWARR_COMMON_ATTENTION_RING_DECODE_OP_H_
