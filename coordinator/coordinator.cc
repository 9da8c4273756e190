#include "coordinator/coordinator.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "coordinator/eval_stats.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"

namespace swarr {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr size_t kMaxTextField = 256;   // address, name, device
constexpr size_t kMaxGroupId = 512;
constexpr size_t kMaxDeadWorkers = 64;  // dead workers kept for `swarr status`

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
double UnixNow() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

void Log(const std::string& message) { std::cerr << "coordinator: " << message << "\n"; }

std::string KindOf(const v1::Stage& stage) {
  switch (stage.kind_case()) {
    case v1::Stage::kTrain:
      return "train";
    case v1::Stage::kRl:
      return "rl";
    case v1::Stage::kEval:
      return "eval";
    default:
      return "";
  }
}

std::string RandomIncarnation() {
  std::random_device rd;
  const uint64_t x = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                     static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  return absl::StrFormat("%08x", static_cast<uint32_t>(x ^ (x >> 32)));
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// `have` is `want` or newer weights of the same learner incarnation.
bool HasAtLeast(const v1::WeightVersion& have, const v1::WeightVersion& want) {
  return have.learner_incarnation() == want.learner_incarnation() && have.version() >= want.version();
}

bool SameVersion(const v1::WeightVersion& a, const v1::WeightVersion& b) {
  return a.version() == b.version() && a.learner_incarnation() == b.learner_incarnation();
}

// "<stage>/<incarnation>-<n>".
struct GroupIdParts {
  std::string stage, incarnation;
  int64_t n = -1;
};

bool ParseGroupId(const std::string& id, GroupIdParts* out) {
  const size_t slash = id.find('/');
  if (slash == std::string::npos || slash == 0) return false;
  const std::string rest = id.substr(slash + 1);
  const size_t dash = rest.rfind('-');
  if (dash == std::string::npos || dash == 0) return false;
  out->stage = id.substr(0, slash);
  out->incarnation = rest.substr(0, dash);
  return absl::SimpleAtoi(rest.substr(dash + 1), &out->n) && out->n >= 0;
}

std::string GroupId(const std::string& stage, const std::string& incarnation, int64_t n) {
  return absl::StrFormat("%s/%s-%06d", stage, incarnation, n);
}

// The model directory of `stage`: its model.path, or the nearest earlier stage's.
std::string ModelDirFor(const v1::PipelineConfig& pipeline, int32_t stage) {
  for (int32_t i = stage; i >= 0; --i) {
    if (!pipeline.stages(i).model().path().empty()) return pipeline.stages(i).model().path();
  }
  return "";
}

// EvalConfig has no reward kind: an eval stage scores like the pipeline's nearest rl stage
// (the latest earlier one, else the first later one), else with the verifier.
std::string EvalRewardKind(const v1::PipelineConfig& pipeline, int32_t stage) {
  for (int32_t i = stage - 1; i >= 0; --i) {
    if (pipeline.stages(i).has_rl()) return pipeline.stages(i).rl().reward().empty() ? "verifier" : pipeline.stages(i).rl().reward();
  }
  for (int32_t i = stage + 1; i < pipeline.stages_size(); ++i) {
    if (pipeline.stages(i).has_rl()) return pipeline.stages(i).rl().reward().empty() ? "verifier" : pipeline.stages(i).rl().reward();
  }
  return "verifier";
}

int32_t ClampInt32(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, 0, std::numeric_limits<int32_t>::max()));
}

absl::Status CheckLength(const char* field, const std::string& value, size_t max) {
  if (value.size() > max) return absl::InvalidArgumentError(absl::StrCat(field, ": longer than ", max, " bytes"));
  return absl::OkStatus();
}

absl::Status CheckGroupIds(const char* field, const google::protobuf::RepeatedPtrField<std::string>& ids) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i].empty()) return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: empty group id"));
    if (ids[i].size() > kMaxGroupId) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: longer than ", kMaxGroupId, " bytes"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Construction, lifecycle

