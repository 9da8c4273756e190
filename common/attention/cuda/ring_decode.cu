#include "common/attention/cuda/ring_decode.h"
#include "common/attention/cuda/vec16.cuh"

#include <cuda_bf16.h>

#include <cfloat>
#include <type_traits>

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


// ------------------------------------------------------------------ split-K decode kernel
//
// Grid (splits, Hkv * head_chunks, B), 128 threads. A thread block attends one chunk of
// slots for up to G query heads of one KV head, so each K/V row is read once for the whole
// group. TPR threads share one key row, each holding EPT consecutive elements (16-byte
// loads); a warp covers ROWS rows at a time, two rows per thread in flight. Slot positions
// of the chunk are staged in shared memory first, so the K/V loads never wait on them.
constexpr int kSplitThreads = 128;
constexpr int kMaxChunk = 4096;

template <typename T, int D, int G>
__global__ void __launch_bounds__(kSplitThreads) SplitDecodeKernel(RingDecodeParams p) {
  constexpr int kVec = Vec16<T>::kN;
  constexpr int kTpr = (D / kVec) < 32 ? (D / kVec) : 32;
  constexpr int kEpt = D / kTpr;
  constexpr int kRows = 32 / kTpr;
  constexpr int kWarps = kSplitThreads / 32;
  constexpr int kStep = kWarps * kRows;
  constexpr int kUnroll = 2;
  // Slot positions (main loop) and the partial outputs (merge) share one buffer.
  constexpr int kPosBytes = kMaxChunk * 4, kRedBytes = kStep * G * D * 4;
  __shared__ float4 smem[(kPosBytes > kRedBytes ? kPosBytes : kRedBytes) / 16];
  int32_t* pos_s = reinterpret_cast<int32_t*>(smem);
  float(*red_o)[G][D] = reinterpret_cast<float(*)[G][D]>(smem);
  __shared__ float red_m[kStep][G], red_l[kStep][G];

  const int split = blockIdx.x, b = blockIdx.z;
  const int group = p.H / p.Hkv;
  const int head_chunks = (group + G - 1) / G;
  const int hk = blockIdx.y / head_chunks, hc = blockIdx.y % head_chunks;
  const int h0 = hk * group + hc * G;
  const int ng = min(G, group - hc * G);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int sub = lane / kTpr, t = lane % kTpr;
  const int64_t qpos = p.q_pos[b * p.q_pos_stride_b];
  const int s0 = split * p.chunk;
  const int n = min(p.S, s0 + p.chunk) - s0;
  for (int i = threadIdx.x; i < n; i += kSplitThreads) {
    // Positions fit in int32 (< 2^31 tokens); -1 stays -1.
    pos_s[i] = static_cast<int32_t>(p.k_pos[b * p.pos_stride_b + static_cast<int64_t>(s0 + i) * p.pos_stride_s]);
  }
  float q[G][kEpt];
  const T* qb = static_cast<const T*>(p.q) + b * p.q_stride_b + t * kEpt;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (g < ng) {
#pragma unroll
      for (int c = 0; c < kEpt / kVec; ++c) Vec16<T>::Load(qb + (h0 + g) * p.q_stride_h + c * kVec, &q[g][c * kVec]);
    } else {
#pragma unroll
      for (int e = 0; e < kEpt; ++e) q[g][e] = 0.f;
    }
  }
  float m[G], l[G], acc[G][kEpt];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    m[g] = -FLT_MAX;
    l[g] = 0.f;
