#include "common/model/cuda/decode_ops.h"

#include "common/attention/cuda/vec16.cuh"

#include <cuda_bf16.h>

#include <algorithm>
#include <cfloat>
#include <cmath>

namespace swarr {
namespace {

__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 x) { return __bfloat162float(x); }
template <typename T>
__device__ __forceinline__ T FromFloat(float x);
template <>
__device__ __forceinline__ float FromFloat<float>(float x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
// Rounds as a store in T would (the eager path rounds after every op in bf16).
template <typename T>
__device__ __forceinline__ float Round(float x) { return ToFloat(FromFloat<T>(x)); }

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets it.
__device__ float BlockSum(float x, float* scratch) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = (blockDim.x + 31) / 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = x;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < warps; ++w) total += scratch[w];
  return total;
}

// ---------------------------------------------------------------------------------- RMSNorm

template <typename T>
__global__ void RmsNormKernel(RmsNormParams p) {
  __shared__ float scratch[32];
  const int row = blockIdx.x;
  T* x = static_cast<T*>(p.x) + static_cast<int64_t>(row) * p.n;
  const T* delta = p.delta ? static_cast<const T*>(p.delta) + static_cast<int64_t>(row) * p.n : nullptr;
  const T* w = static_cast<const T*>(p.weight);
  T* out = static_cast<T*>(p.out) + static_cast<int64_t>(row) * p.n;
  float ss = 0.f;
  for (int i = threadIdx.x; i < p.n; i += blockDim.x) {
    float v = ToFloat(x[i]);
    if (delta) {
      v = Round<T>(v + ToFloat(delta[i]));
      x[i] = FromFloat<T>(v);
    }
    ss += v * v;
  }
  const float r = rsqrtf(BlockSum(ss, scratch) / static_cast<float>(p.n) + p.eps);
  for (int i = threadIdx.x; i < p.n; i += blockDim.x) {
    const float h = Round<T>(ToFloat(x[i]) * r);
    out[i] = FromFloat<T>(ToFloat(w[i]) * h);
  }
}

template <typename T>
__global__ void SiluMulKernel(const T* gu, T* out, int rows, int n) {
  const int64_t total = static_cast<int64_t>(rows) * n;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = idx / n, i = idx % n;
    const float g = ToFloat(gu[r * 2 * n + i]);
    const float u = ToFloat(gu[r * 2 * n + n + i]);
    const float sg = Round<T>(g / (1.f + expf(-g)));
    out[idx] = FromFloat<T>(sg * u);
  }
}

// ------------------------------------------------------------------------ RoPE + KV append

template <typename T>
__global__ void RopeAppendKernel(RopeAppendParams p) {
  __shared__ float xs[256];
  __shared__ float scratch[32];
  const int row = blockIdx.x, head = blockIdx.y, d = threadIdx.x;
  if (!p.meta.active[row]) return;
  const int64_t pos = p.meta.positions[row];
  int64_t slot;
  if (p.window > 0) {
    slot = pos < p.sinks ? pos : p.sinks + pos % p.window;
  } else {
    slot = pos;
  }
  if (slot < 0 || slot >= p.slots) return;  // the host grows full caches before the step
  const T* src = static_cast<const T*>(p.qkv) + row * p.qkv_stride + static_cast<int64_t>(head) * p.D;
  float x = d < p.D ? ToFloat(src[d]) : 0.f;
  const int64_t cache_off = row * p.cache_stride_row + slot * p.cache_stride_slot;
  if (head >= p.H + p.Hkv) {  // value: copied as it is
    if (d < p.D) {
      static_cast<T*>(p.v_cache)[cache_off + static_cast<int64_t>(head - p.H - p.Hkv) * p.D + d] = FromFloat<T>(x);
    }
    return;
  }
  const bool is_q = head < p.H;
  const T* norm = static_cast<const T*>(is_q ? p.q_norm : p.k_norm);
  if (norm != nullptr) {  // per-head RMSNorm, as RmsNorm() in model.cc
    const float ss = BlockSum(d < p.D ? x * x : 0.f, scratch);
    const float r = rsqrtf(ss / static_cast<float>(p.D) + p.norm_eps);
    if (d < p.D) x = Round<T>(ToFloat(norm[d]) * Round<T>(x * r));
  }
  if (d < p.D) xs[d] = x;
  __syncthreads();
  if (d >= p.D) return;
  const int half = p.D / 2;
  const float partner = d < half ? -xs[d + half] : xs[d - half];
  const float angle = static_cast<float>(pos) * p.inv_freq[d % half];
  const float c = Round<T>(cosf(angle)), s = Round<T>(sinf(angle));
  const T out = FromFloat<T>(Round<T>(x * c) + Round<T>(partner * s));
  if (is_q) {
    static_cast<T*>(p.q_out)[(static_cast<int64_t>(row) * p.H + head) * p.D + d] = out;
  } else {
    static_cast<T*>(p.k_cache)[cache_off + static_cast<int64_t>(head - p.H) * p.D + d] = out;
    if (head == p.H && d == 0) p.pos_cache[row * p.pos_stride_row + slot] = pos;
  }
}

