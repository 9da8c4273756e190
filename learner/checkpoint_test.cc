#include "learner/checkpoint.h"

#include <sys/stat.h>

#include <fstream>
#include <random>
#include <sstream>

#include <ATen/ATen.h>

#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

std::string TempDir() {
  char tmpl[] = "/tmp/swarr_ckpt_XXXXXX";
  return mkdtemp(tmpl);
}

// One training step of next-token cross-entropy on a batch drawn from `rng`; returns the
// loss. The data depend only on the RNG, which the checkpoint carries.
double TrainStep(const Model& model, AdamW* adam, std::mt19937_64* rng, int64_t step) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 2 * 12; ++i) ids.push_back(3 + static_cast<int64_t>((*rng)() % 60));
  at::Tensor batch = at::tensor(ids, at::kLong).view({2, 12});
  at::Tensor logits = model.Logits(batch);
  at::Tensor loss = at::cross_entropy_loss(logits.narrow(1, 0, 11).reshape({-1, logits.size(2)}),
                                           batch.narrow(1, 1, 11).reshape({-1}));
  loss.backward();
  LrSchedule sched;
  sched.lr = 3e-3;
  sched.warmup_steps = 2;
  sched.total_steps = 8;
  EXPECT_TRUE(adam->Step(ScheduledLr(sched, step)).ok());
  return loss.item<double>();
}

AdamWOptions Opts() {
  AdamWOptions o;
  o.weight_decay = 0.01;
  o.grad_clip = 0.5;
  return o;
}

TEST(CheckpointTest, ResumeIsExact) {
  const int64_t N = 8, k = 3;
  // Straight run.
  std::vector<double> straight;
  {
    auto model = SharpRandomModel(TinyConfig({4, 0}), 21, 2.0);
    AdamW adam(model->named_parameters(), Opts());
    std::mt19937_64 rng(5);
    for (int64_t s = 0; s < N; ++s) straight.push_back(TrainStep(*model, &adam, &rng, s));
  }
  // k steps, checkpoint, then a fresh model and optimizer from the checkpoint.
  const std::string dir = TempDir() + "/checkpoints";
  std::vector<double> resumed;
  {
    auto model = SharpRandomModel(TinyConfig({4, 0}), 21, 2.0);
    AdamW adam(model->named_parameters(), Opts());
    std::mt19937_64 rng(5);
    for (int64_t s = 0; s < k; ++s) resumed.push_back(TrainStep(*model, &adam, &rng, s));
    TrainerState state;
    state.step = k;
    state.policy_version = 7;
    state.data_position = 42;
    std::ostringstream rs;
    rs << rng;
    state.rng_state = rs.str();
    state.extra_json = R"({"note": "x"})";
    ASSERT_TRUE(SaveCheckpoint(dir, *model, adam, state, 2).ok());
  }
  {
    auto latest = LatestCheckpoint(dir);
    ASSERT_TRUE(latest.ok()) << latest.status();
    auto model = Model::Load(*latest);
    ASSERT_TRUE(model.ok()) << model.status();
    AdamW adam((*model)->named_parameters(), Opts());
    auto state = LoadTrainerState(*latest, &adam);
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(state->step, k);
    EXPECT_EQ(state->policy_version, 7);
    EXPECT_EQ(state->data_position, 42);
    EXPECT_THAT(state->extra_json, HasSubstr("note"));
    EXPECT_EQ(adam.step(), k);
    std::mt19937_64 rng;
    std::istringstream(state->rng_state) >> rng;
    for (int64_t s = k; s < N; ++s) resumed.push_back(TrainStep(**model, &adam, &rng, s));
  }
  ASSERT_EQ(resumed.size(), straight.size());
  for (int64_t s = 0; s < N; ++s) EXPECT_EQ(resumed[s], straight[s]) << "step " << s;  // bit-exact
  EXPECT_LT(straight.back(), straight.front());
}

TEST(CheckpointTest, KeepsLastKAndIgnoresIncomplete) {
  auto model = SharpRandomModel(TinyConfig({4}), 1);
  AdamW adam(model->named_parameters(), {});
  const std::string dir = TempDir() + "/ck";
  TrainerState state;
  for (int64_t s : {10, 20, 30, 40}) {
    state.step = s;
    ASSERT_TRUE(SaveCheckpoint(dir, *model, adam, state, 2).ok());
  }
  struct stat st;
  EXPECT_NE(::stat((dir + "/step-000000010").c_str(), &st), 0);
  EXPECT_NE(::stat((dir + "/step-000000020").c_str(), &st), 0);
  EXPECT_EQ(::stat((dir + "/step-000000030/model.safetensors").c_str(), &st), 0);
  // A half-written directory (no trainer_state.json), as a crash would leave it, is ignored.
  ::mkdir((dir + "/step-000000050").c_str(), 0755);
  EXPECT_EQ(*LatestCheckpoint(dir), dir + "/step-000000040");
  EXPECT_EQ(LatestCheckpoint(TempDir()).status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, OtherArchitectureIsAClearError) {
  auto small = SharpRandomModel(TinyConfig({4}), 1);
  AdamW small_adam(small->named_parameters(), {});
  const std::string dir = TempDir() + "/ck";
  TrainerState state;
  auto saved = SaveCheckpoint(dir, *small, small_adam, state, 0);
  ASSERT_TRUE(saved.ok());
  auto big = SharpRandomModel(TinyConfig({4, 4}), 1);  // one more layer
  AdamW big_adam(big->named_parameters(), {});
  auto loaded = LoadTrainerState(*saved, &big_adam);
  ASSERT_FALSE(loaded.ok());
  EXPECT_THAT(std::string(loaded.status().message()), HasSubstr("model.layers.1"));
  // A corrupt trainer_state.json names the file.
  std::ofstream(*saved + "/trainer_state.json") << "{\"step\": \"three\"}";
  auto corrupt = LoadTrainerState(*saved, &small_adam);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_THAT(std::string(corrupt.status().message()), HasSubstr("trainer_state.json: field 'step'"));
}

}  // namespace
}  // namespace swarr
