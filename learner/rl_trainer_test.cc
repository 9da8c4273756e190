#include "learner/rl_trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "common/model/generator.h"
#include "common/testing/numeric.h"
#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "learner/logprobs.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using testing_numeric::Float32Tolerance;
using testing_numeric::LogProbTolerance;
using testing_numeric::RelErrWithin;

ModelConfig Config() { return TinyConfig({0, 4}, 0, /*vocab=*/32); }

RlOptions Options() {
  RlOptions o;
  o.schedule.lr = 1e-2;
  o.schedule.kind = "constant";
  o.adam.grad_clip = 1.0;
  return o;
}

// The model's own log-probs of `completion` after `prompt` (what a rollout would report).
std::vector<float> OwnLogProbs(const Model& model, const std::vector<int64_t>& prompt,
                               const std::vector<int64_t>& completion, double temperature = 1.0) {
  at::NoGradGuard no_grad;
  auto packed = PackSequences({prompt}, {completion}, model.config().vocab_size);
  at::Tensor lp = ComputeTokenLogProbs(model, packed->tokens, temperature, false).logprobs.to(at::kFloat);
  std::vector<float> out;
  for (size_t j = 0; j < completion.size(); ++j) out.push_back(lp[0][prompt.size() - 1 + j].item<float>());
  return out;
}

Trajectory Make(const Model& model, const std::string& id, const std::string& group, std::vector<int64_t> prompt,
                std::vector<int64_t> completion, double reward, int64_t version) {
  Trajectory t;
  t.id = id;
  t.group = group;
  t.behaviour_logprobs = OwnLogProbs(model, prompt, completion);
  t.prompt = std::move(prompt);
  t.completion = std::move(completion);
  t.reward = reward;
  t.policy_version = version;
  return t;
}

// A group of 8 for prompt {5, 6, 7}: completions starting with token 9 get reward 1.
std::vector<Trajectory> RewardNineBatch(const Model& model, int64_t version, const std::string& tag = "") {
  std::vector<Trajectory> batch;
  for (int i = 0; i < 8; ++i) {
    const int64_t first = i % 2 == 0 ? 9 : 10 + i;
    batch.push_back(Make(model, absl::StrCat(tag, "t", i), tag + "g", {5, 6, 7}, {first, 20 + i}, i % 2 == 0 ? 1 : 0,
                         version));
  }
  return batch;
}

double ProbOfNextToken(const Model& model, const std::vector<int64_t>& prompt, int64_t token) {
  at::NoGradGuard no_grad;
  at::Tensor logits = model.Logits(at::tensor(prompt, at::kLong).view({1, -1}));
  return at::softmax(logits[0][-1].to(at::kDouble), -1)[token].item<double>();
}

TEST(RlTrainerTest, RaisesProbabilityOfRewardedToken) {
  auto model = SharpRandomModel(Config(), 1, 2.0);
  auto trainer = RlTrainer::Create(model.get(), nullptr, Options());
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const double before = ProbOfNextToken(*model, {5, 6, 7}, 9);
  double prev = before;
  for (int s = 0; s < 10; ++s) {
    auto m = (*trainer)->Step(RewardNineBatch(*model, (*trainer)->policy_version()));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->updates, 1);
    EXPECT_EQ(m->step, s + 1);
    EXPECT_EQ(m->policy_version, s + 1);
    EXPECT_EQ(m->trajectories_used, 8);
    EXPECT_EQ(m->groups_used, 1);
    EXPECT_EQ(m->tokens, 16);
    EXPECT_DOUBLE_EQ(m->reward_mean, 0.5);
    EXPECT_DOUBLE_EQ(m->reward_std, 0.5);
    EXPECT_TRUE(std::isfinite(m->loss));
    EXPECT_GT(m->grad_norm, 0);
    // One epoch of one minibatch: the only update is on the weights that scored the old
    // log-probs, ratio 1 up to rounding, nowhere near the clip range.
    EXPECT_EQ(m->clip_frac, 0);
    EXPECT_DOUBLE_EQ(m->lr, 1e-2);
    const double p = ProbOfNextToken(*model, {5, 6, 7}, 9);
    EXPECT_GT(p, prev) << "step " << s;
    prev = p;
  }
  const double after = ProbOfNextToken(*model, {5, 6, 7}, 9);
  std::printf("P(9 | prompt): %.4f -> %.4f\n", before, after);
  EXPECT_LT(before, 0.1);
  EXPECT_GT(after, 0.3);
  EXPECT_EQ((*trainer)->policy_version(), 10);
  EXPECT_EQ((*trainer)->optimizer().step(), 10);
}

