// `swarr train` as a user runs it: real processes, real run directories.
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

const std::string kSource = SWARR_SOURCE_DIR;
using cli_testing::Slurp;
using cli_testing::TempDir;

// Exit status of `swarr ARGS`; its stderr in *err.
int RunSwarr(const std::string& args, std::string* err) {
  const cli_testing::Result r = cli_testing::RunSwarr(args);
  *err = r.err;
  return r.status;
}

// A small SFT stage on the synthetic task with `max_steps`.
std::string SftConfig(const std::string& dir, int max_steps) {
  const std::string path = dir + "/stage_" + std::to_string(max_steps) + ".yaml";
  std::ofstream(path) << "name: sft\nseed: 3\ntrain:\n  micro_batch_tokens: 256\n  grad_accum_steps: 2\n"
                         "model:\n  path: " << kSource << "/configs/models/tiny\n"
                      << "data:\n  format: synthetic\n  synthetic_task: sum_digits\n  synthetic_size: 500\n"
                         "  seed: 4\noptimizer:\n  lr: 3.0e-3\n  warmup_steps: 2\n  schedule: constant\n"
                         "  weight_decay: 0.01\nstop:\n  max_steps: 12\n"
                         "checkpoint:\n  every_steps: 3\n  keep_last: 2\n";
  // Only the stop rule differs between runs (a constant schedule does not depend on it).
  std::string text = Slurp(path);
  text.replace(text.find("max_steps: 12"), 13, "max_steps: " + std::to_string(max_steps));
  std::ofstream(path, std::ios::trunc) << text;
  return path;
}

