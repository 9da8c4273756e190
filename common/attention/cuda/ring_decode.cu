#include "common/attention/cuda/ring_decode.h"

#include <cuda_bf16.h>

#include <cfloat>

namespace swarr {
namespace {

constexpr int kThreads = 128;

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ void Store(float* p, float x) { *p = x; }
__device__ __forceinline__ void Store(__nv_bfloat16* p, float x) { *p = __float2bfloat16(x); }

// Max / sum over the block; every thread gets the result.
template <bool kMax>
__device__ float BlockReduce(float x, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    const float y = __shfl_xor_sync(0xffffffffu, x, o);
    x = kMax ? fmaxf(x, y) : x + y;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  x = scratch[0];
  for (int w = 1; w < kThreads / 32; ++w) x = kMax ? fmaxf(x, scratch[w]) : x + scratch[w];
  __syncthreads();
  return x;
}

// One block per (head, sequence). Slots are processed in tiles of kThreads with an
// online softmax; each thread owns output dims tid and tid + kThreads.
template <typename T>
__global__ void RingDecodeKernel(RingDecodeParams p) {
  const int h = blockIdx.x, b = blockIdx.y, tid = threadIdx.x;
  const int hk = h / (p.H / p.Hkv);
  __shared__ float q_s[256];
  __shared__ float p_s[kThreads];
  __shared__ float scratch[kThreads / 32];
  const T* q = static_cast<const T*>(p.q) + b * p.q_stride_b + h * p.q_stride_h;
  for (int d = tid; d < p.D; d += kThreads) q_s[d] = ToFloat(q[d]);
  __syncthreads();
  const T* kb = static_cast<const T*>(p.k) + b * p.kv_stride_b + hk * p.kv_stride_h;
  const T* vb = static_cast<const T*>(p.v) + b * p.kv_stride_b + hk * p.kv_stride_h;
  const int64_t qpos = p.q_pos[b * p.q_pos_stride_b];
  float m = -FLT_MAX, l = 0.f, acc0 = 0.f, acc1 = 0.f;
  for (int base = 0; base < p.S; base += kThreads) {
    const int s = base + tid;
    float score = -FLT_MAX;
    bool visible = false;
    if (s < p.S) {
      const int64_t kp = p.k_pos[b * p.pos_stride_b + s * p.pos_stride_s];
      visible = kp >= 0 && kp <= qpos && (p.window == 0 || kp > qpos - p.window || kp < p.sinks);
      if (visible) {
        const T* k = kb + s * p.kv_stride_s;
        float dot = 0.f;
        for (int d = 0; d < p.D; ++d) dot += q_s[d] * ToFloat(k[d]);
        score = dot * p.scale;
      }
    }
    const float tile_max = BlockReduce<true>(score, scratch);
    const float new_m = fmaxf(m, tile_max);
    const float e = visible ? __expf(score - new_m) : 0.f;
    p_s[tid] = e;
    const float tile_sum = BlockReduce<false>(e, scratch);  // also orders p_s writes before reads
    const float corr = __expf(m - new_m);
    l = l * corr + tile_sum;
    acc0 *= corr;
    acc1 *= corr;
    const int n = min(kThreads, p.S - base);
    for (int j = 0; j < n; ++j) {
      const float w = p_s[j];
      if (w == 0.f) continue;
      const T* v = vb + (base + j) * p.kv_stride_s;
      if (tid < p.D) acc0 += w * ToFloat(v[tid]);
      if (tid + kThreads < p.D) acc1 += w * ToFloat(v[tid + kThreads]);
    }
    m = new_m;
    __syncthreads();
  }
  T* out = static_cast<T*>(p.out) + (static_cast<int64_t>(b) * p.H + h) * p.D;
  const float inv = l > 0.f ? 1.f / l : 0.f;
  if (tid < p.D) Store(out + tid, acc0 * inv);
  if (tid + kThreads < p.D) Store(out + tid + kThreads, acc1 * inv);
}

}  // namespace

cudaError_t LaunchRingDecodeAttention(const RingDecodeParams& params, cudaStream_t stream) {
  if (params.D > 256 || params.Hkv <= 0 || params.H % params.Hkv != 0) return cudaErrorInvalidValue;
  const dim3 grid(params.H, params.B);
  if (params.bf16) {
    RingDecodeKernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(params);
  } else {
    RingDecodeKernel<float><<<grid, kThreads, 0, stream>>>(params);
  }
  return cudaGetLastError();
}

}  // namespace swarr
