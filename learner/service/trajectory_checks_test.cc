#include "learner/service/trajectory_checks.h"

#include <cmath>
#include <functional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

v1::Trajectory Valid() {
  v1::Trajectory t;
  t.set_id("rl/abc-7/1");
  t.set_group_id("rl/abc-7");
  t.set_group_size(4);
  t.set_stage("rl");
  for (int id : {3, 4, 5}) t.add_prompt_ids(id);
  for (int id : {6, 7, 2}) t.add_completion_ids(id);
  for (float lp : {-0.5f, -1.0f, -0.1f}) t.add_behaviour_logprobs(lp);
  for (int64_t v : {3, 3, 4}) t.add_token_versions(v);
  t.set_policy_version(3);
  t.set_learner_incarnation("inc");
  t.set_reward(1.0);
  return t;
}

TrajectoryLimits Limits() {
  TrajectoryLimits l;
  l.vocab_size = 24;
  l.max_completion_tokens = 8;
  l.max_total_tokens = 12;
  return l;
}

TEST(TrajectoryChecksTest, AcceptsAWellFormedTrajectory) {
  EXPECT_TRUE(ValidateTrajectory(Valid(), 0, Limits()).ok());
}

TEST(TrajectoryChecksTest, EveryBadFieldIsNamedWithTheId) {
  struct Case {
    std::function<void(v1::Trajectory*)> mutate;
    std::string want;
  };
  const float nan = std::nanf("");
  const std::vector<Case> cases = {
      {[](v1::Trajectory* t) { t->set_group_size(0); }, "group_size"},
      {[](v1::Trajectory* t) { t->clear_group_id(); }, "group_id: empty"},
      {[](v1::Trajectory* t) { t->set_id("other/1"); }, "id: must be"},
      {[](v1::Trajectory* t) { t->set_id("rl/abc-7/4"); }, "id: must be"},
      {[](v1::Trajectory* t) { t->set_id("rl/abc-7/01"); }, "id: must be"},
      {[](v1::Trajectory* t) { t->clear_prompt_ids(); }, "prompt_ids: empty"},
      {[](v1::Trajectory* t) { t->set_prompt_ids(1, 24); }, "prompt_ids[1]: token id 24 is outside the vocabulary"},
      {[](v1::Trajectory* t) { t->set_completion_ids(2, -1); }, "completion_ids[2]: token id -1"},
      {[](v1::Trajectory* t) { t->clear_completion_ids(); }, "completion_ids: empty"},
      {[](v1::Trajectory* t) { t->add_behaviour_logprobs(-1); }, "behaviour_logprobs: 4 log-probs for 3"},
      {[nan](v1::Trajectory* t) { t->set_behaviour_logprobs(1, nan); }, "behaviour_logprobs[1]: not finite"},
      {[](v1::Trajectory* t) { t->clear_token_versions(); }, "token_versions: 0 versions for 3"},
      {[](v1::Trajectory* t) { t->set_reward(INFINITY); }, "reward: not finite"},
      {[](v1::Trajectory* t) { t->clear_learner_incarnation(); }, "learner_incarnation: empty"},
      {[](v1::Trajectory* t) {
         for (int i = 0; i < 6; ++i) {
           t->add_completion_ids(5);
           t->add_behaviour_logprobs(-1);
           t->add_token_versions(4);
         }
       },
       "completion_ids: 9 tokens, more than the stage's max_new_tokens 8"},
      {[](v1::Trajectory* t) {
         for (int i = 0; i < 7; ++i) t->add_prompt_ids(5);
       },
       "prompt + completion is 13 tokens"},
  };
  for (const Case& c : cases) {
    v1::Trajectory t = Valid();
    c.mutate(&t);
    absl::Status st = ValidateTrajectory(t, 0, Limits());
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.want;
    EXPECT_THAT(std::string(st.message()), HasSubstr(c.want));
    EXPECT_THAT(std::string(st.message()), HasSubstr("trajectory " + t.id()));
  }
}

TEST(TrajectoryChecksTest, TokenVersionsStartAtPolicyVersionAndNeverDecrease) {
  EXPECT_TRUE(ValidateTokenVersionOrder(Valid()).ok());
  v1::Trajectory t = Valid();
  t.set_token_versions(2, 2);
  absl::Status st = ValidateTokenVersionOrder(t);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("trajectory rl/abc-7/1: token_versions[2]: decreases (3 then 2)"));
  t = Valid();
  t.set_policy_version(4);
  st = ValidateTokenVersionOrder(t);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("token_versions[0]: is 3, but policy_version (the oldest) is 4"));
}

TEST(TrajectoryChecksTest, AnEmptyIdIsNamedByItsPosition) {
  v1::Trajectory t = Valid();
  t.clear_id();
  absl::Status st = ValidateTrajectory(t, 5, Limits());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("trajectory #5: id: empty"));
}

}  // namespace
}  // namespace swarr