#pragma unroll
    for (int e = 0; e < kEpt; ++e) acc[g][e] = 0.f;
  }
  __syncthreads();
  const int64_t base_off = b * p.kv_stride_b + hk * p.kv_stride_h + t * kEpt;
  const T* kb = static_cast<const T*>(p.k) + base_off;
  const T* vb = static_cast<const T*>(p.v) + base_off;
  // Every lane of a warp runs the same number of iterations (shuffles need the whole warp).
  for (int base = warp * kRows; base < n; base += kStep * kUnroll) {
    float kv[kUnroll][kEpt], vv[kUnroll][kEpt];
    bool vis[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int i = base + u * kStep + sub;
      vis[u] = false;
      if (i < n) {
        const int64_t kp = pos_s[i];
        vis[u] = kp >= 0 && kp <= qpos && (p.window == 0 || kp > qpos - p.window || kp < p.sinks);
      }
      if (vis[u]) {
        const int64_t off = static_cast<int64_t>(s0 + i) * p.kv_stride_s;
#pragma unroll
        for (int c = 0; c < kEpt / kVec; ++c) {
          Vec16<T>::Load(kb + off + c * kVec, &kv[u][c * kVec]);
          Vec16<T>::Load(vb + off + c * kVec, &vv[u][c * kVec]);
        }
      } else {
        // Weighted by 0 below: must not be garbage (0 * NaN).
#pragma unroll
        for (int e = 0; e < kEpt; ++e) vv[u][e] = 0.f;
      }
    }
    float sc[kUnroll][G];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float d = 0.f;
        if (vis[u]) {
#pragma unroll
          for (int e = 0; e < kEpt; ++e) d += q[g][e] * kv[u][e];
        }
#pragma unroll
        for (int o = kTpr / 2; o > 0; o >>= 1) d += __shfl_xor_sync(0xffffffffu, d, o);
        sc[u][g] = vis[u] ? d * p.scale : -FLT_MAX;
      }
    }
    if (vis[0] || vis[1]) {
      // One rescale per tile of kUnroll rows.
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float mn = m[g];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) mn = fmaxf(mn, sc[u][g]);
        const float corr = __expf(m[g] - mn);
        float pe[kUnroll];
        float lsum = l[g] * corr;
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          pe[u] = vis[u] ? __expf(sc[u][g] - mn) : 0.f;
          lsum += pe[u];
        }
        l[g] = lsum;
#pragma unroll
        for (int e = 0; e < kEpt; ++e) {
          float a = acc[g][e] * corr;
#pragma unroll
          for (int u = 0; u < kUnroll; ++u) a += pe[u] * vv[u][e];
          acc[g][e] = a;
        }
        m[g] = mn;
      }
    }
  }
  __syncthreads();  // pos_s is reused for the partial outputs below
  // Merge the kStep partial states of the block.
  const int part = warp * kRows + sub;
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (t == 0) {
      red_m[part][g] = l[g] > 0.f ? m[g] : -FLT_MAX;
      red_l[part][g] = l[g];
    }
#pragma unroll
    for (int e = 0; e < kEpt; ++e) red_o[part][g][t * kEpt + e] = acc[g][e];
  }
  __syncthreads();
  const int splits = (p.S + p.chunk - 1) / p.chunk;
  for (int idx = threadIdx.x; idx < ng * D; idx += kSplitThreads) {
    const int g = idx / D, d = idx % D;
    float mm = -FLT_MAX;
    for (int j = 0; j < kStep; ++j) mm = fmaxf(mm, red_l[j][g] > 0.f ? red_m[j][g] : -FLT_MAX);
    float ll = 0.f, oo = 0.f;
    for (int j = 0; j < kStep; ++j) {
      if (red_l[j][g] <= 0.f) continue;
      const float w = __expf(red_m[j][g] - mm);
      ll += red_l[j][g] * w;
      oo += red_o[j][g][d] * w;
    }
    const int h = h0 + g;
    if (splits == 1) {
      T* out = static_cast<T*>(p.out) + (static_cast<int64_t>(b) * p.H + h) * p.D;
      Store(out + d, ll > 0.f ? oo / ll : 0.f);
    } else {
      const int64_t slot = (static_cast<int64_t>(b) * p.H + h) * splits + split;
      p.workspace[slot * (D + 2) + 2 + d] = oo;
      if (d == 0) {
        p.workspace[slot * (D + 2)] = mm;
        p.workspace[slot * (D + 2) + 1] = ll;
      }
    }
  }
}

