// The learner of docs/services.md as a plain object (no gRPC): it runs the pipeline's stages
// one at a time as the coordinator asks (StartStage), buffers pushed trajectories into groups
// and trains on them, publishes weight versions and keeps their serialized bytes, checkpoints,
// and keeps its counters and trained ids in the run directory. LearnerService
// (learner_service.h) is the thin gRPC adapter around it.
//
// Stages (the stage's model: its model.path, or the previous training stage's final model
// RUN_DIR/learner/<prev>/final, with the stage's attention settings):
//   train  SFT from data (learner/sft_stage.h) on a background thread; a version is published
//          when it starts and when it reaches its stop rule.
//   rl     pushed trajectories are buffered per group; every `prompts_per_step` resolved groups
//          (in the order they resolved) one RlTrainer::Step runs on the stage thread and, if it
//          changed the weights, a new version is published. One line per Step in
//          RUN_DIR/stages/<stage>/metrics.jsonl (the keys `swarr train` writes). With
//          dynamic sampling a batch whose groups are all uniform (all rewards of each group
//          equal) makes no update and the next batch is taken; after rl.max_uniform_batches
//          such batches in a row the stage FAILS, its error naming the reason (all rewards 0:
//          too hard; all 1: solved) and the count. When no trajectory of the stage arrives
//          for rl.max_idle_minutes (30) while it waits for groups (steps not counted), the
//          stage FAILS saying so (learner/service/idle_bound.h).
//   eval   the model the eval runs is published at once; the stage is DONE.
// A stage that reached its stop rule writes its final checkpoint, RUN_DIR/learner/<stage>/final
// (with the source's tokenizer files) and RUN_DIR/learner/<stage>/done.json; StartStage of a
// stage with done.json (a restarted learner) reports DONE again and re-publishes its final model.
//
// Versions: `(version, incarnation)`; numbers count up over the run (state.json remembers
// the newest); an rl stage resumed from a checkpoint continues from the checkpoint's version
// under this process's incarnation. The newest max(2, max_staleness + 2) are kept serialized.
//
// Thread safety: every public method may be called from any thread (gRPC handler threads).
//
// Where it lives (each unit's contract in its header; the engine wires them under one lock):
//   learner_engine.cc        lifecycle (Create, StartStage, Shutdown), the RPC entry points,
//                            publication of a model, state.json, status
//   learner_engine_train.cc  the train stage body
//   learner_engine_rl.cc     the rl stage: preparation (checkpoint resume, trained-id cut) and
//                            its loop (steps, checkpoints, stop rules, the two bounds)
//   trajectory_buffer.h      rl intake: dedup, groups, GetGroupStates, pending.binpb
//   weight_versions.h        published versions, their numbering and eviction
//   run_state.h              state.json and trained_ids.log (bounded in memory)
//   idle_bound.h, learner/uniform_batches.h   the two bounds that fail a stalled rl stage
// No torch in this header (learner_service.cc includes it).
#ifndef SWARR_LEARNER_SERVICE_LEARNER_ENGINE_H_
#define SWARR_LEARNER_SERVICE_LEARNER_ENGINE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/rpc/weights_wire.h"
#include "learner/service/learner_metrics.h"
#include "learner/service/run_state.h"
#include "learner/service/trajectory_buffer.h"
#include "learner/service/weight_versions.h"
#include "proto/swarr/v1/learner.pb.h"

namespace prometheus {
class Registry;
}

namespace swarr {

class Model;

struct LearnerEngineOptions {
  // The run directory (RUN_DIR); learner/ and stages/ are created under it. Required.
  std::string run_dir;
  // This process's incarnation; "" = 16 random hex digits. (Tests may fix it.)
  std::string incarnation;
  // Where the metrics live (the service's MetricsExporter registry); null = a private one.
  std::shared_ptr<prometheus::Registry> registry;
};

class LearnerEngine {
 public:
  // Reads RUN_DIR/learner/state.json and trained_ids.log (both optional). kInvalidArgument
  // for an unusable run directory or a malformed state file.
  static absl::StatusOr<std::unique_ptr<LearnerEngine>> Create(LearnerEngineOptions options);
  // Shutdown(), then frees everything.
  ~LearnerEngine();

  LearnerEngine(const LearnerEngine&) = delete;
  LearnerEngine& operator=(const LearnerEngine&) = delete;

  // Learner.StartStage. kInvalidArgument: the pipeline fails ValidatePipeline or the index is
  // out of range; kFailedPrecondition: an earlier stage than the current one. The stage the
  // learner is on (running, done or failed) is returned unchanged. A later stage interrupts
  // the current one (checkpointing it). Errors of the stage itself (its model or data) are not
  // errors of the call: the returned status says FAILED with `error`.
  absl::StatusOr<v1::LearnerStatus> StartStage(int32_t stage_index, const v1::PipelineConfig& pipeline);

