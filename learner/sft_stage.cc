#include "learner/sft_stage.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"
#include "learner/checkpoint.h"
#include "learner/stage_common.h"
#include "nlohmann/json.hpp"

namespace swarr {
namespace {

int64_t ExtraInt(const std::string& checkpoint_dir, const char* key) {
  auto text = ReadFile(checkpoint_dir + "/trainer_state.json");
  if (!text.ok()) return 0;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("extra") || !j["extra"].contains(key)) return 0;
  return j["extra"][key].is_number_integer() ? j["extra"][key].get<int64_t>() : 0;
}

absl::StatusOr<SftStageResult> RunSftStageImpl(const SftStageRun& run, const SftStageHooks& hooks) {
  const v1::Stage& stage = run.stage;
  const std::string& resume = run.resume_dir;
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
  opts.scoring = ScoringFromStage(stage);
  SWARR_RETURN_IF_ERROR(CheckStageFitsMemory(stage, *model, opts.micro_batch_tokens));
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
  SftStageResult result;
  int64_t& tokens_total = result.tokens_total;
  if (!resume.empty()) {
    SWARR_RETURN_IF_ERROR(trainer->Restore(resume));
    tokens_total = ExtraInt(resume, "tokens_total");
    std::cerr << "swarr: resuming " << stage.name() << " from " << resume << " (step " << trainer->state().step
              << ")\n";
  }
  if (hooks.on_start) SWARR_RETURN_IF_ERROR(hooks.on_start(*model, trainer->state().step));
  SWARR_ASSIGN_OR_RETURN(auto log, MetricsLog::Open(run.metrics_path, trainer->state().step));
  const v1::StopRule& stop = stage.stop();
  const auto start = std::chrono::steady_clock::now();
  int64_t skipped = 0, last_saved = trainer->state().step;
  std::string reason;
  auto save = [&]() -> absl::Status {
    TrainerState st = trainer->state();
    st.extra_json = nlohmann::json({{"tokens_total", tokens_total}, {"skipped_steps", skipped}}).dump();
    SWARR_ASSIGN_OR_RETURN(result.last_checkpoint, SaveCheckpoint(run.checkpoints_dir, *model, trainer->optimizer(),
                                                                  st, stage.checkpoint().keep_last()));
    last_saved = st.step;
    return absl::OkStatus();
  };
  while (true) {
    const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60;
    if (stop.max_steps() > 0 && trainer->state().step >= stop.max_steps()) reason = "max_steps";
    else if (stop.max_tokens() > 0 && tokens_total >= stop.max_tokens()) reason = "max_tokens";
    else if (stop.max_minutes() > 0 && minutes >= stop.max_minutes()) reason = "max_minutes";
    if (!reason.empty()) break;
    if (hooks.should_stop && hooks.should_stop()) {
      result.interrupted = true;
      break;
    }
    auto m = trainer->Step();
    if (!m.ok() && m.status().code() == absl::StatusCode::kDataLoss) {
      ++skipped;
      std::cerr << "\nswarr: " << m.status().message() << " (" << skipped << " skipped so far)\n";
      continue;
    }
    if (!m.ok()) return m.status();
    tokens_total += m->tokens;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json fields = {{"step", m->step},
                             {"loss", m->loss},
                             {"lr", m->lr},
                             {"tokens", m->tokens},
                             {"tokens_total", tokens_total},
                             {"padded_tokens", m->padded_tokens},
                             {"examples", m->examples},
                             {"grad_norm", m->grad_norm},
                             {"seconds", secs}};
    fields.update(PeakMemoryFields(*model));
    const std::string line = fields.dump();
    log->Write(line);
    if (hooks.on_step) SWARR_RETURN_IF_ERROR(hooks.on_step(*m, line));
    if (stage.checkpoint().every_steps() > 0 && m->step % stage.checkpoint().every_steps() == 0) {
      SWARR_RETURN_IF_ERROR(save());
    }
    if (stop.target_loss() > 0 && m->loss <= stop.target_loss()) reason = "target_loss";
  }
  if (last_saved != trainer->state().step || trainer->state().step == 0) SWARR_RETURN_IF_ERROR(save());
  result.step = trainer->state().step;
  if (result.interrupted) {
    std::cerr << "swarr: " << stage.name() << " interrupted at step " << result.step << "; checkpoint "
              << result.last_checkpoint << "\n";
  } else {
    SWARR_RETURN_IF_ERROR(model->Save(run.final_dir));
    result.stop_reason = reason;
    std::cerr << "swarr: " << stage.name() << " stopped by " << reason << " at step " << result.step
              << "; model in " << run.final_dir << "\n";
  }
  result.model = std::move(model);
  return result;
}

}  // namespace

absl::StatusOr<SftStageResult> RunSftStage(const SftStageRun& run, const SftStageHooks& hooks) {
  if (!run.stage.has_train()) return absl::InvalidArgumentError("RunSftStage runs `train` stages");
  return CatchTorch("SFT stage", [&]() { return RunSftStageImpl(run, hooks); });
}

}  // namespace swarr
