#include "learner/service/learner_engine.h"
#include "learner/service/learner_engine_internal.h"

#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <chrono>
#include <iostream>
#include <optional>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/config/config_loader.h"
#include "common/config/placement.h"
#include "common/model/config.h"
#include "common/model/model.h"
#include "common/model/runtime.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"
#include "learner/checkpoint.h"
#include "learner/rl_trainer.h"
#include "learner/service/idle_bound.h"
#include "learner/service/trajectory_buffer.h"
#include "learner/service/trajectory_checks.h"
#include "learner/service/weights_blob.h"
#include "learner/service/weights_ipc.h"
#include "learner/sft_stage.h"
#include "learner/stage_common.h"
#include "learner/uniform_batches.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"

namespace swarr {

using engine_internal::JsonInt;
using engine_internal::NumericFields;

namespace {

using Clock = std::chrono::steady_clock;

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string RandomIncarnation() {
  std::random_device rd;
  std::mt19937_64 rng((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  return absl::StrFormat("%016x", rng());
}

std::string StageFinalDir(const std::string& run_dir, const std::string& name) {
  return absl::StrCat(run_dir, "/learner/", name, "/final");
}

// Where stage `i` takes its model from: its model.path, else the model the previous stage
// ended with (a train / rl stage's final directory; an eval stage changes nothing).
std::string SourceDir(const v1::PipelineConfig& p, int i, const std::string& run_dir) {
  const v1::Stage& s = p.stages(i);
  if (!s.model().path().empty() || i == 0) return s.model().path();
  const v1::Stage& prev = p.stages(i - 1);
  if (prev.has_eval()) return SourceDir(p, i - 1, run_dir);
  return StageFinalDir(run_dir, prev.name());
}

}  // namespace

LearnerEngine::LearnerEngine(LearnerEngineOptions options)
    : options_(std::move(options)),
      incarnation_(options_.incarnation.empty() ? RandomIncarnation() : options_.incarnation),
      registry_(options_.registry ? options_.registry : std::make_shared<prometheus::Registry>()) {}

absl::StatusOr<std::unique_ptr<LearnerEngine>> LearnerEngine::Create(LearnerEngineOptions options) {
  if (options.run_dir.empty()) return absl::InvalidArgumentError("the learner needs a run directory");
  std::unique_ptr<LearnerEngine> engine(new LearnerEngine(std::move(options)));
  SWARR_RETURN_IF_ERROR(engine->Init());
  return engine;
}

absl::Status LearnerEngine::Init() {
  const std::string dir = options_.run_dir + "/learner";
  if (absl::Status st = MakeDirs(dir); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("run directory: ", st.message()));
  }
  metrics_ = std::make_unique<LearnerMetrics>(*registry_);
  SWARR_ASSIGN_OR_RETURN(trained_log_, TrainedIdsLog::Open(dir + "/trained_ids.log"));
  absl::StatusOr<LearnerRunState> saved = ReadLearnerRunState(dir + "/state.json");
  std::lock_guard<std::mutex> lock(mu_);
  if (saved.ok()) {
    counters_ = *saved;
    versions_.SetRunLatest(saved->latest_version);
  } else if (saved.status().code() != absl::StatusCode::kNotFound) {
    return saved.status();
  }
  return absl::OkStatus();
}

LearnerEngine::~LearnerEngine() { (void)Shutdown(); }

absl::Status LearnerEngine::PublishModel(const Model& model, int64_t version) {
  v1::WeightVersion v;
  v.set_version(version);
  v.set_learner_incarnation(incarnation_);
  SWARR_ASSIGN_OR_RETURN(WeightsBlob blob, SerializeModelWeights(model, v));
  // A model on a GPU is also exported for same-host rollout servers (GetWeightsIpc); where
  // that fails, they use GetWeights and the error says why.
  std::optional<absl::StatusOr<std::shared_ptr<const IpcWeights>>> ipc;
  if (model.device().is_cuda()) {
    ipc = ExportWeightsIpc(model, blob);
    if (!ipc->ok()) std::cerr << "learner: version " << version << " not exported for CUDA IPC: " << ipc->status() << "\n";
  }
  auto shared = std::make_shared<const WeightsBlob>(std::move(blob));
  {
    std::lock_guard<std::mutex> lock(mu_);
    versions_.Add(version, std::move(shared), std::move(ipc));
    metrics_->policy_version.Set(static_cast<double>(version));
    ChangedLocked();
  }
  return PersistState();
}

absl::Status LearnerEngine::PersistState() {
  std::lock_guard<std::mutex> persist(persist_mu_);
  LearnerRunState s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s = counters_;
    s.latest_version = versions_.run_latest();
    s.latest_incarnation = versions_.latest() >= 0 ? incarnation_ : counters_.latest_incarnation;
    s.kept_versions = versions_.kept();
    s.stage_index = ctx_ ? ctx_->index : -1;
    s.stage_name = ctx_ ? ctx_->stage.name() : "";
    s.state = v1::LearnerStatus::State_Name(state_);
  }
  return WriteLearnerRunState(options_.run_dir + "/learner/state.json", s);
}

void LearnerEngine::SetFailed(const std::string& error) {
  std::cerr << "swarr learner: stage failed: " << error << "\n";
  std::lock_guard<std::mutex> lock(mu_);
  state_ = v1::LearnerStatus::FAILED;
  error_ = error;
  buffer_.EndStep();
  ChangedLocked();
}

void LearnerEngine::StopStageThread() {
  if (!stage_thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    work_cv_.notify_all();
  }
  stage_thread_.join();
  stop_ = false;
}

absl::Status LearnerEngine::Shutdown() {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return absl::OkStatus();
    shut_down_ = true;
    ChangedLocked();
  }
  StopStageThread();
  return PersistState();
}

