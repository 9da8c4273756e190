#include "common/attention/flash_train.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#if defined(SWARR_WITH_CUDA) && (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5))
#define SWARR_FLASH_TRAIN 1
#include <c10/cuda/CUDAGuard.h>
#include <torch/csrc/autograd/custom_function.h>
#endif

namespace swarr {

#ifdef SWARR_FLASH_TRAIN

bool FlashTrainAttentionBuilt() { return true; }

bool FlashTrainAttentionSupports(const at::Tensor& q, const AttentionSpec& spec) {
  if (!q.is_cuda() || q.dim() != 3) return false;
  if (q.scalar_type() != at::kBFloat16 && q.scalar_type() != at::kHalf) return false;
  const int64_t D = q.size(2);
  return D % 8 == 0 && D <= 256 && spec.sinks >= 0 && spec.window >= 0 && (spec.sinks == 0 || spec.window > 0);
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FlashArgs {
  at::Tensor cu;
  int64_t max_len = 0;
  AttentionSpec spec;
};

// The kernel's window is (left, right) inclusive offsets: W keys including the query's own.
c10::optional<int64_t> Left(const AttentionSpec& s) { return s.window > 0 ? c10::optional<int64_t>(s.window - 1) : c10::nullopt; }
c10::optional<int64_t> Right(const AttentionSpec& s) { return s.window > 0 ? c10::optional<int64_t>(0) : c10::nullopt; }

// FlashAttention-2 forward: (out [total, H, D], lse as the kernel returns it, philox seed, offset).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> FlashForward(const at::Tensor& q, const at::Tensor& k,
                                                                          const at::Tensor& v, const FlashArgs& a) {
  auto r = at::_flash_attention_forward(q, k, v, a.cu, a.cu, a.max_len, a.max_len, /*dropout_p=*/0.0,
                                        /*is_causal=*/true, /*return_debug_mask=*/false, a.spec.scale, Left(a.spec),
                                        Right(a.spec), /*seqused_k=*/c10::nullopt, /*alibi_slopes=*/c10::nullopt);
  return {std::get<0>(r), std::get<1>(r), std::get<2>(r), std::get<3>(r)};
}

// The kernel's log-sum-exp as [total, H] float32 (varlen kernels return [H, total]).
at::Tensor LseRows(const at::Tensor& lse, int64_t total, int64_t H) {
  at::Tensor l = lse;
  if (l.dim() == 3) l = l.squeeze(0);
  if (l.size(0) == H && l.size(1) >= total) return l.narrow(1, 0, total).t().to(at::kFloat);
  return l.narrow(0, 0, total).to(at::kFloat);
}

// Windowed FlashAttention-2 merged with a second attention (the sinks) given as its output and
// log-sum-exp: out = (e^lseA oA + e^lseB oB) / (e^lseA + e^lseB). The backward pass is exact:
// FlashAttention-2's backward takes grad wA * dO and the MERGED output in place of oA (its only
// use of `out` is D = rowsum(dO . out), and wA <dO, o> is exactly what the lse path adds), and the
// gradients of oB and lseB flow on into the caller's graph.
class FlashMerged : public torch::autograd::Function<FlashMerged> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& other_out, const at::Tensor& other_lse, const at::Tensor& cu,
                               int64_t max_len, int64_t window, double scale) {
    FlashArgs a{cu, max_len, AttentionSpec{window, 0, scale}};
    const int64_t total = q.size(0), H = q.size(1);
    auto [oa, lse_raw, seed, offset] = FlashForward(q, k, v, a);
    const at::Tensor lse_a = LseRows(lse_raw, total, H);               // [total, H]
    const at::Tensor lse = at::logaddexp(lse_a, other_lse);            // [total, H]
    const at::Tensor wa = (lse_a - lse).exp().unsqueeze(-1), wb = (other_lse - lse).exp().unsqueeze(-1);
    const at::Tensor out = (wa * oa.to(at::kFloat) + wb * other_out.to(at::kFloat)).to(q.scalar_type());
    ctx->save_for_backward({q, k, v, out, lse_raw, seed, offset, cu, other_out, wa, wb});
    ctx->saved_data["max_len"] = max_len;
    ctx->saved_data["window"] = window;
    ctx->saved_data["scale"] = scale;
    return {out};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    const at::Tensor &q = s[0], &k = s[1], &v = s[2], &out = s[3], &lse_raw = s[4], &seed = s[5], &offset = s[6],
                     &cu = s[7], &other_out = s[8], &wa = s[9], &wb = s[10];
    const int64_t max_len = ctx->saved_data["max_len"].toInt();
    const AttentionSpec spec{ctx->saved_data["window"].toInt(), 0, ctx->saved_data["scale"].toDouble()};
    const at::Tensor g = grads[0].to(at::kFloat);
    const at::Tensor ga = (wa * g).to(q.scalar_type()).contiguous();
    auto r = at::_flash_attention_backward(ga, q, k, v, out, lse_raw, cu, cu, max_len, max_len, /*dropout_p=*/0.0,
                                           /*is_causal=*/true, seed, offset, spec.scale, Left(spec), Right(spec));
    const at::Tensor g_other_out = (wb * g).to(other_out.scalar_type());
    // d out / d lseB = wB (oB - out), summed against dO over the head dimension.
    const at::Tensor g_other_lse = (wb.squeeze(-1) * (g * (other_out.to(at::kFloat) - out.to(at::kFloat))).sum(-1));
    return {std::get<0>(r), std::get<1>(r), std::get<2>(r), g_other_out, g_other_lse,
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Attention of each query to its sequence's sink keys (positions < S) that lie outside its window
// (position <= q - W): output [total, H, D] (0 where none) and log-sum-exp [total, H] (-1e30 where
// none), both float32, differentiable through plain torch ops.
std::pair<at::Tensor, at::Tensor> SinkAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                const at::Tensor& cu, const AttentionSpec& spec) {
  const int64_t total = q.size(0), H = q.size(1), D = q.size(2), Hkv = k.size(1), S = spec.sinks;
  const auto lopts = at::TensorOptions().device(q.device()).dtype(at::kLong);
  const at::Tensor cu64 = cu.to(at::kLong);
  const at::Tensor rows = at::arange(total, lopts);
  // The sequence of each row, its start and its position.
  const at::Tensor seq = at::searchsorted(cu64, rows, /*out_int32=*/false, /*right=*/true) - 1;
  const at::Tensor start = cu64.index_select(0, seq), len = cu64.index_select(0, seq + 1) - start;
  const at::Tensor pos = rows - start;
  const at::Tensor s = at::arange(S, lopts).unsqueeze(0);                                   // [1, S]
  const at::Tensor visible = (s < len.unsqueeze(1)) & (s <= (pos - spec.window).unsqueeze(1));  // [total, S]
  // Each sequence's S sink rows, taken once and made float32 BEFORE they are spread over the
  // sequence's queries: their gradients (sums over up to a whole sequence of queries) then
  // accumulate in float32, not bfloat16.
  const int64_t n = cu64.size(0) - 1;
  const at::Tensor sink_rows = (cu64.narrow(0, 0, n).unsqueeze(1) + s).clamp_max(total - 1).reshape({-1});
  const at::Tensor k_sinks = k.index_select(0, sink_rows).to(at::kFloat);  // [n * S, Hkv, D]
  const at::Tensor v_sinks = v.index_select(0, sink_rows).to(at::kFloat);
  const at::Tensor idx = (seq.unsqueeze(1) * S + s).reshape({-1});  // [total * S] rows of k_sinks
  const at::Tensor ks = k_sinks.index_select(0, idx).view({total, S, Hkv, D});
  const at::Tensor vs = v_sinks.index_select(0, idx).view({total, S, Hkv, D});
  const at::Tensor qg = q.to(at::kFloat).view({total, Hkv, H / Hkv, D});
  at::Tensor scores = at::einsum("tkgd,tskd->tkgs", {qg, ks}) * spec.scale;  // [total, Hkv, G, S]
  const at::Tensor vis = visible.view({total, 1, 1, S});
  scores = scores.masked_fill(vis.logical_not(), -1e30);
  const at::Tensor m = std::get<0>(scores.max(-1, /*keepdim=*/true));
  const at::Tensor e = (scores - m).exp() * vis.to(at::kFloat);
  const at::Tensor sum = e.sum(-1, /*keepdim=*/true);
  const at::Tensor any = visible.any(1).view({total, 1, 1});
  at::Tensor lse = at::where(any, (m + sum.clamp_min(1e-30).log()).squeeze(-1), at::full({}, -1e30, scores.options()));
  at::Tensor out = at::einsum("tkgs,tskd->tkgd", {e / sum.clamp_min(1e-30), vs});
  return {out.reshape({total, H, D}), lse.reshape({total, H})};
}

}  // namespace

