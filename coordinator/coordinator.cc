#include "coordinator/coordinator.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "coordinator/internal.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"

namespace swarr {

using coordinator_internal::Clock;
using coordinator_internal::Seconds;
using coordinator_internal::UnixNow;
using coordinator_internal::Log;
using coordinator_internal::KindOf;
using coordinator_internal::RandomIncarnation;
using coordinator_internal::ModelDirFor;
using coordinator_internal::EvalRewardKind;
using nlohmann::json;

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)),
      incarnation_(options_.incarnation_for_test.empty() ? RandomIncarnation() : options_.incarnation_for_test),
      state_path_(options_.run_dir + "/coordinator/state.json"),
      journal_path_(options_.run_dir + "/coordinator/acked.journal"),
      weights_(options_.weight_load_timeout_seconds) {}

Coordinator::~Coordinator() { Shutdown(); }

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(CoordinatorOptions options) {
  if (options.run_dir.empty()) return absl::InvalidArgumentError("--run-dir: required");
  if (options.learner_address.empty()) return absl::InvalidArgumentError("--learner: required");
  if (options.pipeline.stages_size() == 0) return absl::InvalidArgumentError("stages: a pipeline needs at least one stage");
  if (!(options.tick_seconds > 0)) return absl::InvalidArgumentError("tick_seconds: must be > 0");
  std::unique_ptr<Coordinator> c(new Coordinator(std::move(options)));
  SWARR_RETURN_IF_ERROR(c->Init());
  return c;
}

