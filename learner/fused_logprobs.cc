#include "learner/fused_logprobs.h"

#include <algorithm>
#include <tuple>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

namespace swarr {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// float64 inputs stay float64; every other floating dtype does its softmax in float32.
at::ScalarType ComputeDtype(const at::Tensor& hidden) {
  return hidden.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

// z = hidden_chunk . weight^T / temperature, [C, V] in the compute dtype (a fresh tensor: the
// callers work on it in place).
at::Tensor ScaledLogits(const at::Tensor& hidden_chunk, const at::Tensor& weight, double temperature,
                        at::ScalarType compute) {
  at::Tensor z = at::matmul(hidden_chunk, weight.t()).to(compute);  // no copy when already `compute`
  if (temperature != 1.0) z.div_(temperature);
  return z;
}

struct ForwardResult {
  at::Tensor logprobs;  // [N]
  at::Tensor entropy;   // [N] or undefined
  at::Tensor lse;       // [N]: logsumexp of z per token
};

ForwardResult ChunkedForward(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                             double temperature, int64_t chunk, bool with_entropy) {
  const int64_t n = hidden.size(0);
  const at::ScalarType compute = ComputeDtype(hidden);
  const auto opts = hidden.options().dtype(compute);
  ForwardResult r;
  r.logprobs = at::empty({n}, opts);
  r.lse = at::empty({n}, opts);
  if (with_entropy) r.entropy = at::empty({n}, opts);
  for (int64_t s = 0; s < n; s += chunk) {
    const int64_t c = std::min(chunk, n - s);
    at::Tensor logp = ScaledLogits(hidden.narrow(0, s, c), weight, temperature, compute);  // [C, V]
    const at::Tensor lse = at::logsumexp(logp, 1);                                         // [C]
    logp.sub_(lse.unsqueeze(1));
    r.lse.narrow(0, s, c).copy_(lse);
    r.logprobs.narrow(0, s, c).copy_(logp.gather(1, targets.narrow(0, s, c).unsqueeze(1)).squeeze(1));
    if (with_entropy) {
      at::Tensor plogp = logp.exp().mul_(logp);  // [C, V]
      at::Tensor entropy_chunk = r.entropy.narrow(0, s, c);
      at::neg_out(entropy_chunk, plogp.sum(1));
    }
  }
  return r;
}

class FusedLogProbFunction : public torch::autograd::Function<FusedLogProbFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden, const at::Tensor& weight,
                               const at::Tensor& targets, double temperature, int64_t chunk, bool with_entropy) {
    ForwardResult r = ChunkedForward(hidden, weight, targets, temperature, chunk, with_entropy);
    ctx->save_for_backward({hidden, weight, targets, r.lse});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk"] = chunk;
    // An output left out of the loss arrives as an undefined gradient: its term is skipped.
    ctx->set_materialize_grads(false);
    if (with_entropy) return {r.logprobs, r.entropy};
    return {r.logprobs};
  }

  // grad_outputs: [g_lp] or [g_lp, g_h], each [N] or undefined. With p = softmax(z),
  // z = logits / T:
  //   d logp_target / dz = onehot(target) - p
  //   d H / dz            = -p * (log p + H)          (H = -sum p log p)
  // and dlogits = dz / T; grad_hidden = dlogits . W, grad_weight = dlogits^T . hidden.
  static variable_list backward(AutogradContext* ctx, variable_list grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor& hidden = saved[0];
    const at::Tensor& weight = saved[1];
    const at::Tensor& targets = saved[2];
    const at::Tensor& lse = saved[3];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t chunk = ctx->saved_data["chunk"].toInt();
    const bool want_hidden = ctx->needs_input_grad(0);
    const bool want_weight = ctx->needs_input_grad(1);
    const at::ScalarType compute = ComputeDtype(hidden);
    at::Tensor g_lp = grad_outputs[0].defined() ? grad_outputs[0].to(compute) : at::Tensor();
    at::Tensor g_h =
        grad_outputs.size() > 1 && grad_outputs[1].defined() ? grad_outputs[1].to(compute) : at::Tensor();
    variable_list grads(6);
    if ((!g_lp.defined() && !g_h.defined()) || (!want_hidden && !want_weight)) return grads;

    const int64_t n = hidden.size(0);
    at::Tensor grad_hidden = want_hidden ? at::empty(hidden.sizes(), hidden.options()) : at::Tensor();
    at::Tensor grad_weight_acc = want_weight ? at::zeros(weight.sizes(), weight.options().dtype(compute)) : at::Tensor();
    for (int64_t s = 0; s < n; s += chunk) {
      const int64_t c = std::min(chunk, n - s);
      const at::Tensor hidden_chunk = hidden.narrow(0, s, c);
      at::Tensor logp = ScaledLogits(hidden_chunk, weight, temperature, compute);  // [C, V]
      logp.sub_(lse.narrow(0, s, c).unsqueeze(1));
      at::Tensor p = logp.exp();  // [C, V]
      at::Tensor dz;              // [C, V]
      if (g_h.defined()) {
        // -g_h * (p log p + H p), built in logp's buffer (two [C, V] buffers in all); H is
        // recomputed as in the forward pass rather than saved: H = -sum p log p.
        at::Tensor plogp = logp.mul_(p);
        const at::Tensor entropy = plogp.sum(1).neg_();
        dz = plogp.addcmul_(p, entropy.unsqueeze(1)).mul_(g_h.narrow(0, s, c).neg().unsqueeze(1));
      }
      if (g_lp.defined()) {
        const at::Tensor g = g_lp.narrow(0, s, c).unsqueeze(1);  // [C, 1]
        at::Tensor d = p.mul_(g.neg());                           // -g_lp * p, in p's buffer
        d.scatter_add_(1, targets.narrow(0, s, c).unsqueeze(1), g);
        dz = dz.defined() ? dz.add_(d) : d;
      }
      p.reset();
      if (temperature != 1.0) dz.div_(temperature);
      const at::Tensor dz_in = dz.to(hidden.scalar_type());  // no copy unless the inputs are bf16/fp16
      if (want_hidden) {
        at::Tensor grad_hidden_chunk = grad_hidden.narrow(0, s, c);  // contiguous rows
        at::mm_out(grad_hidden_chunk, dz_in, weight);
      }
      if (want_weight) {
        if (dz_in.scalar_type() == compute) {
          grad_weight_acc.addmm_(dz_in.t(), hidden_chunk);
        } else {
          // Product in the inputs' dtype (fast on the GPU), sum over chunks in float32.
          grad_weight_acc.add_(at::mm(dz_in.t(), hidden_chunk));
        }
      }
    }
    if (want_hidden) grads[0] = grad_hidden;
    if (want_weight) grads[1] = grad_weight_acc.to(weight.scalar_type());
    return grads;
  }
};

