// The prompts of an `rl` or `eval` stage (DataSpec of config.proto), tokenised, with their
// reference answers, a decoder for completions and the stage's reward. Shared by the in-process
// `swarr train` RL stage, the coordinator (which hands prompts out) and the rollout servers
// (which score completions). No torch.
#ifndef SWARR_COMMON_MATH_PROMPT_SET_H_
#define SWARR_COMMON_MATH_PROMPT_SET_H_

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

class Tokenizer;

// The text of a stage's prompt for `question`: the one format SFT, RL and eval share (issue 13).
// data.chat_template "" = "chatml" ("none": the question as is); data.system_prompt "" = the
// Qwen2.5-Math instruction ("Please reason step by step, and put your final answer within
// \boxed{}."), "none" = no system message. kInvalidArgument for an unknown template.
absl::StatusOr<std::string> StagePromptText(const v1::DataSpec& data, const std::string& question);

struct StagePrompt {
  std::string id;            // problem id (data sets) or the prompt text (synthetic)
  std::vector<int64_t> ids;  // prompt token ids
  std::string answer;        // reference answer
};

class PromptSet {
 public:
  // `model_dir`: the model the stage runs (its config.json gives vocab_size and eos ids, its
  // tokenizer.json the tokenizer unless data.tokenizer names one). Synthetic tasks use the
  // character vocabulary (common/math/synthetic.h) and need vocab_size >= CharVocab::kSize.
  // Errors name the data field ("data.path: ...", "data.tokenizer: ...").
  static absl::StatusOr<std::unique_ptr<PromptSet>> Open(const v1::DataSpec& data, const std::string& model_dir);
  ~PromptSet();

  // A random prompt (rl stages): uniform over the data set, or a fresh synthetic problem.
  StagePrompt Draw(std::mt19937_64& rng) const;
  // Problems in data order (eval stages); synthetic: `synthetic_size` problems (0 = 1000)
  // generated from data.seed.
  int64_t size() const;
  const StagePrompt& At(int64_t index) const { return fixed_[static_cast<size_t>(index)]; }

  // Completion text of generated ids (special tokens dropped).
  std::string Decode(const std::vector<int64_t>& ids) const;
  // The tokenizer.json text used ("" = the synthetic character vocabulary).
  const std::string& tokenizer_json() const { return tokenizer_json_; }
  // Ids that end a completion.
  const std::vector<int64_t>& stop_token_ids() const { return stop_ids_; }
  int64_t vocab_size() const { return vocab_size_; }

 private:
  PromptSet() = default;
  std::string synthetic_task_;
  std::vector<StagePrompt> fixed_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string tokenizer_json_;
  std::vector<int64_t> stop_ids_;
  int64_t vocab_size_ = 0;
};

// A completion decoder built from StageInfo-style data: tokenizer.json text, or "" for the
// synthetic character vocabulary (rollout servers receive the text from the coordinator).
class CompletionDecoder {
 public:
  static absl::StatusOr<std::unique_ptr<CompletionDecoder>> Create(const std::string& tokenizer_json);
  ~CompletionDecoder();
  std::string Decode(const std::vector<int64_t>& ids) const;

 private:
  CompletionDecoder() = default;
  std::unique_ptr<Tokenizer> tokenizer_;
};

// The reward of a completion: "verifier" (or "") = math answer equivalence
// (common/math/verifier.h), "exact" = the completion text equals the answer, "lagsum" = the
// lagged-sum task's own checker (common/math/window_task.h: the completion ends with
// "A<answer>"). 1 or 0.
// kInvalidArgument for another kind.
absl::Status ValidateRewardKind(const std::string& kind);
double ComputeReward(const std::string& kind, const std::string& completion_text, const std::string& answer);

}  // namespace swarr

#endif  // SWARR_COMMON_MATH_PROMPT_SET_H_