Coordinator::Coordinator(CoordinatorOptions options)
    : options_(std::move(options)),
      incarnation_(options_.incarnation_for_test.empty() ? RandomIncarnation() : options_.incarnation_for_test),
      state_path_(options_.run_dir + "/coordinator/state.json") {}

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
    for (const std::string& text : state_.acked_groups) {
      std::string bytes;
      Group g;
      if (!absl::Base64Unescape(text, &bytes) || !g.group.ParseFromString(bytes) || g.group.group_id().empty()) {
        return absl::DataLossError(absl::StrCat(state_path_, ": acked_groups: an entry does not parse"));
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

void Coordinator::MarkDirtyLocked(bool urgent) {
  dirty_ = true;
  urgent_ = urgent_ || urgent;
}

void Coordinator::PersistIfDue(bool force) { (void)Persist(force); }

absl::Status Coordinator::Persist(bool force) {
  // One writer at a time, so that a later snapshot is never overwritten by an earlier one.
  absl::MutexLock writing(&persist_mu_);
  std::string text;
  {
    absl::MutexLock l(&mu_);
    if (!dirty_ && !force) return absl::OkStatus();
    const Clock::time_point now = Clock::now();
    if (!force && !urgent_ && Seconds(now - last_persist_) < options_.persist_interval_seconds) return absl::OkStatus();
    state_.acked_groups.clear();
    for (const auto& [id, g] : acked_) state_.acked_groups.push_back(absl::Base64Escape(g.group.SerializeAsString()));
    text = StateToJson(state_);
    state_.acked_groups.clear();
    dirty_ = urgent_ = false;
    last_persist_ = now;
  }
  absl::Status s = MakeDirs(options_.run_dir + "/coordinator");
  if (s.ok()) s = WriteFileAtomically(state_path_, {text});
  if (!s.ok()) {
    Log(absl::StrCat("cannot write ", state_path_, ": ", s.message()));
    absl::MutexLock l(&mu_);
    MarkDirtyLocked(true);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// The pipeline loop

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

bool Coordinator::CheckAckedGroups(int32_t stage, bool final) {
  const Clock::time_point now = Clock::now();
  if (!final && Seconds(now - last_acked_check_) < 0.5) return true;
  last_acked_check_ = now;
  while (true) {
    std::vector<std::pair<std::string, int32_t>> ask;
    {
      absl::MutexLock l(&mu_);
      if (state_.stage_index != stage || acked_.empty()) return true;
      for (const auto& [id, g] : acked_) {
        ask.emplace_back(id, g.group.num_samples());
        if (ask.size() >= 4096) break;
      }
    }
    absl::StatusOr<v1::GetGroupStatesResponse> r =
        learner_client_->GetGroupStates(ask, std::min(5.0, limits_.deadline_seconds));
    absl::MutexLock l(&mu_);
    if (state_.stage_index != stage) return true;
    if (!r.ok() && absl::IsUnimplemented(r.status())) {
      // A learner without the call: the groups count as finished, as before.
      Log(absl::StrCat("the learner does not answer GetGroupStates (", r.status().message(),
                       "): groups it acknowledged are not checked after a learner restart"));
      group_states_supported_ = false;
      for (const auto& [id, g] : acked_) finished_ids_.Insert(id);
      acked_.clear();
      return true;
    }
    if (final && !r.ok() && (absl::IsFailedPrecondition(r.status()) || absl::IsInvalidArgument(r.status()))) {
      // The learner cannot say (it is no longer on the stage): nothing is counted.
      Log(absl::StrCat("the learner cannot report the groups of stage ", stage, " (", r.status().message(),
                       "); ", acked_.size(), " acknowledged groups are not checked"));
      for (const auto& [id, g] : acked_) finished_ids_.Insert(id);
      acked_.clear();
      return true;
    }
    if (!r.ok() || r->states_size() != static_cast<int>(ask.size())) {
      const std::string why = r.ok() ? absl::StrCat(r->states_size(), " states for ", ask.size(), " groups")
                                     : std::string(r.status().message());
      if (final && why != last_acked_error_) {
        Log(absl::StrCat("the learner's GetGroupStates failed (", why, "); the stage ends once it answers"));
      }
      last_acked_error_ = why;
      return false;
    }
    last_acked_error_.clear();
    int64_t lost = 0;
    for (size_t i = 0; i < ask.size(); ++i) {
      auto it = acked_.find(ask[i].first);
      if (it == acked_.end()) continue;
      const v1::GetGroupStatesResponse::State st = r->states(static_cast<int>(i));
      if (st == v1::GetGroupStatesResponse::DURABLE || st == v1::GetGroupStatesResponse::DROPPED) {
        finished_ids_.Insert(it->first);
        acked_.erase(it);
        continue;
      }
      if (final) {
        // The stage is over (its final checkpoint written): what was buffered is left unused;
        // what the learner does not hold was acknowledged and never trained.
        if (st == v1::GetGroupStatesResponse::BUFFERED) {
          ++state_.groups_unused_at_stage_end;
        } else {
          ++state_.groups_acked_never_trained;
        }
        finished_ids_.Insert(it->first);
        acked_.erase(it);
        MarkDirtyLocked(true);
        continue;
      }
      if (st != v1::GetGroupStatesResponse::UNKNOWN) continue;  // buffered, or trained after the checkpoint
      // The learner that acknowledged it is gone and this one neither holds nor trained it
      // (its trained ids after the checkpoint were cut): generate it again.
      Group g = std::move(it->second);
      acked_.erase(it);
      g.worker.clear();
      const std::string id = g.group.group_id();
      groups_[id] = std::move(g);
      pending_.push_front(id);
      ++state_.groups_redispatched_after_learner_restart;
      ++state_.groups_reassigned;
      metrics_->groups_reassigned.Increment();
      ++lost;
    }
    MarkDirtyLocked(false);  // acked_ changed (persisted with the state)
    if (lost > 0) {
      Log(absl::StrCat("learner ", r->learner_incarnation(), " does not know ", lost,
                       " groups it acknowledged before (a restart lost them): re-queued"));
    }
    if (!final) return true;
  }
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
    if (!st.latest().learner_incarnation().empty() && (!has_target_ || !SameVersion(target_, st.latest()))) {
      target_ = st.latest();
      has_target_ = true;
      commanded_.clear();
    }
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

void Coordinator::MaybeFinishEval(int32_t stage) {
  const v1::Stage& s = options_.pipeline.stages(stage);
  const v1::EvalConfig& e = s.eval();
  struct Row {
    int64_t problem;
    std::string id, answer;
    EvalProblemRecord result;   // group `problem`: the greedy answer (or the samples without greedy)
    bool has_sampled = false;
    EvalProblemRecord sampled;  // group layout.problems + problem: eval.sampled samples
  };
  std::vector<Row> rows;
  int64_t version = 0;
  EvalLayout layout;
  {
    absl::MutexLock l(&mu_);
    if (state_.stage_index != stage || prepared_stage_ != stage || !prompts_) return;
    layout = MakeEvalLayout(e, eval_problems_);
    int64_t have = 0;
    for (const auto& [group, r] : state_.eval_results) have += group < layout.groups() ? 1 : 0;
    if (have < layout.groups()) return;  // keys are distinct: every group 0 .. groups-1 answered
    for (int64_t p = 0; p < layout.problems; ++p) {
      Row row{p, prompts_->At(p).id, prompts_->At(p).answer, state_.eval_results.at(p)};
      if (p < layout.sampled_problems) {
        row.has_sampled = true;
        row.sampled = state_.eval_results.at(layout.problems + p);
      }
      rows.push_back(std::move(row));
    }
    version = learner_.latest().version();
  }
  int64_t correct = 0, samples = 0;
  double reward_sum = 0;
  std::string samples_text;
  std::vector<EvalProblemOutcome> outcomes;
  auto sample_json = [](const EvalSampleRecord& smp) {
    return json{{"text", smp.text}, {"reward", smp.reward}, {"stopped", smp.stopped}, {"tokens", smp.tokens}};
  };
  for (const Row& row : rows) {
    bool any = false;
    int64_t right = 0;
    json out_samples = json::array();
    for (const EvalSampleRecord& smp : row.result.samples) {
      any = any || smp.reward >= 0.5;
      right += smp.reward >= 0.5 ? 1 : 0;
      reward_sum += smp.reward;
      ++samples;
      out_samples.push_back(sample_json(smp));
    }
    correct += any ? 1 : 0;
    EvalProblemOutcome o;
    if (layout.greedy) {
      o.has_greedy = true;
      o.greedy_correct = any;
    } else {
      o.n = static_cast<int64_t>(row.result.samples.size());
      o.c = right;
    }
    json line = {{"problem", row.problem},     {"id", row.id},
                 {"answer", row.answer},       {"correct", any},
                 {"samples", out_samples},     {"group_id", row.result.group_id},
                 {"worker_id", row.result.worker_id}, {"policy_version", row.result.policy_version}};
    if (row.has_sampled) {
      json sampled = json::array();
      int64_t c = 0;
      for (const EvalSampleRecord& smp : row.sampled.samples) {
        c += smp.reward >= 0.5 ? 1 : 0;
        sampled.push_back(sample_json(smp));
      }
      o.n = static_cast<int64_t>(row.sampled.samples.size());
      o.c = c;
      line["sampled"] = std::move(sampled);
      line["sampled_correct"] = c;
      line["sampled_group_id"] = row.sampled.group_id;
    }
    outcomes.push_back(o);
    samples_text += line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  const double n = static_cast<double>(rows.size());
  const double accuracy = rows.empty() ? 0.0 : static_cast<double>(correct) / n;
  const double mean_reward = samples == 0 ? 0.0 : reward_sum / static_cast<double>(samples);
  std::vector<int64_t> ks = {1, 8};
  const int64_t drawn = layout.greedy ? layout.sampled : layout.first_samples;
  if (drawn != 1 && drawn != 8) ks.push_back(drawn);
  const EvalSummary sum = SummarizeEval(outcomes, ks);
  json metrics_line = {{"stage", s.name()},
                       {"accuracy", accuracy},
                       {"mean_reward", mean_reward},
                       {"n", rows.size()},
                       {"samples_per_problem", layout.first_samples},
                       {"greedy", e.greedy()},
                       {"policy_version", version}};
  std::map<std::string, double> stage_metrics = {{"accuracy", accuracy}, {"mean_reward", mean_reward}, {"n", n}};
  if (sum.greedy_n > 0) {
    metrics_line["greedy_accuracy"] = sum.greedy_accuracy;
    metrics_line["greedy_ci95"] = {sum.greedy_ci95.first, sum.greedy_ci95.second};
    metrics_line["greedy_n"] = sum.greedy_n;
    stage_metrics["greedy_accuracy"] = sum.greedy_accuracy;
  }
  if (sum.sampled_n > 0) {
    metrics_line["sampled_accuracy"] = sum.sampled_accuracy;
    metrics_line["sampled_ci95"] = {sum.sampled_ci95.first, sum.sampled_ci95.second};
    metrics_line["sampled_n"] = sum.sampled_n;
    metrics_line["sampled_per_problem"] = sum.samples;
    metrics_line["temperature"] = e.has_temperature() ? e.temperature() : 1.0;
    stage_metrics["sampled_accuracy"] = sum.sampled_accuracy;
    for (const EvalSummary::PassAt& pa : sum.pass_at) {
      metrics_line[absl::StrCat("pass_at_", pa.k)] = pa.value;
      metrics_line[absl::StrCat("pass_at_", pa.k, "_ci95")] = {pa.ci95.first, pa.ci95.second};
      stage_metrics[absl::StrCat("pass_at_", pa.k)] = pa.value;
    }
  }
  metrics_line["ci_method"] =
      "greedy: Wilson score; sampled accuracy and pass@k: percentile bootstrap over problems, 2000 resamples";
  const std::string dir = absl::StrCat(options_.run_dir, "/stages/", s.name());
  absl::Status w = MakeDirs(dir);
  if (w.ok()) w = WriteFileAtomically(dir + "/samples.jsonl", {samples_text});
  const std::string metrics_text = metrics_line.dump() + "\n";
  if (w.ok()) w = WriteFileAtomically(dir + "/metrics.jsonl", {metrics_text});
  if (!w.ok()) {
    FailPipeline(stage, std::string(w.message()));
    return;
  }
  {
    absl::MutexLock l(&mu_);
    if (state_.stage_index != stage) return;
    metrics_->eval_accuracy.Add({{"stage", s.name()}}).Set(accuracy);
    CompleteStageLocked(stage, 0, stage_metrics);
  }
  PersistIfDue(true);
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
  const std::string text = summary.dump(2) + "\n";
  absl::Status w = WriteFileAtomically(options_.run_dir + "/summary.json", {text});
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

// ---------------------------------------------------------------------------------------------
// Groups and dispatch

int64_t Coordinator::CurrentStageUnfinishedLocked() const {
  int64_t n = 0;
  for (const auto& [id, g] : groups_) n += g.stage_index == state_.stage_index ? 1 : 0;
  return n;
}

bool Coordinator::KnownIncarnationLocked(const std::string& incarnation) const {
  return std::find(state_.incarnations.begin(), state_.incarnations.end(), incarnation) != state_.incarnations.end();
}

void Coordinator::DispatchRlLocked(const v1::LearnerStatus& st, int64_t finish_mark, Outbox* out) {
  const int32_t stage = state_.stage_index;
  const v1::Stage& s = options_.pipeline.stages(stage);
  const v1::RlConfig& rl = s.rl();
  if (!prompts_) return;
  // Groups in flight: ours not yet finished, those the learner holds, and those reported
  // finished after this poll began (the status may predate their arrival at the learner).
  const int64_t bound = std::max<int64_t>(1, rl.prompts_per_step()) * (1 + std::max<int64_t>(0, rl.max_staleness()));
  const int64_t learner_side =
      static_cast<int64_t>(st.buffered_groups()) + st.partial_groups() + (finish_counter_ - finish_mark);
  DispatchPendingLocked(out);
  // The learner has made its last step (its DONE follows): new groups would be wasted.
  // st.step() counts optimizer steps: epochs x minibatches per RL step (the learner's own stop
  // rule, RlUpdatesPerStep).
  const int64_t updates_per_step = std::max<int64_t>(1, rl.epochs()) * std::max<int64_t>(1, rl.minibatches());
  if (s.stop().max_steps() > 0 && st.step() >= s.stop().max_steps() * updates_per_step) return;
  // Groups a re-registered worker holds from an earlier coordinator process are in flight too.
  int64_t unfinished = CurrentStageUnfinishedLocked() + AdoptedInFlightLocked();
  while (pending_.empty() && unfinished + learner_side < bound) {
    bool any_worker = false;
    for (const auto& [id, w] : workers_) any_worker = any_worker || (w.state == v1::WorkerStatus::ALIVE && w.stream);
    if (!any_worker) break;
    StageRecord& rec = state_.stages[stage];
    const int64_t n = rec.groups_drawn++;
    Group g = NewGroupLocked(n, prompts_->Draw(rng_), st.latest(), rl.samples_per_prompt(), rl.max_new_tokens());
    v1::SamplingParams* sp = g.group.mutable_sampling();
    sp->set_temperature(rl.has_temperature() ? rl.temperature() : 1.0);
    sp->set_top_p(rl.top_p());
    sp->set_top_k(rl.top_k());
    const std::string id = g.group.group_id();
    groups_[id] = std::move(g);
    pending_.push_back(id);
    ++unfinished;
    MarkDirtyLocked(false);
    DispatchPendingLocked(out);
  }
}

Coordinator::Group Coordinator::NewGroupLocked(int64_t index, const StagePrompt& prompt,
                                               const v1::WeightVersion& version, int64_t num_samples,
                                               int64_t max_new_tokens) const {
  const v1::Stage& s = options_.pipeline.stages(state_.stage_index);
  Group g;
  g.stage_index = state_.stage_index;
  v1::PromptGroup& pg = g.group;
  pg.set_group_id(GroupId(s.name(), incarnation_, index));
  pg.set_stage(s.name());
  for (int64_t id : prompt.ids) pg.add_prompt_ids(static_cast<int32_t>(id));
  pg.set_answer(prompt.answer);
  pg.set_num_samples(ClampInt32(num_samples));
  pg.set_max_new_tokens(ClampInt32(max_new_tokens));
  for (int64_t id : prompts_->stop_token_ids()) pg.mutable_sampling()->add_stop_token_ids(static_cast<int32_t>(id));
  pg.set_min_policy_version(version.version());
  pg.set_learner_incarnation(version.learner_incarnation());
  pg.set_reward(reward_kind_);
  pg.set_seed(SplitMix64(s.seed() ^ SplitMix64(static_cast<uint64_t>(index) + 1)));
  g.tokens = (static_cast<int64_t>(prompt.ids.size()) + pg.max_new_tokens()) * pg.num_samples();
  return g;
}

void Coordinator::CreateEvalGroupsLocked(const v1::WeightVersion& version) {
  const int32_t stage = state_.stage_index;
  const v1::Stage& s = options_.pipeline.stages(stage);
  const v1::EvalConfig& e = s.eval();
  if (!prompts_) return;
  // Group n answers problem layout.Problem(n): greedily (or with samples_per_problem samples)
  // for n < eval_problems_, then eval.sampled samples for the first sampled_problems problems.
  const EvalLayout layout = MakeEvalLayout(e, eval_problems_);
  int64_t created = 0;
  for (int64_t n = 0; n < layout.groups(); ++n) {
    if (state_.eval_results.count(n) > 0) continue;
    Group g = NewGroupLocked(n, prompts_->At(layout.Problem(n)), version, layout.Samples(n), e.max_new_tokens());
    g.problem = n;
    g.group.set_eval(true);
    v1::SamplingParams* sp = g.group.mutable_sampling();
    sp->set_greedy(layout.Greedy(n));
    sp->set_temperature(e.has_temperature() ? e.temperature() : 1.0);
    const std::string id = g.group.group_id();
    if (groups_.count(id) > 0 || finished_ids_.Contains(id)) continue;
    groups_[id] = std::move(g);
    pending_.push_back(id);
    ++created;
  }
  eval_groups_created_ = true;
  Log(absl::StrCat("eval stage '", s.name(), "': ", eval_problems_, " problems (", layout.groups(), " groups), ", created,
                   " to generate with version ", version.version()));
}

Coordinator::Worker* Coordinator::FindWorkerForLocked(const Group& g) {
  const int64_t need_seq = g.group.num_samples();
  const int64_t need_tok = g.tokens;
  Worker* best = nullptr;
  int64_t best_seq = 0, best_tok = 0;
  bool oversized_everywhere = true;
  for (auto& [id, w] : workers_) {
    if (w.state != v1::WorkerStatus::ALIVE || !w.stream) continue;
    if (id == g.avoid) continue;  // considered below if no other worker has room
    const bool oversized = need_seq > w.max_sequences || (w.max_tokens > 0 && need_tok > w.max_tokens);
    oversized_everywhere = oversized_everywhere && oversized;
    const int64_t free_seq = w.max_sequences - w.assigned_samples;
    const int64_t free_tok = w.max_tokens > 0 ? w.max_tokens - w.assigned_tokens : std::numeric_limits<int64_t>::max();
    if (free_seq < need_seq || free_tok < need_tok) continue;
    if (best == nullptr || free_seq > best_seq || (free_seq == best_seq && free_tok > best_tok)) {
      best = &w;
      best_seq = free_seq;
      best_tok = free_tok;
    }
  }
  if (best == nullptr && !g.avoid.empty()) {
    auto it = workers_.find(g.avoid);
    if (it != workers_.end() && it->second.state == v1::WorkerStatus::ALIVE && it->second.stream) {
      const Worker& w = it->second;
      const int64_t free_tok = w.max_tokens > 0 ? w.max_tokens - w.assigned_tokens : std::numeric_limits<int64_t>::max();
      if (w.max_sequences - w.assigned_samples >= need_seq && free_tok >= need_tok) return &it->second;
    }
  }
  if (best != nullptr || !oversized_everywhere) return best;
  // A group larger than any worker's whole capacity would never fit: it goes to an idle worker
  // (the biggest), which queues what it cannot run at once.
  for (auto& [id, w] : workers_) {
    if (w.state != v1::WorkerStatus::ALIVE || !w.stream || !w.assigned.empty()) continue;
    if (best == nullptr || w.max_sequences > best->max_sequences) best = &w;
  }
  return best;
}

void Coordinator::DispatchPendingLocked(Outbox* out) {
  if (prepared_stage_ != state_.stage_index) return;
  while (!pending_.empty()) {
    auto it = groups_.find(pending_.front());
    if (it == groups_.end() || !it->second.worker.empty()) {
      pending_.pop_front();
      continue;
    }
    Group& g = it->second;
    Worker* w = FindWorkerForLocked(g);
    if (w == nullptr) return;
    if (g.ever_sent && !g.group.eval() &&
        (learner_.latest().version() > g.group.min_policy_version() ||
         learner_.latest().learner_incarnation() != g.group.learner_incarnation())) {
      // A re-assigned rl group: generate it with the current weights.
      g.group.set_min_policy_version(learner_.latest().version());
      g.group.set_learner_incarnation(learner_.latest().learner_incarnation());
    }
    v1::Assignment a;
    *a.mutable_group() = g.group;
    if (!w->stream->Enqueue(std::move(a))) {
      w->stream = nullptr;  // closed under us: try another worker
      continue;
    }
    pending_.pop_front();
    g.worker = w->id;
    g.assigned_at = Clock::now();
    w->assigned.insert(g.group.group_id());
    w->assigned_samples += g.group.num_samples();
    w->assigned_tokens += g.tokens;
    out->flush.push_back(w->stream);
    if (!g.ever_sent) {
      g.ever_sent = true;
      ++state_.groups_dispatched;
      metrics_->groups_dispatched.Increment();
      MarkDirtyLocked(false);
    }
  }
}

void Coordinator::UnassignLocked(Group& g) {
  if (g.worker.empty()) return;
  auto it = workers_.find(g.worker);
  if (it != workers_.end() && it->second.assigned.erase(g.group.group_id()) > 0) {
    it->second.assigned_samples -= g.group.num_samples();
    it->second.assigned_tokens -= g.tokens;
  }
  g.worker.clear();
}

void Coordinator::RequeueFrontLocked(const std::vector<std::string>& ids, const std::string& from_worker,
                                     bool count) {
  for (auto rit = ids.rbegin(); rit != ids.rend(); ++rit) {
    auto it = groups_.find(*rit);
    if (it == groups_.end() || it->second.worker != from_worker) continue;
    Group& g = it->second;
    UnassignLocked(g);
    if (g.stage_index != state_.stage_index) {
      groups_.erase(it);  // a finished stage's group: nobody needs it any more
      continue;
    }
    pending_.push_front(*rit);
    if (count) {
      ++state_.groups_reassigned;
      metrics_->groups_reassigned.Increment();
      MarkDirtyLocked(false);
    }
  }
}

bool Coordinator::FinishGroupLocked(const std::string& group_id, Worker* reporter) {
  if (finished_ids_.Contains(group_id) || acked_.count(group_id) > 0) return false;
  auto it = groups_.find(group_id);
  bool count = true;
  if (it == groups_.end()) {
    // A group of an earlier incarnation of this coordinator (a worker re-registered after a
    // restart reports what it got before): count it once; it may be in the learner's buffer.
    GroupIdParts parts;
    if (!ParseGroupId(group_id, &parts) || parts.incarnation == incarnation_ ||
        !KnownIncarnationLocked(parts.incarnation)) {
      return false;
    }
    for (auto& [id, w] : workers_) w.adopted.erase(group_id);
    ++finish_counter_;
    finished_ids_.Insert(group_id);
  } else {
    Group& g = it->second;
    if (g.stage_index == state_.stage_index) ++finish_counter_;
    UnassignLocked(g);
    auto p = std::find(pending_.begin(), pending_.end(), group_id);
    if (p != pending_.end()) pending_.erase(p);
    count = !g.ever_finished;  // a group re-dispatched after a learner restart counts once
    g.ever_finished = true;
    if (!g.group.eval() && g.stage_index == state_.stage_index && group_states_supported_) {
      // Kept until the learner says it was trained in a checkpointed step (or dropped).
      acked_[group_id] = std::move(g);
    } else {
      finished_ids_.Insert(group_id);
    }
    groups_.erase(it);
  }
  if (!count) return true;
  ++state_.groups_finished;
  metrics_->groups_finished.Increment();
  if (reporter != nullptr) ++reporter->finished_groups;
  MarkDirtyLocked(false);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Registry

void Coordinator::UpdateWorkerGaugesLocked() {
  int alive = 0, draining = 0, dead = 0;
  for (const auto& [id, w] : workers_) {
    alive += w.state == v1::WorkerStatus::ALIVE;
    draining += w.state == v1::WorkerStatus::DRAINING;
    dead += w.state == v1::WorkerStatus::DEAD;
  }
  metrics_->workers_alive.Set(alive);
  metrics_->workers_draining.Set(draining);
  metrics_->workers_dead.Set(dead);
  int unhealthy = 0;
  for (const auto& [id, w] : workers_) unhealthy += w.state == v1::WorkerStatus::UNHEALTHY;
  metrics_->workers_unhealthy.Set(unhealthy);
}

void Coordinator::UpdateGroupGaugesLocked() {
  int64_t queued = 0, assigned = 0;
  for (const std::string& id : pending_) {
    auto it = groups_.find(id);
    queued += it != groups_.end() && it->second.worker.empty() ? 1 : 0;
  }
  for (const auto& [id, w] : workers_) assigned += static_cast<int64_t>(w.assigned.size());
  metrics_->groups_queued.Set(static_cast<double>(queued));
  metrics_->groups_assigned.Set(static_cast<double>(assigned));
}

int64_t Coordinator::AdoptedInFlightLocked() const {
  int64_t n = 0;
  for (const auto& [id, w] : workers_) {
    if (w.state != v1::WorkerStatus::DEAD) n += static_cast<int64_t>(w.adopted.size());
  }
  return n;
}

void Coordinator::AdoptHeldLocked(Worker& w, const google::protobuf::RepeatedPtrField<std::string>& held,
                                  bool prune) {
  if (prune) {
    const std::set<std::string> still(held.begin(), held.end());
    for (auto it = w.adopted.begin(); it != w.adopted.end();) {
      it = still.count(*it) > 0 ? std::next(it) : w.adopted.erase(it);
    }
  }
  const int32_t stage = state_.stage_index;
  if (w.state == v1::WorkerStatus::UNHEALTHY || stage >= options_.pipeline.stages_size() ||
      !options_.pipeline.stages(stage).has_rl()) {
    return;
  }
  const std::string& name = options_.pipeline.stages(stage).name();
  for (const std::string& id : held) {
    if (w.adopted.count(id) > 0 || groups_.count(id) > 0 || acked_.count(id) > 0 || finished_ids_.Contains(id)) continue;
    GroupIdParts parts;
    if (!ParseGroupId(id, &parts) || parts.incarnation == incarnation_ || parts.stage != name ||
        !KnownIncarnationLocked(parts.incarnation)) {
      continue;
    }
    bool elsewhere = false;
    for (const auto& [oid, o] : workers_) elsewhere = elsewhere || (&o != &w && o.adopted.count(id) > 0);
    if (elsewhere) continue;
    w.adopted.insert(id);
    ++state_.groups_adopted;
    MarkDirtyLocked(false);
  }
}

void Coordinator::MarkUnhealthyLocked(Worker& w, const std::string& why) {
  w.state = v1::WorkerStatus::UNHEALTHY;
  const std::vector<std::string> ids(w.assigned.begin(), w.assigned.end());
  const int64_t before = state_.groups_reassigned;
  RequeueFrontLocked(ids, w.id, /*count=*/true);
  w.adopted.clear();  // stuck with it: no longer in flight (they cannot be sent elsewhere)
  if (loading_worker_ == w.id) loading_worker_.clear();
  Log(absl::StrCat("worker ", w.id, " (", w.name, ") is unhealthy: ", why, "; ", state_.groups_reassigned - before,
                   " groups re-queued"));
}

void Coordinator::ExpireLeasesLocked(Clock::time_point now) {
  bool changed = false;
  for (auto& [id, w] : workers_) {
    if (w.state != v1::WorkerStatus::DEAD && Seconds(now - w.last_heartbeat) > lease_seconds_) {
      MarkDeadLocked(w, absl::StrFormat("no heartbeat for %.1f s (lease %.1f s)", Seconds(now - w.last_heartbeat),
                                        lease_seconds_));
      changed = true;
    }
  }
  // Keep the newest dead workers for `swarr status`.
  size_t dead = 0;
  for (const auto& [id, w] : workers_) dead += w.state == v1::WorkerStatus::DEAD;
  while (dead > kMaxDeadWorkers) {
    auto oldest = workers_.end();
    for (auto it = workers_.begin(); it != workers_.end(); ++it) {
      if (it->second.state == v1::WorkerStatus::DEAD &&
          (oldest == workers_.end() || it->second.last_heartbeat < oldest->second.last_heartbeat)) {
        oldest = it;
      }
    }
    workers_.erase(oldest);
    --dead;
  }
  for (auto& [id, w] : workers_) {
    if (w.state == v1::WorkerStatus::ALIVE && w.reports_progress && !w.assigned.empty() && w.running_sequences > 0 &&
        Seconds(now - w.last_progress) > progress_timeout_seconds_) {
      MarkUnhealthyLocked(w, absl::StrFormat("its engine made no decode step for %.1f s with %d sequences running "
                                             "(workers.progress_timeout_seconds %.1f)",
                                             Seconds(now - w.last_progress), w.running_sequences,
                                             progress_timeout_seconds_));
      changed = true;
    }
  }
  // Per-group deadlines: a group a worker holds for too long goes to the queue again.
  std::vector<std::pair<std::string, std::string>> late;
  for (const auto& [id, g] : groups_) {
    if (!g.worker.empty() && Seconds(now - g.assigned_at) > group_timeout_seconds_) late.emplace_back(id, g.worker);
  }
  for (const auto& [id, worker] : late) {
    groups_[id].avoid = worker;
    Log(absl::StrFormat("group %s not finished %.1f s after it went to worker %s (workers.group_timeout_seconds): "
                        "re-queued", id, group_timeout_seconds_, worker));
    RequeueFrontLocked({id}, worker, /*count=*/true);
  }
  if (changed) UpdateWorkerGaugesLocked();
}

void Coordinator::MarkDeadLocked(Worker& w, const std::string& why) {
  w.state = v1::WorkerStatus::DEAD;
  if (w.stream) {
    // Everything queued on it is among its assigned groups, re-queued below.
    w.stream->Close(absl::NotFoundError(absl::StrCat("worker ", w.id, ": ", why, "; register again")));
    w.stream = nullptr;
  }
  const std::vector<std::string> ids(w.assigned.begin(), w.assigned.end());
  const int64_t before = state_.groups_reassigned;
  RequeueFrontLocked(ids, w.id, /*count=*/true);
  if (w.version_gauge != nullptr) {
    metrics_->worker_weight_version.Remove(w.version_gauge);
    w.version_gauge = nullptr;
  }
  if (loading_worker_ == w.id) loading_worker_.clear();
  Log(absl::StrCat("worker ", w.id, " (", w.name, ") is dead: ", why, "; ", state_.groups_reassigned - before,
                   " groups re-queued"));
}

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(const v1::RegisterWorkerRequest& req) {
  if (req.role() != "rollout") {
    return absl::InvalidArgumentError(absl::StrCat("role: must be \"rollout\", got \"", req.role().substr(0, 64), "\""));
  }
  if (req.max_sequences() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_sequences: must be >= 1 (0 = the pipeline's workers.max_sequences), got ", req.max_sequences()));
  }
  if (req.max_tokens() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens: must be >= 0 (0 = no limit), got ", req.max_tokens()));
  }
  SWARR_RETURN_IF_ERROR(CheckLength("address", req.address(), kMaxTextField));
  SWARR_RETURN_IF_ERROR(CheckLength("name", req.name(), kMaxTextField));
  SWARR_RETURN_IF_ERROR(CheckLength("device", req.device(), kMaxTextField));
  SWARR_RETURN_IF_ERROR(CheckLength("loaded.learner_incarnation", req.loaded().learner_incarnation(), kMaxTextField));
  if (req.loaded().version() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("loaded.version: must be >= 0, got ", req.loaded().version()));
  }
  SWARR_RETURN_IF_ERROR(CheckGroupIds("held_group_ids", req.held_group_ids()));
  absl::MutexLock l(&mu_);
  if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
  Worker w;
  w.id = absl::StrFormat("w-%s-%04d", incarnation_, ++next_worker_);
  w.name = !req.name().empty() ? req.name() : (!req.address().empty() ? req.address() : w.id);
  w.address = req.address();
  w.device = req.device();
  w.max_sequences = req.max_sequences() > 0 ? req.max_sequences() : default_max_sequences_;
  w.max_tokens = req.max_tokens() > 0 ? req.max_tokens() : default_max_tokens_;
  w.loaded = req.loaded();
  w.registered = w.last_heartbeat = w.last_progress = Clock::now();
  w.metric_label = w.name;
  for (const auto& [id, other] : workers_) {
    if (other.state != v1::WorkerStatus::DEAD && other.metric_label == w.metric_label) {
      w.metric_label = absl::StrCat(w.name, "/", w.id);
      break;
    }
  }
  w.version_gauge = &metrics_->worker_weight_version.Add({{"worker", w.metric_label}});
  w.version_gauge->Set(static_cast<double>(w.loaded.version()));
  Log(absl::StrCat("worker ", w.id, " (", w.name, ", ", w.device.empty() ? "cpu" : w.device, ") registered: ",
                   w.max_sequences, " sequences, ", w.max_tokens > 0 ? absl::StrCat(w.max_tokens) : "no", " token limit"));
  v1::RegisterWorkerResponse resp;
  resp.set_worker_id(w.id);
  resp.set_heartbeat_seconds(heartbeat_seconds_);
  resp.set_lease_seconds(lease_seconds_);
  resp.set_learner_address(options_.learner_address);
  resp.set_max_sequences(ClampInt32(default_max_sequences_));
  resp.set_max_tokens(default_max_tokens_);
  resp.set_max_message_bytes(limits_.max_message_bytes);
  resp.set_deadline_seconds(limits_.deadline_seconds);
  resp.set_keepalive_time_seconds(limits_.keepalive_time_seconds);
  resp.set_keepalive_timeout_seconds(limits_.keepalive_timeout_seconds);
  resp.set_progress_timeout_seconds(progress_timeout_seconds_);
  if (done_) {
    *resp.mutable_pipeline_end() = pipeline_end_;
    w.told_end = true;
  }
  const std::string id = w.id;
  Worker& added = workers_[id] = std::move(w);
  // Before its stream opens: what it holds from an earlier coordinator counts in flight.
  AdoptHeldLocked(added, req.held_group_ids(), /*prune=*/false);
  UpdateWorkerGaugesLocked();
  return resp;
}

absl::Status Coordinator::Heartbeat(const v1::HeartbeatRequest& req, v1::HeartbeatResponse* response) {
  if (req.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  SWARR_RETURN_IF_ERROR(CheckLength("worker_id", req.worker_id(), kMaxTextField));
  if (req.active_sequences() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("active_sequences: must be >= 0, got ", req.active_sequences()));
  }
  if (req.queued_sequences() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("queued_sequences: must be >= 0, got ", req.queued_sequences()));
  }
  if (req.tokens_generated() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("tokens_generated: must be >= 0, got ", req.tokens_generated()));
  }
  if (req.loaded().version() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("loaded.version: must be >= 0, got ", req.loaded().version()));
  }
  SWARR_RETURN_IF_ERROR(CheckLength("loaded.learner_incarnation", req.loaded().learner_incarnation(), kMaxTextField));
  SWARR_RETURN_IF_ERROR(CheckGroupIds("finished_group_ids", req.finished_group_ids()));
  SWARR_RETURN_IF_ERROR(CheckGroupIds("returned_group_ids", req.returned_group_ids()));
  SWARR_RETURN_IF_ERROR(CheckGroupIds("held_group_ids", req.held_group_ids()));
  if (req.progress().decode_steps() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("progress.decode_steps: must be >= 0, got ", req.progress().decode_steps()));
  }
  if (req.progress().running_sequences() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("progress.running_sequences: must be >= 0, got ", req.progress().running_sequences()));
  }

  absl::ReleasableMutexLock l(&mu_);
  if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
  auto it = workers_.find(req.worker_id());
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker_id: unknown worker '", req.worker_id(), "'; register again"));
  }
  Worker& w = it->second;
  if (w.state == v1::WorkerStatus::DEAD) {
    return absl::NotFoundError(
        absl::StrCat("worker_id: worker '", req.worker_id(), "' was declared dead (lease expired); register again"));
  }
  const Clock::time_point now = Clock::now();
  w.last_heartbeat = now;
  w.loaded = req.loaded();
  w.active_sequences = req.active_sequences();
  if (!w.token_samples.empty() && req.tokens_generated() < w.token_samples.back().second) w.token_samples.clear();
  w.tokens_generated = req.tokens_generated();
  w.token_samples.emplace_back(now, req.tokens_generated());
  while (w.token_samples.size() > 2 && Seconds(now - w.token_samples.front().first) > 10) w.token_samples.pop_front();
  if (w.token_samples.size() >= 2) {
    const double dt = Seconds(w.token_samples.back().first - w.token_samples.front().first);
    w.tokens_per_second =
        dt > 0 ? static_cast<double>(w.token_samples.back().second - w.token_samples.front().second) / dt : 0;
  }
  if (w.version_gauge != nullptr) w.version_gauge->Set(static_cast<double>(w.loaded.version()));
  if (req.has_progress()) {
    const v1::EngineProgress& pr = req.progress();
    const bool moved = pr.decode_steps() != w.decode_steps;
    if (moved || pr.running_sequences() == 0) w.last_progress = now;
    if (moved && w.state == v1::WorkerStatus::UNHEALTHY) {
      w.state = v1::WorkerStatus::ALIVE;
      UpdateWorkerGaugesLocked();
      Log(absl::StrCat("worker ", w.id, " (", w.name, ") makes progress again (decode step ", pr.decode_steps(),
                       "): healthy"));
    }
    w.reports_progress = true;
    w.decode_steps = pr.decode_steps();
    w.running_sequences = pr.running_sequences();
  }
  if (req.draining() && w.state == v1::WorkerStatus::ALIVE) {
    w.state = v1::WorkerStatus::DRAINING;
    UpdateWorkerGaugesLocked();
    Log(absl::StrCat("worker ", w.id, " (", w.name, ") is draining"));
    if (loading_worker_ == w.id) loading_worker_.clear();
  }
  const size_t acked_before = acked_.size();
  for (const std::string& id : req.finished_group_ids()) {
    auto g = groups_.find(id);
    if (g != groups_.end() && g->second.group.eval() && g->second.stage_index == state_.stage_index &&
        state_.eval_results.count(g->second.problem) == 0) {
      // An eval group is finished by its ReportEval; "finished" without a result would leave
      // the problem unanswered forever: generate it again.
      Log(absl::StrCat("worker ", w.id, " reported eval group ", id, " finished without a result; re-queued"));
      RequeueFrontLocked({id}, g->second.worker, /*count=*/false);
      continue;
    }
    FinishGroupLocked(id, &w);
  }
  if (req.returned_group_ids_size() > 0) {
    const std::vector<std::string> ids(req.returned_group_ids().begin(), req.returned_group_ids().end());
    RequeueFrontLocked(ids, w.id, /*count=*/true);
  }
  // Workers that report progress also name what they hold (possibly nothing).
  if (req.has_progress() || req.held_group_ids_size() > 0) AdoptHeldLocked(w, req.held_group_ids(), /*prune=*/true);
  if (done_) {
    if (response != nullptr) *response->mutable_pipeline_end() = pipeline_end_;
    w.told_end = true;
  }
  // Crash consistency (docs/reliability.md): once answered, the worker forgets the groups it
  // reported finished. Those the learner acknowledged are in state.json before the answer, so a
  // coordinator killed right after still checks them with the learner when it restarts.
  const bool persist = acked_.size() > acked_before;
  l.Release();
  if (persist) {
    if (absl::Status s = Persist(/*force=*/true); !s.ok()) {
      return absl::UnavailableError(absl::StrCat("cannot record the finished groups (", s.message(),
                                                 "); report them again"));
    }
  }
  return absl::OkStatus();
}

absl::Status Coordinator::OpenStream(const std::string& worker_id, std::shared_ptr<AssignmentSink> sink) {
  if (worker_id.empty()) return absl::InvalidArgumentError("worker_id: required");
  Outbox out;
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
    auto it = workers_.find(worker_id);
    if (it == workers_.end() || it->second.state == v1::WorkerStatus::DEAD) {
      return absl::NotFoundError(absl::StrCat("worker_id: unknown worker '", worker_id.substr(0, kMaxTextField),
                                              "'; register again"));
    }
    Worker& w = it->second;
    if (w.stream) {
      std::vector<v1::Assignment> unsent =
          w.stream->Close(absl::AbortedError("replaced by a newer WatchAssignments stream of the same worker"));
      std::vector<std::string> ids;
      for (const v1::Assignment& a : unsent) {
        if (a.has_group()) ids.push_back(a.group().group_id());
      }
      w.stream = nullptr;
      RequeueFrontLocked(ids, w.id, /*count=*/false);
    }
    sink->Enqueue(StageInfoLocked());
    if (loading_worker_ == w.id) {
      v1::Assignment load;
      *load.mutable_load_weights()->mutable_version() = loading_version_;
      sink->Enqueue(std::move(load));
    }
    if (done_) {
      v1::Assignment end;
      *end.mutable_pipeline_end() = pipeline_end_;
      sink->Enqueue(std::move(end));
    }
    w.stream = sink;
    out.flush.push_back(sink);
    // New capacity: hand out what is waiting without waiting for the next tick.
    DispatchPendingLocked(&out);
  }
  Deliver(out);
  return absl::OkStatus();
}

void Coordinator::StreamBroken(const std::string& worker_id, const AssignmentSink* sink,
                               const std::vector<std::string>& unsent_group_ids) {
  absl::MutexLock l(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.stream.get() != sink) return;
  it->second.stream = nullptr;
  RequeueFrontLocked(unsent_group_ids, worker_id, /*count=*/false);
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

void Coordinator::OrchestrateWeightsLocked(Clock::time_point now, Outbox* out) {
  if (!has_target_) return;
  if (!loading_worker_.empty()) {
    auto it = workers_.find(loading_worker_);
    const bool over = it == workers_.end() || it->second.state != v1::WorkerStatus::ALIVE ||
                      HasAtLeast(it->second.loaded, loading_version_) ||
                      Seconds(now - load_sent_) >= options_.weight_load_timeout_seconds;
    if (!over) return;
    loading_worker_.clear();
  }
  Worker* next = nullptr;
  for (auto& [id, w] : workers_) {
    if (w.state != v1::WorkerStatus::ALIVE || !w.stream || commanded_.count(id) > 0 || HasAtLeast(w.loaded, target_)) {
      continue;
    }
    if (next == nullptr || w.loaded.version() < next->loaded.version()) next = &w;
  }
  if (next == nullptr) return;
  v1::Assignment a;
  *a.mutable_load_weights()->mutable_version() = target_;
  if (!next->stream->Enqueue(std::move(a))) {
    next->stream = nullptr;
    return;
  }
  out->flush.push_back(next->stream);
  commanded_.insert(next->id);
  loading_worker_ = next->id;
  loading_version_ = target_;
  load_sent_ = now;
}

// ---------------------------------------------------------------------------------------------
// Eval results, status

absl::Status Coordinator::ReportEval(const v1::ReportEvalRequest& req) {
  if (req.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  SWARR_RETURN_IF_ERROR(CheckLength("worker_id", req.worker_id(), kMaxTextField));
  if (req.group_id().empty()) return absl::InvalidArgumentError("group_id: required");
  SWARR_RETURN_IF_ERROR(CheckLength("group_id", req.group_id(), kMaxGroupId));
  if (req.version().version() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("version.version: must be >= 0, got ", req.version().version()));
  }
  for (int i = 0; i < req.samples_size(); ++i) {
    const v1::EvalSample& s = req.samples(i);
    if (!std::isfinite(s.reward())) return absl::InvalidArgumentError(absl::StrCat("samples[", i, "].reward: not finite"));
    for (int j = 0; j < s.completion_ids_size(); ++j) {
      if (s.completion_ids(j) < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("samples[", i, "].completion_ids[", j, "]: negative token id ", s.completion_ids(j)));
      }
    }
  }
  const std::string& id = req.group_id();
  const std::string unknown = absl::StrCat("group_id: unknown group '", id, "'");
  absl::MutexLock l(&mu_);
  if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
  GroupIdParts parts;
  if (!ParseGroupId(id, &parts) || !KnownIncarnationLocked(parts.incarnation)) return absl::InvalidArgumentError(unknown);
  int32_t stage = -1;
  for (int32_t i = 0; i < options_.pipeline.stages_size(); ++i) {
    if (options_.pipeline.stages(i).name() == parts.stage) stage = i;
  }
  if (stage < 0) return absl::InvalidArgumentError(unknown);
  if (!options_.pipeline.stages(stage).has_eval()) {
    return absl::InvalidArgumentError(absl::StrCat("group_id: '", id, "' is not an eval group"));
  }
  if (parts.incarnation == incarnation_ && groups_.count(id) == 0 && !finished_ids_.Contains(id)) {
    return absl::InvalidArgumentError(unknown);
  }
  if (stage < state_.stage_index) return absl::OkStatus();  // a finished eval stage: already counted
  if (stage > state_.stage_index) return absl::InvalidArgumentError(unknown);
  if (prepared_stage_ != stage || !prompts_) return absl::UnavailableError("the eval stage is not ready yet; retry");
  const v1::EvalConfig& e = options_.pipeline.stages(stage).eval();
  const EvalLayout layout = MakeEvalLayout(e, eval_problems_);
  if (parts.n >= layout.groups()) return absl::InvalidArgumentError(unknown);
  const int64_t expected = layout.Samples(parts.n);
  if (req.samples_size() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("samples: group '", id, "' has ", expected, " samples, got ", req.samples_size()));
  }
  for (int i = 0; i < req.samples_size(); ++i) {
    for (int j = 0; j < req.samples(i).completion_ids_size(); ++j) {
      if (req.samples(i).completion_ids(j) >= prompts_->vocab_size()) {
        return absl::InvalidArgumentError(absl::StrCat("samples[", i, "].completion_ids[", j, "]: token id ",
                                                       req.samples(i).completion_ids(j),
                                                       " outside the vocabulary (", prompts_->vocab_size(), ")"));
      }
    }
  }
  auto wit = workers_.find(req.worker_id());
  Worker* reporter = wit == workers_.end() ? nullptr : &wit->second;
  if (state_.eval_results.count(parts.n) == 0) {
    EvalProblemRecord r;
    r.group_id = id;
    r.worker_id = req.worker_id();
    r.policy_version = req.version().version();
    for (const v1::EvalSample& s : req.samples()) {
      r.samples.push_back({s.completion_text(), s.reward(), s.stopped(), s.completion_ids_size()});
    }
    state_.eval_results[parts.n] = std::move(r);
    MarkDirtyLocked(true);
    // The problem is answered: a copy of it still waiting in the queue is not needed.
    const std::string ours = GroupId(parts.stage, incarnation_, parts.n);
    auto git = groups_.find(ours);
    if (ours != id && git != groups_.end() && git->second.worker.empty()) {
      auto p = std::find(pending_.begin(), pending_.end(), ours);
      if (p != pending_.end()) pending_.erase(p);
      groups_.erase(git);
    }
  }
  FinishGroupLocked(id, reporter);
  return absl::OkStatus();
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
