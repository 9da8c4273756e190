#include "common/attention/attention.h"

#include <algorithm>
#include <limits>
#include <vector>

#include <ATen/ATen.h>

namespace swarr {

at::Tensor VisibilityMask(const at::Tensor& q_pos, const at::Tensor& k_pos, const AttentionSpec& spec) {
  at::Tensor q = q_pos.unsqueeze(-1);  // [B, Tq, 1]
  at::Tensor k = k_pos.unsqueeze(-2);  // [B, 1, Tk]
  at::Tensor visible = k.ge(0).logical_and(k.le(q));
  if (spec.window > 0) {
    at::Tensor in_window = k.gt(q - spec.window);
    if (spec.sinks > 0) in_window = in_window.logical_or(k.lt(spec.sinks));
    visible = visible.logical_and(in_window);
  }
  return visible;
}

at::Tensor MaskedAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& q_pos, const at::Tensor& k_pos, const AttentionSpec& spec) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention expects [B, H, T, D] tensors");
  const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), Tk = k.size(2);
  TORCH_CHECK(H % Hkv == 0, "query heads ", H, " not a multiple of key/value heads ", Hkv);
  const int64_t G = H / Hkv;
  // GQA without materialising repeated keys: the G query heads that share a KV head are
  // stacked along the query axis, so both matmuls are plain batched products over
  // [B, Hkv] (broadcasting k to G heads would copy the whole cache G times per step).
  at::Tensor qg = q.reshape({B, Hkv, G * Tq, D});
  at::Tensor scores = at::matmul(qg, k.transpose(-1, -2)).mul(spec.scale);  // [B, Hkv, G*Tq, Tk]
  at::Tensor mask = VisibilityMask(q_pos, k_pos, spec).view({B, 1, 1, Tq, Tk});
  scores = scores.view({B, Hkv, G, Tq, Tk}).to(at::kFloat).masked_fill(mask.logical_not(),
                                                                        -std::numeric_limits<float>::infinity());
  at::Tensor probs = at::softmax(scores, -1).to(q.scalar_type()).view({B, Hkv, G * Tq, Tk});
  return at::matmul(probs, v).view({B, H, Tq, D});
}

at::Tensor ReferenceSelfAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const AttentionSpec& spec) {
  const int64_t B = q.size(0), T = q.size(2);
  at::Tensor pos = at::arange(T, q.options().dtype(at::kLong)).unsqueeze(0).expand({B, T});
  return MaskedAttention(q, k, v, pos, pos, spec);
}

at::Tensor BandAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const AttentionSpec& spec, int64_t block) {
  const int64_t B = q.size(0), T = q.size(2);
  if (block <= 0) block = spec.window > 0 ? std::clamp<int64_t>(spec.window, 16, 256) : 256;
  if (T <= block) return ReferenceSelfAttention(q, k, v, spec);
  at::Tensor all_pos = at::arange(T, q.options().dtype(at::kLong));
  std::vector<at::Tensor> outs;
  for (int64_t s = 0; s < T; s += block) {
    const int64_t e = std::min(T, s + block);
    const int64_t kstart = spec.window > 0 ? std::max<int64_t>(0, s - spec.window + 1) : 0;
    at::Tensor kb = k.narrow(2, kstart, e - kstart);
    at::Tensor vb = v.narrow(2, kstart, e - kstart);
    at::Tensor kpos = all_pos.narrow(0, kstart, e - kstart);
    const int64_t nsinks = spec.window > 0 ? std::min(spec.sinks, kstart) : 0;
    if (nsinks > 0) {
      kb = at::cat({k.narrow(2, 0, nsinks), kb}, 2);
      vb = at::cat({v.narrow(2, 0, nsinks), vb}, 2);
      kpos = at::cat({all_pos.narrow(0, 0, nsinks), kpos}, 0);
    }
    at::Tensor qpos = all_pos.narrow(0, s, e - s).unsqueeze(0).expand({B, e - s});
    outs.push_back(MaskedAttention(q.narrow(2, s, e - s), kb, vb, qpos,
                                   kpos.unsqueeze(0).expand({B, kpos.size(0)}), spec));
  }
  return at::cat(outs, 2);
}

}  // namespace swarr
