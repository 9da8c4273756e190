#include "common/tokenizer/chat_template.h"

#include <algorithm>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

constexpr char kDefaultSystem[] = "Please reason step by step, and put your final answer within \\boxed{}.";

TEST(ChatTemplateTest, ChatMLMathPromptIsQwenMathFormat) {
  EXPECT_EQ(MathPrompt("What is 2+2?"),
            std::string("<|im_start|>system\n") + kDefaultSystem +
                "<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplateTest, ChatMLOptions) {
  ChatTemplateOptions o;
  o.system_prompt = "";
  EXPECT_EQ(MathPrompt("q", o), "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n");
  o.add_generation_prompt = false;
  EXPECT_EQ(MathPrompt("q", o), "<|im_start|>user\nq<|im_end|>\n");
  o.system_prompt = "Be brief.";
  EXPECT_EQ(MathPrompt("q", o), "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nq<|im_end|>\n");
}

TEST(ChatTemplateTest, MessagesOwnSystemMessageWins) {
  const std::vector<ChatMessage> messages = {
      {"system", "S"}, {"user", "U1"}, {"assistant", "A1"}, {"user", "U2"}};
  EXPECT_EQ(ApplyChatTemplate(messages, {}),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
            "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n");
  ChatTemplateOptions plain;
  plain.format = ChatTemplateOptions::Format::kPlain;
  EXPECT_EQ(ApplyChatTemplate(messages, plain), "S\n\nQuestion: U1\nAnswer: A1\n\nQuestion: U2\nAnswer:");
}

TEST(ChatTemplateTest, Plain) {
  ChatTemplateOptions o;
  o.format = ChatTemplateOptions::Format::kPlain;
  EXPECT_EQ(MathPrompt("What is 2+2?", o), std::string(kDefaultSystem) + "\n\nQuestion: What is 2+2?\nAnswer:");
  o.system_prompt = "";
  EXPECT_EQ(MathPrompt("q", o), "Question: q\nAnswer:");
  o.add_generation_prompt = false;
  EXPECT_EQ(MathPrompt("q", o), "Question: q\n");
  EXPECT_EQ(ApplyChatTemplate({{"tool", "out"}}, o), "Tool: out\n");
}

TEST(ChatTemplateTest, ParseChatFormat) {
  EXPECT_EQ(*ParseChatFormat("chatml"), ChatTemplateOptions::Format::kChatML);
  EXPECT_EQ(*ParseChatFormat("plain"), ChatTemplateOptions::Format::kPlain);
  auto bad = ParseChatFormat("llama");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("llama"));
}

TEST(ChatTemplateTest, ChatMLSpecialTokensAreSingleIds) {
  auto t = Tokenizer::FromFile(std::string(SWARR_SHARED_DIR) + "/fixtures/tokenizer/qwen2/tokenizer.json");
  ASSERT_TRUE(t.ok()) << t.status();
  const std::string prompt = MathPrompt("What is 2+2?");
  auto ids = (*t)->Encode(prompt);
  ASSERT_TRUE(ids.ok()) << ids.status();
  const int64_t start = *(*t)->TokenToId("<|im_start|>"), end = *(*t)->TokenToId("<|im_end|>");
  EXPECT_EQ(start, 151644);
  EXPECT_EQ(end, 151645);
  EXPECT_EQ(std::count(ids->begin(), ids->end(), start), 3);
  EXPECT_EQ(std::count(ids->begin(), ids->end(), end), 2);
  // <|im_start|> system \n ... ; ends with <|im_start|> assistant \n (ids from the HF fixture).
  ASSERT_GE(ids->size(), 6u);
  EXPECT_EQ((*ids)[0], start);
  EXPECT_EQ((*ids)[1], 8948);  // "system"
  EXPECT_EQ((*ids)[2], 198);   // "\n"
  EXPECT_EQ(std::vector<int64_t>(ids->end() - 3, ids->end()), std::vector<int64_t>({start, 77091, 198}));
  EXPECT_EQ(*(*t)->Decode(*ids), prompt);
}

}  // namespace
}  // namespace swarr