absl::Status Coordinator::Init() {
  const v1::PipelineConfig& p = options_.pipeline;
  heartbeat_seconds_ = p.workers().heartbeat_seconds() > 0 ? p.workers().heartbeat_seconds() : 1.0;
  lease_seconds_ = p.workers().lease_seconds() > 0 ? p.workers().lease_seconds() : 5 * heartbeat_seconds_;
  progress_timeout_seconds_ = p.workers().progress_timeout_seconds() > 0 ? p.workers().progress_timeout_seconds() : 60;
  group_timeout_seconds_ = p.workers().group_timeout_seconds() > 0 ? p.workers().group_timeout_seconds() : 1800;
  default_max_sequences_ = p.workers().max_sequences() > 0 ? p.workers().max_sequences() : 64;
  default_max_tokens_ = std::max<int64_t>(0, p.workers().max_tokens());
  limits_ = RpcLimitsFromSettings(p.rpc());
  SWARR_ASSIGN_OR_RETURN(learner_client_, LearnerClient::Create(options_.learner_address, options_.security, limits_));
  registry_ = options_.metrics_registry ? options_.metrics_registry : std::make_shared<prometheus::Registry>();
  metrics_ = std::make_unique<CoordinatorMetrics>(*registry_);

  SWARR_ASSIGN_OR_RETURN(std::optional<CoordinatorState> saved, LoadState(state_path_));
  int32_t stage = 0;
  bool finished = false;
  {
    absl::MutexLock l(&mu_);
    std::vector<std::string> names;
    for (const v1::Stage& s : p.stages()) names.push_back(s.name());
    if (saved.has_value()) {
      std::vector<std::string> saved_names;
      for (const StageRecord& s : saved->stages) saved_names.push_back(s.name);
      if (saved_names != names) {
        return absl::FailedPreconditionError(absl::StrCat(
            state_path_, " records stages [", absl::StrJoin(saved_names, ", "), "] but the config has [",
            absl::StrJoin(names, ", "), "]; use another --run-dir"));
      }
      state_ = std::move(*saved);
      state_.pipeline = p.name();
      for (int i = 0; i < p.stages_size(); ++i) state_.stages[i].kind = KindOf(p.stages(i));
      if (!state_.error.empty()) {
        // The previous run failed: try the failed stage again.
        Log(absl::StrCat("previous run ended with: ", state_.error, "; retrying"));
        state_.error.clear();
        for (StageRecord& s : state_.stages) {
          if (s.state == "failed") s.state = "pending";
        }
      }
      Log(absl::StrCat("resuming pipeline ", p.name(), " at stage ", state_.stage_index, " (", state_path_, ")"));
    } else {
      state_.pipeline = p.name();
      state_.started_unix_seconds = UnixNow();
      for (int i = 0; i < p.stages_size(); ++i) {
        StageRecord r;
        r.name = p.stages(i).name();
        r.kind = KindOf(p.stages(i));
        state_.stages.push_back(std::move(r));
      }
    }
    state_.incarnations.push_back(incarnation_);
    // Acknowledged rl groups of the previous process, not yet known to be trained durably.
    const std::string current = state_.stage_index < p.stages_size() ? p.stages(state_.stage_index).name() : "";
    // Those in state.json, then those acknowledged after it was written (acked.journal; a last
    // line without its newline was cut by a kill mid-write: that heartbeat was not answered).
    std::vector<std::pair<std::string, std::string>> entries;  // (where, base64 PromptGroup)
    for (const std::string& text : state_.acked_groups) entries.emplace_back(state_path_ + ": acked_groups", text);
    absl::StatusOr<std::string> journal = ReadFile(journal_path_);
    if (!journal.ok() && !absl::IsNotFound(journal.status())) return journal.status();
    if (journal.ok()) {
      for (size_t at = 0, nl; (nl = journal->find('\n', at)) != std::string::npos; at = nl + 1) {
        if (nl > at) entries.emplace_back(journal_path_, journal->substr(at, nl - at));
      }
    }
    for (const auto& [where, text] : entries) {
      std::string bytes;
      Group g;
      if (!absl::Base64Unescape(text, &bytes) || !g.group.ParseFromString(bytes) || g.group.group_id().empty()) {
        return absl::DataLossError(absl::StrCat(where, ": an acknowledged group does not parse"));
      }
      if (g.group.stage() != current || g.group.eval()) continue;
      g.stage_index = state_.stage_index;
      g.ever_sent = g.ever_finished = true;
      g.tokens = (static_cast<int64_t>(g.group.prompt_ids_size()) + g.group.max_new_tokens()) * g.group.num_samples();
      const std::string id = g.group.group_id();
      acked_[id] = std::move(g);
    }
    state_.acked_groups.clear();
    if (!acked_.empty()) Log(absl::StrCat(acked_.size(), " acknowledged groups of the previous process to check with the learner"));
    metrics_->groups_dispatched.Increment(static_cast<double>(state_.groups_dispatched));
    metrics_->groups_finished.Increment(static_cast<double>(state_.groups_finished));
    metrics_->groups_reassigned.Increment(static_cast<double>(state_.groups_reassigned));
    metrics_->stage_index.Set(state_.stage_index);
    stage = state_.stage_index;
    finished = state_.done || stage >= p.stages_size();
    resumed_done_ = saved.has_value() && state_.done;
    MarkDirtyLocked(true);
  }
  if (!finished) SWARR_RETURN_IF_ERROR(PrepareStage(stage));
  SWARR_RETURN_IF_ERROR(MakeDirs(options_.run_dir + "/coordinator"));
  PersistIfDue(true);
  return absl::OkStatus();
}

void Coordinator::Start() {
  absl::MutexLock l(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  loop_ = std::thread([this] { Loop(); });
}

void Coordinator::Shutdown() {
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (loop_.joinable()) loop_.join();
  {
    absl::MutexLock l(&mu_);
    for (auto& [id, w] : workers_) {
      if (w.stream) w.stream->Close(absl::UnavailableError("the coordinator is shutting down"));
      w.stream = nullptr;
    }
  }
  PersistIfDue(true);
}

bool Coordinator::WaitForDone(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_ || stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  return done_;
}

absl::Status Coordinator::result() const {
  absl::MutexLock l(&mu_);
  return result_;
}

void Coordinator::Loop() {
  const absl::Duration tick = absl::Seconds(options_.tick_seconds);
  while (true) {
    {
      absl::MutexLock l(&mu_);
      if (stopping_ || done_) return;
    }
    Tick();
    absl::MutexLock l(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), tick);
    if (stopping_) return;
  }
}

