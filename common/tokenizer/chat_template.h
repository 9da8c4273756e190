// Chat prompt formats for the math policies: ChatML (Qwen / Qwen2.5-Math) and a plain
// "Question: ... Answer:" format for base models.
//
// ChatML (exactly what Qwen2.5-Math's template renders):
//   <|im_start|>system\n{system}<|im_end|>\n
//   <|im_start|>{role}\n{content}<|im_end|>\n        (each message)
//   <|im_start|>assistant\n                          (add_generation_prompt)
//
// Plain:
//   {system}\n\n                                    (if any)
//   Question: {content}\n                            (user message)
//   Answer: {content}\n\n                            (assistant message)
//   {content}\n\n                                    (system message)
//   {Role}: {content}\n                              (any other role, first letter upper-cased)
//   Answer:                                          (add_generation_prompt; no trailing space)
//
// The options' system prompt is used only when the messages do not start with a "system"
// message of their own; "" means no system message. Contents are inserted verbatim (a content
// that contains "<|im_end|>" is not escaped: the tokenizer will match it as the special token).
//
// Thread safety: pure functions.
#ifndef SWARR_COMMON_TOKENIZER_CHAT_TEMPLATE_H_
#define SWARR_COMMON_TOKENIZER_CHAT_TEMPLATE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace swarr {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

struct ChatTemplateOptions {
  enum class Format { kChatML, kPlain };
  // Prompt format (see the top of this file). Default ChatML.
  Format format = Format::kChatML;
  // System message put first unless the messages start with their own; "" = none.
  // Default: the Qwen2.5-Math chain-of-thought instruction.
  std::string system_prompt = "Please reason step by step, and put your final answer within \\boxed{}.";
  // Ends the prompt with the opening of the assistant's turn. Default true.
  bool add_generation_prompt = true;
};

// The prompt text of `messages` in `options.format`.
std::string ApplyChatTemplate(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options);

// The prompt of one math question: the system prompt (if any) and one user message.
std::string MathPrompt(std::string_view question, const ChatTemplateOptions& options = {});

// "chatml" -> kChatML, "plain" -> kPlain; anything else kInvalidArgument naming it.
absl::StatusOr<ChatTemplateOptions::Format> ParseChatFormat(std::string_view name);

}  // namespace swarr

#endif  // SWARR_COMMON_TOKENIZER_CHAT_TEMPLATE_H_