TEST(RlTrainerTest, EpochsAndMinibatchesAreOptimizerSteps) {
  auto model = SharpRandomModel(Config(), 1, 2.0);
  RlOptions o = Options();
  o.epochs = 2;
  o.minibatches = 3;
  auto trainer = RlTrainer::Create(model.get(), nullptr, o);
  std::vector<Trajectory> batch;
  for (const std::string tag : {"a", "b", "c", "d"}) {
    for (Trajectory& t : RewardNineBatch(*model, 0, tag)) batch.push_back(std::move(t));
  }
  auto m = (*trainer)->Step(batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->updates, 6);  // 2 epochs x 3 minibatches of 4 groups
  EXPECT_EQ(m->step, 6);
  EXPECT_EQ(m->policy_version, 1);
  // The second epoch trains on weights that moved since the old log-probs were scored: ratios
  // leave [0.8, 1.28] and PPO-clip takes the clipped branch for some tokens.
  std::printf("clip fraction over 2 epochs x 3 minibatches: %.4f\n", m->clip_frac);
  EXPECT_GT(m->clip_frac, 0);
  batch.resize(16);  // 2 groups: only 2 minibatches per epoch
  for (Trajectory& t : batch) t.policy_version = 1;
  m = (*trainer)->Step(batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->updates, 4);
  EXPECT_EQ(m->step, 10);
  EXPECT_EQ(m->policy_version, 2);
}

TEST(RlTrainerTest, DynamicSamplingDropsUniformGroups) {
  for (bool dynamic : {true, false}) {
    auto model = SharpRandomModel(Config(), 1, 2.0);
    RlOptions o = Options();
    o.dynamic_sampling = dynamic;
    auto trainer = RlTrainer::Create(model.get(), nullptr, o);
    std::vector<Trajectory> batch = RewardNineBatch(*model, 0);
    for (int i = 0; i < 4; ++i) batch.push_back(Make(*model, absl::StrCat("u", i), "uniform", {8}, {9, 9}, 1.0, 0));
    auto m = (*trainer)->Step(batch);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->groups_dropped_uniform, dynamic ? 1 : 0);
    EXPECT_EQ(m->trajectories_dropped_uniform, dynamic ? 4 : 0);
    EXPECT_EQ(m->groups_used, dynamic ? 1 : 2);
    EXPECT_EQ(m->trajectories_used, dynamic ? 8 : 12);
    EXPECT_NEAR(m->reward_mean, 8.0 / 12.0, 1e-12);  // before dropping
    EXPECT_EQ(m->updates, 1);
  }
  // Only uniform groups: no update, no new version.
  auto model = SharpRandomModel(Config(), 1, 2.0);
  auto trainer = RlTrainer::Create(model.get(), nullptr, Options());
  std::vector<Trajectory> batch;
  for (int i = 0; i < 4; ++i) batch.push_back(Make(*model, absl::StrCat("u", i), "uniform", {8}, {9}, 0.0, 0));
  batch.push_back(Make(*model, "alone", "single", {8}, {9}, 1.0, 0));  // a group of one
  auto m = (*trainer)->Step(batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->groups_dropped_uniform, 2);
  EXPECT_EQ(m->updates, 0);
  EXPECT_EQ(m->policy_version, 0);
  EXPECT_EQ((*trainer)->policy_version(), 0);
  EXPECT_EQ((*trainer)->optimizer().step(), 0);
}

// Four trajectories of one group: completion lengths 2, 3, 4, 1 (mean 2.5, max 4); the
// 3- and 4-token ones hit the length limit (truncated).
std::vector<Trajectory> LengthBatch(const Model& model, std::vector<double> rewards) {
  std::vector<Trajectory> batch;
  const std::vector<std::vector<int64_t>> completions = {{9, 3}, {10, 4, 5}, {11, 6, 7, 8}, {12}};
  for (int i = 0; i < 4; ++i) {
    batch.push_back(Make(model, absl::StrCat("len", i), "g", {5, 6, 7}, completions[i], rewards[i], 0));
    batch.back().truncated = completions[i].size() >= 3;
  }
  return batch;
}