void Coordinator::Deliver(Outbox& out) {
  std::sort(out.flush.begin(), out.flush.end());
  out.flush.erase(std::unique(out.flush.begin(), out.flush.end()), out.flush.end());
  for (const auto& sink : out.flush) sink->Flush();
  out.flush.clear();
}

absl::Status Coordinator::PrepareStage(int32_t stage) {
  const v1::PipelineConfig& p = options_.pipeline;
  const v1::Stage& s = p.stages(stage);
  std::unique_ptr<PromptSet> prompts;
  std::string reward;
  if (s.has_rl() || s.has_eval()) {
    auto opened = PromptSet::Open(s.data(), ModelDirFor(p, stage));
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("stages[", stage, "] (", s.name(), "): ", opened.status().message()));
    }
    prompts = std::move(*opened);
    reward = s.has_rl() ? (s.rl().reward().empty() ? "verifier" : s.rl().reward()) : EvalRewardKind(p, stage);
  }
  Outbox out;
  {
    absl::MutexLock l(&mu_);
    if (stage != state_.stage_index) return absl::OkStatus();
    prompts_ = std::move(prompts);
    tokenizer_json_ = prompts_ ? prompts_->tokenizer_json() : "";
    reward_kind_ = reward;
    prepared_stage_ = stage;
    eval_groups_created_ = false;
    eval_problems_ = 0;
    if (s.has_rl()) {
      std::seed_seq seq{static_cast<uint32_t>(s.seed()), static_cast<uint32_t>(s.seed() >> 32),
                        static_cast<uint32_t>(s.data().seed()), static_cast<uint32_t>(s.data().seed() >> 32)};
      rng_.seed(seq);
      // Continue the prompt sequence where the previous incarnation left it.
      for (int64_t i = 0; i < state_.stages[stage].groups_drawn; ++i) prompts_->Draw(rng_);
    }
    if (s.has_eval()) {
      eval_problems_ = prompts_->size();
      if (s.eval().num_problems() > 0) eval_problems_ = std::min(eval_problems_, s.eval().num_problems());
    }
    const v1::Assignment info = StageInfoLocked();
    for (auto& [id, w] : workers_) {
      if (w.stream && w.stream->Enqueue(info)) out.flush.push_back(w.stream);
    }
    metrics_->stage_index.Set(stage);
  }
  Deliver(out);
  Log(absl::StrCat("stage ", stage, " '", s.name(), "' (", KindOf(s), ")"));
  return absl::OkStatus();
}

