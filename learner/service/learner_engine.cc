#include "learner/service/learner_engine.h"

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

struct LearnerEngine::StageContext {
  int32_t index = -1;
  v1::PipelineConfig pipeline;
  v1::Stage stage;           // model.path replaced by source_dir
  std::string source_dir;    // where the stage's model comes from
  std::string stage_dir;     // RUN_DIR/learner/<name>
  std::string checkpoints_dir;
  std::string final_dir;
  std::string done_path;     // RUN_DIR/learner/<name>/done.json
  std::string metrics_path;  // RUN_DIR/stages/<name>/metrics.jsonl
  int64_t vocab_size = 0;
  int64_t max_positions = 0;
  int64_t max_staleness = 0;  // rl
};

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

// The numeric fields of a metrics.jsonl line.
std::map<std::string, double> NumericFields(const std::string& json_line) {
  std::map<std::string, double> out;
  nlohmann::json j = nlohmann::json::parse(json_line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it->is_number()) out[it.key()] = it->get<double>();
  }
  return out;
}

// The tokenizer files of `from` (if any) next to the final model in `to`, so that a later
// stage (and the coordinator's prompt set) starting from `to` finds them.
absl::Status CopyTokenizerFiles(const std::string& from, const std::string& to) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json"}) {
    absl::StatusOr<std::string> text = ReadFile(absl::StrCat(from, "/", name));
    if (!text.ok()) continue;
    SWARR_RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(to, "/", name), {*text}));
  }
  return absl::OkStatus();
}

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

