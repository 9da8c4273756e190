#include "learner/rl_driver.h"

#include <chrono>
#include <algorithm>
#include <cstdio>
#include <memory>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "common/testing/numeric.h"
#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

// The toy task: digits 0-9 are ids 3..12, '+' = 13, '=' = 14, EOS = 2. The prompt is
// [a, +, b, =]; the answer is the digit (a + b) mod 10, the first generated token.
constexpr int64_t kDigit0 = 3, kPlus = 13, kEquals = 14, kEos = 2;

ModelConfig AdditionConfig() {
  ModelConfig c = TinyConfig({0, 0}, 0, /*vocab=*/16);
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  return c;
}

RlPrompt AdditionPrompt(int64_t a, int64_t b) {
  RlPrompt p;
  p.group = absl::StrCat(a, "+", b);
  p.ids = {kDigit0 + a, kPlus, kDigit0 + b, kEquals};
  p.answer = std::to_string((a + b) % 10);
  return p;
}

// Stratified prompts: all 100 problems in a fresh random order, then again. Every answer
// digit is equally frequent within each pass, so a policy that ignores the prompt and just
// favours some digits gains nothing (it would with i.i.d. prompts, by chance, and collapse).
PromptSource AllProblemsInRandomOrder() {
  auto order = std::make_shared<std::vector<int64_t>>();
  return [order](std::mt19937_64& rng) {
    if (order->empty()) {
      for (int64_t i = 0; i < 100; ++i) order->push_back(i);
      std::shuffle(order->begin(), order->end(), rng);
    }
    const int64_t i = order->back();
    order->pop_back();
    return AdditionPrompt(i / 10, i % 10);
  };
}

double AdditionReward(const RlPrompt& prompt, const std::vector<int64_t>& completion) {
  return !completion.empty() && completion[0] == kDigit0 + std::stoi(prompt.answer) ? 1.0 : 0.0;
}

// Greedy accuracy over all 100 prompts (independent of the training samples).
double GreedyAccuracy(const Model& model) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> ids;
  for (int a = 0; a < 10; ++a) {
    for (int b = 0; b < 10; ++b) ids.insert(ids.end(), {kDigit0 + a, kPlus, kDigit0 + b, kEquals});
  }
  at::Tensor t = at::tensor(ids, at::kLong).view({100, 4});
  at::Tensor pred = model.Logits(t).select(1, 3).argmax(-1);
  int correct = 0;
  for (int a = 0; a < 10; ++a) {
    for (int b = 0; b < 10; ++b) correct += pred[a * 10 + b].item<int64_t>() == kDigit0 + (a + b) % 10;
  }
  return correct / 100.0;
}

RlOptions AdditionTrainerOptions() {
  RlOptions o;
  o.schedule.lr = 1e-3;
  // Without an entropy bonus the policy turns deterministic on prompts it still gets wrong;
  // their groups are then uniform (all 0), dropped, and never learnt.
  o.loss.entropy_coef = 0.03;
  o.epochs = 1;
  o.schedule.kind = "constant";
  o.schedule.warmup_steps = 0;
  o.minibatches = 4;
  o.adam.grad_clip = 1.0;
  return o;
}

RlDriverOptions AdditionDriverOptions() {
  RlDriverOptions o;
  o.prompts_per_step = 100;  // one pass over all problems per step
  o.samples_per_prompt = 8;
  o.max_new_tokens = 1;
  o.stop_token_ids = {kEos};
  o.max_batch = 800;
  o.seed = 7;
  return o;
}

