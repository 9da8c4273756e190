#include "learner/rl_driver.h"

#include <sstream>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/model/generator.h"
#include "common/util/status_macros.h"

namespace swarr {

RlDriver::RlDriver(Model* policy, RlTrainer* trainer, PromptSource prompts, RewardFn reward,
                   RlDriverOptions options)
    : policy_(policy),
      trainer_(trainer),
      prompts_(std::move(prompts)),
      reward_(std::move(reward)),
      options_(std::move(options)),
      rng_(options_.seed) {}

absl::StatusOr<RlStepMetrics> RlDriver::Step() {
  if (options_.prompts_per_step < 1) return absl::InvalidArgumentError("prompts_per_step must be >= 1");
  if (options_.samples_per_prompt < 1) return absl::InvalidArgumentError("samples_per_prompt must be >= 1");
  if (options_.max_new_tokens < 1) return absl::InvalidArgumentError("max_new_tokens must be >= 1");
  if (options_.max_batch < 1) return absl::InvalidArgumentError("max_batch must be >= 1");
  if (!prompts_ || !reward_) return absl::InvalidArgumentError("prompt source and reward function are required");

  std::vector<RlPrompt> prompts;
  std::vector<GenerationRequest> requests;
  for (int64_t p = 0; p < options_.prompts_per_step; ++p) {
    prompts.push_back(prompts_(rng_));
    for (int64_t k = 0; k < options_.samples_per_prompt; ++k) {
      GenerationRequest r;
      r.prompt = prompts.back().ids;
      r.max_new_tokens = options_.max_new_tokens;
      r.sampling = options_.sampling;
      r.sampling.seed = rng_();
      r.stop_token_ids = options_.stop_token_ids;
      requests.push_back(std::move(r));
    }
  }
  GeneratorOptions gen_options;
  gen_options.max_batch = options_.max_batch;
  Generator generator(*policy_, gen_options);
  absl::StatusOr<std::vector<GenerationResult>> results = generator.Generate(std::move(requests));
  if (!results.ok()) {
    return absl::Status(results.status().code(),
                        absl::StrCat("RL driver step ", step_, ": generation: ", results.status().message()));
  }

  std::vector<Trajectory> batch;
  batch.reserve(results->size());
  for (size_t i = 0; i < results->size(); ++i) {
    GenerationResult& g = (*results)[i];
    const int64_t p = static_cast<int64_t>(i) / options_.samples_per_prompt;
    const RlPrompt& prompt = prompts[p];
    Trajectory t;
    t.id = absl::StrCat("step-", step_, "-", i);
    t.group = absl::StrCat("step-", step_, "-p", p, "/", prompt.group);
    t.prompt = prompt.ids;
    t.completion.assign(g.tokens.begin() + g.prompt_length, g.tokens.end());
    t.behaviour_logprobs = std::move(g.logprobs);
    t.reward = reward_(prompt, t.completion);
    t.policy_version = trainer_->policy_version();
    t.truncated = !g.stopped;
    batch.push_back(std::move(t));
  }
  ++step_;
  return trainer_->Step(std::move(batch));
}

std::string RlDriver::RngState() const {
  std::ostringstream out;
  out << step_ << ' ' << rng_;
  return out.str();
}

absl::Status RlDriver::SetRngState(const std::string& state) {
  std::istringstream in(state);
  int64_t step = 0;
  std::mt19937_64 rng;
  if (!(in >> step >> rng) || step < 0) {
    return absl::InvalidArgumentError("RL driver state: not a state written by RngState()");
  }
  step_ = step;
  rng_ = rng;
  return absl::OkStatus();
}

}  // namespace swarr
