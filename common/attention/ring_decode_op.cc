#include "common/attention/ring_decode_op.h"

#include <ATen/ATen.h>

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
  const cudaError_t err = LaunchRingDecodeAttention(p, c10::cuda::getCurrentCUDAStream().stream());
  TORCH_CHECK(err == cudaSuccess, "ring decode attention launch failed: ", cudaGetErrorString(err));
  return out;
}

#else  // !SWARR_WITH_CUDA

bool RingDecodeKernelBuilt() { return false; }

at::Tensor RingDecodeAttention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                               const at::Tensor&, const AttentionSpec&) {
  TORCH_CHECK(false, "ring decode attention: SWARR was built without SWARR_WITH_CUDA");
  return {};
}

#endif

}  // namespace swarr
