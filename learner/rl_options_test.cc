// An rl stage's YAML reaches RlOptions (RlOptionsFromStage): the RL algorithm's options of
// issue 17 and their defaults.
#include "common/config/config_loader.h"
#include "gtest/gtest.h"
#include "learner/stage_common.h"

namespace swarr {
namespace {

v1::Stage Parse(const std::string& yaml) {
  v1::Stage stage;
  EXPECT_TRUE(ParseYamlConfig(yaml, &stage).ok()) << yaml;
  return stage;
}

TEST(RlOptionsFromStageTest, AlgorithmOptionsAndDefaults) {
  const RlOptions on = RlOptionsFromStage(Parse(
      "rl: {prompts_per_step: 4, samples_per_prompt: 2, max_new_tokens: 64, epochs: 2, minibatches: 3,\n"
      "     entropy_coef: 0.01, kl_coef: 0.02, kl_reward_coef: 0.05, overlong_filter: true,\n"
      "     overlong_buffer: 16, overlong_penalty: 0.5, advantage: reward}\n"
      "stop: {max_steps: 10}\n"));
  EXPECT_DOUBLE_EQ(on.loss.entropy_coef, 0.01);
  EXPECT_DOUBLE_EQ(on.loss.kl_coef, 0.02);
  EXPECT_DOUBLE_EQ(on.kl_reward_coef, 0.05);
  EXPECT_TRUE(on.overlong_filter);
  EXPECT_EQ(on.overlong_buffer, 16);
  EXPECT_DOUBLE_EQ(on.overlong_penalty, 0.5);
  EXPECT_EQ(on.max_new_tokens, 64);
  EXPECT_FALSE(on.advantages.subtract_mean);
  EXPECT_EQ(on.epochs, 2);
  EXPECT_EQ(on.minibatches, 3);
  EXPECT_EQ(on.schedule.total_steps, 10 * 2 * 3);  // optimizer steps

  const RlOptions off = RlOptionsFromStage(Parse("rl: {prompts_per_step: 4, samples_per_prompt: 2, max_new_tokens: 64}\n"));
  EXPECT_EQ(off.loss.entropy_coef, 0.0);
  EXPECT_EQ(off.kl_reward_coef, 0.0);
  EXPECT_FALSE(off.overlong_filter);
  EXPECT_EQ(off.overlong_buffer, 0);
  EXPECT_DOUBLE_EQ(off.overlong_penalty, 1.0);  // unset = 1.0 (used only with a buffer)
  EXPECT_TRUE(off.advantages.subtract_mean);
}

}  // namespace
}  // namespace swarr
