#include "common/math/prompt_set.h"

#include <string>

#include "common/math/synthetic.h"
#include "common/util/file.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

std::string WriteConfig(const std::string& name, int vocab) {
  const std::string dir = ::testing::TempDir() + "/prompt_set_" + name;
  EXPECT_TRUE(MakeDirs(dir).ok());
  auto text = ReadFile(std::string(SWARR_SOURCE_DIR) + "/configs/models/tiny/config.json");
  EXPECT_TRUE(text.ok()) << text.status();
  std::string json = *text;
  const size_t at = json.find("\"vocab_size\"");
  const size_t end = json.find_first_of(",}", at);
  json.replace(at, end - at, "\"vocab_size\": " + std::to_string(vocab));
  EXPECT_TRUE(WriteFileAtomically(dir + "/config.json", {json}).ok());
  return dir;
}

TEST(PromptSetTest, SyntheticIsDeterministicPerSeed) {
  v1::DataSpec data;
  data.set_format("synthetic");
  data.set_synthetic_task("sum_digits");
  data.set_synthetic_size(20);
  data.set_seed(7);
  const std::string dir = WriteConfig("ok", 24);
  auto a = PromptSet::Open(data, dir);
  auto b = PromptSet::Open(data, dir);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok());
  ASSERT_EQ((*a)->size(), 20);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ((*a)->At(i).ids, (*b)->At(i).ids);
    EXPECT_EQ((*a)->At(i).answer, (*b)->At(i).answer);
    EXPECT_EQ(CharVocab::Decode((*a)->At(i).ids).substr(0, 2), "Q:");
  }
  EXPECT_EQ((*a)->stop_token_ids(), std::vector<int64_t>{CharVocab::kEos});
  EXPECT_EQ((*a)->tokenizer_json(), "");
  data.set_seed(8);
  auto c = PromptSet::Open(data, dir);
  ASSERT_TRUE(c.ok());
  int differ = 0;
  for (int i = 0; i < 20; ++i) differ += (*a)->At(i).ids != (*c)->At(i).ids;
  EXPECT_GT(differ, 0);
  std::mt19937_64 rng(1);
  const StagePrompt p = (*a)->Draw(rng);
  EXPECT_FALSE(p.ids.empty());
  EXPECT_EQ((*a)->Decode(p.ids), p.id);
}

TEST(PromptSetTest, ErrorsNameTheField) {
  v1::DataSpec data;
  data.set_format("synthetic");
  data.set_synthetic_task("sum_digits");
  auto small = PromptSet::Open(data, WriteConfig("small", 10));
  EXPECT_NE(small.status().message().find("data.synthetic_task needs vocab_size"), std::string::npos)
      << small.status();
  data.set_synthetic_task("nope");
  EXPECT_EQ(PromptSet::Open(data, WriteConfig("ok2", 24)).status().code(), absl::StatusCode::kInvalidArgument);
  v1::DataSpec gsm;
  gsm.set_format("gsm8k");
  gsm.set_path("/nonexistent.jsonl");
  auto missing_tok = PromptSet::Open(gsm, WriteConfig("ok3", 24));
  EXPECT_NE(missing_tok.status().message().find("data.tokenizer"), std::string::npos) << missing_tok.status();
  auto no_model = PromptSet::Open(data, "/nonexistent-model");
  EXPECT_FALSE(no_model.ok());
}

TEST(PromptSetTest, Rewards) {
  EXPECT_TRUE(ValidateRewardKind("").ok());
  EXPECT_TRUE(ValidateRewardKind("exact").ok());
  EXPECT_FALSE(ValidateRewardKind("bleu").ok());
  EXPECT_TRUE(ValidateRewardKind("lagsum").ok());
  // The lagged-sum checker wants the final "A<answer>"; the verifier takes the value a final
  // equation ends in, but never a digit picked out of an unfinished expression.
  EXPECT_EQ(ComputeReward("lagsum", "9:2+3=5,A5", "5"), 1.0);
  EXPECT_EQ(ComputeReward("lagsum", "9:2+3=5,8:5+", "5"), 0.0);
  EXPECT_EQ(ComputeReward("lagsum", "9:2+3=5", "5"), 0.0);
  EXPECT_EQ(ComputeReward("verifier", "9:2+3=5", "5"), 1.0);
  EXPECT_EQ(ComputeReward("verifier", "9:2+3=5,8:5+5", "5"), 0.0);
  EXPECT_EQ(ComputeReward("exact", "12", "12"), 1.0);
  EXPECT_EQ(ComputeReward("exact", "12 ", "12"), 0.0);
  EXPECT_EQ(ComputeReward("verifier", "so the answer is \\boxed{12}", "12"), 1.0);
  EXPECT_EQ(ComputeReward("", "The answer is 13", "12"), 0.0);
  auto dec = CompletionDecoder::Create("");
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ((*dec)->Decode(*CharVocab::Encode("Q:1+2=")), "Q:1+2=");
  EXPECT_FALSE(CompletionDecoder::Create("{not json").ok());
}

}  // namespace
}  // namespace swarr
