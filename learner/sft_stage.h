// One `train` (SFT) stage from its config to its stop rule: the loop `swarr train` runs and the
// learner service runs in its stage thread. Loads the stage's model (or resumes a checkpoint),
// builds and truncates the data, steps the SftTrainer, writes one metrics line per optimizer
// step, checkpoints every `checkpoint.every_steps`, stops at the first limit of the StopRule
// (max_steps, max_tokens, max_minutes, target_loss) and writes the final model.
//
// Hooks let the caller watch each step and interrupt between steps (the learner service's
// SIGTERM path: a checkpoint of the current step is written and the call returns).
//
// Thread safety: one call owns its model and files; hooks run on the calling thread.
#ifndef SWARR_LEARNER_SFT_STAGE_H_
#define SWARR_LEARNER_SFT_STAGE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "learner/sft_trainer.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

struct SftStageRun {
  // A `train` stage. stage.model().path() is where the model comes from (an HF directory or a
  // config.json-only directory for random initialisation); its attention settings apply.
  v1::Stage stage;
  std::string metrics_path;     // the stage's metrics.jsonl (lines after a resumed step dropped)
  std::string checkpoints_dir;  // periodic / final / interrupt checkpoints (learner/checkpoint.h)
  std::string final_dir;        // the final HF model directory, written when the stop rule is met
  std::string resume_dir;       // a checkpoint of this stage to continue from; "" = from the start
};

struct SftStageHooks {
  // After the model is loaded (and restored when resuming), before the first step; `step` is
  // the trainer's step. A non-OK status aborts the stage.
  std::function<absl::Status(const Model& model, int64_t step)> on_start;
  // After every logged optimizer step with its metrics line (the JSON written to
  // metrics.jsonl). A non-OK status aborts the stage (no checkpoint is written).
  std::function<absl::Status(const SftStepMetrics& metrics, const std::string& json_line)> on_step;
  // Polled before every step: true writes a checkpoint of the current step and returns with
  // `interrupted` set (the final model is not written).
  std::function<bool()> should_stop;
};

struct SftStageResult {
  bool interrupted = false;     // should_stop() ended the stage before its stop rule
  std::string stop_reason;      // "max_steps" | "max_tokens" | "max_minutes" | "target_loss"; "" if interrupted
  int64_t step = 0;             // optimizer steps completed
  int64_t tokens_total = 0;     // response tokens trained on (over resumes)
  std::string last_checkpoint;  // the newest checkpoint directory written ("" if none)
  std::unique_ptr<Model> model; // the trained model
};

// Runs the stage (see the top of this file). Config, data and checkpoint errors are
// kInvalidArgument / kNotFound naming what is wrong; LibTorch failures kInternal.
absl::StatusOr<SftStageResult> RunSftStage(const SftStageRun& run, const SftStageHooks& hooks = {});

}  // namespace swarr

#endif  // SWARR_LEARNER_SFT_STAGE_H_
