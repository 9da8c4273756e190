#include "common/attention/ring_decode_op.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#ifdef SWARR_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "common/attention/cuda/ring_decode.h"
#endif

namespace swarr {

#ifdef SWARR_WITH_CUDA

bool RingDecodeKernelBuilt() { return true; }

at::Tensor RingDecodeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& q_pos, const at::Tensor& k_pos, const AttentionSpec& spec) {
  TORCH_CHECK(q.is_cuda() && k.is_cuda() && v.is_cuda() && q_pos.is_cuda() && k_pos.is_cuda(),
              "ring decode attention: all tensors must be on a CUDA device");
  TORCH_CHECK(q.dim() == 4 && q.size(2) == 1, "ring decode attention: q must be [B, H, 1, D], got ", q.sizes());
  TORCH_CHECK(k.dim() == 4 && k.sizes() == v.sizes() && k.strides() == v.strides(),
              "ring decode attention: k and v must be [B, S, Hkv, D] with equal strides");
  TORCH_CHECK(q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type(),
              "ring decode attention: q, k, v dtypes differ");
  TORCH_CHECK(q.scalar_type() == at::kFloat || q.scalar_type() == at::kBFloat16,
              "ring decode attention: float32 or bfloat16 only, got ", q.scalar_type());
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3), S = k.size(1), Hkv = k.size(2);
  TORCH_CHECK(k.size(0) == B && k.size(3) == D, "ring decode attention: k is ", k.sizes(), " for q ", q.sizes());
  TORCH_CHECK(D <= 256 && H % Hkv == 0, "ring decode attention: needs D <= 256 and H % Hkv == 0");
  TORCH_CHECK(q.stride(3) == 1 && k.stride(3) == 1, "ring decode attention: last dim must be contiguous");
  // The split kernel reads 16-byte vectors: rows must start on 16-byte boundaries.
  const int64_t elem = q.element_size();
  TORCH_CHECK(reinterpret_cast<uintptr_t>(k.data_ptr()) % 16 == 0 && reinterpret_cast<uintptr_t>(v.data_ptr()) % 16 == 0 &&
                  (k.stride(1) * elem) % 16 == 0 && (k.stride(2) * elem) % 16 == 0 && (k.stride(0) * elem) % 16 == 0,
              "ring decode attention: k and v rows must be 16-byte aligned");
  TORCH_CHECK(k_pos.scalar_type() == at::kLong && q_pos.scalar_type() == at::kLong, "positions must be int64");
  TORCH_CHECK(k_pos.size(0) == B && k_pos.size(1) == S && q_pos.size(0) == B, "position shapes do not match");
  c10::cuda::CUDAGuard guard(q.device());
  at::Tensor out = at::empty({B, H, 1, D}, q.options());
  RingDecodeParams p;
  p.q = q.data_ptr();
  p.q_stride_b = q.stride(0);
  p.q_stride_h = q.stride(1);
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.kv_stride_b = k.stride(0);
  p.kv_stride_s = k.stride(1);
  p.kv_stride_h = k.stride(2);
  p.k_pos = k_pos.data_ptr<int64_t>();
  p.pos_stride_b = k_pos.stride(0);
  p.pos_stride_s = k_pos.stride(1);
  p.q_pos = q_pos.data_ptr<int64_t>();
  p.q_pos_stride_b = q_pos.stride(0);
  p.out = out.data_ptr();
  p.B = static_cast<int>(B);
  p.H = static_cast<int>(H);
  p.Hkv = static_cast<int>(Hkv);
  p.S = static_cast<int>(S);
  p.D = static_cast<int>(D);
  p.window = spec.window;
  p.sinks = spec.sinks;
  p.scale = static_cast<float>(spec.scale);
  p.bf16 = q.scalar_type() == at::kBFloat16;
  p.chunk = RingDecodeChunk(p.B, p.H, p.Hkv, p.S, p.D);
  const int64_t ws = RingDecodeWorkspaceFloats(p.B, p.H, p.D, RingDecodeSplits(p.S, p.chunk));
  at::Tensor workspace;
  if (ws > 0) {
    workspace = at::empty({ws}, q.options().dtype(at::kFloat));
    p.workspace = workspace.data_ptr<float>();
  }
  const cudaError_t err = LaunchRingDecodeAttention(p, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "ring decode attention launch failed: ", cudaGetErrorString(err));
  return out;
}

