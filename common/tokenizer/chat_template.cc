#include "common/tokenizer/chat_template.h"

#include <cctype>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/unicode.h"

namespace swarr {
namespace {

using tokenizer_internal::AsAbsl;

void AppendChatML(std::string_view role, std::string_view content, std::string* out) {
  absl::StrAppend(out, "<|im_start|>", AsAbsl(role), "\n", AsAbsl(content), "<|im_end|>\n");
}

void AppendPlain(std::string_view role, std::string_view content, std::string* out) {
  if (role == "system") {
    absl::StrAppend(out, AsAbsl(content), "\n\n");
  } else if (role == "user") {
    absl::StrAppend(out, "Question: ", AsAbsl(content), "\n");
  } else if (role == "assistant") {
    absl::StrAppend(out, "Answer: ", AsAbsl(content), "\n\n");
  } else {
    std::string name(role);
    if (!name.empty()) name[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
    absl::StrAppend(out, name, ": ", AsAbsl(content), "\n");
  }
}

}  // namespace

std::string ApplyChatTemplate(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& options) {
  const bool chatml = options.format == ChatTemplateOptions::Format::kChatML;
  auto append = chatml ? AppendChatML : AppendPlain;
  std::string out;
  const bool own_system = !messages.empty() && messages.front().role == "system";
  if (!own_system && !options.system_prompt.empty()) append("system", options.system_prompt, &out);
  for (const ChatMessage& m : messages) append(m.role, m.content, &out);
  if (options.add_generation_prompt) out += chatml ? "<|im_start|>assistant\n" : "Answer:";
  return out;
}

std::string MathPrompt(std::string_view question, const ChatTemplateOptions& options) {
  return ApplyChatTemplate({ChatMessage{"user", std::string(question)}}, options);
}

absl::StatusOr<ChatTemplateOptions::Format> ParseChatFormat(std::string_view name) {
  if (name == "chatml") return ChatTemplateOptions::Format::kChatML;
  if (name == "plain") return ChatTemplateOptions::Format::kPlain;
  return absl::InvalidArgumentError(absl::StrCat("unknown chat format '", AsAbsl(name), "' (expected chatml or plain)"));
}

}  // namespace swarr
