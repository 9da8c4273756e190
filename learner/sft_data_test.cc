// SFT data of the math data sets (issue 13): SFT trains on exactly the prompt RL and eval send
// (chat template + the same system prompt), and on targets in the format eval expects.
#include <string>

#include "common/math/prompt_set.h"
#include "common/model/config.h"
#include "common/testing/test_models.h"
#include "common/tokenizer/tokenizer.h"
#include "common/util/file.h"
#include "gtest/gtest.h"
#include "learner/stage_common.h"

namespace swarr {
namespace {

const std::string kShared = SWARR_SHARED_DIR;

// A model directory with the real Qwen2 tokenizer and a tiny config with its vocabulary.
std::string QwenTokenizerModelDir(ModelConfig* config) {
  const std::string dir = ::testing::TempDir() + "/sft_data_model";
  EXPECT_TRUE(MakeDirs(dir).ok());
  *config = TinyConfig({0}, 0, /*vocab=*/151936);
  config->eos_token_ids = {151645};  // <|im_end|>
  EXPECT_TRUE(WriteFileAtomically(dir + "/config.json", {config->ToJson()}).ok());
  auto tok = ReadFile(kShared + "/fixtures/tokenizer/qwen2/tokenizer.json");
  EXPECT_TRUE(tok.ok()) << tok.status();
  EXPECT_TRUE(WriteFileAtomically(dir + "/tokenizer.json", {*tok}).ok());
  return dir;
}

TEST(SftDataTest, Gsm8kPromptsMatchTheEvalPromptsAndTargetsAreBoxed) {
  ModelConfig config;
  const std::string dir = QwenTokenizerModelDir(&config);
  auto model = Model::RandomInit(config, 1);
  ASSERT_TRUE(model.ok()) << model.status();
  v1::DataSpec data;
  data.set_format("gsm8k");
  data.set_path(kShared + "/data/gsm8k/test.jsonl");
  data.set_chat_template("chatml");
  auto sft = BuildSftData(data, **model, dir);
  ASSERT_TRUE(sft.ok()) << sft.status();
  auto eval = PromptSet::Open(data, dir);
  ASSERT_TRUE(eval.ok()) << eval.status();
  ASSERT_EQ(static_cast<int64_t>(sft->size()), (*eval)->size());
  auto tokenizer = Tokenizer::FromFile(dir + "/tokenizer.json");
  ASSERT_TRUE(tokenizer.ok());
  for (size_t i = 0; i < sft->size(); ++i) {
    ASSERT_EQ((*sft)[i].prompt, (*eval)->At(static_cast<int64_t>(i)).ids) << "problem " << i;
  }
  // The system prompt is in both.
  const std::string prompt = *(*tokenizer)->Decode((*sft)[0].prompt);
  EXPECT_NE(prompt.find("<|im_start|>system\nPlease reason step by step"), std::string::npos) << prompt;
  // Targets: no calculator annotations, no "####", the answer boxed, then the eos.
  const auto& r = (*sft)[0].response;
  ASSERT_EQ(r.back(), 151645);
  const std::string target = *(*tokenizer)->Decode({r.begin(), r.end() - 1});
  EXPECT_EQ(target.find("<<"), std::string::npos) << target;
  EXPECT_EQ(target.find("####"), std::string::npos) << target;
  EXPECT_NE(target.find("The final answer is $\\boxed{18}$."), std::string::npos) << target;
  // "none" drops the system message, in SFT and eval alike.
  data.set_system_prompt("none");
  auto bare = BuildSftData(data, **model, dir);
  ASSERT_TRUE(bare.ok());
  auto bare_eval = PromptSet::Open(data, dir);
  ASSERT_TRUE(bare_eval.ok());
  EXPECT_EQ((*bare)[0].prompt, (*bare_eval)->At(0).ids);
  EXPECT_EQ((*tokenizer)->Decode((*bare)[0].prompt)->find("system"), std::string::npos);
}

}  // namespace
}  // namespace swarr