TEST(RlTrainerTest, LengthAndTruncationMetricsAndOverlongFiltering) {
  for (bool filter : {false, true}) {
    auto model = SharpRandomModel(Config(), 1, 2.0);
    RlOptions o = Options();
    o.overlong_filter = filter;
    auto trainer = RlTrainer::Create(model.get(), nullptr, o);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    auto m = (*trainer)->Step(LengthBatch(*model, {1, 0, 1, 0}));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_DOUBLE_EQ(m->response_length_mean, 2.5);
    EXPECT_EQ(m->response_length_max, 4);
    EXPECT_DOUBLE_EQ(m->truncated_frac, 0.5);
    // Filtering leaves the two truncated ones (3 + 4 tokens) out of the loss.
    EXPECT_EQ(m->trajectories_overlong_filtered, filter ? 2 : 0);
    EXPECT_EQ(m->trajectories_used, filter ? 2 : 4);
    EXPECT_EQ(m->tokens, filter ? 2 + 1 : 2 + 3 + 4 + 1);
    EXPECT_EQ(m->updates, 1);
    EXPECT_DOUBLE_EQ(m->reward_shaped_mean, 0.5);  // no shaping
    const auto fields = RlAlgorithmMetricFields(*m);
    EXPECT_EQ(fields[0].first, "response_length_mean");
    EXPECT_DOUBLE_EQ(fields[0].second, 2.5);
  }
  // Only truncated trajectories would be left: nothing to train on, no new version.
  auto model = SharpRandomModel(Config(), 1, 2.0);
  RlOptions o = Options();
  o.overlong_filter = true;
  auto trainer = RlTrainer::Create(model.get(), nullptr, o);
  std::vector<Trajectory> batch = LengthBatch(*model, {1, 0, 1, 0});
  batch.erase(batch.begin() + 3);
  batch.erase(batch.begin());
  auto m = (*trainer)->Step(batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->trajectories_overlong_filtered, 2);
  EXPECT_EQ(m->groups_used, 0);
  EXPECT_EQ(m->updates, 0);
  EXPECT_EQ((*trainer)->policy_version(), 0);
}

TEST(RlTrainerTest, SoftOverlongPenaltyShapesTheReward) {
  // Limit 4 tokens, buffer 2, penalty 1: lengths 2, 3, 4, 1 get 0, -0.5, -1, 0. Every raw
  // reward is 1 (a uniform group that dynamic sampling would drop); shaped 1, 0.5, 0, 1 it
  // trains, favouring the short answers.
  for (int64_t buffer : {0, 2}) {
    auto model = SharpRandomModel(Config(), 1, 2.0);
    RlOptions o = Options();
    o.max_new_tokens = 4;
    o.overlong_buffer = buffer;
    auto trainer = RlTrainer::Create(model.get(), nullptr, o);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    auto m = (*trainer)->Step(LengthBatch(*model, {1, 1, 1, 1}));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_DOUBLE_EQ(m->reward_mean, 1.0);  // the raw reward
    EXPECT_DOUBLE_EQ(m->overlong_penalty_mean, buffer > 0 ? -1.5 / 4 : 0.0);
    EXPECT_DOUBLE_EQ(m->reward_shaped_mean, buffer > 0 ? 2.5 / 4 : 1.0);
    EXPECT_EQ(m->groups_used, buffer > 0 ? 1 : 0);
    EXPECT_EQ(m->updates, buffer > 0 ? 1 : 0);
  }
  RlOptions o = Options();
  o.overlong_buffer = 2;  // no max_new_tokens
  auto model = SharpRandomModel(Config(), 1, 2.0);
  auto bad = RlTrainer::Create(model.get(), nullptr, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("overlong_buffer > 0 needs max_new_tokens"));
}

