// Dynamic sampling (RlOptions::dynamic_sampling) drops the groups whose rewards are all equal:
// they have zero advantage. A batch in which it drops every group makes no update, so the
// optimizer step of an RL stage does not advance and a stage that ends on steps would wait
// for an update forever (a task too hard for the policy: all rewards 0; or one it already
// solves: all 1). UniformBatches counts such batches in a row for the two RL stage loops (the
// learner service's and `swarr train`'s) and words the error the stage fails with once the
// bound (rl.max_uniform_batches) is reached. docs/reliability.md.
//
// Not thread-safe (one per stage loop).
#ifndef SWARR_LEARNER_UNIFORM_BATCHES_H_
#define SWARR_LEARNER_UNIFORM_BATCHES_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "learner/rl_trainer.h"

namespace swarr {

// rl.max_uniform_batches when unset (0).
inline constexpr int64_t kDefaultMaxUniformBatches = 20;

class UniformBatches {
 public:
  // `max_in_a_row` <= 0: kDefaultMaxUniformBatches.
  explicit UniformBatches(int64_t max_in_a_row);

  // One Step's metrics and the lowest / highest reward of its batch. A batch in which every
  // group was dropped as uniform (groups_used == 0, groups_dropped_uniform > 0) adds one to
  // the run; one with a group left to train on (groups_used > 0) ends it; a batch with
  // neither (only stale or invalid trajectories) leaves it as it is. Returns whether this
  // batch was uniform.
  bool Observe(const RlStepMetrics& m, double reward_lo, double reward_hi);

  int64_t in_a_row() const { return in_a_row_; }
  int64_t max_in_a_row() const { return max_; }
  // The bound is reached: the stage should fail with Error().
  bool exhausted() const { return in_a_row_ >= max_; }

  // kAborted naming the stage, the count and the reason, e.g. "stage rl: all
  // rewards 0 in 20 consecutive batches: the task is too hard for this policy; dynamic
  // sampling dropped every group, so nothing was trained (rl.max_uniform_batches: 20)";
  // all rewards 1: "all rewards 1 (all solved) ... the policy already solves the task".
  absl::Status Error(const std::string& stage) const;

 private:
  int64_t max_;
  int64_t in_a_row_ = 0;
  double lo_ = 0, hi_ = 0;  // reward range over the run
};

}  // namespace swarr

#endif  // SWARR_LEARNER_UNIFORM_BATCHES_H_
