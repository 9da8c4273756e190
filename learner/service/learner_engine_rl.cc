// LearnerEngine's rl stage: PrepareRlStage (StartStage's thread: the model or its newest
// checkpoint, the crash-consistency cut of trained_ids.log, the first version) and RunRlStage
// (the stage thread: wait for a step's groups, train, publish, checkpoint, stop rules and the
// uniform-batch and idle bounds). The contract is in learner_engine.h.
#include <algorithm>
#include <chrono>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/model/model.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"
#include "learner/checkpoint.h"
#include "learner/rl_trainer.h"
#include "learner/service/idle_bound.h"
#include "learner/service/learner_engine.h"
#include "learner/service/learner_engine_internal.h"
#include "learner/service/weights_blob.h"
#include "learner/stage_common.h"
#include "learner/uniform_batches.h"
#include "nlohmann/json.hpp"

namespace swarr {

using engine_internal::CopyTokenizerFiles;
using engine_internal::JsonInt;
using engine_internal::NumericFields;
using Clock = std::chrono::steady_clock;

namespace {

Trajectory FromProto(const v1::Trajectory& t) {
  Trajectory out;
  out.id = t.id();
  out.group = t.group_id();
  out.prompt.assign(t.prompt_ids().begin(), t.prompt_ids().end());
  out.completion.assign(t.completion_ids().begin(), t.completion_ids().end());
  out.behaviour_logprobs.assign(t.behaviour_logprobs().begin(), t.behaviour_logprobs().end());
  out.reward = t.reward();
  out.policy_version = t.policy_version();
  out.truncated = !t.stopped();
  return out;
}

}  // namespace

// An rl stage's model, trainer and version numbering, from its preparation (StartStage's
// thread) to its end (the stage thread).
struct LearnerEngine::RlRun {
  std::unique_ptr<Model> policy, reference;
  std::unique_ptr<RlTrainer> trainer;
  std::unique_ptr<MetricsLog> log;
  // rl.log_trajectories: RUN_DIR/stages/<name>/trajectories.jsonl (null when off).
  std::unique_ptr<MetricsLog> trajectories;
  bool resumed = false;
  // Global version = base + the trainer's own policy version (which starts at 0).
  int64_t base = 0;
  int64_t stage_start = 0;
  int64_t tokens_total = 0;
  // The loop's state (RunRlStage).
  Clock::time_point start;   // when the loop began (metrics.jsonl "seconds")
  bool has_deadline = false;  // stop.max_minutes
  Clock::time_point deadline;
  int64_t last_saved = -1;  // step of the newest checkpoint written or resumed
  std::optional<UniformBatches> uniform;
  std::optional<IdleBound> idle;
};

absl::StatusOr<std::shared_ptr<LearnerEngine::RlRun>> LearnerEngine::PrepareRlStage(const StageContext& ctx) {
  const v1::Stage& stage = ctx.stage;
  auto run = std::make_shared<RlRun>();
  std::string resume;
  if (absl::StatusOr<std::string> latest = LatestCheckpoint(ctx.checkpoints_dir); latest.ok()) resume = *latest;
  SWARR_ASSIGN_OR_RETURN(run->policy, LoadStageModel(stage.model(), stage.seed(), resume));
  if (stage.rl().kl_coef() > 0 || stage.rl().kl_reward_coef() > 0) {
    SWARR_ASSIGN_OR_RETURN(run->reference, LoadStageModel(stage.model(), stage.seed(), ""));
  }
  SWARR_RETURN_IF_ERROR(CheckStageFitsMemory(stage, *run->policy, RlMicroBatchTokens(stage)));
  SWARR_ASSIGN_OR_RETURN(run->trainer,
                         RlTrainer::Create(run->policy.get(), run->reference.get(), RlOptionsFromStage(stage)));
  RlTrainer& trainer = *run->trainer;
  int64_t publish = 0;
  bool restore_pending = false;
  if (!resume.empty()) {
    run->resumed = true;
    SWARR_RETURN_IF_ERROR(trainer.Restore(resume));
    SWARR_ASSIGN_OR_RETURN(std::string text, ReadFile(resume + "/trainer_state.json"));
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    const nlohmann::json extra = j.is_object() && j.contains("extra") ? j["extra"] : nlohmann::json::object();
    run->base = JsonInt(extra, "version_base", 0);
    run->stage_start = JsonInt(extra, "stage_start_version", run->base);
    run->tokens_total = JsonInt(extra, "tokens_total", 0);
    // Crash consistency: the ids of steps after the checkpoint were trained into weights that
    // are gone; they are not trained (the coordinator generates their groups again).
    const int64_t trained_lines = JsonInt(extra, "trained_log_lines", -1);
    if (trained_lines >= 0 && trained_lines < trained_log_->lines()) {
      std::cerr << "swarr learner: trained_ids.log: " << trained_log_->lines() - trained_lines
                << " ids of steps after the checkpoint cut (those steps are lost)\n";
      SWARR_RETURN_IF_ERROR(trained_log_->TruncateTo(trained_lines));
    }
    const int64_t saved = run->base + trainer.policy_version();
    std::lock_guard<std::mutex> lock(mu_);
    if (versions_.latest() >= saved) {
      // This process already published that number: number on from its newest.
      publish = versions_.Next();
      run->base = publish - trainer.policy_version();
    } else {
      publish = saved;
      restore_pending = true;
    }
    std::cerr << "swarr learner: resuming " << stage.name() << " from " << resume << " (step "
              << trainer.state().step << ", version " << publish << ")\n";
  } else {
    // No checkpoint: the stage starts over, so ids an earlier learner trained in it (steps that
    // no checkpoint holds) are cut; trained_log_start records where the stage began.
    const std::string start_path = ctx.stage_dir + "/trained_log_start";
    if (absl::StatusOr<std::string> text = ReadFile(start_path); text.ok()) {
      int64_t start = -1;
      if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &start) || start < 0) {
        return absl::DataLossError(absl::StrCat(start_path, ": not a line count"));
      }
      if (start < trained_log_->lines()) {
        std::cerr << "swarr learner: trained_ids.log: " << trained_log_->lines() - start
                  << " ids of an earlier start of " << stage.name() << " without a checkpoint cut\n";
        SWARR_RETURN_IF_ERROR(trained_log_->TruncateTo(start));
      }
    } else {
      SWARR_RETURN_IF_ERROR(WriteFileAtomically(start_path, {absl::StrCat(trained_log_->lines(), "\n")}));
    }
    std::lock_guard<std::mutex> lock(mu_);
    publish = versions_.Next();
    run->base = run->stage_start = publish;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stage_start_version_ = run->stage_start;
    step_ = trainer.state().step;
    durable_lines_ = trained_log_->lines();
    if (restore_pending) {
      if (absl::Status st = buffer_.RestorePending(ctx.stage_dir, stage.name(), trainer.state().step, *trained_log_);
          !st.ok()) {
        std::cerr << "swarr learner: buffered trajectories not restored: " << st.message() << "\n";
      }
      work_cv_.notify_all();
    }
  }
  // The lines kept are held by the checkpoint (or came before the stage): never cut again.
  SWARR_RETURN_IF_ERROR(trained_log_->Settle(trained_log_->lines()));
  SWARR_ASSIGN_OR_RETURN(run->log, MetricsLog::Open(ctx.metrics_path, trainer.state().step));
  if (ctx.stage.rl().log_trajectories()) {
    // Same truncation on resume as metrics.jsonl: lines of steps after the checkpoint go.
    SWARR_ASSIGN_OR_RETURN(run->trajectories,
                           MetricsLog::Open(absl::StrCat(options_.run_dir, "/stages/", ctx.stage.name(),
                                                         "/trajectories.jsonl"),
                                            trainer.state().step));
  }
  SWARR_RETURN_IF_ERROR(PublishModel(*run->policy, publish));
  return run;
}