// ---------------------------------------------------------------------------------------------
// StartStage

absl::StatusOr<v1::LearnerStatus> LearnerEngine::StartStage(int32_t stage_index, const v1::PipelineConfig& pipeline) {
  std::lock_guard<std::mutex> lifecycle(lifecycle_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return absl::UnavailableError("the learner is shutting down");
  }
  if (absl::Status st = ValidatePipeline(pipeline); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("pipeline: ", st.message()));
  }
  if (stage_index < 0 || stage_index >= pipeline.stages_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("stage_index ", stage_index, " is outside the pipeline's ", pipeline.stages_size(), " stages"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ctx_ && ctx_->index == stage_index) return StatusLocked();
    if (ctx_ && stage_index < ctx_->index) {
      return absl::FailedPreconditionError(absl::StrCat("the learner is on stage ", ctx_->index, " (",
                                                        ctx_->stage.name(), "); stage ", stage_index,
                                                        " comes before it"));
    }
  }
  StopStageThread();  // a later stage interrupts the current one (it checkpoints)

  auto ctx = std::make_shared<StageContext>();
  ctx->index = stage_index;
  ctx->pipeline = pipeline;
  ctx->stage = StageWithPlacement(pipeline, stage_index);  // placement.learner and its memory budget
  if (pipeline.placement().learner_memory_gib() > 0 && ctx->stage.model().device().rfind("cuda", 0) == 0) {
    if (const std::string why = LimitDeviceMemory(ctx->stage.model().device(), pipeline.placement().learner_memory_gib());
        !why.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("placement.learner_memory_gib: ", why));
    }
  }
  const std::string& name = ctx->stage.name();
  ctx->source_dir = SourceDir(pipeline, stage_index, options_.run_dir);
  ctx->stage.mutable_model()->set_path(ctx->source_dir);
  ctx->stage_dir = absl::StrCat(options_.run_dir, "/learner/", name);
  ctx->checkpoints_dir =
      ctx->stage.checkpoint().dir().empty() ? ctx->stage_dir + "/checkpoints" : ctx->stage.checkpoint().dir();
  ctx->final_dir = StageFinalDir(options_.run_dir, name);
  ctx->done_path = ctx->stage_dir + "/done.json";
  ctx->metrics_path = absl::StrCat(options_.run_dir, "/stages/", name, "/metrics.jsonl");
  if (ctx->stage.has_rl()) ctx->max_staleness = ctx->stage.rl().max_staleness();
  absl::Status setup = MakeDirs(ctx->stage_dir);
  if (setup.ok()) setup = MakeDirs(absl::StrCat(options_.run_dir, "/stages/", name));
  if (setup.ok()) {
    absl::StatusOr<ModelConfig> config = LoadModelConfig(ctx->source_dir);
    if (config.ok()) {
      ctx->vocab_size = config->vocab_size;
      ctx->max_positions = config->max_position_embeddings;
    } else {
      setup = absl::Status(config.status().code(),
                           absl::StrCat("stage ", name, ": model ", ctx->source_dir, ": ", config.status().message()));
    }
  }
  // Eval stages and stages a previous learner finished are published here, before the
  // learner reports them (an eval stage is never RUNNING).
  const bool finished = setup.ok() && (Exists(ctx->done_path) || ctx->stage.has_eval());
  absl::StatusOr<FinishedStage> done = absl::UnknownError("");
  if (finished) done = CatchTorch("publishing the stage model", [&]() { return PublishFinishedStage(*ctx); });
  {
    std::lock_guard<std::mutex> lock(mu_);
    ctx_ = ctx;
    state_ = v1::LearnerStatus::RUNNING;
    error_.clear();
    step_ = 0;
    last_metrics_.clear();
    stop_reason_.clear();
    final_model_dir_.clear();
    buffer_.Clear();
    stage_start_version_ = versions_.Next();
    chunk_bytes_ = pipeline.rpc().weight_chunk_bytes() > 0 ? pipeline.rpc().weight_chunk_bytes() : int64_t{4} << 20;
    versions_.SetKeep(std::max<int64_t>(2, ctx->max_staleness + 2));
    if (!setup.ok()) {
      state_ = v1::LearnerStatus::FAILED;
      error_ = std::string(setup.message());
    } else if (finished && !done.ok()) {
      state_ = v1::LearnerStatus::FAILED;
      error_ = absl::StrCat("stage ", name, ": ", done.status().message());
    } else if (finished) {
      state_ = v1::LearnerStatus::DONE;
      step_ = done->step;
      stop_reason_ = done->stop_reason;
      last_metrics_ = done->metrics;
      final_model_dir_ = done->final_model_dir;
    }
    if (state_ == v1::LearnerStatus::FAILED) std::cerr << "swarr learner: " << error_ << "\n";
    ChangedLocked();
  }
  if (setup.ok() && !finished) {
    // An rl stage publishes its first version before StartStage returns (the coordinator
    // dispatches groups for `latest` as soon as it sees the stage RUNNING).
    std::shared_ptr<RlRun> rl;
    absl::Status prepared = absl::OkStatus();
    if (ctx->stage.has_rl()) {
      absl::StatusOr<std::shared_ptr<RlRun>> r = CatchTorch("rl stage", [&]() { return PrepareRlStage(*ctx); });
      if (r.ok()) rl = std::move(*r);
      prepared = r.status();
    }
    if (prepared.ok()) {
      stage_thread_ = std::thread(&LearnerEngine::RunStageThread, this, ctx, std::move(rl));
    } else {
      SetFailed(absl::StrCat("stage ", name, ": ", prepared.message()));
    }
  }
  (void)PersistState();
  return GetStatus();
}