void Coordinator::Tick() {
  const int32_t num_stages = options_.pipeline.stages_size();
  int32_t stage = 0;
  bool prepare = false, finished = false;
  {
    absl::MutexLock l(&mu_);
    if (stopping_ || done_) return;
    ExpireLeasesLocked(Clock::now());
    UpdateGroupGaugesLocked();
    stage = state_.stage_index;
    finished = state_.done || stage >= num_stages;
    prepare = !finished && prepared_stage_ != stage;
  }
  if (finished) {
    FinishPipeline();
    return;
  }
  if (prepare) {
    absl::Status s = PrepareStage(stage);
    if (!s.ok()) {
      FailPipeline(stage, std::string(s.message()));
      return;
    }
  }
  int64_t finish_mark = 0;
  {
    absl::MutexLock l(&mu_);
    // Groups reported finished from now on may be missing from the status this poll returns.
    finish_mark = finish_counter_;
  }
  absl::StatusOr<v1::LearnerStatus> status = learner_client_->GetStatus(std::min(5.0, limits_.deadline_seconds));
  if (status.ok() && (status->state() == v1::LearnerStatus::IDLE || status->stage_index() != stage)) {
    if (Clock::now() < next_start_attempt_) {
      status = absl::UnavailableError(absl::StrCat("the learner is on stage ", status->stage_index(),
                                                   "; asking it to start stage ", stage, " again shortly"));
    } else {
      absl::StatusOr<v1::LearnerStatus> started =
          learner_client_->StartStage(stage, options_.pipeline, limits_.deadline_seconds);
      if (!started.ok() && absl::IsInvalidArgument(started.status())) {
        FailPipeline(stage, absl::StrCat("the learner rejected it: ", started.status().message()));
        return;
      }
      if (started.ok() && started->stage_index() == stage && started->state() != v1::LearnerStatus::IDLE) {
        status = std::move(started);
      } else {
        next_start_attempt_ = Clock::now() + std::chrono::seconds(1);
        status = started.ok() ? absl::FailedPreconditionError(absl::StrCat(
                                    "StartStage(", stage, ") left the learner on stage ", started->stage_index()))
                              : started.status();
      }
    }
  }
  if (!status.ok()) {
    const std::string message = absl::StrCat(absl::StatusCodeToString(status.status().code()), ": ",
                                             status.status().message());
    if (message != last_logged_learner_error_) {
      Log(absl::StrCat("learner ", options_.learner_address, ": ", message, " (retrying)"));
      last_logged_learner_error_ = message;
    }
    {
      absl::MutexLock l(&mu_);
      learner_error_ = message;
    }
    PersistIfDue(false);
    return;
  }
  if (!last_logged_learner_error_.empty()) {
    Log(absl::StrCat("learner ", options_.learner_address, " answers again"));
    last_logged_learner_error_.clear();
  }
  const bool rl_stage = options_.pipeline.stages(stage).has_rl();
  if (rl_stage && status->state() == v1::LearnerStatus::DONE && !CheckAckedGroups(stage, /*final=*/true)) {
    PersistIfDue(false);
    return;  // the learner did not answer: the stage ends on a later tick
  }
  // Lost groups go back to the front of the queue before new prompts are drawn.
  if (rl_stage && status->state() == v1::LearnerStatus::RUNNING) CheckAckedGroups(stage, /*final=*/false);
  HandleLearnerStatus(stage, *status, finish_mark);
  PersistIfDue(false);
}

void Coordinator::HandleLearnerStatus(int32_t stage, const v1::LearnerStatus& st, int64_t finish_mark) {
  const v1::Stage& s = options_.pipeline.stages(stage);
  Outbox out;
  bool fail = false, check_eval = false;
  {
    absl::MutexLock l(&mu_);
    if (stopping_ || state_.stage_index != stage) return;
    learner_ = st;
    learner_error_.clear();
    metrics_->learner_step.Set(static_cast<double>(st.step()));
    StageRecord& rec = state_.stages[stage];
    if (rec.state == "pending") {
      rec.state = "running";
      MarkDirtyLocked(true);
    }
    weights_.SetTarget(st.latest());
    switch (st.state()) {
      case v1::LearnerStatus::FAILED:
        fail = true;
        break;
      case v1::LearnerStatus::DONE:
        if (s.has_eval()) {
          if (!eval_groups_created_) CreateEvalGroupsLocked(st.latest());
          check_eval = true;
        } else {
          std::map<std::string, double> m(st.metrics().begin(), st.metrics().end());
          CompleteStageLocked(stage, st.step(), m);
        }
        break;
      case v1::LearnerStatus::RUNNING:
        if (s.has_rl()) DispatchRlLocked(st, finish_mark, &out);
        break;
      default:
        break;
    }
    if (!fail) {
      DispatchPendingLocked(&out);
      OrchestrateWeightsLocked(Clock::now(), &out);
    }
  }
  Deliver(out);
  if (fail) {
    FailPipeline(stage, absl::StrCat("the learner reports: ", st.error().empty() ? "FAILED" : st.error()));
    return;
  }
  if (check_eval) MaybeFinishEval(stage);
}