absl::Status LearnerEngine::RunRlStage(const StageContext& ctx, RlRun& run) {
  const v1::Stage& stage = ctx.stage;
  const v1::StopRule& stop = stage.stop();
  const int64_t per_step = RlUpdatesPerStep(stage.rl());
  RlTrainer* trainer = run.trainer.get();
  run.start = Clock::now();
  run.has_deadline = stop.max_minutes() > 0;
  run.deadline =
      run.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(stop.max_minutes() * 60));
  run.last_saved = run.resumed ? trainer->state().step : -1;
  // Batches in a row in which dynamic sampling dropped every group (all rewards of each group
  // equal). Such a batch makes no update, so the step does not advance: the learner takes the
  // next batch (the coordinator dispatches more prompts as the buffer empties) up to
  // rl.max_uniform_batches of them, then the stage fails with the reason.
  run.uniform.emplace(stage.rl().max_uniform_batches());
  metrics_->uniform_batches_in_a_row.Set(0);
  // No trajectory of the stage arriving for rl.max_idle_minutes (no rollout generating for
  // it): the stage fails instead of waiting forever.
  run.idle.emplace(stage.rl().max_idle_minutes(), run.start);

  std::string reason;
  while (reason.empty()) {
    if (stop.max_steps() > 0 && trainer->state().step >= stop.max_steps() * per_step) reason = "max_steps";
    else if (stop.max_tokens() > 0 && run.tokens_total >= stop.max_tokens()) reason = "max_tokens";
    else if (run.has_deadline && Clock::now() >= run.deadline) reason = "max_minutes";
    if (!reason.empty()) break;
    RlBatch batch;
    SWARR_ASSIGN_OR_RETURN(const RlWait wait, WaitForRlBatch(ctx, run, &batch));
    if (wait == RlWait::kStop) {
      if (run.last_saved != trainer->state().step) SWARR_RETURN_IF_ERROR(SaveRlCheckpoint(ctx, run));
      std::lock_guard<std::mutex> lock(mu_);
      SWARR_RETURN_IF_ERROR(buffer_.SavePending(ctx.stage_dir, ctx.stage.name(), trainer->state().step));
      std::cerr << "swarr learner: " << stage.name() << " interrupted at step " << trainer->state().step
                << "; checkpoint written\n";
      return absl::OkStatus();
    }
    if (wait == RlWait::kDeadline) continue;  // max_minutes, checked above
    SWARR_RETURN_IF_ERROR(RunRlStep(ctx, run, std::move(batch), &reason));
  }
  return FinishRlStage(ctx, run, reason);
}