absl::StatusOr<LearnerEngine::FinishedStage> LearnerEngine::PublishFinishedStage(const StageContext& ctx) {
  FinishedStage out;
  v1::ModelSpec spec = ctx.stage.model();
  if (Exists(ctx.done_path)) {
    SWARR_ASSIGN_OR_RETURN(std::string text, ReadFile(ctx.done_path));
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) return absl::DataLossError(absl::StrCat(ctx.done_path, ": not a JSON object"));
    out.step = JsonInt(j, "step", 0);
    if (j.contains("stop_reason") && j["stop_reason"].is_string()) out.stop_reason = j["stop_reason"];
    if (j.contains("metrics") && j["metrics"].is_object()) out.metrics = NumericFields(j["metrics"].dump());
    if (!ctx.stage.has_eval()) spec.set_path(ctx.final_dir);
  }
  out.final_model_dir = spec.path();
  SWARR_ASSIGN_OR_RETURN(auto model, LoadStageModel(spec, ctx.stage.seed(), ""));
  int64_t version;
  {
    std::lock_guard<std::mutex> lock(mu_);
    version = versions_.Next();
  }
  SWARR_RETURN_IF_ERROR(PublishModel(*model, version));
  return out;
}

void LearnerEngine::RunStageThread(std::shared_ptr<const StageContext> ctx, std::shared_ptr<RlRun> rl) {
  absl::Status st = ctx->stage.has_train() ? RunTrainStage(*ctx)
                                           : CatchTorch("rl stage", [&]() { return RunRlStage(*ctx, *rl); });
  if (!st.ok()) SetFailed(std::string(st.message()));
  (void)PersistState();
}