void Coordinator::CompleteStageLocked(int32_t stage, int64_t steps, const std::map<std::string, double>& metrics) {
  StageRecord& rec = state_.stages[stage];
  rec.state = "done";
  rec.steps = steps;
  rec.metrics = metrics;
  // Queued groups of the stage are dropped; those on workers keep counting against their
  // capacity until the workers report them finished.
  for (const std::string& id : pending_) groups_.erase(id);
  pending_.clear();
  for (const auto& [id, g] : acked_) finished_ids_.Insert(id);
  acked_.clear();
  for (auto& [id, w] : workers_) w.adopted.clear();
  state_.eval_results.clear();
  state_.stage_index = stage + 1;
  eval_groups_created_ = false;
  if (state_.stage_index >= options_.pipeline.stages_size()) state_.done = true;
  metrics_->stage_index.Set(state_.stage_index);
  MarkDirtyLocked(true);
  std::vector<std::string> shown;
  for (const auto& [k, v] : metrics) shown.push_back(absl::StrCat(k, "=", v));
  Log(absl::StrCat("stage ", stage, " '", rec.name, "' done: steps ", steps, shown.empty() ? "" : ", ",
                   absl::StrJoin(shown, ", ")));
}

void Coordinator::FailPipeline(int32_t stage, const std::string& message) {
  {
    absl::MutexLock l(&mu_);
    if (done_) return;
    const std::string name = options_.pipeline.stages(stage).name();
    state_.stages[stage].state = "failed";
    state_.error = absl::StrCat("stage '", name, "' failed: ", message);
    MarkDirtyLocked(true);
    Log(state_.error);
  }
  FinishPipeline();
}

