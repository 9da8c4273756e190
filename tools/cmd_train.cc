// swarr train --config FILE.yaml --run-dir DIR: runs one `train` (SFT) or `rl` stage.
#include <sys/stat.h>

#include <chrono>
#include <iostream>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config/config_loader.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "learner/checkpoint.h"
#include "learner/sft_trainer.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/train_common.h"

namespace swarr {

absl::Status RunRlStage(const v1::Stage& stage, const std::string& run_dir, const std::string& ckpt_dir,
                        const std::string& resume);

namespace {

int64_t ExtraInt(const std::string& checkpoint_dir, const char* key) {
  auto text = ReadFile(checkpoint_dir + "/trainer_state.json");
  if (!text.ok()) return 0;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("extra") || !j["extra"].contains(key)) return 0;
  return j["extra"][key].is_number_integer() ? j["extra"][key].get<int64_t>() : 0;
}

absl::Status RunSftStage(const v1::Stage& stage, const std::string& run_dir, const std::string& ckpt_dir,
                         const std::string& resume) {
  SWARR_ASSIGN_OR_RETURN(auto model, LoadStageModel(stage.model(), stage.seed(), resume));
  SWARR_ASSIGN_OR_RETURN(auto data, BuildSftData(stage.data(), *model, stage.model().path()));
  const v1::SftConfig& cfg = stage.train();
  SftOptions opts;
  opts.max_seq_len = cfg.max_seq_len();
  opts.micro_batch_tokens = cfg.micro_batch_tokens() > 0 ? cfg.micro_batch_tokens()
                                                          : (cfg.max_seq_len() > 0 ? cfg.max_seq_len() : 4096);
  opts.grad_accum_steps = std::max<int64_t>(1, cfg.grad_accum_steps());
  opts.schedule = ScheduleFromConfig(stage.optimizer(), stage.stop().max_steps());
  opts.adam = AdamFromConfig(stage.optimizer());
  opts.seed = stage.data().seed();
  // Longer examples are truncated (the schema's rule), and counted.
  int64_t truncated = 0;
  const int64_t limit = std::min(opts.max_seq_len > 0 ? opts.max_seq_len : INT64_MAX, opts.micro_batch_tokens);
  for (SftExample& e : data) {
    const int64_t len = static_cast<int64_t>(e.prompt.size() + e.response.size());
    if (len <= limit) continue;
    ++truncated;
    const int64_t keep = limit - static_cast<int64_t>(e.prompt.size());
    if (keep < 1) return absl::InvalidArgumentError(absl::StrCat("an SFT prompt of ", e.prompt.size(),
                                                                 " tokens leaves no room under max_seq_len ", limit));
    e.response.resize(keep);
  }
  if (truncated > 0) std::cerr << "swarr: truncated " << truncated << " SFT examples to " << limit << " tokens\n";
  SWARR_ASSIGN_OR_RETURN(auto trainer, SftTrainer::Create(model.get(), std::move(data), opts));
  int64_t tokens_total = 0;
  if (!resume.empty()) {
    SWARR_RETURN_IF_ERROR(trainer->Restore(resume));
    tokens_total = ExtraInt(resume, "tokens_total");
    std::cerr << "swarr: resuming " << stage.name() << " from " << resume << " (step " << trainer->state().step
              << ")\n";
  }
  SWARR_ASSIGN_OR_RETURN(auto log, MetricsLog::Open(run_dir + "/metrics.jsonl", trainer->state().step));
  const v1::StopRule& stop = stage.stop();
  const auto start = std::chrono::steady_clock::now();
  Progress progress(stage.name().empty() ? "train" : stage.name());
  int64_t skipped = 0, last_saved = trainer->state().step;
  std::string reason;
  auto save = [&]() -> absl::Status {
    TrainerState st = trainer->state();
    st.extra_json = nlohmann::json({{"tokens_total", tokens_total}, {"skipped_steps", skipped}}).dump();
    SWARR_ASSIGN_OR_RETURN(std::string dir, SaveCheckpoint(ckpt_dir, *model, trainer->optimizer(), st,
                                                           stage.checkpoint().keep_last()));
    last_saved = st.step;
    (void)dir;
    return absl::OkStatus();
  };
  while (true) {
    const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60;
    if (stop.max_steps() > 0 && trainer->state().step >= stop.max_steps()) reason = "max_steps";
    else if (stop.max_tokens() > 0 && tokens_total >= stop.max_tokens()) reason = "max_tokens";
    else if (stop.max_minutes() > 0 && minutes >= stop.max_minutes()) reason = "max_minutes";
    if (!reason.empty()) break;
    auto m = trainer->Step();
    if (!m.ok() && m.status().code() == absl::StatusCode::kDataLoss) {
      ++skipped;
      std::cerr << "\nswarr: " << m.status().message() << " (" << skipped << " skipped so far)\n";
      continue;
    }
    if (!m.ok()) return m.status();
    tokens_total += m->tokens;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    log->Write(nlohmann::json({{"step", m->step},
                               {"loss", m->loss},
                               {"lr", m->lr},
                               {"tokens", m->tokens},
                               {"tokens_total", tokens_total},
                               {"padded_tokens", m->padded_tokens},
                               {"examples", m->examples},
                               {"grad_norm", m->grad_norm},
                               {"seconds", secs}})
                   .dump());
    progress.Update(absl::StrCat("step ", m->step, stop.max_steps() > 0 ? absl::StrCat("/", stop.max_steps()) : "",
                                 "  loss ", absl::StrFormat("%.4f", m->loss), "  lr ",
                                 absl::StrFormat("%.2e", m->lr), "  ", tokens_total, " tokens"));
    if (stage.checkpoint().every_steps() > 0 && m->step % stage.checkpoint().every_steps() == 0) {
      SWARR_RETURN_IF_ERROR(save());
    }
    if (stop.target_loss() > 0 && m->loss <= stop.target_loss()) reason = "target_loss";
  }
  progress.Done();
  if (last_saved != trainer->state().step || trainer->state().step == 0) SWARR_RETURN_IF_ERROR(save());
  SWARR_RETURN_IF_ERROR(model->Save(run_dir + "/final"));
  std::cerr << "swarr: " << stage.name() << " stopped by " << reason << " at step " << trainer->state().step
            << "; model in " << run_dir << "/final\n";
  return absl::OkStatus();
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
  if (stage.has_train()) return RunSftStage(stage, run_dir, ckpt_dir, resume);
  if (stage.has_rl()) return RunRlStage(stage, run_dir, ckpt_dir, resume);
  return absl::InvalidArgumentError("swarr train runs `train` and `rl` stages; eval stages run in pipelines");
}

}  // namespace

int RunTrain(const std::vector<std::string>& args) {
  absl::Status st = Train(args);
  return st.ok() ? 0 : FailWithStatus(st);
}

}  // namespace swarr
