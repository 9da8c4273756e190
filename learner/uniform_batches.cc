#include "learner/uniform_batches.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace swarr {

UniformBatches::UniformBatches(int64_t max_in_a_row)
    : max_(max_in_a_row > 0 ? max_in_a_row : kDefaultMaxUniformBatches) {}

bool UniformBatches::Observe(const RlStepMetrics& m, double reward_lo, double reward_hi) {
  const bool uniform = m.groups_used == 0 && m.groups_dropped_uniform > 0;
  if (uniform) {
    lo_ = in_a_row_ == 0 ? reward_lo : std::min(lo_, reward_lo);
    hi_ = in_a_row_ == 0 ? reward_hi : std::max(hi_, reward_hi);
    ++in_a_row_;
  } else if (m.groups_used > 0) {
    in_a_row_ = 0;
  }
  return uniform;
}

absl::Status UniformBatches::Error(const std::string& stage) const {
  const int64_t n = in_a_row_;
  const std::string batches = n == 1 ? "1 batch" : absl::StrCat(n, " consecutive batches");
  std::string what;
  if (lo_ == hi_ && lo_ == 0) {
    what = absl::StrCat("all rewards 0 in ", batches, ": the task is too hard for this policy");
  } else if (lo_ == hi_ && lo_ == 1) {
    what = absl::StrCat("all rewards 1 (all solved) in ", batches,
                        ": the policy already solves the task (stop.target_reward ends a stage there)");
  } else if (lo_ == hi_) {
    what = absl::StrCat("all rewards ", lo_, " in ", batches);
  } else {
    what = absl::StrCat("every group's rewards were equal within the group (rewards from ", lo_, " to ", hi_, ") in ",
                        batches);
  }
  return absl::AbortedError(absl::StrCat("stage ", stage, ": ", what,
                                        "; dynamic sampling dropped every group, so nothing was trained",
                                        " (rl.max_uniform_batches: ", max_, ")"));
}

}  // namespace swarr
