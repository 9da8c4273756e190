// swarr train --config FILE.yaml --run-dir DIR: runs one `train` (SFT) or `rl` stage.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config/config_loader.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "learner/checkpoint.h"
#include "learner/sft_stage.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/train_common.h"

namespace swarr {

absl::Status RunRlStage(const v1::Stage& stage, const std::string& run_dir, const std::string& ckpt_dir,
                        const std::string& resume);

namespace {

absl::Status RunSft(const v1::Stage& stage, const std::string& run_dir, const std::string& ckpt_dir,
                    const std::string& resume) {
  SftStageRun run;
  run.stage = stage;
  run.metrics_path = run_dir + "/metrics.jsonl";
  run.checkpoints_dir = ckpt_dir;
  run.final_dir = run_dir + "/final";
  run.resume_dir = resume;
  Progress progress(stage.name().empty() ? "train" : stage.name());
  SftStageHooks hooks;
  hooks.on_step = [&](const SftStepMetrics& m, const std::string& line) {
    (void)line;
    const v1::StopRule& stop = stage.stop();
    progress.Update(absl::StrCat("step ", m.step, stop.max_steps() > 0 ? absl::StrCat("/", stop.max_steps()) : "",
                                 "  loss ", absl::StrFormat("%.4f", m.loss), "  lr ", absl::StrFormat("%.2e", m.lr),
                                 "  ", m.tokens, " tokens/step"));
    return absl::OkStatus();
  };
  absl::StatusOr<SftStageResult> result = RunSftStage(run, hooks);
  progress.Done();
  return result.status();
}

absl::Status Train(const std::vector<std::string>& argv) {
  SWARR_ASSIGN_OR_RETURN(Args args, Args::Parse(argv, {"config", "run-dir"}, {}));
  SWARR_ASSIGN_OR_RETURN(std::string config_path, args.Required("config"));
  SWARR_ASSIGN_OR_RETURN(std::string run_dir, args.Required("run-dir"));
  v1::Stage stage;
  SWARR_RETURN_IF_ERROR(LoadYamlConfig(config_path, &stage));
  SWARR_RETURN_IF_ERROR(ValidateStage(stage));
  if (absl::Status st = MakeDirs(run_dir); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--run-dir: ", st.message()));
  }
  SWARR_ASSIGN_OR_RETURN(std::string text, ReadFile(config_path));
  SWARR_RETURN_IF_ERROR(WriteFileAtomically(run_dir + "/config.yaml", {text}));
  const std::string ckpt_dir = stage.checkpoint().dir().empty() ? run_dir + "/checkpoints" : stage.checkpoint().dir();
  std::string resume;
  if (auto latest = LatestCheckpoint(ckpt_dir); latest.ok()) resume = *latest;
  if (stage.has_train()) return RunSft(stage, run_dir, ckpt_dir, resume);
  if (stage.has_rl()) return RunRlStage(stage, run_dir, ckpt_dir, resume);
  return absl::InvalidArgumentError("swarr train runs `train` and `rl` stages; eval stages run in pipelines");
}

}  // namespace

int RunTrain(const std::vector<std::string>& args) {
  absl::Status st = Train(args);
  return st.ok() ? 0 : FailWithStatus(st);
}

}  // namespace swarr