  // Learner.PushTrajectories without the authentication (see learner.proto for the codes).
  // Every trajectory is validated first; any error rejects the whole call and keeps nothing.
  absl::StatusOr<v1::PushTrajectoriesResponse> PushTrajectories(const v1::PushTrajectoriesRequest& request);

  // The serialized weights GetWeights streams. kNotFound: never published by this incarnation
  // (or another incarnation named); kFailedPrecondition: no longer kept (names the oldest kept).
  absl::StatusOr<std::shared_ptr<const WeightsBlob>> GetWeights(const v1::GetWeightsRequest& request) const;
  // Learner.GetWeightsIpc: the same version as GetWeights (same errors) as a CUDA IPC buffer,
  // for a caller on this host. kFailedPrecondition where it cannot work (the model was not on
  // a GPU when published, no CUDA, another host): the caller uses GetWeights.
  absl::StatusOr<v1::CudaIpcWeights> GetWeightsIpc(const v1::GetWeightsRequest& request) const;
  // rpc.weight_chunk_bytes of the pipeline (4 MiB until one is known).
  int64_t weight_chunk_bytes() const;
  // Counts bytes a GetWeights stream sent (swarr_learner_weights_served_bytes_total).
  void CountWeightsServed(int64_t bytes);

  // Learner.GetStatus.
  v1::LearnerStatus GetStatus() const;

  // Learner.GetGroupStates (crash consistency, docs/reliability.md): per group, TRAINED /
  // DURABLE when a member id is in trained_ids.log (DURABLE: every such line is below the line
  // count the newest checkpoint of the stage recorded), else BUFFERED while the group waits or
  // is in the step in progress, else DROPPED when a member was taken here, else UNKNOWN.
  // kFailedPrecondition unless the current stage is rl; kInvalidArgument for an empty id or a
  // size outside [1, 65536].
  absl::StatusOr<v1::GetGroupStatesResponse> GetGroupStates(const v1::GetGroupStatesRequest& request) const;

  // The SIGTERM path: the running train / rl stage writes a checkpoint of its current step
  // (after the step in progress; rl also its buffered trajectories, restored by the next
  // learner that resumes this checkpoint), its thread stops, state.json is written. Later
  // calls are answered UNAVAILABLE (pushes, stage starts). Idempotent.
  absl::Status Shutdown();

  const std::string& incarnation() const { return incarnation_; }

  // Called on the stage thread after an rl Step's groups were taken, before the Step runs.
  void SetBeforeRlStepHookForTest(std::function<void()> hook);

  // Blocks until `done(GetStatus())` holds (re-checked on every change of the learner's
  // state) or `timeout_seconds` pass; returns whether it held.
  bool WaitForStatusForTest(const std::function<bool(const v1::LearnerStatus&)>& done, double timeout_seconds);

  // Entries the dedup set of taken trajectory ids holds (KnownTrajectoryIds::retained).
  int64_t KnownIdsRetainedForTest() const;
  // Entries trained_ids.log holds in memory (TrainedIdsLog::retained).
  int64_t TrainedIdsRetainedForTest() const;

 private:
  struct StageContext;

  explicit LearnerEngine(LearnerEngineOptions options);
  absl::Status Init();

