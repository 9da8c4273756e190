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
  const int64_t B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const int64_t Hkv = k.size(1), G = H / Hkv, W = spec.window;
  // Full attention, or a window covering the whole sequence, is the plain computation.
  if (W <= 0 || W >= T) return ReferenceSelfAttention(q, k, v, spec);
  if (block <= 0) block = std::clamp<int64_t>(W / 4, 16, 128);
  block = std::min(block, T);
  // All query blocks at once. Block i holds queries [i*block, (i+1)*block) and sees keys
  // [i*block - (W-1), (i+1)*block): after left-padding the keys by W-1, that is window i of
  // an unfold with size block + W - 1 and step block. Scores: [B, Hkv, nb, G*block, Kw],
  // i.e. O(T * (W + block)) per head, and unfold's backward is linear too.
  const int64_t nb = (T + block - 1) / block, Tp = nb * block, Kw = block + W - 1;
  const auto long_opts = q.options().dtype(at::kLong);
  auto pad_keys = [&](const at::Tensor& x) {  // [B, Hkv, T, D] -> windows [B, Hkv, nb, D, Kw]
    return at::constant_pad_nd(x, {0, 0, W - 1, Tp - T}).unfold(2, Kw, block);
  };
  at::Tensor qb = at::constant_pad_nd(q, {0, 0, 0, Tp - T})
                      .view({B, Hkv, G, nb, block, D})
                      .permute({0, 1, 3, 2, 4, 5})
                      .reshape({B, Hkv, nb, G * block, D});
  at::Tensor kw = pad_keys(k), vw = pad_keys(v).transpose(-1, -2);  // [.., D, Kw], [.., Kw, D]
  at::Tensor q_pos = at::arange(Tp, long_opts).view({nb, block});
  at::Tensor starts = at::arange(nb, long_opts).mul(block).sub(W - 1).view({nb, 1});
  at::Tensor k_pos = starts + at::arange(Kw, long_opts).view({1, Kw});  // negative = padding
  // Window keys: the shared rule; a sink position inside the window is seen here once.
  at::Tensor mask = VisibilityMask(q_pos, k_pos, spec);  // [nb, block, Kw]
  at::Tensor scores = at::matmul(qb, kw).mul(spec.scale).view({B, Hkv, nb, G, block, Kw});
  const int64_t S = std::min(spec.sinks, T);
  at::Tensor ks, vs;
  if (S > 0) {
    // Sink keys for the blocks whose window starts after them.
    ks = k.narrow(2, 0, S);
    vs = v.narrow(2, 0, S);
    at::Tensor sink_pos = at::arange(S, long_opts).view({1, 1, S});
    at::Tensor sink_mask = sink_pos.lt(starts.view({nb, 1, 1})).expand({nb, block, S});
    at::Tensor sink_scores = at::matmul(qb, ks.unsqueeze(2).transpose(-1, -2)).mul(spec.scale)
                                 .view({B, Hkv, nb, G, block, S});
    scores = at::cat({scores, sink_scores}, -1);
    mask = at::cat({mask, sink_mask}, -1);
  }
  const int64_t K = scores.size(-1);
  scores = scores.to(at::kFloat).masked_fill(mask.view({1, 1, nb, 1, block, K}).logical_not(),
                                             -std::numeric_limits<float>::infinity());
  at::Tensor probs = at::softmax(scores, -1).to(q.scalar_type()).view({B, Hkv, nb, G * block, K});
  at::Tensor out = at::matmul(probs.narrow(-1, 0, Kw), vw);  // [B, Hkv, nb, G*block, D]
  if (S > 0) out = out + at::matmul(probs.narrow(-1, Kw, S), vs.unsqueeze(2));
  return out.view({B, Hkv, nb, G, block, D})
      .permute({0, 1, 3, 2, 4, 5})
      .reshape({B, H, Tp, D})
      .narrow(2, 0, T);
}

}  // namespace swarr