void Coordinator::FinishPipeline() {
  v1::LearnerStatus last;
  {
    absl::MutexLock l(&mu_);
    if (done_) return;
    last = learner_;
  }
  // The trajectory counts come from the learner's final status.
  const Clock::time_point give_up =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(options_.final_status_timeout_seconds * 1000));
  while (true) {
    auto st = learner_client_->GetStatus(std::min(5.0, limits_.deadline_seconds));
    if (st.ok()) {
      last = *st;
      break;
    }
    if (Clock::now() >= give_up) {
      Log(absl::StrCat("no final status from the learner (", st.status().message(), "); summary uses the last one"));
      break;
    }
    absl::MutexLock l(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(200))) return;
  }
  json summary;
  absl::Status result;
  {
    absl::MutexLock l(&mu_);
    summary["pipeline"] = state_.pipeline;
    summary["stages"] = json::array();
    for (const StageRecord& s : state_.stages) {
      json m = json::object();
      for (const auto& [k, v] : s.metrics) m[k] = v;
      summary["stages"].push_back(
          {{"name", s.name}, {"kind", s.kind}, {"steps", s.steps}, {"state", s.state}, {"metrics", m}});
    }
    summary["trajectories_trained"] = last.trajectories_trained();
    summary["trajectories_dropped_stale"] = last.trajectories_dropped_stale();
    summary["trajectories_duplicate"] = last.trajectories_duplicate();
    summary["trajectory_ids_trained_twice"] = last.trajectory_ids_trained_twice();
    summary["groups_dispatched"] = state_.groups_dispatched;
    summary["groups_reassigned"] = state_.groups_reassigned;
    // Crash consistency (docs/reliability.md): rl groups the learner acknowledged that no
    // surviving step trained and that were not generated again (0 after any fault), those a
    // restarted learner had lost and that were generated again, and those still buffered when
    // their stage ended.
    summary["groups_acked_never_trained"] = state_.groups_acked_never_trained;
    summary["groups_redispatched_after_learner_restart"] = state_.groups_redispatched_after_learner_restart;
    summary["groups_unused_at_stage_end"] = state_.groups_unused_at_stage_end;
    summary["groups_adopted_after_coordinator_restart"] = state_.groups_adopted;
    summary["wall_seconds"] = UnixNow() - state_.started_unix_seconds;
    if (!state_.error.empty()) summary["error"] = state_.error;  // why the pipeline failed
    result = state_.error.empty() ? absl::OkStatus() : absl::AbortedError(state_.error);
    if (!last.incarnation().empty()) learner_ = last;
  }
  const std::string summary_path = options_.run_dir + "/summary.json";
  const std::string text = summary.dump(2) + "\n";
  absl::Status w;
  if (resumed_done_ && last.incarnation().empty() && ReadFile(summary_path).ok()) {
    // A process restarted after the pipeline ended (the learner may have finished and exited):
    // without a word from the learner, the summary written with its final counts stays.
    Log(absl::StrCat("the pipeline had ended; keeping ", summary_path, " (no learner status to update it)"));
  } else {
    w = WriteFileAtomically(summary_path, {text});
  }
  if (!w.ok()) {
    Log(absl::StrCat("cannot write summary.json: ", w.message()));
    if (result.ok()) result = w;
  }
  v1::PipelineEnd end;
  end.set_pipeline(options_.pipeline.name());
  end.set_exit(options_.at_end == CoordinatorOptions::AtEnd::kExit);
  if (!result.ok()) end.set_error(std::string(result.message()));
  if (end.exit()) FinishLearner(end.error());
  Outbox out;
  {
    absl::MutexLock l(&mu_);
    done_ = true;
    result_ = result;
    pipeline_end_ = end;
    metrics_->groups_queued.Set(0);
    metrics_->groups_assigned.Set(0);
    v1::Assignment a;
    *a.mutable_pipeline_end() = end;
    for (auto& [id, w] : workers_) {
      if (w.stream && w.stream->Enqueue(a)) out.flush.push_back(w.stream);
    }
  }
  Deliver(out);
  PersistIfDue(true);
  Log(result.ok() ? absl::StrCat("pipeline ", options_.pipeline.name(), " done: ", options_.run_dir, "/summary.json")
                  : absl::StrCat("pipeline ", options_.pipeline.name(), " failed: ", result.message()));
  Log(end.exit() ? "the learner and the rollout servers are told to exit"
                 : "the rollout servers are told to stay idle; the learner keeps serving");
}

void Coordinator::FinishLearner(const std::string& reason) {
  const Clock::time_point give_up =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(options_.final_status_timeout_seconds * 1000));
  while (true) {
    const absl::Status s = learner_client_->Finish(options_.pipeline.name(), reason, std::min(5.0, limits_.deadline_seconds));
    if (s.ok()) return;
    if (absl::IsUnimplemented(s)) {
      Log(absl::StrCat("the learner does not implement Learner.Finish (", s.message(), "): it keeps running"));
      return;
    }
    if (Clock::now() >= give_up || absl::IsInvalidArgument(s) || absl::IsPermissionDenied(s) ||
        absl::IsUnauthenticated(s)) {
      Log(absl::StrCat("cannot tell the learner ", options_.learner_address, " to finish (",
                       absl::StatusCodeToString(s.code()), ": ", s.message(), "): it keeps running"));
      return;
    }
    absl::MutexLock l(&mu_);
    if (mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(200))) return;
  }
}

