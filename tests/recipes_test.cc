// The real-model recipes (configs/recipes/*.yaml) load and validate without running: every
// field known and in range, the stage chain right, every data path present in the repository
// and readable by its data set reader, the model path a local HF checkpoint directory under
// models/, settings the docs promise (docs/recipes.md).
#include <string>

#include "common/config/config_loader.h"
#include "common/config/placement.h"
#include "common/math/datasets.h"
#include "common/util/file.h"
#include "nlohmann/json.hpp"
#include "gtest/gtest.h"

namespace swarr {
namespace {

class RecipeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RecipeTest, LoadsValidatesAndPointsAtRealData) {
  const std::string root = SWARR_SOURCE_DIR;
  v1::PipelineConfig p;
  ASSERT_TRUE(LoadYamlConfig(root + "/configs/recipes/" + GetParam(), &p).ok());
  ASSERT_TRUE(ValidatePipeline(p).ok()) << ValidatePipeline(p);
  ASSERT_GE(p.stages_size(), 8);
  // The first stage names the local checkpoint; later ones continue from the previous stage,
  // except the two SFT arms, which both start from the checkpoint.
  const std::string checkpoint = p.stages(0).model().path();
  EXPECT_EQ(checkpoint.rfind("models/Qwen2.5-Math-", 0), 0u) << checkpoint;
  // The placement puts the learner on a GPU (each stage's device comes from it).
  EXPECT_EQ(p.placement().learner().rfind("cuda", 0), 0u);
  int sa_sft = -1, swa_sft = -1, rl = -1;
  int64_t window = 0;
  for (int i = 0; i < p.stages_size(); ++i) {
    const v1::Stage& s = p.stages(i);
    SCOPED_TRACE(s.name());
    EXPECT_EQ(StageWithPlacement(p, i).model().device().rfind("cuda", 0), 0u);
    EXPECT_EQ(s.model().dtype(), "bfloat16");
    EXPECT_EQ(s.data().chat_template(), "chatml");
    EXPECT_EQ(s.data().system_prompt(), "") << "one prompt format: the default system prompt everywhere";
    const bool windowed = s.model().attention().window() > 0;
    if (s.has_train()) {
      EXPECT_EQ(s.model().path(), checkpoint) << "both SFT arms start from the checkpoint";
      (windowed ? swa_sft : sa_sft) = i;
    } else if (i > 0) {
      EXPECT_TRUE(s.model().path().empty());
    }
    if (s.has_rl()) {
      rl = i;
      EXPECT_EQ(s.rl().reward(), "verifier");
      EXPECT_GT(s.rl().samples_per_prompt(), 1);
    }
    if (s.has_eval()) {
      // Greedy and sampled accuracy (pass@1 / pass@8 over 8 samples at the RL temperature).
      EXPECT_TRUE(s.eval().greedy());
      EXPECT_GE(s.eval().sampled(), 8);
      EXPECT_DOUBLE_EQ(s.eval().temperature(), 1.0);
    }
    if (s.has_train() || s.has_rl()) {
      // Trained on GSM8K train only: never on a test set.
      EXPECT_EQ(s.data().path(), "data/gsm8k/train.jsonl");
    }
    if (swa_sft >= 0) {
      // From the conversion on, every stage runs under the same window with sinks.
      EXPECT_TRUE(windowed);
      if (window == 0) window = s.model().attention().window();
      EXPECT_EQ(s.model().attention().window(), window);
      EXPECT_GT(s.model().attention().sinks(), 0);
    } else {
      EXPECT_FALSE(windowed) << "SA stages (the model as it comes, the SA-SFT control) before the conversion";
    }
    // The data file exists in the repository and its reader accepts every line.
    DatasetSpec spec;
    auto format = ParseDatasetFormat(s.data().format());
    ASSERT_TRUE(format.ok()) << format.status();
    spec.format = *format;
    spec.path = root + "/" + s.data().path();
    auto reader = DatasetReader::Open(spec);
    ASSERT_TRUE(reader.ok()) << reader.status();
    auto problems = (*reader)->ReadAll();
    ASSERT_TRUE(problems.ok()) << problems.status();
    EXPECT_GT(problems->size(), 100u);
  }
  EXPECT_GE(sa_sft, 1) << "an SA-SFT control arm";
  EXPECT_GT(swa_sft, sa_sft);
  EXPECT_GT(rl, swa_sft);
  EXPECT_TRUE(p.stages(p.stages_size() - 1).has_eval());
  // The window binds: most GSM8K test sequences (chat prompt + reference solution, measured by
  // bench/token_lengths into bench/results/token_lengths.json) are longer than it.
  auto lengths = ReadFile(root + "/bench/results/token_lengths.json");
  ASSERT_TRUE(lengths.ok()) << lengths.status();
  const auto j = nlohmann::json::parse(*lengths);
  const auto& share = j["sets"]["gsm8k_test"]["share_longer_than_window"];
  ASSERT_TRUE(share.contains(std::to_string(window))) << window;
  EXPECT_GT(share[std::to_string(window)].get<double>(), 0.5) << "W = " << window << " hardly binds on GSM8K";
}

INSTANTIATE_TEST_SUITE_P(Recipes, RecipeTest, ::testing::Values("qwen2.5-math-1.5b.yaml", "qwen2.5-math-7b.yaml"));

}  // namespace
}  // namespace swarr
