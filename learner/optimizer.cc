#include "learner/optimizer.h"

#include <cmath>

#include <iostream>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/version.h>

#include "absl/strings/str_cat.h"

namespace swarr {

absl::Status ValidateLrSchedule(const LrSchedule& s) {
  if (!(s.lr > 0) || !std::isfinite(s.lr)) return absl::InvalidArgumentError(absl::StrCat("lr must be > 0, got ", s.lr));
  if (s.warmup_steps < 0) return absl::InvalidArgumentError("warmup_steps must be >= 0");
  if (s.total_steps < 0) return absl::InvalidArgumentError("total_steps must be >= 0");
  if (s.kind != "cosine" && s.kind != "linear" && s.kind != "constant") {
    return absl::InvalidArgumentError(absl::StrCat("unknown schedule '", s.kind, "' (cosine, linear, constant)"));
  }
  if (!(s.min_lr_ratio >= 0 && s.min_lr_ratio <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("min_lr_ratio must be in [0, 1], got ", s.min_lr_ratio));
  }
  return absl::OkStatus();
}

double ScheduledLr(const LrSchedule& s, int64_t step) {
  if (step < s.warmup_steps) return s.lr * static_cast<double>(step + 1) / static_cast<double>(s.warmup_steps);
  if (s.kind == "constant" || s.total_steps <= s.warmup_steps) return s.lr;
  const double progress = std::min(1.0, static_cast<double>(step - s.warmup_steps) /
                                            static_cast<double>(s.total_steps - s.warmup_steps));
  const double floor = s.lr * s.min_lr_ratio;
  if (s.kind == "linear") return floor + (s.lr - floor) * (1.0 - progress);
  return floor + (s.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
}

bool IsNoDecayParameter(const std::string& name, const at::Tensor& param) {
  (void)name;
  return param.dim() <= 1;
}

AdamW::AdamW(std::vector<std::pair<std::string, at::Tensor>> params, const AdamWOptions& options)
    : options_(options) {
  for (auto& [name, value] : params) {
    Param p;
    p.name = name;
    p.value = value;
    p.value.requires_grad_(true);
    const bool low = value.scalar_type() == at::kBFloat16 || value.scalar_type() == at::kHalf;
    if (low) p.master = value.detach().to(at::kFloat).contiguous();
    const at::Tensor& ref = low ? p.master : value;
    p.exp_avg = at::zeros_like(ref, at::MemoryFormat::Contiguous);
    p.exp_avg_sq = at::zeros_like(ref, at::MemoryFormat::Contiguous);
    p.decay = !IsNoDecayParameter(name, value);
    params_.push_back(std::move(p));
  }
}

void AdamW::ZeroGrad() {
  for (Param& p : params_) {
    if (p.value.grad().defined()) p.value.mutable_grad() = at::Tensor();
  }
}

#if TORCH_VERSION_MAJOR >= 2
namespace {
// The same update as the loop in AdamW::Step for CUDA parameters, through LibTorch's
// multi-tensor kernels (one norm per tensor, one fused AdamW kernel per group) instead of
// ~12 kernels per tensor with a host synchronisation each: ~10x less optimizer time for a
// 1.5B model. Gradients are taken to float32 (the masters' dtype) first. Returns false,
// changing nothing, where it does not apply (then the loop runs).
struct FusedGroup {
  std::vector<at::Tensor> w, g, m, v;
};
}  // namespace

bool AdamW::FusedCudaStep(double lr, double* norm_out) {
  if (params_.empty() || !params_[0].value.is_cuda()) return false;
  FusedGroup groups[2];  // [0] no decay, [1] decay
  std::vector<at::Tensor> grads;
  for (Param& p : params_) {
    if (!p.value.grad().defined()) continue;
    at::Tensor w = p.master.defined() ? p.master : p.value;
    if (!w.is_cuda() || w.scalar_type() != at::kFloat || !w.is_contiguous()) return false;
    FusedGroup& g = groups[p.decay && options_.weight_decay > 0 ? 1 : 0];
    g.w.push_back(w);
    g.g.push_back(p.value.grad().to(at::kFloat).contiguous());
    g.m.push_back(p.exp_avg);
    g.v.push_back(p.exp_avg_sq);
    grads.push_back(g.g.back());
  }
  if (grads.empty()) return false;
  // Global norm: per-tensor norms on the device, summed in float64 in parameter order.
  const at::Tensor norms = at::stack(at::_foreach_norm(grads)).to(at::kCPU, at::kDouble);
  const double norm = std::sqrt((norms * norms).sum().item<double>());
  *norm_out = norm;
  if (!std::isfinite(norm)) return true;  // the caller skips the update
  const double scale = options_.grad_clip > 0 && norm > options_.grad_clip ? options_.grad_clip / (norm + 1e-6) : 1.0;
  if (scale != 1.0) at::_foreach_mul_(grads, scale);
  ++step_;
  for (int decay = 0; decay < 2; ++decay) {
    FusedGroup& g = groups[decay];
    if (g.w.empty()) continue;
    std::vector<at::Tensor> steps;
    for (size_t i = 0; i < g.w.size(); ++i) {
      steps.push_back(at::full({}, static_cast<double>(step_), g.w[i].options()));
    }
    at::_fused_adamw_(g.w, g.g, g.m, g.v, /*max_exp_avg_sqs=*/{}, steps, lr, options_.beta1, options_.beta2,
                      decay ? options_.weight_decay : 0.0, options_.eps, /*amsgrad=*/false, /*maximize=*/false,
                      /*grad_scale=*/c10::nullopt, /*found_inf=*/c10::nullopt);
  }
  for (Param& p : params_) {
    if (p.master.defined() && p.value.grad().defined()) p.value.copy_(p.master);
  }
  return true;
}
#else
bool AdamW::FusedCudaStep(double, double*) { return false; }
#endif

absl::StatusOr<double> AdamW::Step(double lr) {
  at::NoGradGuard no_grad;
  if (double fused_norm = 0; options_.fused_cuda && FusedCudaStep(lr, &fused_norm)) {
    ZeroGrad();
    if (!std::isfinite(fused_norm)) {
      return absl::DataLossError(absl::StrCat("non-finite gradient norm (", fused_norm, "): update skipped"));
    }
    return fused_norm;
  }
  // Global norm in float64, summed in parameter order (deterministic).
  double sq = 0;
  for (const Param& p : params_) {
    if (p.value.grad().defined()) sq += p.value.grad().to(at::kDouble).pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(sq);
  if (!std::isfinite(norm)) {
    ZeroGrad();
    return absl::DataLossError(absl::StrCat("non-finite gradient norm (", norm, "): update skipped"));
  }
  const double scale = options_.grad_clip > 0 && norm > options_.grad_clip ? options_.grad_clip / (norm + 1e-6) : 1.0;
  ++step_;
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(step_));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(step_));
  for (Param& p : params_) {
    if (!p.value.grad().defined()) continue;
    at::Tensor w = p.master.defined() ? p.master : p.value;
    at::Tensor g = p.value.grad().to(w.scalar_type());
    if (scale != 1.0) g = g * scale;
    if (p.decay && options_.weight_decay > 0) w.mul_(1.0 - lr * options_.weight_decay);
    p.exp_avg.mul_(b1).add_(g, 1.0 - b1);
    p.exp_avg_sq.mul_(b2).addcmul_(g, g, 1.0 - b2);
    at::Tensor denom = (p.exp_avg_sq / bias2).sqrt_().add_(options_.eps);
    w.addcdiv_(p.exp_avg, denom, -lr / bias1);
    if (p.master.defined()) p.value.copy_(p.master);
  }
  ZeroGrad();
  return norm;
}

std::vector<std::pair<std::string, at::Tensor>> AdamW::StateTensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const Param& p : params_) {
    out.push_back({p.name + ".exp_avg", p.exp_avg});
    out.push_back({p.name + ".exp_avg_sq", p.exp_avg_sq});
    if (p.master.defined()) out.push_back({p.name + ".master", p.master});
  }
  return out;
}

