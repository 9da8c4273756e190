// The real-model recipes (configs/recipes/*.yaml) load and validate without running: every
// field known and in range, the stage chain right, every data path present in the repository
// and readable by its data set reader, the model path a local HF checkpoint directory under
// models/, settings the docs promise (docs/recipes.md).
#include <string>

#include "common/config/config_loader.h"
#include "common/math/datasets.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

class RecipeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RecipeTest, LoadsValidatesAndPointsAtRealData) {
  const std::string root = SWARR_SOURCE_DIR;
  v1::PipelineConfig p;
  ASSERT_TRUE(LoadYamlConfig(root + "/configs/recipes/" + GetParam(), &p).ok());
  ASSERT_TRUE(ValidatePipeline(p).ok()) << ValidatePipeline(p);
  ASSERT_GE(p.stages_size(), 5);
  // The first stage names the local checkpoint; later ones continue from it.
  EXPECT_EQ(p.stages(0).model().path().rfind("models/Qwen2.5-Math-", 0), 0u) << p.stages(0).model().path();
  for (int i = 1; i < p.stages_size(); ++i) EXPECT_TRUE(p.stages(i).model().path().empty()) << i;
  int sft = -1, rl = -1;
  int64_t window = 0;
  for (int i = 0; i < p.stages_size(); ++i) {
    const v1::Stage& s = p.stages(i);
    SCOPED_TRACE(s.name());
    EXPECT_EQ(s.model().device(), "cuda");
    EXPECT_EQ(s.model().dtype(), "bfloat16");
    EXPECT_EQ(s.data().chat_template(), "chatml");
    if (s.has_train()) sft = i;
    if (s.has_rl()) {
      rl = i;
      EXPECT_EQ(s.rl().reward(), "verifier");
      EXPECT_GT(s.rl().samples_per_prompt(), 1);
    }
    if (s.has_train() || s.has_rl()) {
      // Trained on GSM8K train only: never on a test set.
      EXPECT_EQ(s.data().path(), "data/gsm8k/train.jsonl");
    }
    if (i >= sft && sft >= 0) {
      // From the conversion on, every stage runs under the same window with sinks.
      EXPECT_GT(s.model().attention().window(), 0);
      if (window == 0) window = s.model().attention().window();
      EXPECT_EQ(s.model().attention().window(), window);
      EXPECT_GT(s.model().attention().sinks(), 0);
    } else {
      EXPECT_EQ(s.model().attention().window(), 0) << "SA evaluation before the conversion";
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
  EXPECT_GE(sft, 0);
  EXPECT_GT(rl, sft);
  EXPECT_TRUE(p.stages(p.stages_size() - 1).has_eval());
}

INSTANTIATE_TEST_SUITE_P(Recipes, RecipeTest, ::testing::Values("qwen2.5-math-1.5b.yaml", "qwen2.5-math-7b.yaml"));

}  // namespace
}  // namespace swarr
