// CUDA kernels of the device decode step (common/model/device_decoder.h): RMSNorm with a
// fused residual add, RoPE fused with the KV-cache append, SiLU-gated product, and token
// sampling with a counter-based RNG. No torch here: plain params structs and launchers, as
// ring_decode.h. Every launcher reads its per-row metadata (ids, positions, sampling
// parameters) from device memory, so a decode step can be captured in a CUDA graph and
// replayed with new metadata.
//
// Rounding: bfloat16 results are rounded where the eager torch path (model.cc) rounds, so
// the fused kernels compute what the unfused ops compute, up to float32 summation order.
#ifndef SWARR_COMMON_MODEL_CUDA_DECODE_OPS_H_
#define SWARR_COMMON_MODEL_CUDA_DECODE_OPS_H_

#include <cstdint>

#include <cuda_runtime.h>

namespace swarr {

// Per-row metadata of one decode step, struct-of-arrays in device memory (one entry per
// batch row; the row is also the row of the KV cache).
struct DecodeRowMeta {
  const int64_t* ids = nullptr;        // token to feed
  const int64_t* positions = nullptr;  // its absolute position (= tokens already cached)
  const int32_t* active = nullptr;     // 0: row unused (nothing written, output ignored)
  const uint64_t* seeds = nullptr;     // per-request RNG seed
  const int64_t* counters = nullptr;   // per-request draw index (tokens sampled so far)
  const float* temperature = nullptr;  // > 0
  const int32_t* top_k = nullptr;      // 0 = all
  const float* top_p = nullptr;        // (0, 1]
  const int32_t* greedy = nullptr;     // 1 = argmax
};

// x += delta (when delta != null), then out = weight * bf(x * rsqrt(mean(x^2) + eps)).
//   x, delta, out: [rows, n] contiguous; weight [n]. bf16 or float32 (all the same).
struct RmsNormParams {
  void* x = nullptr;
  const void* delta = nullptr;
  const void* weight = nullptr;
  void* out = nullptr;
  int rows = 0, n = 0;
  float eps = 1e-6f;
  bool bf16 = false;
};
cudaError_t LaunchRmsNorm(const RmsNormParams& p, cudaStream_t stream);

// out[:, i] = bf(bf(silu(gu[:, i])) * gu[:, n + i]) for i < n.   gu: [rows, 2n]; out: [rows, n].
cudaError_t LaunchSiluMul(const void* gu, void* out, int rows, int n, bool bf16, cudaStream_t stream);

// From the fused projection qkv [rows, (H + 2 Hkv) * D] (row stride qkv_stride elements):
// optional per-head RMSNorm of q and k (Qwen3), RoPE at each row's position, q to q_out
// [rows, H, D]; k and v written into the cache of this layer at the row's slot, and the
// slot's position recorded. Inactive rows write nothing.
struct RopeAppendParams {
  const void* qkv = nullptr;
  int64_t qkv_stride = 0;
  void* q_out = nullptr;
  void* k_cache = nullptr;  // [max_rows, slots, Hkv, D]
  void* v_cache = nullptr;
  int64_t cache_stride_row = 0, cache_stride_slot = 0;  // elements
  int64_t* pos_cache = nullptr;  // [max_rows, slots]
  int64_t pos_stride_row = 0;
  const float* inv_freq = nullptr;  // [D / 2]
  const void* q_norm = nullptr;     // [D] or null
  const void* k_norm = nullptr;
  float norm_eps = 1e-6f;
  int rows = 0, H = 0, Hkv = 0, D = 0;
  int64_t window = 0, sinks = 0, slots = 0;  // window 0 = full layer: slot = position (< slots)
  DecodeRowMeta meta;
  bool bf16 = false;
};
cudaError_t LaunchRopeAppend(const RopeAppendParams& p, cudaStream_t stream);

// Samples one token per active row from logits [rows, vocab] (row stride `stride`, bf16 or
// float32): greedy = argmax (first index on ties); otherwise softmax(logits / T) truncated
// to the top-k most likely, then to the smallest most-likely set holding top_p of what is
// left, drawn with the Gumbel-max trick from Philox-4x32-10 keyed by the row's seed at
// counter (draw index, vocabulary index), so a request's draws depend only on its seed and
// its draw index, never on its batch neighbours. logprob = log softmax(logits / T)[token]
// over the whole vocabulary (T = 1 for greedy): sampler.h's definition.
// Inactive rows get token -1.
struct SampleParams {
  const void* logits = nullptr;
  int64_t stride = 0;
  int rows = 0;
  int64_t vocab = 0;
  bool bf16 = false;
  DecodeRowMeta meta;
  int64_t* tokens = nullptr;  // [rows]
  float* logprobs = nullptr;  // [rows]
};
cudaError_t LaunchSample(const SampleParams& p, cudaStream_t stream);

// Philox-4x32-10 draw (first word) for key `seed` at counter (a, b): exposed for tests.
uint32_t PhiloxHost(uint64_t seed, uint64_t a, uint64_t b);

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_CUDA_DECODE_OPS_H_
