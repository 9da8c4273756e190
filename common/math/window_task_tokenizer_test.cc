// configs/demo/tokenizer.json, the demo's character-level tokenizer: the normal tokenizer
// path (common/tokenizer) loads it and gives exactly the synthetic character vocabulary's ids
// (common/math/synthetic.h), so the demo's model reads the same ids whichever path made them.
#include <random>
#include <string>
#include <vector>

#include "common/math/synthetic.h"
#include "common/math/window_task.h"
#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

const std::string kDemo = std::string(SWARR_SOURCE_DIR) + "/configs/demo";

std::unique_ptr<Tokenizer> Load(const std::string& path) {
  auto t = Tokenizer::FromFile(path);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

void ExpectRoundTrip(const Tokenizer& tok, const std::string& text) {
  auto ids = tok.Encode(text);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_EQ(ids->size(), text.size()) << text;  // one token per character
  auto ref = CharVocab::Encode(text);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(*ids, *ref) << text;
  auto back = tok.Decode(*ids);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, text);
}

TEST(WindowTaskTokenizerTest, MatchesTheCharVocabulary) {
  auto tok = Load(kDemo + "/tokenizer.json");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->TokenToId("<pad>"), CharVocab::kPad);
  EXPECT_EQ(tok->TokenToId("<bos>"), CharVocab::kBos);
  EXPECT_EQ(tok->TokenToId("<eos>"), CharVocab::kEos);
  EXPECT_TRUE(tok->IsSpecial(CharVocab::kEos));
  const std::string alphabet = CharVocab::kAlphabet;
  for (size_t i = 0; i < alphabet.size(); ++i) {
    auto ids = tok->Encode(alphabet.substr(i, 1));
    ASSERT_TRUE(ids.ok());
    ASSERT_EQ(ids->size(), 1u);
    EXPECT_EQ((*ids)[0], static_cast<int64_t>(3 + i)) << "'" << alphabet[i] << "'";
  }
  // Specials written in text are the special ids.
  EXPECT_EQ(*tok->Encode("A5<eos>"), (std::vector<int64_t>{23, 8, CharVocab::kEos}));
  // Bytes outside the task alphabet still encode (byte-level), to ids beyond the model's
  // 24: the stage data check rejects them with a clear error.
  auto other = tok->Encode("x");
  ASSERT_TRUE(other.ok());
  EXPECT_GE((*other)[0], CharVocab::kSize);
}

TEST(WindowTaskTokenizerTest, RoundTripsEveryStringOfTheTaskAlphabet) {
  auto tok = Load(kDemo + "/tokenizer.json");
  ASSERT_NE(tok, nullptr);
  const std::string alphabet = CharVocab::kAlphabet;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::string s(rng() % 40, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    ExpectRoundTrip(*tok, s);
  }
  // And every text the task produces: prompts and both solution styles.
  for (int i = 0; i < 300; ++i) {
    const SyntheticProblem p = MakeSyntheticProblem("lagsum:m=9,n=1-9,wf=0.5", rng);
    ExpectRoundTrip(*tok, p.prompt + p.response);
  }
}

// The committed SA checkpoint carries the same tokenizer.
TEST(WindowTaskTokenizerTest, CheckpointCarriesIt) {
  auto a = Load(kDemo + "/tokenizer.json");
  auto b = Load(kDemo + "/sa_model/tokenizer.json");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->vocab_size(), b->vocab_size());
  const std::string text = "Q:38152,9|9:38152=5,A2";
  EXPECT_EQ(*a->Encode(text), *b->Encode(text));
}

}  // namespace
}  // namespace swarr