TEST(RlTrainerTest, KlInTheRewardIsTheSequenceSumOfBehaviourMinusReference) {
  // The reference has the policy's weights. Behaviour log-probs raised by 0.1 per token give
  // a k1 KL of 0.1 x length: 0.2, 0.3, 0.4, 0.1 (mean 0.25). With kl_reward_coef 2 and raw
  // rewards all 1, the shaped rewards are 0.6, 0.4, 0.2, 0.8 (mean 0.5): no longer uniform.
  auto model = SharpRandomModel(Config(), 1, 2.0);
  auto reference = SharpRandomModel(Config(), 1, 2.0);
  RlOptions o = Options();
  o.kl_reward_coef = 2.0;
  auto trainer = RlTrainer::Create(model.get(), reference.get(), o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  std::vector<Trajectory> batch = LengthBatch(*model, {1, 1, 1, 1});
  for (Trajectory& t : batch) {
    for (float& lp : t.behaviour_logprobs) lp += 0.1f;
  }
  auto m = (*trainer)->Step(batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NEAR(m->kl_reward_mean, 0.25, 1e-5);  // float32 log-probs
  EXPECT_NEAR(m->reward_shaped_mean, 0.5, 1e-5);
  EXPECT_DOUBLE_EQ(m->reward_mean, 1.0);
  EXPECT_EQ(m->groups_used, 1);
  EXPECT_EQ(m->updates, 1);
  // Behaviour == policy == reference: no penalty.
  model = SharpRandomModel(Config(), 1, 2.0);
  trainer = RlTrainer::Create(model.get(), reference.get(), o);
  m = (*trainer)->Step(LengthBatch(*model, {1, 0, 1, 0}));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_NEAR(m->kl_reward_mean, 0.0, 1e-5);
  EXPECT_NEAR(m->reward_shaped_mean, 0.5, 1e-5);
  // It needs a reference.
  auto bad = RlTrainer::Create(model.get(), nullptr, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("kl_reward_coef > 0 needs a reference"));
}

TEST(RlTrainerTest, StaleTrajectoriesAreDroppedAndCounted) {
  auto model = SharpRandomModel(Config(), 1, 2.0);
  RlOptions o = Options();
  o.max_staleness = 1;
  auto trainer = RlTrainer::Create(model.get(), nullptr, o);
  for (int s = 0; s < 2; ++s) ASSERT_TRUE((*trainer)->Step(RewardNineBatch(*model, s, absl::StrCat(s))).ok());
  ASSERT_EQ((*trainer)->policy_version(), 2);
  std::vector<Trajectory> batch;
  for (int v = 0; v <= 2; ++v) {
    for (Trajectory& t : RewardNineBatch(*model, v, absl::StrCat("v", v))) batch.push_back(std::move(t));
  }
  auto m = (*trainer)->Step(batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->trajectories_dropped_stale, 8);  // version 0 < 2 - 1
  EXPECT_EQ(m->trajectories_used, 16);
  EXPECT_EQ(m->trajectories_invalid, 0);
  EXPECT_EQ(m->policy_version, 3);

  // Everything stale: no update.
  m = (*trainer)->Step(RewardNineBatch(*model, 0, "old"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->trajectories_dropped_stale, 8);
  EXPECT_EQ(m->updates, 0);
  EXPECT_EQ(m->policy_version, 3);

  // max_staleness < 0 keeps everything.
  o.max_staleness = -1;
  auto keep_all = RlTrainer::Create(model.get(), nullptr, o);
  ASSERT_TRUE((*keep_all)->Step(RewardNineBatch(*model, 0, "x")).ok());
  m = (*keep_all)->Step(RewardNineBatch(*model, 0, "y"));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->trajectories_dropped_stale, 0);
  EXPECT_EQ(m->trajectories_used, 8);
}

TEST(RlTrainerTest, InvalidTrajectoriesAreSkippedCountedAndExplained) {
  auto model = SharpRandomModel(Config(), 1, 2.0);
  RlOptions o = Options();
  o.max_seq_len = 6;
  auto trainer = RlTrainer::Create(model.get(), nullptr, o);
  std::vector<Trajectory> good = RewardNineBatch(*model, 0);
  std::vector<Trajectory> bad(8, good[0]);
  for (int i = 0; i < 8; ++i) bad[i].id = absl::StrCat("bad", i);
  bad[0].reward = NAN;
  bad[1].completion.clear();
  bad[1].behaviour_logprobs.clear();
  bad[2].completion[1] = 32;
  bad[3].behaviour_logprobs.pop_back();
  bad[4].completion = {9, 1, 1, 1};
  bad[4].behaviour_logprobs = {-1, -1, -1, -1};
  bad[5].id = "t3";  // duplicates good[3]
  bad[6].policy_version = 7;
  bad[7].prompt.clear();
  const std::vector<std::string> why = {"non-finite reward",
                                        "empty completion",
                                        "completion token 1 has id 32, outside the vocabulary [0, 32)",
                                        "1 behaviour log-probs for 2 completion tokens",
                                        "7 tokens, longer than max_seq_len 6",
                                        "duplicate id",
                                        "policy_version 7 is ahead of the trainer's 0",
                                        "empty prompt"};
  std::vector<Trajectory> batch = good;
  batch.insert(batch.end(), bad.begin(), bad.end());
  auto m = (*trainer)->Step(batch);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->trajectories_invalid, 8);
  EXPECT_EQ(m->trajectories_used, 8);
  EXPECT_EQ(m->updates, 1);
  ASSERT_EQ(m->skip_reasons.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_THAT(m->skip_reasons[i], HasSubstr(absl::StrCat("trajectory ", 8 + i, " (", bad[i].id, "): ", why[i])));
  }

  // Only invalid ones: no crash, no update, no version bump.
  m = (*trainer)->Step(bad);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->trajectories_invalid, 7);  // "t3" is not a duplicate any more
  EXPECT_EQ(m->trajectories_dropped_stale, 1);  // ... but of version 0 while the trainer is at 1
  EXPECT_EQ(m->trajectories_used, 0);
  EXPECT_EQ(m->updates, 0);
  EXPECT_EQ(m->policy_version, 1);

  // An empty batch is the caller's mistake.
  auto empty = (*trainer)->Step({});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ((*trainer)->policy_version(), 1);
}