// ---------------------------------------------------------------------------------- Sampling

__host__ __device__ inline uint32_t Philox(uint64_t seed, uint64_t a, uint64_t b) {
  uint32_t c0 = static_cast<uint32_t>(a), c1 = static_cast<uint32_t>(a >> 32);
  uint32_t c2 = static_cast<uint32_t>(b), c3 = static_cast<uint32_t>(b >> 32);
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(0xD2511F53u) * c0;
    const uint64_t p1 = static_cast<uint64_t>(0xCD9E8D57u) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return c0;
}

constexpr int kSampleThreads = 1024;
constexpr int kWarps = kSampleThreads / 32;

// Calls f(index, value) for the block's share of x[0, vocab): 16-byte loads where the row
// is aligned, each thread visiting its indices in increasing order.
template <typename T, typename F>
__device__ __forceinline__ void ForEachLogit(const T* x, int64_t vocab, F f) {
  constexpr int kVec = 16 / sizeof(T);
  int64_t tail = 0;
  if (reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    const int64_t nvec = vocab / kVec;
    for (int64_t v = threadIdx.x; v < nvec; v += kSampleThreads) {
      float vals[kVec];
      Vec16<T>::Load(x + v * kVec, vals);
#pragma unroll
      for (int j = 0; j < kVec; ++j) f(v * kVec + j, vals[j]);
    }
    tail = nvec * kVec;
  }
  for (int64_t i = tail + threadIdx.x; i < vocab; i += kSampleThreads) f(i, ToFloat(x[i]));
}