#if TORCH_VERSION_MAJOR >= 2
bool FlashDecodeSupported(const at::Tensor& q, const at::Tensor& k, const AttentionSpec& spec) {
  const int64_t D = q.size(-1);
  return q.is_cuda() && (q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf) && spec.sinks == 0 &&
         D % 8 == 0 && D <= 256 && k.dim() == 4 && k.stride(3) == 1 && k.stride(2) == D && k.stride(1) == k.size(2) * D;
}

FlashDecodeMeta MakeFlashDecodeMeta(const at::Tensor& q_pos, int64_t S) {
  const int64_t B = q_pos.size(0);
  auto i32 = q_pos.options().dtype(at::kInt);
  FlashDecodeMeta m;
  m.used = (q_pos.reshape({B}) + 1).clamp(1, S).to(at::kInt);  // unused rows: 1 slot, output ignored
  m.cu_q = at::arange(B + 1, i32);
  m.cu_k = at::arange(B + 1, i32) * static_cast<int32_t>(S);
  return m;
}

at::Tensor FlashRingDecodeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& q_pos, const AttentionSpec& spec, bool all_full,
                                    const FlashDecodeMeta* meta) {
  TORCH_CHECK(FlashDecodeSupported(q, k, spec), "flash decode: unsupported tensors");
  TORCH_CHECK(v.strides() == k.strides() && v.sizes() == k.sizes(), "flash decode: k and v differ in layout");
  const int64_t B = q.size(0), H = q.size(1), D = q.size(3), S = k.size(1), Hkv = k.size(2);
  c10::cuda::CUDAGuard guard(q.device());
  if (all_full) {
    auto r = at::_flash_attention_forward(q.reshape({B, 1, H, D}), k, v, c10::nullopt, c10::nullopt, /*max_q=*/1,
                                          /*max_k=*/S, /*dropout_p=*/0.0, /*is_causal=*/false,
                                          /*return_debug_mask=*/false, spec.scale, c10::nullopt, c10::nullopt,
                                          c10::nullopt, c10::nullopt);
    return std::get<0>(r).view({B, H, 1, D});
  }
  FlashDecodeMeta local;
  if (meta == nullptr) {
    local = MakeFlashDecodeMeta(q_pos, S);
    meta = &local;
  }
  TORCH_CHECK(meta->used.size(0) == B, "flash decode: metadata for ", meta->used.size(0), " rows, q has ", B);
  at::Tensor qp = q.reshape({B, H, D});
  // Row b's slots are rows [b*S, (b+1)*S) of the packed keys (one strided view of the cache).
  at::Tensor kp = k.as_strided({B * S, Hkv, D}, {k.stride(1), D, 1});
  at::Tensor vp = v.as_strided({B * S, Hkv, D}, {v.stride(1), D, 1});
  TORCH_CHECK(k.stride(0) == S * k.stride(1), "flash decode: cache rows must be contiguous");
  auto r = at::_flash_attention_forward(qp, kp, vp, meta->cu_q, meta->cu_k, /*max_q=*/1, /*max_k=*/S, /*dropout_p=*/0.0,
                                        /*is_causal=*/false, /*return_debug_mask=*/false, spec.scale,
                                        /*window_size_left=*/c10::nullopt, /*window_size_right=*/c10::nullopt, meta->used,
                                        /*alibi_slopes=*/c10::nullopt);
  return std::get<0>(r).view({B, H, 1, D});
}
#else
bool FlashDecodeSupported(const at::Tensor&, const at::Tensor&, const AttentionSpec&) { return false; }
at::Tensor FlashRingDecodeAttention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                    const AttentionSpec&, bool) {
  TORCH_CHECK(false, "flash decode needs LibTorch >= 2");
  return {};
}
#endif

#else  // !SWARR_WITH_CUDA

bool FlashDecodeSupported(const at::Tensor&, const at::Tensor&, const AttentionSpec&) { return false; }
FlashDecodeMeta MakeFlashDecodeMeta(const at::Tensor&, int64_t) { return {}; }
at::Tensor FlashRingDecodeAttention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                    const AttentionSpec&, bool, const FlashDecodeMeta*) {
  TORCH_CHECK(false, "flash decode: SWARR was built without SWARR_WITH_CUDA");
  return {};
}

bool RingDecodeKernelBuilt() { return false; }

at::Tensor RingDecodeAttention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                               const at::Tensor&, const AttentionSpec&) {
  TORCH_CHECK(false, "ring decode attention: SWARR was built without SWARR_WITH_CUDA");
  return {};
}

#endif

}  // namespace swarr