TEST(RlTrainerTest, KlToAnIdenticalReferenceStartsAtZero) {
  auto model = SharpRandomModel(Config(), 1, 2.0);
  auto reference = SharpRandomModel(Config(), 1, 2.0);
  RlOptions o = Options();
  o.loss.kl_coef = 0.1;
  auto trainer = RlTrainer::Create(model.get(), reference.get(), o);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const double max_abs_logit = MaxAbsLogit(*model, at::tensor(std::vector<int64_t>{5, 6, 7, 9, 27}, at::kLong).view({1, -1}));
  double kl_first = -1, kl_last = 0;
  for (int s = 0; s < 4; ++s) {
    auto m = (*trainer)->Step(RewardNineBatch(*model, (*trainer)->policy_version()));
    ASSERT_TRUE(m.ok()) << m.status();
    if (s == 0) kl_first = m->kl;
    kl_last = m->kl;
  }
  // The first update's policy is the reference's weights: the log-probs agree up to float32
  // rounding d (docs/testing.md), and k3 = exp(d) - d - 1 ~ d^2 / 2.
  const double d = LogProbTolerance(ForwardReductionLength(Config(), 5), max_abs_logit);
  EXPECT_NEAR(kl_first, 0.0, d * d);
  EXPECT_GT(kl_last, 1e-4);
  // The reference stays frozen while the policy moves.
  auto fresh = SharpRandomModel(Config(), 1, 2.0);
  EXPECT_TRUE(at::equal(reference->named_parameters()[0].second, fresh->named_parameters()[0].second));
  EXPECT_FALSE(at::equal(model->named_parameters()[0].second, reference->named_parameters()[0].second));
}

