#include "common/tokenizer/pre_tokenizer.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace tokenizer_internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Pieces(SplitPattern p, std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view s : SplitPieces(p, text)) out.emplace_back(s);
  return out;
}

TEST(PreTokenizerTest, RecognizesKnownPatternsOnly) {
  EXPECT_EQ(*RecognizeSplitPattern(kQwen2Regex), SplitPattern::kQwen2);
  EXPECT_EQ(*RecognizeSplitPattern(kLlama3Regex), SplitPattern::kLlama3);
  EXPECT_EQ(*RecognizeSplitPattern(kGpt2Regex), SplitPattern::kGpt2);
  auto bad = RecognizeSplitPattern(R"(\w+|\s+)");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr(R"('\w+|\s+')"));
}

TEST(PreTokenizerTest, Qwen2Words) {
  const auto q = SplitPattern::kQwen2;
  EXPECT_THAT(Pieces(q, "Hello world"), ElementsAre("Hello", " world"));
  // An optional non-letter, non-digit, non-newline character sticks to the letters after it.
  EXPECT_THAT(Pieces(q, "$x \\boxed\tfoo"), ElementsAre("$x", " \\", "boxed", "\tfoo"));
  EXPECT_THAT(Pieces(q, "a\nb"), ElementsAre("a", "\n", "b"));
  // Contractions are case-insensitive and bind before the letters rule.
  EXPECT_THAT(Pieces(q, "don't I'LL we'Re"), ElementsAre("don", "'t", " I", "'LL", " we", "'Re"));
  EXPECT_THAT(Pieces(q, "'sam"), ElementsAre("'s", "am"));
  EXPECT_THAT(Pieces(q, "'x"), ElementsAre("'x"));
}

TEST(PreTokenizerTest, Qwen2DigitsAreSingle) {
  EXPECT_THAT(Pieces(SplitPattern::kQwen2, "x12 345"), ElementsAre("x", "1", "2", " ", "3", "4", "5"));
  EXPECT_THAT(Pieces(SplitPattern::kLlama3, "x12 345 1234567"),
              ElementsAre("x", "12", " ", "345", " ", "123", "456", "7"));
}

TEST(PreTokenizerTest, Qwen2PunctuationAndNewlines) {
  const auto q = SplitPattern::kQwen2;
  EXPECT_THAT(Pieces(q, "a.\n\nB"), ElementsAre("a", ".\n\n", "B"));
  EXPECT_THAT(Pieces(q, "x += 1"), ElementsAre("x", " +=", " ", "1"));
  EXPECT_THAT(Pieces(q, "}}$."), ElementsAre("}}$."));
}

TEST(PreTokenizerTest, Qwen2Whitespace) {
  const auto q = SplitPattern::kQwen2;
  // \s+(?!\S): a run before a word keeps its last space for the word.
  EXPECT_THAT(Pieces(q, "  leading"), ElementsAre(" ", " leading"));
  EXPECT_THAT(Pieces(q, "a   b"), ElementsAre("a", "  ", " b"));
  // A trailing run is one piece.
  EXPECT_THAT(Pieces(q, "a   "), ElementsAre("a", "   "));
  // \s*[\r\n]+: whitespace up to and including the last newline of the run.
  EXPECT_THAT(Pieces(q, "a \r\n\r\n b"), ElementsAre("a", " \r\n\r\n", " b"));
  EXPECT_THAT(Pieces(q, "a\n \t b"), ElementsAre("a", "\n", " \t", " b"));
  // A single space before a digit is its own piece (\s+).
  EXPECT_THAT(Pieces(q, "a 1"), ElementsAre("a", " ", "1"));
  // Unicode White_Space: no-break space and ideographic space.
  EXPECT_THAT(Pieces(q, "a\u00a0\u3000b"), ElementsAre("a", "\u00a0", "\u3000b"));
}

TEST(PreTokenizerTest, Qwen2Unicode) {
  const auto q = SplitPattern::kQwen2;
  EXPECT_THAT(Pieces(q, "数学推理。 Ünïcödé"), ElementsAre("数学推理", "。", " Ünïcödé"));
  EXPECT_THAT(Pieces(q, "emoji 🙂🚀 ok"), ElementsAre("emoji", " 🙂🚀", " ok"));
  // Roman numeral Ⅻ is \p{Nl}: a number.
  EXPECT_THAT(Pieces(q, "Ⅻ²"), ElementsAre("Ⅻ", "²"));
}

TEST(PreTokenizerTest, Gpt2) {
  const auto g = SplitPattern::kGpt2;
  EXPECT_THAT(Pieces(g, "Hello world's 123 'S"), ElementsAre("Hello", " world", "'s", " 123", " '", "S"));
  // Case-sensitive contractions, no newline rule, digits grouped without limit.
  EXPECT_THAT(Pieces(g, "I'LL 12345"), ElementsAre("I", "'", "LL", " 12345"));
  EXPECT_THAT(Pieces(g, "a.\n\nb"), ElementsAre("a", ".", "\n", "\n", "b"));
  EXPECT_THAT(Pieces(g, "a  \n"), ElementsAre("a", "  \n"));
  EXPECT_THAT(Pieces(g, "  x"), ElementsAre(" ", " x"));
  EXPECT_THAT(Pieces(g, "$x"), ElementsAre("$", "x"));
}

TEST(PreTokenizerTest, PiecesCoverTheText) {
  const std::string text = "Mix: 3.14, naïve 数学\r\n\t  🙂 it's ₂ x\u0301 \u2028 end  ";
  for (SplitPattern p : {SplitPattern::kQwen2, SplitPattern::kLlama3, SplitPattern::kGpt2}) {
    std::string joined;
    for (std::string_view s : SplitPieces(p, text)) {
      EXPECT_FALSE(s.empty());
      joined.append(s);
    }
    EXPECT_EQ(joined, text);
  }
}

}  // namespace
}  // namespace tokenizer_internal
}  // namespace swarr