int64_t JsonInt(const nlohmann::json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
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
// train

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

// ---------------------------------------------------------------------------------------------
// rl

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
  const v1::RlConfig& cfg = stage.rl();
  Model* policy = run.policy.get();
  RlTrainer* trainer = run.trainer.get();
  MetricsLog* log = run.log.get();
  int64_t& base = run.base;
  const int64_t stage_start = run.stage_start;
  int64_t& tokens_total = run.tokens_total;
  const v1::StopRule& stop = stage.stop();
  const int64_t per_step = RlUpdatesPerStep(cfg);
  const size_t groups_per_step = static_cast<size_t>(cfg.prompts_per_step());
  const Clock::time_point start = Clock::now();
  const bool has_deadline = stop.max_minutes() > 0;
  const Clock::time_point deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(stop.max_minutes() * 60));
  int64_t last_saved = run.resumed ? trainer->state().step : -1;
  // Batches in a row in which dynamic sampling dropped every group (all rewards of each group
  // equal). Such a batch makes no update, so the step does not advance: the learner takes the
  // next batch (the coordinator dispatches more prompts as the buffer empties) up to
  // rl.max_uniform_batches of them, then the stage fails with the reason.
  UniformBatches uniform(cfg.max_uniform_batches());
  metrics_->uniform_batches_in_a_row.Set(0);
  // No trajectory of the stage arriving for rl.max_idle_minutes (no rollout generating for
  // it): the stage fails instead of waiting forever.
  IdleBound idle(cfg.max_idle_minutes(), start);
  auto save = [&]() -> absl::Status {
    TrainerState st = trainer->state();
    // The trained ids up to this step are part of the checkpoint's state: a learner resuming
    // from it cuts the log back to this count.
    const int64_t trained_lines = trained_log_->lines();
    st.extra_json = nlohmann::json({{"version_base", base},
                                    {"stage_start_version", stage_start},
                                    {"tokens_total", tokens_total},
                                    {"trained_log_lines", trained_lines}})
                        .dump();
    SWARR_RETURN_IF_ERROR(
        SaveCheckpoint(ctx.checkpoints_dir, *policy, trainer->optimizer(), st, stage.checkpoint().keep_last())
            .status());
    last_saved = st.step;
    {
      std::lock_guard<std::mutex> lock(mu_);
      durable_lines_ = trained_lines;
    }
    // Those lines are never cut again: the log keeps only their groups (bounded memory).
    return trained_log_->Settle(trained_lines);
  };

  std::string reason;
  bool interrupted = false;
  while (true) {
    if (stop.max_steps() > 0 && trainer->state().step >= stop.max_steps() * per_step) reason = "max_steps";
    else if (stop.max_tokens() > 0 && tokens_total >= stop.max_tokens()) reason = "max_tokens";
    else if (has_deadline && Clock::now() >= deadline) reason = "max_minutes";
    if (!reason.empty()) break;

    std::vector<TrajectoryBuffer::Group> groups;
    int64_t current = 0;
    std::function<void()> hook;
    absl::Status idle_error;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto ready = [&] { return stop_.load() || buffer_.resolved() >= groups_per_step; };
      while (!ready()) {
        idle.Progress(last_arrival_);
        const Clock::time_point now = Clock::now();
        if (idle.Expired(now)) {
          idle_error = idle.Error(stage.name(), static_cast<int64_t>(groups_per_step),
                                  static_cast<int64_t>(buffer_.resolved()), static_cast<int64_t>(buffer_.partial()));
          break;
        }
        if (has_deadline && now >= deadline) break;
        work_cv_.wait_until(lock, has_deadline ? std::min(deadline, idle.deadline()) : idle.deadline(), ready);
      }
      if (stop_) {
        interrupted = true;
        break;
      }
      if (!idle_error.ok()) {
        lock.unlock();
        // What was trained so far survives the failure (a rerun resumes from it).
        if (trainer->state().step > 0 && last_saved != trainer->state().step) SWARR_RETURN_IF_ERROR(save());
        return idle_error;
      }
      if (buffer_.resolved() < groups_per_step) continue;  // the deadline passed
      groups = buffer_.Take(groups_per_step);
      current = base + trainer->policy_version();
      hook = before_rl_step_;
      ChangedLocked();
    }
    if (hook) hook();
    // Staleness again at training time (versions may have moved since arrival).
    std::vector<Trajectory> batch;
    std::vector<std::string> ids;
    int64_t stale = 0;
    for (const TrajectoryBuffer::Group& g : groups) {
      for (const v1::Trajectory& p : g.accepted) {
        if (p.policy_version() < current - ctx.max_staleness || p.policy_version() < base) {
          ++stale;
          continue;
        }
        Trajectory t = FromProto(p);
        ids.push_back(t.id);
        t.policy_version -= base;
        batch.push_back(std::move(t));
      }
    }
    if (stale > 0) metrics_->dropped_stale.Increment(static_cast<double>(stale));
    {
      std::lock_guard<std::mutex> lock(mu_);
      counters_.trajectories_dropped_stale += stale;
      if (batch.empty()) {  // every group was dropped: nothing to train on
        buffer_.EndStep();
        ChangedLocked();
        continue;
      }
    }
    // rl.log_trajectories: what this step trains on, written once the step is known.
    std::vector<nlohmann::json> trained_lines;
    if (run.trajectories) {
      for (const Trajectory& t : batch) {
        trained_lines.push_back({{"id", t.id},
                                 {"policy_version", t.policy_version + base},
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
    const int64_t version = base + trainer->policy_version();
    std::shared_ptr<const WeightsBlob> blob;
    if (trainer->policy_version() != version_before) {
      v1::WeightVersion v;
      v.set_version(version);
      v.set_learner_incarnation(incarnation_);
      SWARR_ASSIGN_OR_RETURN(WeightsBlob b, SerializeModelWeights(*policy, v));
      blob = std::make_shared<const WeightsBlob>(std::move(b));
    }
    // The ids are on disk before their step's version is visible.
    SWARR_RETURN_IF_ERROR(trained_log_->Append(ids));
    metrics_->trained.Increment(static_cast<double>(ids.size()));
    tokens_total += m->tokens;
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    nlohmann::json fields({{"step", m->step},
                           {"policy_version", version},
                           {"loss", m->loss},
                           {"lr", m->lr},
                           {"tokens", m->tokens},
                           {"reward_mean", m->reward_mean},
                           {"reward_std", m->reward_std},
                           {"kl", m->kl},
                           {"clip_frac", m->clip_frac},
                           {"entropy", m->entropy},
                           {"grad_norm", m->grad_norm},
                           {"importance_weight_mean", m->importance_weight_mean},
                           {"updates", m->updates},
                           {"groups_used", m->groups_used},
                           {"groups_dropped_uniform", m->groups_dropped_uniform},
                           {"trajectories_invalid", m->trajectories_invalid},
                           {"seconds", secs}});
    for (const auto& [key, value] : RlAlgorithmMetricFields(*m)) fields[key] = value;
    fields.update(PeakMemoryFields(*policy));
    const std::string line = fields.dump();
    const bool all_uniform = uniform.Observe(*m, batch_lo, batch_hi);
    if (all_uniform) metrics_->uniform_batches.Increment();
    metrics_->uniform_batches_in_a_row.Set(static_cast<double>(uniform.in_a_row()));
    // One line per optimizer step: a Step that applied no update (every group dropped as
    // uniform, or every update skipped) leaves the step count where it was.
    if (m->updates > 0) {
      log->Write(line);
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
    idle.Progress(Clock::now());  // the time a step takes is not idle
    if (stage.checkpoint().every_steps() > 0 && m->updates > 0 && m->step % stage.checkpoint().every_steps() == 0) {
      SWARR_RETURN_IF_ERROR(save());
    }
    SWARR_RETURN_IF_ERROR(PersistState());
    if (stop.target_reward() > 0 && m->reward_mean >= stop.target_reward()) {
      reason = "target_reward";
      break;
    }
    if (uniform.exhausted()) {
      // What was trained so far survives the failure (a rerun resumes from it).
      if (trainer->state().step > 0 && last_saved != trainer->state().step) SWARR_RETURN_IF_ERROR(save());
      return uniform.Error(stage.name());
    }
  }
  if (interrupted) {
    if (last_saved != trainer->state().step) SWARR_RETURN_IF_ERROR(save());
    std::lock_guard<std::mutex> lock(mu_);
    SWARR_RETURN_IF_ERROR(buffer_.SavePending(ctx.stage_dir, ctx.stage.name(), trainer->state().step));
    std::cerr << "swarr learner: " << stage.name() << " interrupted at step " << trainer->state().step
              << "; checkpoint written\n";
    return absl::OkStatus();
  }
  if (last_saved != trainer->state().step) SWARR_RETURN_IF_ERROR(save());
  SWARR_RETURN_IF_ERROR(CatchTorch("saving the final model", [&]() { return policy->Save(ctx.final_dir); }));
  SWARR_RETURN_IF_ERROR(CopyTokenizerFiles(ctx.source_dir, ctx.final_dir));
  std::map<std::string, double> metrics;
  int64_t latest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    metrics = last_metrics_;
    latest = versions_.latest();
  }
  nlohmann::json done = {{"stage", stage.name()},           {"stop_reason", reason},
                         {"step", trainer->state().step},   {"version", latest},
                         {"final_model_dir", ctx.final_dir}, {"metrics", metrics}};
  SWARR_RETURN_IF_ERROR(WriteFileAtomically(ctx.done_path, {done.dump(2)}));
  std::cerr << "swarr learner: " << stage.name() << " stopped by " << reason << " at step "
            << trainer->state().step << ", version " << latest << "\n";
  std::lock_guard<std::mutex> lock(mu_);
  state_ = v1::LearnerStatus::DONE;
  stop_reason_ = reason;
  final_model_dir_ = ctx.final_dir;
  buffer_.Clear();
  ChangedLocked();
  return absl::OkStatus();
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
