// The `rl` stage of `swarr train`: generate with the current policy in-process (RlDriver),
// reward, and update with the RL trainer.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <random>

#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/math/prompt_set.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "learner/checkpoint.h"
#include "learner/rl_driver.h"
#include "learner/rl_trainer.h"
#include "learner/uniform_batches.h"
#include "nlohmann/json.hpp"
#include "proto/swarr/v1/config.pb.h"
#include "tools/train_common.h"

namespace swarr {
absl::Status RunRlStage(const v1::Stage& stage, const std::string& run_dir, const std::string& ckpt_dir,
                        const std::string& resume) {
  const v1::RlConfig& cfg = stage.rl();
  SWARR_ASSIGN_OR_RETURN(auto policy, LoadStageModel(stage.model(), stage.seed(), resume));
  std::unique_ptr<Model> reference;
  if (cfg.kl_coef() > 0 || cfg.kl_reward_coef() > 0) {
    SWARR_ASSIGN_OR_RETURN(reference, LoadStageModel(stage.model(), stage.seed(), ""));
  }
  SWARR_ASSIGN_OR_RETURN(std::unique_ptr<PromptSet> data, PromptSet::Open(stage.data(), stage.model().path()));

  SWARR_RETURN_IF_ERROR(CheckStageFitsMemory(stage, *policy, RlMicroBatchTokens(stage)));
  const RlOptions opts = RlOptionsFromStage(stage);
  SWARR_ASSIGN_OR_RETURN(auto trainer, RlTrainer::Create(policy.get(), reference.get(), opts));
  if (!resume.empty()) {
    SWARR_RETURN_IF_ERROR(trainer->Restore(resume));
    std::cerr << "swarr: resuming " << stage.name() << " from " << resume << " (policy version "
              << trainer->policy_version() << ")\n";
  }

  RlDriverOptions dopts;
  dopts.prompts_per_step = cfg.prompts_per_step();
  dopts.samples_per_prompt = cfg.samples_per_prompt();
  dopts.max_new_tokens = cfg.max_new_tokens() > 0 ? cfg.max_new_tokens() : 64;
  dopts.sampling.temperature = opts.temperature;
  dopts.sampling.top_p = cfg.top_p() > 0 ? cfg.top_p() : 1.0;
  dopts.sampling.top_k = cfg.top_k();
  dopts.stop_token_ids = data->stop_token_ids();
  dopts.max_batch = std::min<int64_t>(64, dopts.prompts_per_step * dopts.samples_per_prompt);
  dopts.seed = stage.seed() * 1000003 + stage.data().seed();

  const PromptSet* d = data.get();
  PromptSource prompts = [d](std::mt19937_64& rng) {
    StagePrompt p = d->Draw(rng);
    RlPrompt prompt;
    prompt.group = p.id;
    prompt.answer = p.answer;
    prompt.ids = std::move(p.ids);
    return prompt;
  };
  const std::string reward_kind = cfg.reward();
  // The lowest and highest reward of the Step in progress (rewards are computed inside
  // driver.Step, on this thread), for the uniform-batch bound below.
  double batch_lo = 0, batch_hi = 0;
  bool batch_empty = true;
  RewardFn reward = [d, reward_kind, &batch_lo, &batch_hi, &batch_empty](const RlPrompt& prompt,
                                                                           const std::vector<int64_t>& completion) {
    const double r = ComputeReward(reward_kind, d->Decode(completion), prompt.answer);
    batch_lo = batch_empty ? r : std::min(batch_lo, r);
    batch_hi = batch_empty ? r : std::max(batch_hi, r);
    batch_empty = false;
    return r;
  };
  RlDriver driver(policy.get(), trainer.get(), prompts, reward, dopts);
  if (!resume.empty()) {
    // The driver's random stream continues where the checkpoint left it: exact resume.
    SWARR_ASSIGN_OR_RETURN(std::string text, ReadFile(resume + "/trainer_state.json"));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.contains("rng_state") || !j["rng_state"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(resume, "/trainer_state.json: no rng_state"));
    }
    SWARR_RETURN_IF_ERROR(driver.SetRngState(j["rng_state"].get<std::string>()));
  }