void CheckArguments(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                    const FusedLogProbOptions& options) {
  TORCH_CHECK(options.temperature > 0, "FusedTokenLogProbs: temperature must be > 0, got ", options.temperature);
  TORCH_CHECK(options.chunk_tokens > 0, "FusedTokenLogProbs: chunk_tokens must be > 0, got ", options.chunk_tokens);
  TORCH_CHECK(hidden.defined() && weight.defined() && targets.defined(),
              "FusedTokenLogProbs: hidden, weight and targets must be defined");
  TORCH_CHECK(hidden.dim() == 2, "FusedTokenLogProbs: hidden must be [N, H], got shape ", hidden.sizes());
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) > 0,
              "FusedTokenLogProbs: weight must be [V, H] with V >= 1, got shape ", weight.sizes());
  TORCH_CHECK(hidden.size(1) == weight.size(1), "FusedTokenLogProbs: hidden size mismatch: hidden is ",
              hidden.sizes(), " but weight is ", weight.sizes(), " (both [*, H])");
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0),
              "FusedTokenLogProbs: targets must be [N] with N = hidden.size(0) = ", hidden.size(0), ", got shape ",
              targets.sizes());
  TORCH_CHECK(at::isFloatingType(hidden.scalar_type()),
              "FusedTokenLogProbs: hidden must be floating point, got ", hidden.scalar_type());
  TORCH_CHECK(weight.scalar_type() == hidden.scalar_type(), "FusedTokenLogProbs: dtype mismatch: hidden is ",
              hidden.scalar_type(), " but weight is ", weight.scalar_type());
  TORCH_CHECK(targets.scalar_type() == at::kLong, "FusedTokenLogProbs: targets must be int64, got ",
              targets.scalar_type());
  TORCH_CHECK(weight.device() == hidden.device() && targets.device() == hidden.device(),
              "FusedTokenLogProbs: device mismatch: hidden on ", hidden.device(), ", weight on ", weight.device(),
              ", targets on ", targets.device());
  if (targets.numel() > 0) {
    const auto [lo, hi] = at::aminmax(targets);
    const int64_t min_id = lo.item<int64_t>(), max_id = hi.item<int64_t>();
    TORCH_CHECK(min_id >= 0 && max_id < weight.size(0), "FusedTokenLogProbs: target id out of range: ids span [",
                min_id, ", ", max_id, "], vocabulary is [0, ", weight.size(0), ")");
  }
}

}  // namespace

FusedLogProbs FusedTokenLogProbs(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                                 const FusedLogProbOptions& options) {
  CheckArguments(hidden, weight, targets, options);
  FusedLogProbs out;
  if (at::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad())) {
    variable_list r = FusedLogProbFunction::apply(hidden, weight, targets, options.temperature, options.chunk_tokens,
                                                  options.with_entropy);
    out.logprobs = r[0];
    if (options.with_entropy) out.entropy = r[1];
    return out;
  }
  ForwardResult r =
      ChunkedForward(hidden, weight, targets, options.temperature, options.chunk_tokens, options.with_entropy);
  out.logprobs = r.logprobs;
  out.entropy = r.entropy;
  return out;
}

}  // namespace swarr