// ---------------------------------------------------------------------------------------------
// PushTrajectories

absl::StatusOr<v1::PushTrajectoriesResponse> LearnerEngine::PushTrajectories(
    const v1::PushTrajectoriesRequest& request) {
  std::shared_ptr<const StageContext> ctx;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return absl::UnavailableError("the learner is shutting down");
    ctx = ctx_;
  }
  if (!ctx) {
    return absl::FailedPreconditionError("no rl stage is running (the learner is IDLE: no stage started yet)");
  }
  // 1. Structure, without the lock.
  const int n = request.trajectories_size();
  std::vector<int> stage_of(n);
  for (int i = 0; i < n; ++i) {
    const v1::Trajectory& t = request.trajectories(i);
    int s = ctx->index;
    if (!t.stage().empty()) {
      s = -1;
      for (int k = 0; k < ctx->pipeline.stages_size(); ++k) {
        if (ctx->pipeline.stages(k).name() == t.stage()) s = k;
      }
      if (s < 0) {
        return absl::InvalidArgumentError(absl::StrCat("trajectory ", t.id().empty() ? absl::StrCat("#", i) : t.id(),
                                                       ": stage: \"", t.stage(), "\" is not a stage of the pipeline"));
      }
    }
    stage_of[i] = s;
    TrajectoryLimits limits;
    limits.vocab_size = ctx->vocab_size;
    limits.max_total_tokens = ctx->max_positions;
    if (ctx->pipeline.stages(s).has_rl()) limits.max_completion_tokens = ctx->pipeline.stages(s).rl().max_new_tokens();
    SWARR_RETURN_IF_ERROR(ValidateTrajectory(t, i, limits));
  }

  // 2. Against the learner's state (TrajectoryBuffer::Push decides everything before it changes
  // anything).
  std::unique_lock<std::mutex> lock(mu_);
  if (shut_down_) return absl::UnavailableError("the learner is shutting down");
  if (ctx_ != ctx) {
    lock.unlock();
    return PushTrajectories(request);  // the stage changed meanwhile: check again
  }
  TrajectoryBuffer::Learner learner;
  learner.pipeline = &ctx->pipeline;
  learner.stage_index = ctx->index;
  learner.state = state_;
  learner.incarnation = incarnation_;
  learner.latest = versions_.latest();
  learner.first_published = versions_.first_published();
  learner.min_accepted = std::max(stage_start_version_, versions_.latest() - ctx->max_staleness);
  SWARR_ASSIGN_OR_RETURN(TrajectoryBuffer::PushResult pushed, buffer_.Push(request, stage_of, learner, *trained_log_));

  // 3. Counters, metrics, progress.
  for (int64_t behind : pushed.staleness) metrics_->staleness.Observe(static_cast<double>(behind));
  if (pushed.resolved_any) work_cv_.notify_all();
  if (pushed.accepted + pushed.stale_now > 0) last_arrival_ = Clock::now();  // progress (IdleBound)
  counters_.trajectories_received += pushed.accepted;
  counters_.trajectories_duplicate += pushed.duplicate;
  counters_.trajectories_dropped_stale += pushed.stale;
  metrics_->accepted.Increment(static_cast<double>(pushed.accepted));
  metrics_->duplicate.Increment(static_cast<double>(pushed.duplicate));
  metrics_->dropped_stale.Increment(static_cast<double>(pushed.stale));
  v1::PushTrajectoriesResponse response = std::move(pushed.response);
  if (versions_.latest() >= 0) {
    response.mutable_latest()->set_version(versions_.latest());
    response.mutable_latest()->set_learner_incarnation(incarnation_);
  }
  ChangedLocked();
  return response;
}

// ---------------------------------------------------------------------------------------------
// GetWeights / GetStatus

absl::StatusOr<std::shared_ptr<const WeightsBlob>> LearnerEngine::GetWeights(
    const v1::GetWeightsRequest& request) const {
  std::lock_guard<std::mutex> lock(mu_);
  return versions_.Get(request, incarnation_);
}

