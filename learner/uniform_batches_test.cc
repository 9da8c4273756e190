#include "learner/uniform_batches.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

// Step metrics with `used` groups trained on and `uniform` dropped as uniform.
RlStepMetrics Step(int64_t used, int64_t uniform) {
  RlStepMetrics m;
  m.groups_used = used;
  m.groups_dropped_uniform = uniform;
  m.updates = used > 0 ? 1 : 0;
  return m;
}

TEST(UniformBatchesTest, CountsUniformBatchesInARowAndATrainedBatchResets) {
  EXPECT_EQ(UniformBatches(0).max_in_a_row(), kDefaultMaxUniformBatches);
  EXPECT_EQ(UniformBatches(-4).max_in_a_row(), 20);
  UniformBatches u(3);
  EXPECT_TRUE(u.Observe(Step(0, 2), 0, 0));
  EXPECT_TRUE(u.Observe(Step(0, 2), 0, 0));
  EXPECT_EQ(u.in_a_row(), 2);
  EXPECT_FALSE(u.exhausted());
  // Partly uniform: trained on the rest, the run ends.
  EXPECT_FALSE(u.Observe(Step(1, 1), 0, 1));
  EXPECT_EQ(u.in_a_row(), 0);
  EXPECT_TRUE(u.Observe(Step(0, 2), 0, 0));
  // Nothing valid or fresh (all stale or invalid): neither counts nor resets.
  EXPECT_FALSE(u.Observe(Step(0, 0), 0, 0));
  EXPECT_EQ(u.in_a_row(), 1);
  EXPECT_TRUE(u.Observe(Step(0, 2), 0, 0));
  EXPECT_FALSE(u.exhausted());
  EXPECT_TRUE(u.Observe(Step(0, 2), 0, 0));
  EXPECT_EQ(u.in_a_row(), 3);
  EXPECT_TRUE(u.exhausted());
}

TEST(UniformBatchesTest, TheErrorNamesTheStageTheCountAndTheReason) {
  UniformBatches zero(2);
  zero.Observe(Step(0, 4), 0, 0);
  zero.Observe(Step(0, 4), 0, 0);
  const absl::Status st = zero.Error("rl_math");
  EXPECT_EQ(st.code(), absl::StatusCode::kAborted);  // `swarr train` exits 1
  EXPECT_EQ(st.message(),
            "stage rl_math: all rewards 0 in 2 consecutive batches: the task is too hard for this policy; dynamic "
            "sampling dropped every group, so nothing was trained (rl.max_uniform_batches: 2)");

  UniformBatches solved(1);
  solved.Observe(Step(0, 4), 1, 1);
  EXPECT_THAT(solved.Error("rl").message(),
              HasSubstr("stage rl: all rewards 1 (all solved) in 1 batch: the policy already solves the task"));

  UniformBatches half(2);
  half.Observe(Step(0, 4), 0.5, 0.5);
  half.Observe(Step(0, 4), 0.5, 0.5);
  EXPECT_THAT(half.Error("rl").message(), HasSubstr("all rewards 0.5 in 2 consecutive batches"));

  // Some groups all 0, others all 1 (each uniform, not the same): the range over the run.
  UniformBatches mixed(2);
  mixed.Observe(Step(0, 4), 0, 0);
  mixed.Observe(Step(0, 4), 1, 1);
  EXPECT_THAT(mixed.Error("rl").message(),
              HasSubstr("every group's rewards were equal within the group (rewards from 0 to 1) in 2 consecutive"));
  // A new run starts its range afresh.
  mixed.Observe(Step(2, 0), 0, 1);
  mixed.Observe(Step(0, 4), 0, 0);
  mixed.Observe(Step(0, 4), 0, 0);
  EXPECT_THAT(mixed.Error("rl").message(), HasSubstr("all rewards 0 in 2 consecutive batches"));
}

}  // namespace
}  // namespace swarr