absl::StatusOr<LearnerEngine::RlWait> LearnerEngine::WaitForRlBatch(const StageContext& ctx, RlRun& run,
                                                                    RlBatch* batch) {
  const size_t groups_per_step = static_cast<size_t>(ctx.stage.rl().prompts_per_step());
  IdleBound& idle = *run.idle;
  absl::Status idle_error;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto ready = [&] { return stop_.load() || buffer_.resolved() >= groups_per_step; };
    while (!ready()) {
      idle.Progress(last_arrival_);
      const Clock::time_point now = Clock::now();
      if (idle.Expired(now)) {
        idle_error = idle.Error(ctx.stage.name(), static_cast<int64_t>(groups_per_step),
                                static_cast<int64_t>(buffer_.resolved()), static_cast<int64_t>(buffer_.partial()));
        break;
      }
      if (run.has_deadline && now >= run.deadline) break;
      work_cv_.wait_until(lock, run.has_deadline ? std::min(run.deadline, idle.deadline()) : idle.deadline(), ready);
    }
    if (stop_) return RlWait::kStop;
    if (idle_error.ok()) {
      if (buffer_.resolved() < groups_per_step) return RlWait::kDeadline;
      batch->groups = buffer_.Take(groups_per_step);
      batch->current = run.base + run.trainer->policy_version();
      batch->hook = before_rl_step_;
      ChangedLocked();
      return RlWait::kBatch;
    }
  }
  // What was trained so far survives the failure (a rerun resumes from it).
  if (run.trainer->state().step > 0 && run.last_saved != run.trainer->state().step) {
    SWARR_RETURN_IF_ERROR(SaveRlCheckpoint(ctx, run));
  }
  return idle_error;
}

namespace {

// Staleness again at training time (versions may have moved since arrival): the trajectories
// of `groups` generated by `current` - max_staleness or later and not before the stage's
// `base` version, as the trainer takes them (versions relative to `base`), and their ids.
// Returns how many were dropped.
int64_t TrainingBatch(const std::vector<TrajectoryBuffer::Group>& groups, int64_t current, int64_t max_staleness,
                      int64_t base, std::vector<Trajectory>* batch, std::vector<std::string>* ids) {
  int64_t stale = 0;
  for (const TrajectoryBuffer::Group& g : groups) {
    for (const v1::Trajectory& p : g.accepted) {
      if (p.policy_version() < current - max_staleness || p.policy_version() < base) {
        ++stale;
        continue;
      }
      Trajectory t = FromProto(p);
      ids->push_back(t.id);
      t.policy_version -= base;
      batch->push_back(std::move(t));
    }
  }
  return stale;
}

}  // namespace