  // Stage bodies, on the stage thread. An error fails the stage (SetFailed, with its message).
  struct RlRun;  // an rl stage's model, trainer and version numbering (learner_engine_rl.cc)
  void RunStageThread(std::shared_ptr<const StageContext> ctx, std::shared_ptr<RlRun> rl);
  // SFT until its stop rule or stop_ (learner_engine_train.cc): a version at its start and at
  // its end, then done.json and DONE; interrupted, it has checkpointed and returns OK.
  absl::Status RunTrainStage(const StageContext& ctx);
  // Loads the rl stage's model (or its newest checkpoint, cutting trained_ids.log back to that
  // checkpoint's line count, or to the stage's start without one, then settling those lines),
  // restores the trajectories buffered when it was interrupted and publishes its first
  // version; on StartStage's thread (learner_engine_rl.cc).
  absl::StatusOr<std::shared_ptr<RlRun>> PrepareRlStage(const StageContext& ctx);
  // The rl loop (learner_engine_rl.cc): takes rl.prompts_per_step resolved groups from
  // buffer_, drops stale trajectories, runs one RlTrainer::Step, appends the ids to
  // trained_ids.log before the step's version is published, checkpoints every
  // checkpoint.every_steps (recording the log's line count; durable_lines_; settles the log),
  // until a stop rule (DONE: final model, done.json), stop_ (checkpoint and pending.binpb), or
  // a bound (FAILED: UniformBatches, IdleBound; what was trained is checkpointed first).
  absl::Status RunRlStage(const StageContext& ctx, RlRun& run);
  // Its pieces (learner_engine_rl.cc), on the stage thread:
  struct RlBatch {  // the groups a step took
    std::vector<TrajectoryBuffer::Group> groups;
    int64_t current = 0;          // the global version when they were taken
    std::function<void()> hook;   // SetBeforeRlStepHookForTest's, run before the step
  };
  enum class RlWait { kBatch, kStop, kDeadline };
  // Waits until rl.prompts_per_step groups are resolved (takes them: kBatch), stop_ (kStop) or
  // stop.max_minutes (kDeadline). When rl.max_idle_minutes passes with no progress:
  // checkpoints what was trained since the last checkpoint and returns IdleBound's error.
  absl::StatusOr<RlWait> WaitForRlBatch(const StageContext& ctx, RlRun& run, RlBatch* batch);
  // One RlTrainer::Step on the taken groups (their stale trajectories dropped; none left: no
  // step): its ids appended to trained_ids.log before its version is published, its
  // metrics.jsonl line, a checkpoint every checkpoint.every_steps. Sets *reason to
  // "target_reward" when reached; UniformBatches' error (after a checkpoint) at its bound.
  absl::Status RunRlStep(const StageContext& ctx, RlRun& run, RlBatch taken, std::string* reason);
  // A checkpoint of the current step recording trained_ids.log's line count (the crash cut of
  // a learner resuming from it), then durable_lines_ and TrainedIdsLog::Settle to that count.
  absl::Status SaveRlCheckpoint(const StageContext& ctx, RlRun& run);
  // The stop rule `reason` was reached: the final checkpoint and model (with the tokenizer
  // files), done.json, DONE.
  absl::Status FinishRlStage(const StageContext& ctx, RlRun& run, const std::string& reason);
  // Eval stages and stages with done.json: loads and publishes the stage's model (on the
  // caller's thread) and returns what the status reports.
  struct FinishedStage {
    int64_t step = 0;
    std::string stop_reason;
    std::map<std::string, double> metrics;
    std::string final_model_dir;
  };
  absl::StatusOr<FinishedStage> PublishFinishedStage(const StageContext& ctx);

  // Serializes `model` as version `version` and makes it the newest. Persists state.json.
  absl::Status PublishModel(const Model& model, int64_t version);
  // state.json from a snapshot of the counters and versions.
  absl::Status PersistState();
  // Ends the running stage thread (it checkpoints) and waits for it.
  void StopStageThread();
  void SetFailed(const std::string& error);
  void ChangedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { status_cv_.notify_all(); }
  v1::LearnerStatus StatusLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LearnerEngineOptions options_;
  const std::string incarnation_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<LearnerMetrics> metrics_;
  std::unique_ptr<TrainedIdsLog> trained_log_;

  std::mutex lifecycle_mu_;  // serializes StartStage / Shutdown (they join the stage thread)
  std::thread stage_thread_;  // guarded by lifecycle_mu_
  std::mutex persist_mu_;     // serializes state.json writes

  mutable std::mutex mu_;
  std::condition_variable work_cv_;           // stage thread: groups resolved / stop
  mutable std::condition_variable status_cv_; // WaitForStatusForTest
  std::atomic<bool> stop_{false};             // the stage thread must checkpoint and end
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;

  // The stage.
  std::shared_ptr<const StageContext> ctx_ ABSL_GUARDED_BY(mu_);
  v1::LearnerStatus::State state_ ABSL_GUARDED_BY(mu_) = v1::LearnerStatus::IDLE;
  std::string error_ ABSL_GUARDED_BY(mu_);
  int64_t step_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, double> last_metrics_ ABSL_GUARDED_BY(mu_);
  std::string stop_reason_ ABSL_GUARDED_BY(mu_);
  std::string final_model_dir_ ABSL_GUARDED_BY(mu_);
  int64_t chunk_bytes_ ABSL_GUARDED_BY(mu_) = int64_t{4} << 20;

  // Versions of this incarnation (serialized, CUDA IPC exports) and the run's numbering.
  WeightVersions versions_ ABSL_GUARDED_BY(mu_);
  int64_t stage_start_version_ ABSL_GUARDED_BY(mu_) = 0;  // rl: the stage's first version

  // rl intake: buffered groups, the step in progress, taken ids (dedup).
  TrajectoryBuffer buffer_ ABSL_GUARDED_BY(mu_);
  // trained_ids.log lines of steps the stage's newest checkpoint holds (crash consistency: a
  // restarted learner resumes from that checkpoint and cuts the lines after it).
  int64_t durable_lines_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void()> before_rl_step_ ABSL_GUARDED_BY(mu_);
  // When a trajectory of the running rl stage last arrived (accepted or dropped stale): the
  // stage's progress for rl.max_idle_minutes (IdleBound).
  std::chrono::steady_clock::time_point last_arrival_ ABSL_GUARDED_BY(mu_);

  LearnerRunState counters_ ABSL_GUARDED_BY(mu_);  // received / duplicate / dropped_stale
};

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_LEARNER_ENGINE_H_