  SWARR_ASSIGN_OR_RETURN(auto log, MetricsLog::Open(run_dir + "/metrics.jsonl", trainer->state().step));
  const v1::StopRule& stop = stage.stop();
  const auto start = std::chrono::steady_clock::now();
  Progress progress(stage.name().empty() ? "rl" : stage.name());
  int64_t last_saved = trainer->state().step, tokens_total = 0;
  std::string reason;
  // With dynamic sampling, a batch whose groups are all uniform makes no update (the step does
  // not advance): after rl.max_uniform_batches of them in a row the stage fails with the reason
  // instead of running until max_minutes, or forever (docs/reliability.md).
  UniformBatches uniform(cfg.max_uniform_batches());
  auto save = [&]() -> absl::Status {
    TrainerState st = trainer->state();
    st.rng_state = driver.RngState();
    SWARR_ASSIGN_OR_RETURN(std::string dir, SaveCheckpoint(ckpt_dir, *policy, trainer->optimizer(), st,
                                                           stage.checkpoint().keep_last()));
    (void)dir;
    last_saved = trainer->state().step;
    return absl::OkStatus();
  };
  while (true) {
    const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60;
    if (stop.max_steps() > 0 && trainer->state().step >= stop.max_steps() * opts.epochs * opts.minibatches) {
      reason = "max_steps";
    } else if (stop.max_tokens() > 0 && tokens_total >= stop.max_tokens()) {
      reason = "max_tokens";
    } else if (stop.max_minutes() > 0 && minutes >= stop.max_minutes()) {
      reason = "max_minutes";
    }
    if (!reason.empty()) break;
    batch_empty = true;
    SWARR_ASSIGN_OR_RETURN(RlStepMetrics m, driver.Step());
    tokens_total += m.tokens;
    for (const std::string& why : m.skip_reasons) std::cerr << "\nswarr: skipped " << why << "\n";
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    log->Write(RlStepMetricsLine(m, m.policy_version, secs, *policy));
    progress.Update(absl::StrCat("step ", m.step, "  reward ", absl::StrFormat("%.3f", m.reward_mean), "  kl ",
                                 absl::StrFormat("%.4f", m.kl), "  clip ", absl::StrFormat("%.3f", m.clip_frac)));
    if (stage.checkpoint().every_steps() > 0 && m.step % stage.checkpoint().every_steps() == 0 && m.updates > 0) {
      SWARR_RETURN_IF_ERROR(save());
    }
    if (stop.target_reward() > 0 && m.reward_mean >= stop.target_reward()) {
      reason = "target_reward";
      break;
    }
    if (uniform.Observe(m, batch_lo, batch_hi)) {
      std::cerr << "\nswarr: every group of a batch was uniform (rewards " << batch_lo << ".." << batch_hi
                << "): no update (" << uniform.in_a_row() << " of at most " << uniform.max_in_a_row()
                << " such batches in a row)\n";
    }
    if (uniform.exhausted()) {
      progress.Done();
      // What was trained so far survives the failure (a rerun resumes from it).
      if (last_saved != trainer->state().step) SWARR_RETURN_IF_ERROR(save());
      return uniform.Error(stage.name().empty() ? "rl" : stage.name());
    }
  }
  progress.Done();
  if (last_saved != trainer->state().step) SWARR_RETURN_IF_ERROR(save());
  SWARR_RETURN_IF_ERROR(policy->Save(run_dir + "/final"));
  std::cerr << "swarr: " << stage.name() << " stopped by " << reason << " at policy version "
            << trainer->policy_version() << "; model in " << run_dir << "/final\n";
  return absl::OkStatus();
}

}  // namespace swarr