std::vector<nlohmann::json> Metrics(const std::string& run_dir) {
  std::vector<nlohmann::json> out;
  std::istringstream in(Slurp(run_dir + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(TrainCliTest, SftResumesExactlyInANewProcess) {
  const std::string dir = TempDir();
  std::string err;
  // Straight: 12 steps.
  ASSERT_EQ(RunSwarr("train --config " + SftConfig(dir, 12) + " --run-dir " + dir + "/a", &err), 0) << err;
  // 6 steps, then a new process continues the same run directory to 12.
  ASSERT_EQ(RunSwarr("train --config " + SftConfig(dir, 6) + " --run-dir " + dir + "/b", &err), 0) << err;
  ASSERT_EQ(RunSwarr("train --config " + SftConfig(dir, 12) + " --run-dir " + dir + "/b", &err), 0) << err;
  EXPECT_THAT(err, HasSubstr("resuming"));
  auto a = Metrics(dir + "/a"), b = Metrics(dir + "/b");
  ASSERT_EQ(a.size(), 12u);
  ASSERT_EQ(b.size(), 12u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i]["step"], a[i]["step"]);
    for (const char* key : {"loss", "lr", "tokens", "grad_norm"}) {
      EXPECT_EQ(b[i][key], a[i][key]) << key << " at step " << a[i]["step"];
    }
  }
  EXPECT_LT(a.back()["loss"].get<double>(), a.front()["loss"].get<double>());
  // Checkpoints: the newest two, and the final HF directory.
  EXPECT_FALSE(Slurp(dir + "/a/checkpoints/step-000000012/trainer_state.json").empty());
  EXPECT_FALSE(Slurp(dir + "/a/checkpoints/step-000000009/trainer_state.json").empty());
  EXPECT_TRUE(Slurp(dir + "/a/checkpoints/step-000000006/trainer_state.json").empty());
  EXPECT_THAT(Slurp(dir + "/a/final/config.json"), HasSubstr("qwen2"));
}

std::string RlConfig(const std::string& dir, int max_steps) {
  const std::string path = dir + "/rl_" + std::to_string(max_steps) + ".yaml";
  std::ofstream(path) << "name: rl\nseed: 1\nrl:\n  prompts_per_step: 8\n  samples_per_prompt: 4\n"
                         "  max_new_tokens: 4\n  reward: exact\n  dynamic_sampling: false\n"
                         "model:\n  path: " << dir << "/sft/final\n  attention:\n    window: 4\n"
                      << "data:\n  format: synthetic\n  synthetic_task: sum_digits\n"
                         "optimizer:\n  lr: 1.0e-4\nstop:\n  max_steps: " << max_steps << "\n"
                         "checkpoint:\n  every_steps: 2\n";
  return path;
}

TEST(TrainCliTest, RlStageAfterSftResumesExactly) {
  const std::string dir = TempDir();
  std::string err;
  ASSERT_EQ(RunSwarr("train --config " + SftConfig(dir, 12) + " --run-dir " + dir + "/sft", &err), 0) << err;
  ASSERT_EQ(RunSwarr("train --config " + RlConfig(dir, 4) + " --run-dir " + dir + "/rl", &err), 0) << err;
  // 2 steps, then a new process continues to 4.
  ASSERT_EQ(RunSwarr("train --config " + RlConfig(dir, 2) + " --run-dir " + dir + "/rl2", &err), 0) << err;
  ASSERT_EQ(RunSwarr("train --config " + RlConfig(dir, 4) + " --run-dir " + dir + "/rl2", &err), 0) << err;
  EXPECT_THAT(err, HasSubstr("resuming"));
  auto m = Metrics(dir + "/rl"), r = Metrics(dir + "/rl2");
  ASSERT_EQ(m.size(), 4u);
  ASSERT_EQ(r.size(), 4u);
  for (size_t i = 0; i < m.size(); ++i) {
    for (const char* key : {"step", "loss", "lr", "tokens", "reward_mean", "kl", "clip_frac", "entropy"}) {
      ASSERT_TRUE(m[i].contains(key)) << key;
      EXPECT_EQ(r[i][key], m[i][key]) << key << " at step " << i + 1;
    }
    // Exact-match rewards (0 or 1) over 8 prompts x 4 samples: a mean of k / 32.
    const double k = m[i]["reward_mean"].get<double>() * 32;
    EXPECT_NEAR(k, std::round(k), 1e-9) << "step " << i + 1;
    EXPECT_GE(k, 0);
    EXPECT_LE(k, 32);
  }
  EXPECT_EQ(m.back()["policy_version"], 4);
  // The RL stage's model keeps its sliding window in the written config.
  EXPECT_THAT(Slurp(dir + "/rl/final/config.json"), HasSubstr("sliding_attention"));
}

// An rl stage whose rewards never vary made no update with dynamic sampling, so its step
// never advanced and it ran until max_minutes (forever without one). It now fails after
// rl.max_uniform_batches batches, naming the reason. The reward here is always 0 on any
// machine: "lagsum" wants a completion ending "A<answer>", and one token cannot be that.
// (max_minutes only bounds this test when the bound is broken.)
TEST(TrainCliTest, RlStageWithAllRewardsZeroFailsInsteadOfRunningOn) {
  const std::string dir = TempDir();
  const std::string path = dir + "/rl_zero.yaml";
  std::ofstream(path) << "name: rl_zero\nseed: 1\nrl:\n  prompts_per_step: 2\n  samples_per_prompt: 4\n"
                         "  max_new_tokens: 1\n  reward: lagsum\n  dynamic_sampling: true\n  max_uniform_batches: 3\n"
                         "model:\n  path: " << kSource << "/configs/models/tiny\n"
                      << "data:\n  format: synthetic\n  synthetic_task: sum_digits\n"
                         "optimizer:\n  lr: 1.0e-4\nstop:\n  max_steps: 5\n  max_minutes: 0.5\n";
  std::string err;
  EXPECT_EQ(RunSwarr("train --config " + path + " --run-dir " + dir + "/rl", &err), 1) << err;
  EXPECT_THAT(err, HasSubstr("stage rl_zero: all rewards 0 in 3 consecutive batches: the task is too hard for this "
                             "policy"));
  const auto m = Metrics(dir + "/rl");
  ASSERT_EQ(m.size(), 3u);
  for (const auto& line : m) {
    EXPECT_EQ(line["updates"], 0);
    EXPECT_EQ(line["reward_mean"], 0.0);
    EXPECT_EQ(line["groups_dropped_uniform"], 2);
  }
}

TEST(TrainCliTest, BadConfigsAreOneLineErrors) {
  const std::string dir = TempDir();
  std::string err;
  std::ofstream(dir + "/typo.yaml") << "name: x\ntrain:\n  micro_batch_tokens: lots\n";
  EXPECT_EQ(RunSwarr("train --config " + dir + "/typo.yaml --run-dir " + dir + "/r", &err), 2);
  EXPECT_THAT(err, HasSubstr("train.micro_batch_tokens: expected integer"));
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(RunSwarr("train --config " + dir + "/missing.yaml --run-dir " + dir + "/r", &err), 2);
  EXPECT_THAT(err, HasSubstr("missing.yaml"));
  EXPECT_EQ(RunSwarr("train --run-dir " + dir + "/r", &err), 2);
  EXPECT_THAT(err, HasSubstr("--config"));
}

}  // namespace
}  // namespace swarr