TEST(RlTrainerTest, GeneratorLogProbsEqualRecomputedOldLogProbs) {
  auto model = SharpRandomModel(TinyConfig({0, 3}, 1, 32), 4, 2.0);
  for (double temperature : {0.7, 1.0}) {
    GeneratorOptions gopts;
    gopts.max_batch = 16;
    Generator gen(*model, gopts);
    std::vector<GenerationRequest> requests;
    for (int i = 0; i < 16; ++i) {
      GenerationRequest r;
      r.prompt = {1 + i % 4, 5, 6 + i % 3};
      r.max_new_tokens = 6;
      r.sampling.temperature = 0.7;
      r.sampling.seed = 100 + i;
      requests.push_back(r);
    }
    auto results = gen.Generate(requests);
    ASSERT_TRUE(results.ok()) << results.status();
    std::vector<Trajectory> batch;
    for (int i = 0; i < 16; ++i) {
      const GenerationResult& g = (*results)[i];
      Trajectory t;
      t.id = absl::StrCat(i);
      t.group = absl::StrCat(i % 4);
      t.prompt = requests[i].prompt;
      t.completion.assign(g.tokens.begin() + g.prompt_length, g.tokens.end());
      t.behaviour_logprobs = g.logprobs;
      t.reward = i % 3 == 0 ? 1 : 0;
      batch.push_back(t);
    }
    // The learner's recomputed log-probs equal the generator's up to float32 rounding
    // (docs/testing.md), at the scale of the logits / 0.7.
    double max_abs_logit = 0;
    for (const GenerationResult& g : *results) {
      max_abs_logit = std::max(max_abs_logit, MaxAbsLogit(*model, at::tensor(g.tokens, at::kLong).view({1, -1})));
    }
    const double tol = LogProbTolerance(ForwardReductionLength(model->config(), 9), max_abs_logit / 0.7);
    RlOptions o = Options();
    o.temperature = temperature;  // the sampling temperature must be the trainer's
    o.dynamic_sampling = false;
    auto trainer = RlTrainer::Create(model.get(), nullptr, o);
    auto m = (*trainer)->Step(batch);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->trajectories_used, 16);
    if (temperature == 0.7) {
      EXPECT_NEAR(m->importance_weight_mean, 1.0, tol);
    } else {
      EXPECT_GT(std::abs(m->importance_weight_mean - 1.0), 10 * tol);  // scored at the wrong temperature
    }
  }
}

TEST(RlTrainerTest, ResumeFromCheckpointIsBitIdentical) {
  const int total = 6, k = 3;
  RlOptions o = Options();
  o.epochs = 2;
  o.minibatches = 2;
  o.schedule.kind = "cosine";
  o.schedule.warmup_steps = 2;
  o.schedule.total_steps = 4 * total;
  auto batch_at = [](const Model& model, int s) {
    std::vector<Trajectory> batch;
    for (const std::string tag : {"a", "b"}) {
      for (Trajectory& t : RewardNineBatch(model, s, absl::StrCat(tag, s))) batch.push_back(std::move(t));
    }
    return batch;
  };
  std::vector<double> straight, resumed;
  {
    auto model = SharpRandomModel(Config(), 2, 2.0);
    auto t = RlTrainer::Create(model.get(), nullptr, o);
    for (int s = 0; s < total; ++s) straight.push_back((*t)->Step(batch_at(*model, s))->loss);
  }
  char tmpl[] = "/tmp/swarr_rl_XXXXXX";
  const std::string dir = std::string(mkdtemp(tmpl)) + "/checkpoints";
  {
    auto model = SharpRandomModel(Config(), 2, 2.0);
    auto t = RlTrainer::Create(model.get(), nullptr, o);
    for (int s = 0; s < k; ++s) resumed.push_back((*t)->Step(batch_at(*model, s))->loss);
    ASSERT_TRUE(SaveCheckpoint(dir, *model, (*t)->optimizer(), (*t)->state(), 1).ok());
  }
  {
    auto latest = LatestCheckpoint(dir);
    ASSERT_TRUE(latest.ok()) << latest.status();
    auto model = Model::Load(*latest);
    ASSERT_TRUE(model.ok()) << model.status();
    auto t = RlTrainer::Create(model->get(), nullptr, o);
    ASSERT_TRUE((*t)->Restore(*latest).ok());
    EXPECT_EQ((*t)->policy_version(), k);
    EXPECT_EQ((*t)->state().step, 4 * k);
    for (int s = k; s < total; ++s) resumed.push_back((*t)->Step(batch_at(**model, s))->loss);
  }
  ASSERT_EQ(resumed.size(), straight.size());
  // Exact: the resumed run restores the same float32 weights and optimizer state bit for bit
  // and runs the same code on the same batches, so every loss is the same double.
  for (int s = 0; s < total; ++s) EXPECT_EQ(resumed[s], straight[s]) << "step " << s;
}