absl::Status LearnerEngine::RunRlStep(const StageContext& ctx, RlRun& run, RlBatch taken, std::string* reason) {
  const v1::Stage& stage = ctx.stage;
  RlTrainer* trainer = run.trainer.get();
  UniformBatches& uniform = *run.uniform;
  if (taken.hook) taken.hook();
  std::vector<Trajectory> batch;
  std::vector<std::string> ids;
  const int64_t stale = TrainingBatch(taken.groups, taken.current, ctx.max_staleness, run.base, &batch, &ids);
  if (stale > 0) metrics_->dropped_stale.Increment(static_cast<double>(stale));
  {
    std::lock_guard<std::mutex> lock(mu_);
    counters_.trajectories_dropped_stale += stale;
    if (batch.empty()) {  // every group was dropped: nothing to train on
      buffer_.EndStep();
      ChangedLocked();
      return absl::OkStatus();
    }
  }
  // rl.log_trajectories: what this step trains on, written once the step is known.
  std::vector<nlohmann::json> trained_lines;
  if (run.trajectories) {
    for (const Trajectory& t : batch) {
      trained_lines.push_back({{"id", t.id},
                               {"policy_version", t.policy_version + run.base},
                               {"reward", t.reward},
                               {"completion_ids", t.completion}});
    }
  }
  double batch_lo = batch.front().reward, batch_hi = batch.front().reward;
  for (const Trajectory& t : batch) {
    batch_lo = std::min(batch_lo, t.reward);
    batch_hi = std::max(batch_hi, t.reward);
  }
  const int64_t version_before = trainer->policy_version();
  const Clock::time_point t0 = Clock::now();
  absl::StatusOr<RlStepMetrics> m = CatchTorch("RL step", [&]() { return trainer->Step(std::move(batch)); });
  if (!m.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    buffer_.EndStep();
    return m.status();
  }
  metrics_->step_seconds.Observe(std::chrono::duration<double>(Clock::now() - t0).count());
  for (const std::string& why : m->skip_reasons) std::cerr << "swarr learner: skipped " << why << "\n";
  const int64_t version = run.base + trainer->policy_version();
  std::shared_ptr<const WeightsBlob> blob;
  if (trainer->policy_version() != version_before) {
    v1::WeightVersion v;
    v.set_version(version);
    v.set_learner_incarnation(incarnation_);
    SWARR_ASSIGN_OR_RETURN(WeightsBlob b, SerializeModelWeights(*run.policy, v));
    blob = std::make_shared<const WeightsBlob>(std::move(b));
  }
  // The ids are on disk before their step's version is visible.
  SWARR_RETURN_IF_ERROR(trained_log_->Append(ids));
  metrics_->trained.Increment(static_cast<double>(ids.size()));
  run.tokens_total += m->tokens;
  const std::string line =
      RlStepMetricsLine(*m, version, std::chrono::duration<double>(Clock::now() - run.start).count(), *run.policy);
  const bool all_uniform = uniform.Observe(*m, batch_lo, batch_hi);
  if (all_uniform) metrics_->uniform_batches.Increment();
  metrics_->uniform_batches_in_a_row.Set(static_cast<double>(uniform.in_a_row()));
  // One line per optimizer step: a Step that applied no update (every group dropped as
  // uniform, or every update skipped) leaves the step count where it was.
  if (m->updates > 0) {
    run.log->Write(line);
    for (nlohmann::json& t : trained_lines) {
      t["step"] = m->step;
      run.trajectories->Write(t.dump());
    }
  } else if (all_uniform) {
    std::cerr << "swarr learner: " << stage.name() << ": every group of a batch was uniform ("
              << m->groups_dropped_uniform << " groups, rewards " << batch_lo << ".." << batch_hi
              << "): dropped, no update (" << uniform.in_a_row() << " of at most " << uniform.max_in_a_row()
              << " such batches in a row)\n";
  } else {
    std::cerr << "swarr learner: " << stage.name() << ": a batch of " << ids.size()
              << " trajectories gave no update (" << m->groups_dropped_uniform << " uniform groups, "
              << m->updates_skipped << " skipped updates)\n";
  }
  metrics_->loss.Set(m->loss);
  metrics_->reward.Set(m->reward_mean);
  metrics_->kl.Set(m->kl);
  metrics_->clip_fraction.Set(m->clip_frac);
  for (const auto& [key, value] : RlAlgorithmMetricFields(*m)) metrics_->SetRl(key, value);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (blob) {
      versions_.Add(version, blob, std::nullopt);
      metrics_->policy_version.Set(static_cast<double>(version));
    }
    step_ = m->step;
    last_metrics_ = NumericFields(line);
    buffer_.EndStep();
    ChangedLocked();
  }
  run.idle->Progress(Clock::now());  // the time a step takes is not idle
  if (stage.checkpoint().every_steps() > 0 && m->updates > 0 && m->step % stage.checkpoint().every_steps() == 0) {
    SWARR_RETURN_IF_ERROR(SaveRlCheckpoint(ctx, run));
  }
  SWARR_RETURN_IF_ERROR(PersistState());
  if (stage.stop().target_reward() > 0 && m->reward_mean >= stage.stop().target_reward()) {
    *reason = "target_reward";
    return absl::OkStatus();
  }
  if (uniform.exhausted()) {
    // What was trained so far survives the failure (a rerun resumes from it).
    if (trainer->state().step > 0 && run.last_saved != trainer->state().step) {
      SWARR_RETURN_IF_ERROR(SaveRlCheckpoint(ctx, run));
    }
    return uniform.Error(stage.name());
  }
  return absl::OkStatus();
}