absl::Status AdamW::LoadState(const std::map<std::string, at::Tensor>& state, int64_t step) {
  // Check everything before changing anything.
  for (const Param& p : params_) {
    for (const char* suffix : {".exp_avg", ".exp_avg_sq"}) {
      auto it = state.find(p.name + suffix);
      if (it == state.end()) {
        return absl::InvalidArgumentError(absl::StrCat("optimizer state lacks '", p.name, suffix, "'"));
      }
      if (it->second.sizes() != p.value.sizes()) {
        return absl::InvalidArgumentError(absl::StrCat("optimizer state '", p.name, suffix, "' has shape ",
                                                       c10::str(it->second.sizes()), ", the parameter is ",
                                                       c10::str(p.value.sizes())));
      }
    }
  }
  size_t masters = 0;
  for (const Param& p : params_) {
    auto it = state.find(p.name + ".master");
    if (it == state.end()) continue;
    if (!p.master.defined() || it->second.sizes() != p.value.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat("optimizer state '", p.name, ".master' does not fit the parameter"));
    }
    ++masters;
  }
  if (state.size() != 2 * params_.size() + masters) {
    return absl::InvalidArgumentError(absl::StrCat("optimizer state has ", state.size(), " tensors, expected ",
                                                   2 * params_.size() + masters));
  }
  at::NoGradGuard no_grad;
  for (Param& p : params_) {
    p.exp_avg.copy_(state.at(p.name + ".exp_avg"));
    p.exp_avg_sq.copy_(state.at(p.name + ".exp_avg_sq"));
    if (auto it = state.find(p.name + ".master"); it != state.end()) {
      p.master.copy_(it->second);
      p.value.copy_(p.master);
    }
  }
  step_ = step;
  return absl::OkStatus();
}

}  // namespace swarr