TEST(RlDriverTest, LearnsAdditionModTenFromScratch) {
  auto model = Model::RandomInit(AdditionConfig(), 11);
  ASSERT_TRUE(model.ok()) << model.status();
  auto trainer = RlTrainer::Create(model->get(), nullptr, AdditionTrainerOptions());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  RlDriver driver(model->get(), trainer->get(), AllProblemsInRandomOrder(), AdditionReward, AdditionDriverOptions());

  const int kMaxSteps = 250;
  const auto start = std::chrono::steady_clock::now();
  double first_reward = -1, reward = 0, avg = 0;
  int reached = -1;
  for (int s = 0; s < kMaxSteps; ++s) {
    auto m = driver.Step();
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->trajectories_invalid, 0);
    reward = m->reward_mean;
    if (s == 0) first_reward = reward;
    avg = s == 0 ? reward : 0.8 * avg + 0.2 * reward;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (s % 10 == 0) {
      std::printf("step %3d  %6.2fs  reward %.3f (ema %.3f)  groups %lld/%lld  kl %.4f  entropy %.3f\n", s, secs,
                  reward, avg, static_cast<long long>(m->groups_used),
                  static_cast<long long>(m->groups_used + m->groups_dropped_uniform), m->kl, m->entropy);
      std::fflush(stdout);
    }
    if (s >= 4 && avg > 0.9) {
      reached = s;
      std::printf("reward EMA %.3f > 0.9 at step %d after %.2fs\n", avg, s, secs);
      break;
    }
  }
  EXPECT_LT(first_reward, 0.15);  // chance is 1/16 for a near-uniform random init
  ASSERT_GE(reached, 0) << "mean reward did not reach 0.9 within " << kMaxSteps << " steps; last " << reward;
  EXPECT_EQ(driver.steps(), reached + 1);
  EXPECT_EQ((*trainer)->policy_version(), reached + 1);
  EXPECT_GT(GreedyAccuracy(**model), 0.9);
}

TEST(RlDriverTest, BuildsOnPolicyTrajectoriesAndRejectsBadOptions) {
  auto model = Model::RandomInit(AdditionConfig(), 3);
  RlOptions to = AdditionTrainerOptions();
  to.dynamic_sampling = false;
  auto trainer = RlTrainer::Create(model->get(), nullptr, to);
  RlDriverOptions o = AdditionDriverOptions();
  o.prompts_per_step = 3;
  o.samples_per_prompt = 4;
  o.max_new_tokens = 3;
  o.stop_token_ids = {};
  std::vector<std::vector<int64_t>> completions;
  RewardFn reward = [&](const RlPrompt& p, const std::vector<int64_t>& c) {
    completions.push_back(c);
    return AdditionReward(p, c);
  };
  RlDriver driver(model->get(), trainer->get(), AllProblemsInRandomOrder(), reward, o);
  for (int s = 0; s < 2; ++s) {
    auto m = driver.Step();
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->trajectories_used, 12);
    EXPECT_EQ(m->groups_used, 3);
    EXPECT_EQ(m->tokens, 12 * 3);
    EXPECT_EQ(m->trajectories_invalid, 0);
    EXPECT_EQ(m->trajectories_dropped_stale, 0);  // tagged with the trainer's version
    // On-policy: exp(learner - behaviour log-prob) is 1 up to the float32 rounding of the two
    // forward passes (docs/testing.md; prompts "a+b=" of 4 tokens + 3 new, near-uniform init so
    // |logits| < 1).
    EXPECT_NEAR(m->importance_weight_mean, 1.0,
                testing_numeric::LogProbTolerance(ForwardReductionLength(AdditionConfig(), 7), 1.0));
    EXPECT_EQ(m->policy_version, s + 1);
  }
  ASSERT_EQ(completions.size(), 24u);
  for (const auto& c : completions) EXPECT_EQ(c.size(), 3u);
  EXPECT_NE(completions[0], completions[1]);  // per-request seeds differ (vocab 16, 3 tokens)

  o.samples_per_prompt = 0;
  RlDriver bad(model->get(), trainer->get(), AllProblemsInRandomOrder(), reward, o);
  EXPECT_THAT(std::string(bad.Step().status().message()), HasSubstr("samples_per_prompt"));
}

}  // namespace
}  // namespace swarr