TEST(RlTrainerTest, BadOptionsAreNamed) {
  auto model = SharpRandomModel(Config(), 1, 2.0);
  auto message = [&](RlOptions o, const Model* ref = nullptr) {
    return std::string(RlTrainer::Create(model.get(), ref, o).status().message());
  };
  RlOptions o = Options();
  o.loss.kl_coef = 0.1;
  EXPECT_THAT(message(o), HasSubstr("kl_coef > 0 needs a reference"));
  o = Options();
  o.epochs = 0;
  EXPECT_THAT(message(o), HasSubstr("epochs"));
  o = Options();
  o.minibatches = 0;
  EXPECT_THAT(message(o), HasSubstr("minibatches"));
  o = Options();
  o.temperature = 0;
  EXPECT_THAT(message(o), HasSubstr("temperature"));
  o = Options();
  o.loss.clip_low = 1.0;
  EXPECT_THAT(message(o), HasSubstr("clip_low"));
  o = Options();
  o.schedule.lr = 0;
  EXPECT_FALSE(RlTrainer::Create(model.get(), nullptr, o).ok());
  auto other = SharpRandomModel(TinyConfig({0, 4}, 0, 48), 1);
  EXPECT_THAT(message(Options(), other.get()), HasSubstr("reference vocab_size 48"));
}

// Gradient accumulation over micro-batches: the same loss and the same update as the whole
// minibatch at once, for token_mean and sequence_mean (completions of different lengths, so
// the two weightings differ), packed or not.
TEST(RlTrainerTest, MicroBatchesGiveTheSameUpdate) {
  for (LossAggregation agg : {LossAggregation::kTokenMean, LossAggregation::kSequenceMean}) {
    for (bool packed : {false, true}) {
      std::vector<std::unique_ptr<Model>> models;
      std::vector<RlStepMetrics> metrics;
      for (int64_t micro : {0, 9}) {
        models.push_back(SharpRandomModel(Config(), 1, 2.0));
        RlOptions o = Options();
        o.loss.aggregation = agg;
        o.micro_batch_tokens = micro;
        o.scoring.packed = packed;
        o.scoring.chunk_tokens = 4;
        // Large lr and eps, no clipping: the first AdamW step is then p -= g (to 1e-6
        // relative), so the parameter change shows the gradient itself.
        o.schedule.lr = 1e6;
        o.adam.eps = 1e6;
        o.adam.grad_clip = 0;
        auto trainer = RlTrainer::Create(models.back().get(), nullptr, o);
        ASSERT_TRUE(trainer.ok()) << trainer.status();
        std::vector<Trajectory> batch;
        for (int i = 0; i < 6; ++i) {
          std::vector<int64_t> completion(1 + i % 4, 9 + i);  // 1..4 tokens
          batch.push_back(Make(*models.back(), absl::StrCat("t", i), i < 3 ? "a" : "b", {5, 6, 7}, completion,
                               i % 3 == 0 ? 1 : 0, 0));
        }
        auto m = (*trainer)->Step(batch);
        ASSERT_TRUE(m.ok()) << m.status();
        EXPECT_EQ(m->updates, 1);
        metrics.push_back(*m);
      }
      auto fresh = SharpRandomModel(Config(), 1, 2.0);
      const int64_t k = 2 * ForwardReductionLength(Config(), 7) + 6;  // forward + backward + accumulation
      EXPECT_NEAR(metrics[1].loss, metrics[0].loss, Float32Tolerance(k) * std::abs(metrics[0].loss) + 1e-12);
      EXPECT_EQ(metrics[1].tokens, metrics[0].tokens);
      for (size_t i = 0; i < fresh->named_parameters().size(); ++i) {
        const auto& [name, p0] = fresh->named_parameters()[i];
        const at::Tensor whole = models[0]->named_parameters()[i].second.to(at::kDouble) - p0.to(at::kDouble);
        const at::Tensor micro = models[1]->named_parameters()[i].second.to(at::kDouble) - p0.to(at::kDouble);
        const double norm = whole.norm().item<double>();
        if (norm == 0) continue;
        // Gradient rounding, plus the float32 rounding of the stored parameters themselves.
        const double tol = Float32Tolerance(k) + 2 * testing_numeric::kFloat32Eps * p0.norm().item<double>() / norm;
        EXPECT_TRUE(RelErrWithin(micro, whole, tol)) << name << (agg == LossAggregation::kTokenMean ? " token" : " seq")
                                                     << " packed " << packed;
      }
    }
  }
}

}  // namespace
}  // namespace swarr
