// CUDA kernel for one decode step of attention over a KV cache (ring or growing), with
// the window semantics of attention.h. No torch here: a plain params struct and a
// launcher, as flash-attention's flash.h does. The op wrapper (ring_decode_op.h) checks
// shapes and fills the params.
#ifndef SWARR_COMMON_ATTENTION_CUDA_RING_DECODE_H_
#define SWARR_COMMON_ATTENTION_CUDA_RING_DECODE_H_

#include <cstdint>

#include <cuda_runtime.h>

namespace swarr {

struct RingDecodeParams {
  // Element strides are in elements, not bytes.
  const void* q = nullptr;  // [B, H, D]
  int64_t q_stride_b = 0, q_stride_h = 0;
  const void* k = nullptr;  // [B, S, Hkv, D] (cache slots)
  const void* v = nullptr;  // [B, S, Hkv, D], same strides as k
  int64_t kv_stride_b = 0, kv_stride_s = 0, kv_stride_h = 0;
  const int64_t* k_pos = nullptr;  // [B, S] absolute position per slot, -1 = empty
  int64_t pos_stride_b = 0, pos_stride_s = 0;
  const int64_t* q_pos = nullptr;  // [B] absolute position of each query
  int64_t q_pos_stride_b = 0;
  void* out = nullptr;  // [B, H, D], contiguous
  int B = 0, H = 0, Hkv = 0, S = 0, D = 0;
  int64_t window = 0;  // 0 = full causal
  int64_t sinks = 0;
  float scale = 1.0f;
  bool bf16 = false;  // element type of q, k, v, out: bfloat16, else float32
  // Split-K (flash-decoding): the slots are cut into RingDecodeSplits() chunks of `chunk`
  // slots, each attended by its own thread blocks, then merged by log-sum-exp. With more
  // than one split, `workspace` holds RingDecodeWorkspaceFloats() floats.
  int chunk = 0;
  float* workspace = nullptr;
};

// Slots per split for this shape (enough thread blocks to fill the GPU), and the number of
// splits and workspace floats it implies. Deterministic in (B, H, Hkv, S, D), so a captured
// CUDA graph keeps its launch shape.
int RingDecodeChunk(int B, int H, int Hkv, int S, int D);
int RingDecodeSplits(int S, int chunk);
int64_t RingDecodeWorkspaceFloats(int B, int H, int D, int splits);

// Launches the kernel(s) on `stream`. Query positions < 0 mark unused rows (output 0).
// REQUIRES: D <= 256, H % Hkv == 0, params.chunk = RingDecodeChunk(...) and the workspace
// when RingDecodeSplits() > 1. Head dims 64, 128 and 256 take the split-K kernel with
// vectorised 16-byte loads, one thread block serving all query heads of a KV head (up to 8
// at a time); other head dims a simpler kernel. Returns the launch error, if any.
cudaError_t LaunchRingDecodeAttention(const RingDecodeParams& params, cudaStream_t stream);

}  // namespace swarr

#endif  // SWARR_COMMON_ATTENTION_CUDA_RING_DECODE_H_
