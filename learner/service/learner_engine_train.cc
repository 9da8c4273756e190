// LearnerEngine's train stage (SFT, learner/sft_stage.h) on the stage thread: publishes a
// version when it starts and when it reaches its stop rule, then writes done.json. The contract
// is in learner_engine.h (RunTrainStage).
#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "common/model/model.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "learner/checkpoint.h"
#include "learner/service/learner_engine.h"
#include "learner/service/learner_engine_internal.h"
#include "learner/sft_stage.h"
#include "nlohmann/json.hpp"

namespace swarr {

using engine_internal::CopyTokenizerFiles;
using engine_internal::NumericFields;
using Clock = std::chrono::steady_clock;

absl::Status LearnerEngine::RunTrainStage(const StageContext& ctx) {
  SftStageRun run;
  run.stage = ctx.stage;
  run.metrics_path = ctx.metrics_path;
  run.checkpoints_dir = ctx.checkpoints_dir;
  run.final_dir = ctx.final_dir;
  if (absl::StatusOr<std::string> latest = LatestCheckpoint(ctx.checkpoints_dir); latest.ok()) run.resume_dir = *latest;
  Clock::time_point last = Clock::now();
  SftStageHooks hooks;
  hooks.on_start = [&](const Model& model, int64_t step) -> absl::Status {
    int64_t version;
    {
      std::lock_guard<std::mutex> lock(mu_);
      version = versions_.Next();
      step_ = step;
    }
    SWARR_RETURN_IF_ERROR(PublishModel(model, version));
    last = Clock::now();
    return absl::OkStatus();
  };
  hooks.on_step = [&](const SftStepMetrics& m, const std::string& line) -> absl::Status {
    const Clock::time_point now = Clock::now();
    metrics_->step_seconds.Observe(std::chrono::duration<double>(now - last).count());
    last = now;
    metrics_->loss.Set(m.loss);
    std::lock_guard<std::mutex> lock(mu_);
    step_ = m.step;
    last_metrics_ = NumericFields(line);
    ChangedLocked();
    return absl::OkStatus();
  };
  hooks.should_stop = [this]() { return stop_.load(); };
  SWARR_ASSIGN_OR_RETURN(SftStageResult result, RunSftStage(run, hooks));
  if (result.interrupted) return absl::OkStatus();
  SWARR_RETURN_IF_ERROR(CopyTokenizerFiles(ctx.source_dir, ctx.final_dir));
  int64_t version;
  {
    std::lock_guard<std::mutex> lock(mu_);
    version = versions_.Next();
  }
  SWARR_RETURN_IF_ERROR(PublishModel(*result.model, version));
  std::map<std::string, double> metrics;
  {
    std::lock_guard<std::mutex> lock(mu_);
    metrics = last_metrics_;
  }
  nlohmann::json done = {{"stage", ctx.stage.name()},     {"stop_reason", result.stop_reason},
                         {"step", result.step},           {"version", version},
                         {"final_model_dir", ctx.final_dir}, {"metrics", metrics}};
  SWARR_RETURN_IF_ERROR(WriteFileAtomically(ctx.done_path, {done.dump(2)}));
  std::lock_guard<std::mutex> lock(mu_);
  state_ = v1::LearnerStatus::DONE;
  step_ = result.step;
  stop_reason_ = result.stop_reason;
  final_model_dir_ = ctx.final_dir;
  ChangedLocked();
  return absl::OkStatus();
}

}  // namespace swarr
