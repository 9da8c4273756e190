#include "common/math/prompt_set.h"

#include "absl/strings/str_cat.h"
#include "common/math/datasets.h"
#include "common/math/synthetic.h"
#include "common/math/verifier.h"
#include "common/math/window_task.h"
#include "common/model/config.h"
#include "common/tokenizer/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"

namespace swarr {

absl::StatusOr<std::string> StagePromptText(const v1::DataSpec& data, const std::string& question) {
  const std::string templ = data.chat_template().empty() ? "chatml" : data.chat_template();
  if (templ == "none") return question;
  ChatTemplateOptions chat;
  SWARR_ASSIGN_OR_RETURN(chat.format, ParseChatFormat(templ));
  if (data.system_prompt() == "none") {
    chat.system_prompt.clear();
  } else if (!data.system_prompt().empty()) {
    chat.system_prompt = data.system_prompt();
  }
  return MathPrompt(question, chat);
}

PromptSet::~PromptSet() = default;

absl::StatusOr<std::unique_ptr<PromptSet>> PromptSet::Open(const v1::DataSpec& data, const std::string& model_dir) {
  std::unique_ptr<PromptSet> out(new PromptSet());
  SWARR_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(model_dir));
  out->vocab_size_ = config.vocab_size;
  if (data.format() == "synthetic") {
    SWARR_RETURN_IF_ERROR(ValidateSyntheticTask(data.synthetic_task()));
    if (config.vocab_size < CharVocab::kSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("data.synthetic_task needs vocab_size >= ", CharVocab::kSize, " (", model_dir, " has ",
                       config.vocab_size, ")"));
    }
    out->synthetic_task_ = data.synthetic_task();
    out->stop_ids_ = {CharVocab::kEos};
    std::mt19937_64 rng(data.seed());
    const int64_t n = data.synthetic_size() > 0 ? data.synthetic_size() : 1000;
    for (int64_t i = 0; i < n; ++i) {
      SyntheticProblem p = MakeSyntheticProblem(data.synthetic_task(), rng);
      StagePrompt prompt;
      prompt.id = absl::StrCat("synthetic-", i);
      prompt.answer = p.answer;
      SWARR_ASSIGN_OR_RETURN(prompt.ids, CharVocab::Encode(p.prompt));
      out->fixed_.push_back(std::move(prompt));
    }
    return out;
  }
  const std::string tok_path = data.tokenizer().empty() ? model_dir + "/tokenizer.json" : data.tokenizer();
  auto text = ReadFile(tok_path);
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("data.tokenizer: ", text.status().message()));
  auto tokenizer = Tokenizer::FromJson(*text);
  if (!tokenizer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("data.tokenizer: ", tok_path, ": ", tokenizer.status().message()));
  }
  out->tokenizer_ = std::move(*tokenizer);
  out->tokenizer_json_ = std::move(*text);
  out->stop_ids_ = config.eos_token_ids;
  DatasetSpec spec;
  SWARR_ASSIGN_OR_RETURN(spec.format, ParseDatasetFormat(data.format()));
  spec.path = data.path();
  if (!data.question_field().empty()) spec.question_field = data.question_field();
  if (!data.answer_field().empty()) spec.answer_field = data.answer_field();
  SWARR_ASSIGN_OR_RETURN(auto reader, DatasetReader::Open(spec));
  SWARR_ASSIGN_OR_RETURN(auto problems, reader->ReadAll());
  for (const MathProblem& p : problems) {
    StagePrompt prompt;
    prompt.id = p.id;
    prompt.answer = p.answer;
    SWARR_ASSIGN_OR_RETURN(const std::string text, StagePromptText(data, p.question));
    SWARR_ASSIGN_OR_RETURN(prompt.ids, out->tokenizer_->Encode(text));
    for (int64_t id : prompt.ids) {
      if (id >= config.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("data.tokenizer: token id ", id, " of problem ", p.id,
                                                       " is outside the model's vocabulary (", config.vocab_size,
                                                       ")"));
      }
    }
    out->fixed_.push_back(std::move(prompt));
  }
  if (out->fixed_.empty()) return absl::InvalidArgumentError(absl::StrCat("data.path: no problems in ", data.path()));
  return out;
}

StagePrompt PromptSet::Draw(std::mt19937_64& rng) const {
  if (!synthetic_task_.empty()) {
    SyntheticProblem p = MakeSyntheticProblem(synthetic_task_, rng);
    StagePrompt prompt;
    prompt.id = p.prompt;
    prompt.answer = p.answer;
    prompt.ids = *CharVocab::Encode(p.prompt);
    return prompt;
  }
  return fixed_[rng() % fixed_.size()];
}

int64_t PromptSet::size() const { return static_cast<int64_t>(fixed_.size()); }

std::string PromptSet::Decode(const std::vector<int64_t>& ids) const {
  if (!tokenizer_) return CharVocab::Decode(ids);
  auto text = tokenizer_->Decode(ids);
  return text.ok() ? *text : std::string();
}

CompletionDecoder::~CompletionDecoder() = default;

absl::StatusOr<std::unique_ptr<CompletionDecoder>> CompletionDecoder::Create(const std::string& tokenizer_json) {
  std::unique_ptr<CompletionDecoder> d(new CompletionDecoder());
  if (!tokenizer_json.empty()) {
    SWARR_ASSIGN_OR_RETURN(d->tokenizer_, Tokenizer::FromJson(tokenizer_json));
  }
  return d;
}

std::string CompletionDecoder::Decode(const std::vector<int64_t>& ids) const {
  if (!tokenizer_) return CharVocab::Decode(ids);
  auto text = tokenizer_->Decode(ids);
  return text.ok() ? *text : std::string();
}

absl::Status ValidateRewardKind(const std::string& kind) {
  if (kind.empty() || kind == "verifier" || kind == "exact" || kind == "lagsum") return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("unknown reward '", kind, "' (known: verifier, exact, lagsum)"));
}

double ComputeReward(const std::string& kind, const std::string& completion_text, const std::string& answer) {
  if (kind == "exact") return completion_text == answer ? 1.0 : 0.0;
  if (kind == "lagsum") return window_task::CheckAnswer(completion_text, answer) ? 1.0 : 0.0;
  return Verify(completion_text, answer).correct ? 1.0 : 0.0;
}

}  // namespace swarr