bool Coordinator::WaitForWorkersReleased() {
  const absl::Time give_up = absl::Now() + absl::Seconds(lease_seconds_ + heartbeat_seconds_);
  absl::MutexLock l(&mu_);
  while (true) {
    if (stopping_ || !done_) return false;
    const Clock::time_point now = Clock::now();
    int64_t waiting = 0;
    for (const auto& [id, w] : workers_) {
      const bool gone = w.state == v1::WorkerStatus::DEAD || Seconds(now - w.last_heartbeat) > lease_seconds_;
      if (!gone && !w.told_end && w.state != v1::WorkerStatus::DRAINING) ++waiting;
    }
    if (waiting == 0) return true;
    if (absl::Now() >= give_up) {
      Log(absl::StrCat(waiting, " worker(s) not told that the pipeline ended (no heartbeat since)"));
      return false;
    }
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Milliseconds(50));
  }
}

v1::Assignment Coordinator::StageInfoLocked() const {
  v1::Assignment a;
  v1::StageInfo* info = a.mutable_stage();
  const int32_t index = prepared_stage_ >= 0 ? prepared_stage_ : state_.stage_index;
  info->set_stage_index(index);
  if (index < options_.pipeline.stages_size()) {
    info->set_stage_name(options_.pipeline.stages(index).name());
    info->set_kind(KindOf(options_.pipeline.stages(index)));
  }
  info->set_tokenizer_json(tokenizer_json_);
  return a;
}

v1::PipelineStatus Coordinator::GetStatus() const {
  absl::MutexLock l(&mu_);
  v1::PipelineStatus out;
  const v1::PipelineConfig& p = options_.pipeline;
  out.set_pipeline(p.name());
  out.set_incarnation(incarnation_);
  out.set_stage_index(state_.stage_index);
  if (state_.stage_index < p.stages_size()) {
    out.set_stage_name(p.stages(state_.stage_index).name());
    out.set_stage_kind(KindOf(p.stages(state_.stage_index)));
  }
  if (learner_.stage_index() == state_.stage_index) out.set_step(learner_.step());
  *out.mutable_learner_version() = learner_.latest();
  const Clock::time_point now = Clock::now();
  for (const auto& [id, w] : workers_) {
    v1::WorkerStatus* ws = out.add_workers();
    ws->set_worker_id(w.id);
    ws->set_name(w.name);
    ws->set_address(w.address);
    ws->set_state(w.state);
    *ws->mutable_loaded() = w.loaded;
    ws->set_active_sequences(w.active_sequences);
    ws->set_assigned_groups(static_cast<int32_t>(w.assigned.size()));
    ws->set_finished_groups(w.finished_groups);
    ws->set_tokens_generated(w.tokens_generated);
    ws->set_tokens_per_second(w.tokens_per_second);
    ws->set_seconds_since_heartbeat(Seconds(now - w.last_heartbeat));
  }
  for (size_t i = 0; i < state_.stages.size(); ++i) {
    const StageRecord& s = state_.stages[i];
    v1::StageProgress* sp = out.add_stages();
    sp->set_name(s.name);
    sp->set_kind(s.kind);
    sp->set_state(s.state);
    sp->set_steps(s.steps);
    for (const auto& [k, v] : s.metrics) (*sp->mutable_metrics())[k] = v;
    if (static_cast<int32_t>(i) == state_.stage_index && s.state == "running" &&
        learner_.stage_index() == state_.stage_index) {
      // The running stage: the learner's progress so far.
      sp->set_steps(learner_.step());
      for (const auto& [k, v] : learner_.metrics()) (*sp->mutable_metrics())[k] = v;
    }
  }
  out.set_groups_dispatched(state_.groups_dispatched);
  out.set_groups_finished(state_.groups_finished);
  out.set_groups_reassigned(state_.groups_reassigned);
  out.set_groups_redispatched_after_learner_restart(state_.groups_redispatched_after_learner_restart);
  out.set_groups_adopted(state_.groups_adopted);
  out.set_done(done_);
  if (!state_.error.empty()) {
    out.set_error(state_.error);
  } else if (!learner_error_.empty()) {
    out.set_error(absl::StrCat("learner: ", learner_error_));
  }
  return out;
}

}  // namespace swarr