// Larger key <=> larger float (NaN aside).
__device__ __forceinline__ uint32_t OrderedKey(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

struct MaxSum {
  float m, s;
};
__device__ __forceinline__ MaxSum Combine(MaxSum a, MaxSum b) {
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  const float m = fmaxf(a.m, b.m);
  return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
}

struct ArgMax {
  float v;
  int64_t i;
};
// Larger value wins; equal values: lower index (first index on ties, as the CPU sampler).
__device__ __forceinline__ ArgMax Better(ArgMax a, ArgMax b) {
  if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
  return a;
}

__device__ MaxSum BlockMaxSum(MaxSum x, MaxSum* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum y{__shfl_xor_sync(0xffffffffu, x.m, o), __shfl_xor_sync(0xffffffffu, x.s, o)};
    x = Combine(x, y);
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  MaxSum t = scratch[0];
  for (int w = 1; w < kWarps; ++w) t = Combine(t, scratch[w]);
  return t;
}

__device__ ArgMax BlockArgMax(ArgMax x, ArgMax* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    ArgMax y{__shfl_xor_sync(0xffffffffu, x.v, o),
             static_cast<int64_t>(__shfl_xor_sync(0xffffffffu, static_cast<unsigned long long>(x.i), o))};
    x = Better(x, y);
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  ArgMax t = scratch[0];
  for (int w = 1; w < kWarps; ++w) t = Better(t, scratch[w]);
  return t;
}

struct SampleShared {
  float hist[2048];  // counts (exact in float up to 2^24) or masses, per bin
  MaxSum ms[kWarps];
  ArgMax am[kWarps];
  float lane_sum[32];
  uint32_t result_bin;
  float result_need;
};

// Of the bins [0, bins) in s->hist, scanning from the top: the first bin whose cumulative
// value reaches `need`; s->result_need = what is still needed inside it. Warp 0 only; the
// caller syncs.
__device__ void FindBinFromTop(SampleShared* s, int bins, float need) {
  const int lane = threadIdx.x;
  const int per = bins / 32;
  // Lane l owns bins [bins - (l+1)*per, bins - l*per): lane 0 the highest.
  const int hi = bins - lane * per;
  float mine = 0.f;
  for (int b = hi - 1; b >= hi - per; --b) mine += s->hist[b];
  float incl = mine;  // inclusive prefix over lanes 0..lane
  for (int o = 1; o < 32; o <<= 1) {
    const float y = __shfl_up_sync(0xffffffffu, incl, o);
    if (lane >= o) incl += y;
  }
  const float excl = incl - mine;
  const unsigned crossing = __ballot_sync(0xffffffffu, incl >= need && mine > 0.f);
  // No lane reaches `need` (rounding in a mass sum): take the lowest non-empty bin.
  const unsigned nonempty = __ballot_sync(0xffffffffu, mine > 0.f);
  int owner;
  bool reached = crossing != 0;
  if (reached) {
    owner = __ffs(crossing) - 1;
  } else {
    owner = nonempty ? 31 - __clz(nonempty) : 0;
  }
  if (lane == owner) {
    float acc = excl;
    int chosen = hi - per;
    for (int b = hi - 1; b >= hi - per; --b) {
      if (s->hist[b] <= 0.f) continue;
      chosen = b;
      if (reached && acc + s->hist[b] >= need) break;
      acc += s->hist[b];
    }
    s->result_bin = static_cast<uint32_t>(chosen);
    s->result_need = need - acc;
  }
}

// Radix select over the ordered keys of x (restricted to keys >= floor_key): the key of the
// element where the cumulative count (by_mass = false) or mass exp(x/T - m) (by_mass = true),
// taken from the largest down, first reaches `need` (a fraction of the total when by_mass).
template <typename T>
__device__ uint32_t RadixThreshold(const T* x, int64_t vocab, float inv_t, float m, uint32_t floor_key, bool by_mass,
                                   float need, SampleShared* s) {
  uint32_t prefix = 0, mask = 0;
  const int shifts[3] = {21, 10, 0};
  const int widths[3] = {11, 11, 10};
  for (int level = 0; level < 3; ++level) {
    const int bins = 1 << widths[level];
    for (int b = threadIdx.x; b < 2048; b += kSampleThreads) s->hist[b] = 0.f;
    __syncthreads();
    const int shift = shifts[level];
    ForEachLogit(x, vocab, [&](int64_t, float raw) {
      const uint32_t key = OrderedKey(raw);
      const bool in = key >= floor_key && (key & mask) == prefix;
      const int bin = in ? static_cast<int>((key >> shift) & (bins - 1)) : -1;
      if (by_mass) {
        if (in) atomicAdd(&s->hist[bin], __expf(raw * inv_t - m));
        return;
      }
      // Counts: one atomic per distinct bin per warp (logits crowd into few bins, and
      // same-address shared atomics serialise).
      const unsigned peers = __match_any_sync(__activemask(), bin);
      if (in && static_cast<int>(threadIdx.x % 32) == __ffs(peers) - 1) {
        atomicAdd(&s->hist[bin], static_cast<float>(__popc(peers)));
      }
    });
    __syncthreads();
    if (level == 0 && by_mass) {  // need is a fraction of the total mass above the floor
      float part = 0.f;
      for (int b = threadIdx.x; b < bins; b += kSampleThreads) part += s->hist[b];
      need *= BlockSum(part, s->lane_sum);
    }
    if (threadIdx.x < 32) FindBinFromTop(s, bins, need);
    __syncthreads();
    prefix |= s->result_bin << shifts[level];
    mask |= static_cast<uint32_t>(bins - 1) << shifts[level];
    need = s->result_need;
    __syncthreads();
  }
  return prefix;
}

template <typename T>
__global__ void __launch_bounds__(kSampleThreads) SampleKernel(SampleParams p) {
  __shared__ SampleShared s;
  const int row = blockIdx.x;
  if (!p.meta.active[row]) {
    if (threadIdx.x == 0) {
      p.tokens[row] = -1;
      p.logprobs[row] = 0.f;
    }
    return;
  }
  const T* x = static_cast<const T*>(p.logits) + row * p.stride;
  const bool greedy = p.meta.greedy[row] != 0;
  const float temp = greedy ? 1.f : p.meta.temperature[row];
  const float inv_t = 1.f / temp;
  // Pass 1: log-sum-exp of x / T (and the argmax for greedy rows).
  MaxSum ms{-INFINITY, 0.f};
  ArgMax am{-INFINITY, p.vocab};
  ForEachLogit(x, p.vocab, [&](int64_t i, float raw) {
    const float v = raw / temp;
    if (v != -INFINITY) ms = Combine(ms, MaxSum{v, 1.f});
    if (raw > am.v) am = ArgMax{raw, i};
  });
  const MaxSum total = BlockMaxSum(ms, s.ms);
  const float log_z = total.m + logf(total.s);
  ArgMax chosen;
  if (greedy) {
    chosen = BlockArgMax(am, s.am);
  } else {
    uint32_t floor_key = 0;
    const int64_t k = p.meta.top_k[row];
    if (k > 0 && k < p.vocab) {
      floor_key = RadixThreshold(x, p.vocab, inv_t, total.m, 0, false, static_cast<float>(k), &s);
    }
    const float top_p = p.meta.top_p[row];
    if (top_p < 1.f) {
      const uint32_t t = RadixThreshold(x, p.vocab, inv_t, total.m, floor_key, true, top_p, &s);
      floor_key = max(floor_key, t);
    }
    // Gumbel-max over the kept set: argmax of x/T + G, G = -log(-log U), U from Philox.
    const uint64_t seed = p.meta.seeds[row];
    const uint64_t counter = static_cast<uint64_t>(p.meta.counters[row]);
    ArgMax g{-INFINITY, p.vocab};
    ForEachLogit(x, p.vocab, [&](int64_t i, float raw) {
      if (raw == -INFINITY || OrderedKey(raw) < floor_key) return;
      const uint32_t r = Philox(seed, static_cast<uint64_t>(i), counter);
      const float u = (static_cast<float>(r >> 8) + 0.5f) * (1.f / 16777216.f);
      const float score = raw / temp - logf(-logf(u));
      if (score > g.v) g = ArgMax{score, i};
    });
    chosen = BlockArgMax(g, s.am);
    if (chosen.i >= p.vocab) chosen.i = am.i;  // unreachable with finite logits
  }
  if (threadIdx.x == 0) {
    const int64_t tok = chosen.i < p.vocab ? chosen.i : 0;
    p.tokens[row] = tok;
    p.logprobs[row] = ToFloat(x[tok]) / temp - log_z;
  }
}

template <typename T>
cudaError_t LaunchTyped(const SampleParams& p, cudaStream_t stream) {
  SampleKernel<T><<<p.rows, kSampleThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

uint32_t PhiloxHost(uint64_t seed, uint64_t a, uint64_t b) { return Philox(seed, a, b); }

cudaError_t LaunchRmsNorm(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows <= 0) return cudaSuccess;
  const int threads = p.n >= 4096 ? 1024 : (p.n >= 1024 ? 512 : 256);
  if (p.bf16) {
    RmsNormKernel<__nv_bfloat16><<<p.rows, threads, 0, stream>>>(p);
  } else {
    RmsNormKernel<float><<<p.rows, threads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

cudaError_t LaunchSiluMul(const void* gu, void* out, int rows, int n, bool bf16, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  const int64_t total = static_cast<int64_t>(rows) * n;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<int64_t>((total + threads - 1) / threads, 65535));
  if (bf16) {
    SiluMulKernel<__nv_bfloat16><<<blocks, threads, 0, stream>>>(static_cast<const __nv_bfloat16*>(gu),
                                                                  static_cast<__nv_bfloat16*>(out), rows, n);
  } else {
    SiluMulKernel<float><<<blocks, threads, 0, stream>>>(static_cast<const float*>(gu), static_cast<float*>(out), rows, n);
  }
  return cudaGetLastError();
}

cudaError_t LaunchRopeAppend(const RopeAppendParams& p, cudaStream_t stream) {
  if (p.rows <= 0) return cudaSuccess;
  if (p.D > 256 || p.D % 2 != 0) return cudaErrorInvalidValue;
  const dim3 grid(p.rows, p.H + 2 * p.Hkv);
  const int threads = ((p.D + 31) / 32) * 32;
  if (p.bf16) {
    RopeAppendKernel<__nv_bfloat16><<<grid, threads, 0, stream>>>(p);
  } else {
    RopeAppendKernel<float><<<grid, threads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

cudaError_t LaunchSample(const SampleParams& p, cudaStream_t stream) {
  if (p.rows <= 0) return cudaSuccess;
  return p.bf16 ? LaunchTyped<__nv_bfloat16>(p, stream) : LaunchTyped<float>(p, stream);
}

}  // namespace swarr