// Grid (H, B), D threads: log-sum-exp merge of the splits of one head.
template <typename T>
__global__ void MergeSplitsKernel(RingDecodeParams p, int splits) {
  const int h = blockIdx.x, b = blockIdx.y, d = threadIdx.x;
  if (d >= p.D) return;
  const float* ws = p.workspace + (static_cast<int64_t>(b) * p.H + h) * splits * (p.D + 2);
  float mm = -FLT_MAX;
  for (int s = 0; s < splits; ++s) {
    if (ws[s * (p.D + 2) + 1] > 0.f) mm = fmaxf(mm, ws[s * (p.D + 2)]);
  }
  float ll = 0.f, oo = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float* part = ws + s * (p.D + 2);
    if (part[1] <= 0.f) continue;
    const float w = __expf(part[0] - mm);
    ll += part[1] * w;
    oo += part[2 + d] * w;
  }
  T* out = static_cast<T*>(p.out) + (static_cast<int64_t>(b) * p.H + h) * p.D;
  Store(out + d, ll > 0.f ? oo / ll : 0.f);
}

template <typename T, int D>
cudaError_t LaunchSplit(const RingDecodeParams& p, cudaStream_t stream) {
  const int group = p.H / p.Hkv;
  const int splits = RingDecodeSplits(p.S, p.chunk);
  auto go = [&](auto g_const) {
    constexpr int G = decltype(g_const)::value;
    const dim3 grid(splits, p.Hkv * ((group + G - 1) / G), p.B);
    SplitDecodeKernel<T, D, G><<<grid, kSplitThreads, 0, stream>>>(p);
  };
  if (group <= 1) {
    go(std::integral_constant<int, 1>());
  } else if (group <= 2) {
    go(std::integral_constant<int, 2>());
  } else if (group <= 4) {
    go(std::integral_constant<int, 4>());
  } else {
    go(std::integral_constant<int, 8>());
  }
  if (splits > 1) {
    MergeSplitsKernel<T><<<dim3(p.H, p.B), ((p.D + 31) / 32) * 32, 0, stream>>>(p, splits);
  }
  return cudaGetLastError();
}

template <typename T>
cudaError_t LaunchTyped(const RingDecodeParams& p, cudaStream_t stream) {
  switch (p.D) {
    case 64:
      return LaunchSplit<T, 64>(p, stream);
    case 128:
      return LaunchSplit<T, 128>(p, stream);
    case 256:
      return LaunchSplit<T, 256>(p, stream);
    default:
      RingDecodeKernel<T><<<dim3(p.H, p.B), kThreads, 0, stream>>>(p);
      return cudaGetLastError();
  }
}

bool SplitKernelFor(int D) { return D == 64 || D == 128 || D == 256; }

}  // namespace

int RingDecodeChunk(int B, int H, int Hkv, int S, int D) {
  if (!SplitKernelFor(D) || Hkv <= 0) return S > 0 ? S : 1;
  const int group = H / Hkv;
  const int head_blocks = Hkv * ((group + 7) / 8);
  // At least ~4 thread blocks per SM of an H100/H200 (132 SMs), chunks of 64..512 slots.
  // Few long blocks (their set-up and merge cost is per block), but two waves' worth at
  // least: ~2 blocks per SM of an H100/H200 (132 SMs).
  constexpr int kTargetBlocks = 264;
  for (int chunk = kMaxChunk; chunk > 64; chunk /= 2) {
    const int64_t blocks = static_cast<int64_t>(B) * head_blocks * ((S + chunk - 1) / chunk);
    if (blocks >= kTargetBlocks) return chunk;
  }
  return 64;
}

int RingDecodeSplits(int S, int chunk) { return chunk <= 0 ? 1 : (S + chunk - 1) / chunk; }

int64_t RingDecodeWorkspaceFloats(int B, int H, int D, int splits) {
  return splits > 1 ? static_cast<int64_t>(B) * H * splits * (D + 2) : 0;
}

cudaError_t LaunchRingDecodeAttention(const RingDecodeParams& params, cudaStream_t stream) {
  if (params.D > 256 || params.Hkv <= 0 || params.H % params.Hkv != 0) return cudaErrorInvalidValue;
  if (params.B == 0) return cudaSuccess;
  if (SplitKernelFor(params.D)) {
    if (params.chunk <= 0 || params.chunk > kMaxChunk) return cudaErrorInvalidValue;
    if (RingDecodeSplits(params.S, params.chunk) > 1 && params.workspace == nullptr) return cudaErrorInvalidValue;
  }
  return params.bf16 ? LaunchTyped<__nv_bfloat16>(params, stream) : LaunchTyped<float>(params, stream);
}

}  // namespace swarr
