// The in-process RL loop: sample prompts, generate completions with the current policy,
// reward them, and run one RlTrainer step. The single-machine counterpart of the
// coordinator + rollout servers + learner (docs/architecture.md "Data flow of one RL step");
// used for tests, toy tasks and small runs. Generation and training alternate on one thread, so
// every trajectory is on-policy (policy_version == the trainer's).
//
// Not thread-safe; the policy must not be used by anyone else while Step() runs.
#ifndef SWARR_LEARNER_RL_DRIVER_H_
#define SWARR_LEARNER_RL_DRIVER_H_

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "common/model/sampler.h"
#include "learner/rl_trainer.h"

namespace swarr {

struct RlPrompt {
  std::string group;         // a label for the prompt (part of its trajectories' group name)
  std::vector<int64_t> ids;  // non-empty, in the vocabulary
  std::string answer;        // for the reward function; unused by the driver
};

// Draws one prompt; called prompts_per_step times per Step with the driver's rng.
using PromptSource = std::function<RlPrompt(std::mt19937_64& rng)>;
// Reward of one completion (the generated tokens only, stop token included if emitted).
using RewardFn = std::function<double(const RlPrompt& prompt, const std::vector<int64_t>& completion)>;

struct RlDriverOptions {
  int64_t prompts_per_step = 8;    // >= 1
  int64_t samples_per_prompt = 8;  // >= 1; the GRPO group size
  int64_t max_new_tokens = 16;     // >= 1
  // seed is ignored: each request gets its own seed drawn from the driver's rng. The
  // trainer's RlOptions::temperature must match sampling.temperature (1 for greedy).
  SamplingParams sampling;
  std::vector<int64_t> stop_token_ids;
  int64_t max_batch = 64;  // sequences generated together (Generator cache slots), >= 1
  uint64_t seed = 0;       // the driver's rng: prompts and per-request seeds
};

class RlDriver {
 public:
  // `policy` must be the trainer's policy; both must outlive the driver.
  RlDriver(Model* policy, RlTrainer* trainer, PromptSource prompts, RewardFn reward, RlDriverOptions options);

  // One RL step: prompts_per_step prompts, samples_per_prompt completions each (trajectory
  // ids "step-<s>-<i>", group "step-<s>-p<p>/<prompt.group>", policy_version = the
  // trainer's), rewarded and passed to trainer->Step. kInvalidArgument for bad options or a
  // prompt the generator rejects (naming it); generation and trainer errors pass through.
  absl::StatusOr<RlStepMetrics> Step();

  int64_t steps() const { return step_; }  // Step() calls that reached the trainer

  // The driver's position, for checkpoints: its random stream (prompts and per-request
  // seeds) and step count, as text. Restoring it makes a resumed run draw exactly what the
  // uninterrupted run would have. kInvalidArgument for text RngState() did not write.
  std::string RngState() const;
  absl::Status SetRngState(const std::string& state);

 private:
  Model* policy_;
  RlTrainer* trainer_;
  PromptSource prompts_;
  RewardFn reward_;
  RlDriverOptions options_;
  std::mt19937_64 rng_;
  int64_t step_ = 0;
};

}  // namespace swarr

#endif  // SWARR_LEARNER_RL_DRIVER_H_
