// 16-byte vector loads of float32 / bfloat16 into float registers, shared by the decode
// kernels (ring_decode.cu, common/model/cuda/decode_ops.cu). REQUIRES: 16-byte aligned `p`.
#ifndef SWARR_COMMON_ATTENTION_CUDA_VEC16_CUH_
#define SWARR_COMMON_ATTENTION_CUDA_VEC16_CUH_

#include <cuda_bf16.h>

namespace swarr {

template <typename T>
struct Vec16;
template <>
struct Vec16<float> {
  static constexpr int kN = 4;
  __device__ static void Load(const float* p, float* out) {
    const float4 v = *reinterpret_cast<const float4*>(p);
    out[0] = v.x;
    out[1] = v.y;
    out[2] = v.z;
    out[3] = v.w;
  }
};
template <>
struct Vec16<__nv_bfloat16> {
  static constexpr int kN = 8;
  __device__ static void Load(const __nv_bfloat16* p, float* out) {
    const uint4 v = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(h[i]);
      out[2 * i] = f.x;
      out[2 * i + 1] = f.y;
    }
  }
};

}  // namespace swarr

#endif  // SWARR_COMMON_ATTENTION_CUDA_VEC16_CUH_
