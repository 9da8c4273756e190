#include "common/config/placement.h"

#include <gtest/gtest.h>

#include "common/config/config_loader.h"

namespace swarr {
namespace {

// A pipeline of an SFT stage and an eval stage (only the devices matter here).
v1::PipelineConfig Pipeline(const std::string& placement_yaml, const std::string& stage_device = "") {
  const std::string yaml = R"(
name: p
stages:
  - name: sft
    train: {max_seq_len: 64}
    model: {path: configs/models/tiny)" + (stage_device.empty() ? "" : ", device: " + stage_device) + R"(}
    data: {format: synthetic, synthetic_task: sum_digits}
    optimizer: {lr: 1.0e-3}
    stop: {max_steps: 1}
  - name: ev
    eval: {greedy: true, max_new_tokens: 8}
    data: {format: synthetic, synthetic_task: sum_digits}
)" + placement_yaml;
  v1::PipelineConfig p;
  const absl::Status st = ParseYamlConfig(yaml, &p);
  EXPECT_TRUE(st.ok()) << st;
  return p;
}

std::string Error(const absl::Status& st) { return std::string(st.message()); }

TEST(PlacementTest, ParsesDeviceNames) {
  EXPECT_EQ(ParseDeviceName("cpu")->ToString(), "cpu");
  EXPECT_EQ(ParseDeviceName("cuda")->ToString(), "cuda:0");
  EXPECT_EQ(ParseDeviceName("cuda:7")->ToString(), "cuda:7");
  for (const char* bad : {"", "gpu", "cuda:", "cuda:-1", "cuda:1x", "CUDA:0", "cuda:0:1", "cuda:99999"}) {
    EXPECT_FALSE(ParseDeviceName(bad).ok()) << bad;
  }
}

TEST(PlacementTest, ExpandsRangesAndCommaLists) {
  auto l = ExpandDeviceList({"cuda:1..3", "cpu", "cuda"}, "placement.rollouts");
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(*l, (std::vector<std::string>{"cuda:1", "cuda:2", "cuda:3", "cpu", "cuda:0"}));
  auto c = ExpandDeviceList({"cuda:0, cuda:2..3"}, "--rollout-devices", /*split_commas=*/true);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c, (std::vector<std::string>{"cuda:0", "cuda:2", "cuda:3"}));
  auto empty = ExpandDeviceList({"cuda:3..1"}, "placement.rollouts");
  EXPECT_NE(Error(empty.status()).find("placement.rollouts[0]: \"cuda:3..1\": the range is empty"), std::string::npos)
      << empty.status();
  auto bad = ExpandDeviceList({"cpu", "cpu..cuda:1"}, "placement.rollouts");
  EXPECT_NE(Error(bad.status()).find("placement.rollouts[1]"), std::string::npos) << bad.status();
}