absl::Status LearnerEngine::SaveRlCheckpoint(const StageContext& ctx, RlRun& run) {
  TrainerState st = run.trainer->state();
  // The trained ids up to this step are part of the checkpoint's state: a learner resuming
  // from it cuts the log back to this count.
  const int64_t trained_lines = trained_log_->lines();
  st.extra_json = nlohmann::json({{"version_base", run.base},
                                  {"stage_start_version", run.stage_start},
                                  {"tokens_total", run.tokens_total},
                                  {"trained_log_lines", trained_lines}})
                      .dump();
  SWARR_RETURN_IF_ERROR(SaveCheckpoint(ctx.checkpoints_dir, *run.policy, run.trainer->optimizer(), st,
                                       ctx.stage.checkpoint().keep_last())
                            .status());
  run.last_saved = st.step;
  {
    std::lock_guard<std::mutex> lock(mu_);
    durable_lines_ = trained_lines;
  }
  // Those lines are never cut again: the log keeps only their groups (bounded memory).
  return trained_log_->Settle(trained_lines);
}

absl::Status LearnerEngine::FinishRlStage(const StageContext& ctx, RlRun& run, const std::string& reason) {
  const v1::Stage& stage = ctx.stage;
  const int64_t step = run.trainer->state().step;
  if (run.last_saved != step) SWARR_RETURN_IF_ERROR(SaveRlCheckpoint(ctx, run));
  SWARR_RETURN_IF_ERROR(CatchTorch("saving the final model", [&]() { return run.policy->Save(ctx.final_dir); }));
  SWARR_RETURN_IF_ERROR(CopyTokenizerFiles(ctx.source_dir, ctx.final_dir));
  std::map<std::string, double> metrics;
  int64_t latest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    metrics = last_metrics_;
    latest = versions_.latest();
  }
  nlohmann::json done = {{"stage", stage.name()},           {"stop_reason", reason},
                         {"step", step},                    {"version", latest},
                         {"final_model_dir", ctx.final_dir}, {"metrics", metrics}};
  SWARR_RETURN_IF_ERROR(WriteFileAtomically(ctx.done_path, {done.dump(2)}));
  std::cerr << "swarr learner: " << stage.name() << " stopped by " << reason << " at step " << step << ", version "
            << latest << "\n";
  std::lock_guard<std::mutex> lock(mu_);
  state_ = v1::LearnerStatus::DONE;
  stop_reason_ = reason;
  final_model_dir_ = ctx.final_dir;
  buffer_.Clear();
  ChangedLocked();
  return absl::OkStatus();
}

}  // namespace swarr