at::Tensor FlashVarlenSelfAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& cu_seqlens, int64_t max_len, const AttentionSpec& spec) {
  TORCH_CHECK(FlashTrainAttentionSupports(q, spec), "flash training attention: unsupported q ", q.sizes(), " ",
              q.scalar_type(), " or spec (window ", spec.window, ", sinks ", spec.sinks, ")");
  TORCH_CHECK(k.dim() == 3 && k.sizes() == v.sizes() && k.size(0) == q.size(0) && k.size(2) == q.size(2) &&
                  q.size(1) % k.size(1) == 0,
              "flash training attention: k/v ", k.sizes(), " do not fit q ", q.sizes());
  TORCH_CHECK(cu_seqlens.scalar_type() == at::kInt && cu_seqlens.dim() == 1 && cu_seqlens.device() == q.device(),
              "flash training attention: cu_seqlens must be int32 [n+1] on q's device");
  c10::cuda::CUDAGuard guard(q.device());
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  if (spec.sinks == 0) {
    // LibTorch's autograd differentiates this call with FlashAttention-2's backward.
    return std::get<0>(FlashForward(qc, kc, vc, FlashArgs{cu_seqlens, max_len, spec}));
  }
  auto [sink_out, sink_lse] = SinkAttention(qc, kc, vc, cu_seqlens, spec);
  return FlashMerged::apply(qc, kc, vc, sink_out, sink_lse, cu_seqlens, max_len, spec.window, spec.scale)[0];
}

#else

bool FlashTrainAttentionBuilt() { return false; }
bool FlashTrainAttentionSupports(const at::Tensor&, const AttentionSpec&) { return false; }
at::Tensor FlashVarlenSelfAttention(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                    int64_t, const AttentionSpec&) {
  TORCH_CHECK(false, "flash training attention needs a CUDA build with LibTorch >= 2.5");
  return {};
}

#endif

}  // namespace swarr
