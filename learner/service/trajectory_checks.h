// Structural checks of a pushed v1::Trajectory (proto/swarr/v1/rollout_types.proto): what the
// learner service verifies before it keeps anything from a PushTrajectories call. No torch.
#ifndef SWARR_LEARNER_SERVICE_TRAJECTORY_CHECKS_H_
#define SWARR_LEARNER_SERVICE_TRAJECTORY_CHECKS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "proto/swarr/v1/rollout_types.pb.h"

namespace swarr {

struct TrajectoryLimits {
  int64_t vocab_size = 0;             // every token id in [0, vocab_size); 0 = only ids < 0 are rejected
  int64_t max_completion_tokens = 0;  // the rl stage's max_new_tokens; 0 = no limit
  int64_t max_total_tokens = 0;       // prompt + completion (the model's max_position_embeddings); 0 = no limit
  int32_t max_group_size = 1 << 16;   // group_size in [1, max_group_size]
};

// OK, or kInvalidArgument "trajectory <id>: <field>: <what is wrong>" (an empty id is named by
// its position in the request, "trajectory #<index>"). Checked: id non-empty and equal to
// "<group_id>/<i>" with 0 <= i < group_size; group_size in range; prompt and completion
// non-empty with every id in the vocabulary (the first bad one named with its index); one
// finite behaviour log-prob and one token version per completion token; policy_version >= 0;
// a finite reward; the length limits; learner_incarnation set. Versions are not compared with
// the learner's here, nor with each other (ValidateTokenVersionOrder).
absl::Status ValidateTrajectory(const v1::Trajectory& t, int index, const TrajectoryLimits& limits);

// Token versions non-decreasing, the first equal to policy_version (the oldest): kInvalidArgument
// naming the token otherwise. The learner checks this after it checked that every version was
// published by its incarnation (a sequence that spans a learner restart names versions of two
// incarnations: FAILED_PRECONDITION, the group is generated again, rather than malformed).
absl::Status ValidateTokenVersionOrder(const v1::Trajectory& t);

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_TRAJECTORY_CHECKS_H_
