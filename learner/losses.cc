#include "learner/losses.h"

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"

namespace swarr {
namespace {

std::string ShapeString(const at::Tensor& t) { return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "]"); }

bool AllFinite(const at::Tensor& t) { return at::isfinite(t).all().item<bool>(); }

// `t` must be defined with exactly `shape`.
absl::Status CheckShape(const char* name, const at::Tensor& t, at::IntArrayRef shape) {
  if (!t.defined()) return absl::InvalidArgumentError(absl::StrCat(name, " is undefined"));
  if (t.sizes() != shape) {
    return absl::InvalidArgumentError(absl::StrCat(name, " has shape ", ShapeString(t), ", expected [",
                                                   absl::StrJoin(shape, ", "), "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckFinite(const char* name, const at::Tensor& t) {
  if (!AllFinite(t)) return absl::InvalidArgumentError(absl::StrCat(name, " has non-finite values"));
  return absl::OkStatus();
}


// Shapes, emptiness and coefficient/tensor pairing (no tensor values read).
absl::Status CheckPolicyShapes(const PolicyLossInputs& in, const PolicyLossOptions& o) {
  if (!in.logprobs.defined()) return absl::InvalidArgumentError("logprobs is undefined");
  if (in.logprobs.dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("logprobs must be [N, T], got ", ShapeString(in.logprobs)));
  }
  if (!at::isFloatingType(in.logprobs.scalar_type())) {
    return absl::InvalidArgumentError("logprobs must be floating point");
  }
  const int64_t N = in.logprobs.size(0), T = in.logprobs.size(1);
  if (N == 0 || T == 0) {
    return absl::InvalidArgumentError(absl::StrCat("empty batch: logprobs is ", ShapeString(in.logprobs)));
  }
  const std::vector<int64_t> nt = {N, T};
  SWARR_RETURN_IF_ERROR(CheckShape("old_logprobs", in.old_logprobs, nt));
  SWARR_RETURN_IF_ERROR(CheckShape("mask", in.mask, nt));
  SWARR_RETURN_IF_ERROR(CheckShape("advantages", in.advantages, {N}));
  if (in.behaviour_logprobs.defined()) {
    SWARR_RETURN_IF_ERROR(CheckShape("behaviour_logprobs", in.behaviour_logprobs, nt));
  }
  if (in.ref_logprobs.defined()) SWARR_RETURN_IF_ERROR(CheckShape("ref_logprobs", in.ref_logprobs, nt));
  if (in.entropy.defined()) SWARR_RETURN_IF_ERROR(CheckShape("entropy", in.entropy, nt));
  if (o.kl_coef > 0 && !in.ref_logprobs.defined()) {
    return absl::InvalidArgumentError("kl_coef > 0 needs ref_logprobs");
  }
  if (o.entropy_coef > 0 && !in.entropy.defined()) {
    return absl::InvalidArgumentError("entropy_coef > 0 needs entropy");
  }
  return absl::OkStatus();
}

absl::StatusOr<PolicyLossOutput> PolicyLossImpl(const PolicyLossInputs& in, const PolicyLossOptions& o) {
  const at::Tensor& logp = in.logprobs;
  const auto opts = logp.options().requires_grad(false);
  auto aux = [&](const at::Tensor& t) { return t.to(logp.device(), logp.scalar_type()); };

  // Values that must be finite: they enter the loss unmasked before the where() below.
  SWARR_RETURN_IF_ERROR(CheckFinite("advantages", in.advantages));
  SWARR_RETURN_IF_ERROR(CheckFinite("old_logprobs", in.old_logprobs));
  if (in.behaviour_logprobs.defined()) {
    SWARR_RETURN_IF_ERROR(CheckFinite("behaviour_logprobs", in.behaviour_logprobs));
  }
  if (in.ref_logprobs.defined()) SWARR_RETURN_IF_ERROR(CheckFinite("ref_logprobs", in.ref_logprobs));
  if (in.entropy.defined()) SWARR_RETURN_IF_ERROR(CheckFinite("entropy", in.entropy));

  const at::Tensor mask = aux(in.mask);
  if (!(mask.eq(0) | mask.eq(1)).all().item<bool>()) {
    return absl::InvalidArgumentError("mask must hold only 0 and 1");
  }
  const at::Tensor on = mask.gt(0);  // bool [N, T]
  const double num_tokens = mask.sum().item<double>();
  if (num_tokens == 0) return absl::InvalidArgumentError("mask is all zero: no tokens to train on");

  const at::Tensor old = aux(in.old_logprobs).detach();
  const at::Tensor adv = aux(in.advantages).detach().unsqueeze(1);  // [N, 1]
  const at::Tensor zero = at::zeros({}, opts);

  // Masked-out positions see a log-ratio of 0, so their values cannot overflow exp() or
  // send NaN through the gradient of where().
  const at::Tensor ratio = at::exp(at::where(on, logp - old, zero));
  const at::Tensor surr1 = ratio * adv;
  const at::Tensor surr2 = at::clamp(ratio, 1.0 - o.clip_low, 1.0 + o.clip_high) * adv;
  const at::Tensor clipped = surr2.lt(surr1) & on;
  at::Tensor per_token = -at::where(clipped, surr2, surr1);

  PolicyLossOutput out;
  out.clip_frac = clipped.sum().item<double>() / num_tokens;

  if (o.max_importance_weight > 0 && in.behaviour_logprobs.defined()) {
    const at::Tensor raw = at::exp(at::where(on, old - aux(in.behaviour_logprobs).detach(), zero));
    const at::Tensor truncated = raw.gt(o.max_importance_weight) & on;
    const at::Tensor w = at::clamp_max(raw, o.max_importance_weight);
    per_token = per_token * w;
    out.importance_weight_mean = (w * mask).sum().item<double>() / num_tokens;
    out.truncated_frac = truncated.sum().item<double>() / num_tokens;
  }
  if (in.ref_logprobs.defined()) {
    const at::Tensor ref = aux(in.ref_logprobs).detach();
    const at::Tensor k3 = K3Kl(at::where(on, logp, zero), at::where(on, ref, zero));
    out.kl = (k3 * mask).sum().item<double>() / num_tokens;
    if (o.kl_coef > 0) per_token = per_token + o.kl_coef * k3;
  }
  if (in.entropy.defined()) {
    const at::Tensor ent = in.entropy.to(logp.device(), logp.scalar_type());  // keeps its graph
    out.entropy = (ent.detach() * mask).sum().item<double>() / num_tokens;
    if (o.entropy_coef > 0) per_token = per_token - o.entropy_coef * at::where(on, ent, zero);
  }

  per_token = at::where(on, per_token, zero);
  switch (o.aggregation) {
    case LossAggregation::kTokenMean:
      out.loss = per_token.sum() / num_tokens;
      break;
    case LossAggregation::kSequenceMean: {
      const at::Tensor lengths = mask.sum(1);  // [N]
      const at::Tensor has_tokens = lengths.gt(0);
      const at::Tensor seq_mean = per_token.sum(1) / at::clamp_min(lengths, 1.0);
      out.loss = seq_mean.sum() / has_tokens.sum().item<double>();
      break;
    }
  }
  return out;
}

}  // namespace

absl::Status ValidatePolicyLossOptions(const PolicyLossOptions& o) {
  if (!(o.clip_low >= 0 && o.clip_low < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("clip_low must be in [0, 1), got ", o.clip_low));
  }
  if (!(o.clip_high >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("clip_high must be >= 0, got ", o.clip_high));
  }
  if (!(o.kl_coef >= 0)) return absl::InvalidArgumentError(absl::StrCat("kl_coef must be >= 0, got ", o.kl_coef));
  if (!(o.entropy_coef >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("entropy_coef must be >= 0, got ", o.entropy_coef));
  }
  if (!(o.max_importance_weight >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_importance_weight must be >= 0, got ", o.max_importance_weight));
  }
  return absl::OkStatus();
}

absl::StatusOr<at::Tensor> GroupAdvantages(const at::Tensor& rewards, const at::Tensor& group_ids,
                                           const AdvantageOptions& options) {
  if (!rewards.defined() || rewards.dim() != 1 || !at::isFloatingType(rewards.scalar_type())) {
    return absl::InvalidArgumentError("rewards must be a 1-D floating-point tensor [N]");
  }
  if (!group_ids.defined() || group_ids.dim() != 1 ||
      !at::isIntegralType(group_ids.scalar_type(), /*includeBool=*/false)) {
    return absl::InvalidArgumentError("group_ids must be a 1-D integer tensor [N]");
  }
  if (rewards.size(0) == 0) return absl::InvalidArgumentError("rewards is empty");
  if (group_ids.size(0) != rewards.size(0)) {
    return absl::InvalidArgumentError(absl::StrCat("group_ids has ", group_ids.size(0), " entries, rewards has ",
                                                   rewards.size(0)));
  }
  if (options.divide_by_std && !(options.eps > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("eps must be > 0 with divide_by_std, got ", options.eps));
  }
  if (options.divide_by_std && !options.subtract_mean) {
    return absl::InvalidArgumentError("divide_by_std needs subtract_mean (no baseline means A = r)");
  }
  return CatchTorch("GroupAdvantages", [&]() -> absl::StatusOr<at::Tensor> {
    at::NoGradGuard no_grad;
    SWARR_RETURN_IF_ERROR(CheckFinite("rewards", rewards));
    if (!options.subtract_mean) return rewards.detach().clone();
    const at::Tensor r = rewards.detach();
    // inverse[i] = index of row i's group among the distinct ids.
    const at::Tensor inverse = std::get<1>(at::_unique(group_ids.to(r.device()), /*sorted=*/true,
                                                       /*return_inverse=*/true));
    const int64_t groups = inverse.max().item<int64_t>() + 1;
    const at::Tensor count = at::zeros({groups}, r.options()).index_add_(0, inverse, at::ones_like(r));
    const at::Tensor mean = at::zeros({groups}, r.options()).index_add_(0, inverse, r) / count;
    at::Tensor adv = r - mean.index_select(0, inverse);
    if (options.divide_by_std) {
      const at::Tensor var = at::zeros({groups}, r.options()).index_add_(0, inverse, adv * adv) / count;
      adv = adv / (at::sqrt(var).index_select(0, inverse) + options.eps);
    }
    return adv;
  });
}

at::Tensor K3Kl(const at::Tensor& logprobs, const at::Tensor& ref_logprobs) {
  const at::Tensor d = ref_logprobs - logprobs;
  return at::expm1(d) - d;  // == exp(d) - d - 1, accurate for small d
}

double SoftOverlongPenalty(int64_t length, int64_t max_length, int64_t buffer, double penalty) {
  if (buffer <= 0 || penalty == 0) return 0.0;
  buffer = std::min(buffer, max_length);
  const int64_t free_len = max_length - buffer;
  if (length <= free_len) return 0.0;
  if (length > max_length) return -penalty;
  return penalty * static_cast<double>(free_len - length) / static_cast<double>(buffer);
}

at::Tensor SequenceKlK1(const at::Tensor& logprobs, const at::Tensor& ref_logprobs, const at::Tensor& mask) {
  at::NoGradGuard no_grad;
  const at::Tensor m = mask.to(logprobs.device(), logprobs.scalar_type());
  const at::Tensor on = m.gt(0);
  const at::Tensor zero = at::zeros({}, logprobs.options());
  const at::Tensor d = at::where(on, logprobs.detach() - ref_logprobs.to(logprobs.options()).detach(), zero);
  return (d * m).sum(1);
}

absl::StatusOr<PolicyLossOutput> PolicyLoss(const PolicyLossInputs& inputs, const PolicyLossOptions& options) {
  SWARR_RETURN_IF_ERROR(ValidatePolicyLossOptions(options));
  SWARR_RETURN_IF_ERROR(CheckPolicyShapes(inputs, options));
  return CatchTorch("PolicyLoss", [&] { return PolicyLossImpl(inputs, options); });
}

}  // namespace swarr
