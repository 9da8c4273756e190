#include "common/dist/zero_step.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace swarr::dist {

void AdamWUpdate(const AdamWConfig& c, int64_t step, bool decay, float* master, float* m, float* v,
                 const float* grad, int64_t n) {
  const float bc1 = 1.0f - std::pow(c.beta1, static_cast<float>(step));
  const float bc2 = 1.0f - std::pow(c.beta2, static_cast<float>(step));
  for (int64_t i = 0; i < n; ++i) {
    if (decay) master[i] -= c.lr * c.weight_decay * master[i];
    m[i] = c.beta1 * m[i] + (1.0f - c.beta1) * grad[i];
    v[i] = c.beta2 * v[i] + (1.0f - c.beta2) * grad[i] * grad[i];
    const float mhat = m[i] / bc1;
    const float vhat = v[i] / bc2;
    master[i] -= c.lr * mhat / (std::sqrt(vhat) + c.eps);
  }
}

std::vector<ZeroRankState> InitZeroStates(const ZeroPlan& plan, const std::vector<float>& weights) {
  std::vector<ZeroRankState> states(plan.world_size);
  for (const RankShard& s : plan.ranks) {
    ZeroRankState& st = states[s.rank];
    st.master.assign(weights.begin() + s.flat_begin, weights.begin() + s.flat_end);
    st.m.assign(s.numel(), 0.0f);
    st.v.assign(s.numel(), 0.0f);
  }
  return states;
}

absl::Status ZeroStep(const ZeroPlan& plan, const AdamWConfig& c, int64_t step, const std::vector<bool>& decay,
                      const std::vector<std::vector<float>>& grads, std::vector<ZeroRankState>& states,
                      std::vector<float>* weights) {
  if (static_cast<int>(grads.size()) != plan.world_size || static_cast<int>(states.size()) != plan.world_size) {
    return absl::InvalidArgumentError(absl::StrCat(grads.size(), " gradients / ", states.size(), " states for ",
                                                   plan.world_size, " ranks"));
  }
  for (int r = 0; r < plan.world_size; ++r) {
    if (static_cast<int64_t>(grads[r].size()) != plan.total_numel) {
      return absl::InvalidArgumentError(absl::StrCat("rank ", r, ": gradient of ", grads[r].size(), " elements, expected ",
                                                     plan.total_numel));
    }
  }
  weights->resize(plan.total_numel);
  for (const RankShard& s : plan.ranks) {
    ZeroRankState& st = states[s.rank];
    // Reduce-scatter (mean, rank order) into this rank's range.
    std::vector<float> g(s.numel(), 0.0f);
    for (int r = 0; r < plan.world_size; ++r) {
      for (int64_t i = 0; i < s.numel(); ++i) g[i] += grads[r][s.flat_begin + i];
    }
    for (float& x : g) x /= static_cast<float>(plan.world_size);
    // AdamW per slice (weight decay is a per-parameter choice).
    for (const ParamSlice& sl : s.slices) {
      const int64_t off = sl.flat_begin - s.flat_begin;
      const bool d = sl.param_index < static_cast<int>(decay.size()) && decay[sl.param_index];
      AdamWUpdate(c, step, d, st.master.data() + off, st.m.data() + off, st.v.data() + off, g.data() + off,
                  sl.end - sl.begin);
    }
    // All-gather.
    for (int64_t i = 0; i < s.numel(); ++i) (*weights)[s.flat_begin + i] = st.master[i];
  }
  return absl::OkStatus();
}

}  // namespace swarr::dist