absl::StatusOr<v1::CudaIpcWeights> LearnerEngine::GetWeightsIpc(const v1::GetWeightsRequest& request) const {
  // The same version rules as GetWeights.
  absl::StatusOr<std::shared_ptr<const WeightsBlob>> blob = GetWeights(request);
  if (!blob.ok()) return blob.status();
  const int64_t v = (*blob)->version.version();
  std::shared_ptr<const IpcWeights> ipc;
  {
    std::lock_guard<std::mutex> lock(mu_);
    SWARR_ASSIGN_OR_RETURN(ipc, versions_.Ipc(v));
  }
  SWARR_RETURN_IF_ERROR(CheckIpcCaller(request, ipc->meta));
  return ipc->meta;
}

int64_t LearnerEngine::weight_chunk_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return chunk_bytes_;
}

void LearnerEngine::CountWeightsServed(int64_t bytes) {
  metrics_->weights_served_bytes.Increment(static_cast<double>(bytes));
}

absl::StatusOr<v1::GetGroupStatesResponse> LearnerEngine::GetGroupStates(
    const v1::GetGroupStatesRequest& request) const {
  for (int i = 0; i < request.groups_size(); ++i) {
    const auto& g = request.groups(i);
    if (g.group_id().empty()) return absl::InvalidArgumentError(absl::StrCat("groups[", i, "].group_id: empty"));
    if (g.group_id().size() > 512) {
      return absl::InvalidArgumentError(absl::StrCat("groups[", i, "].group_id: longer than 512 bytes"));
    }
    if (g.group_size() < 1 || g.group_size() > 65536) {
      return absl::InvalidArgumentError(
          absl::StrCat("groups[", i, "].group_size: must be in [1, 65536], got ", g.group_size()));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!ctx_ || !ctx_->stage.has_rl()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no rl stage is running (the learner is ",
        ctx_ ? absl::StrCat("on stage ", ctx_->stage.name()) : std::string("IDLE"), ")"));
  }
  // A finished stage's final checkpoint holds every step.
  const int64_t durable =
      state_ == v1::LearnerStatus::DONE ? std::numeric_limits<int64_t>::max() : durable_lines_;
  v1::GetGroupStatesResponse out;
  out.set_learner_incarnation(incarnation_);
  buffer_.GroupStates(request, durable, *trained_log_, &out);
  return out;
}

v1::LearnerStatus LearnerEngine::GetStatus() const {
  std::lock_guard<std::mutex> lock(mu_);
  return StatusLocked();
}

v1::LearnerStatus LearnerEngine::StatusLocked() const {
  v1::LearnerStatus s;
  s.set_incarnation(incarnation_);
  s.set_stage_index(ctx_ ? ctx_->index : -1);
  if (ctx_) s.set_stage_name(ctx_->stage.name());
  s.set_state(state_);
  s.set_error(error_);
  s.set_step(step_);
  if (versions_.latest() >= 0) {
    s.mutable_latest()->set_version(versions_.latest());
    s.mutable_latest()->set_learner_incarnation(incarnation_);
  }
  if (ctx_ && ctx_->stage.has_rl()) {
    s.set_min_accepted_version(std::max(stage_start_version_, versions_.latest() - ctx_->max_staleness));
  }
  s.set_buffered_groups(static_cast<int32_t>(buffer_.buffered()));
  s.set_partial_groups(static_cast<int32_t>(buffer_.partial()));
  s.set_trajectories_received(counters_.trajectories_received);
  s.set_trajectories_duplicate(counters_.trajectories_duplicate);
  s.set_trajectories_dropped_stale(counters_.trajectories_dropped_stale);
  s.set_trajectories_trained(trained_log_->lines());
  s.set_trajectory_ids_trained_twice(trained_log_->trained_twice());
  for (const auto& [k, v] : last_metrics_) (*s.mutable_metrics())[k] = v;
  s.set_final_model_dir(final_model_dir_);
  s.set_stop_reason(stop_reason_);
  return s;
}

int64_t LearnerEngine::TrainedIdsRetainedForTest() const { return trained_log_->retained(); }

int64_t LearnerEngine::KnownIdsRetainedForTest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return buffer_.known_retained();
}

void LearnerEngine::SetBeforeRlStepHookForTest(std::function<void()> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  before_rl_step_ = std::move(hook);
}

bool LearnerEngine::WaitForStatusForTest(const std::function<bool(const v1::LearnerStatus&)>& done,
                                         double timeout_seconds) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_seconds));
  return status_cv_.wait_until(lock, deadline, [&] { return done(StatusLocked()); });
}

}  // namespace swarr