TEST(PlacementTest, ValidatePipelineNamesBadPlacementFields) {
  const absl::Status st = ValidatePipeline(
      Pipeline("placement: {learner: gpu0, rollouts: [cuda:1, tpu], rollout_memory_gib: -1}\n"));
  const std::string msg = Error(st);
  EXPECT_NE(msg.find("placement.learner: \"gpu0\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("placement.rollouts[1]: \"tpu\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("placement.rollout_memory_gib: must be >= 0"), std::string::npos) << msg;
  // A stage device that disagrees with the learner's placement.
  const std::string conflict = Error(ValidatePipeline(Pipeline("placement: {learner: 'cuda:1'}\n", "cpu")));
  EXPECT_NE(conflict.find("stages[0].model.device: \"cpu\" conflicts with placement.learner \"cuda:1\""),
            std::string::npos)
      << conflict;
  // "cuda" in a stage agrees with placement.learner cuda:N; an empty device too.
  EXPECT_TRUE(ValidatePipeline(Pipeline("placement: {learner: 'cuda:1'}\n", "cuda")).ok());
  EXPECT_TRUE(ValidatePipeline(Pipeline("placement: {learner: 'cuda:1'}\n")).ok());
}

TEST(PlacementTest, OneRolloutPerGpuBesideTheLearner) {
  auto r = ResolvePlacement(Pipeline("placement: {learner: 'cuda:0', rollouts: ['cuda:1..3']}\n"), 3, {4, {}});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->learner.size(), 1u);
  EXPECT_EQ(r->learner[0].device, "cuda:0");
  ASSERT_EQ(r->rollouts.size(), 3u);
  EXPECT_EQ(r->rollouts[0].device, "cuda:1");
  EXPECT_EQ(r->rollouts[2].device, "cuda:3");
  EXPECT_EQ(r->Describe(), "cuda:0: learner; cuda:1: rollout-0; cuda:2: rollout-1; cuda:3: rollout-2");
}

TEST(PlacementTest, DevicesTheMachineLacksAreRejected) {
  auto r = ResolvePlacement(Pipeline("placement: {learner: 'cuda:0', rollouts: ['cuda:1..3']}\n"), 3, {2, {}});
  EXPECT_EQ(Error(r.status()),
            "placement.rollouts[1]: \"cuda:2\", but this machine has 2 GPUs (cuda:0..cuda:1)");
  // No GPU at all (a CPU build): a CUDA learner is named by its stage when no placement is set.
  auto cpu_only = ResolvePlacement(Pipeline("", "cuda"), 1, {0, {}});
  EXPECT_NE(Error(cpu_only.status()).find("stages[0].model.device: \"cuda\", but this machine has no usable GPU"),
            std::string::npos)
      << cpu_only.status();
  // The flag overrides the config and is checked the same way.
  auto flag = ResolvePlacement(Pipeline(""), 2, {1, {}}, "cuda:0,cuda:1");
  EXPECT_EQ(Error(flag.status()), "--rollout-devices[1]: \"cuda:1\", but this machine has 1 GPU (cuda:0)");
}

TEST(PlacementTest, CpuPipelineNeedsNoGpu) {
  auto r = ResolvePlacement(Pipeline(""), 2, {0, {}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->learner[0].device, "cpu");
  EXPECT_EQ(r->rollouts[1].device, "cpu");
}

TEST(PlacementTest, ASharedGpuNeedsABudgetForEachService) {
  // One GPU, the learner and two rollouts on it.
  const std::string no_budget = "placement: {learner: cuda, rollouts: [cuda]}\n";
  auto r = ResolvePlacement(Pipeline(no_budget), 2, {1, {141.0}});
  EXPECT_EQ(Error(r.status()),
            "placement: cuda:0 holds learner, rollout-0, rollout-1: a shared GPU needs a memory budget for each "
            "(set placement.learner_memory_gib and placement.rollout_memory_gib)");
  const std::string fits = "placement: {learner: cuda, rollouts: [cuda], learner_memory_gib: 80, rollout_memory_gib: 25}\n";
  auto ok = ResolvePlacement(Pipeline(fits), 2, {1, {141.0}});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->Describe(), "cuda:0: learner (80 GiB), rollout-0 (25 GiB), rollout-1 (25 GiB)");
  // 80 + 3 * 25 = 155 GiB > 141 GiB.
  auto over = ResolvePlacement(Pipeline(fits), 3, {1, {141.0}});
  EXPECT_EQ(Error(over.status()),
            "placement: the budgets on cuda:0 (learner, rollout-0, rollout-1, rollout-2) add up to 155 GiB, more "
            "than its 141 GiB");
  // Two rollouts sharing a GPU without the learner need the rollout budget only.
  auto rollouts_only = ResolvePlacement(Pipeline("placement: {rollouts: ['cuda:1']}\n"), 2, {2, {}});
  EXPECT_NE(Error(rollouts_only.status()).find("(set placement.rollout_memory_gib)"), std::string::npos)
      << rollouts_only.status();
}

TEST(PlacementTest, StageWithPlacementSetsTheLearnersDeviceAndBudget) {
  v1::PipelineConfig p = Pipeline("placement: {learner: 'cuda:1', learner_memory_gib: 60}\n", "cuda");
  v1::Stage s = StageWithPlacement(p, 0);
  EXPECT_EQ(s.model().device(), "cuda:1");
  EXPECT_DOUBLE_EQ(s.memory().max_gib(), 60.0);
  p.mutable_stages(0)->mutable_memory()->set_max_gib(40);
  EXPECT_DOUBLE_EQ(StageWithPlacement(p, 0).memory().max_gib(), 40.0);  // the stage's own, smaller limit
  p.mutable_stages(0)->mutable_memory()->set_max_gib(100);
  EXPECT_DOUBLE_EQ(StageWithPlacement(p, 0).memory().max_gib(), 60.0);
  // Without a placement the stage is unchanged.
  v1::PipelineConfig plain = Pipeline("", "cuda");
  EXPECT_EQ(StageWithPlacement(plain, 0).model().device(), "cuda");
  EXPECT_DOUBLE_EQ(StageWithPlacement(plain, 0).memory().max_gib(), 0.0);
}

}  // namespace
}  // namespace swarr
