// The coordinator engine (docs/services.md, docs/coordinator.md): runs a pipeline's stages in
// order by driving the learner, keeps the registry of rollout servers (leases renewed by
// heartbeats), hands out prompt groups by free capacity within the rl in-flight bound, orders
// weight loads one worker at a time, aggregates evaluations, persists its state and writes
// RUN_DIR/summary.json at the end.
//
// No gRPC server here: CoordinatorService (coordinator/service.h) adapts the RPCs onto the
// methods below; CoordinatorServer bundles engine + service + server for `swarr coordinator`
// and tests. No torch.
//
// The engine is one class split by concern over its source files (the private part of this
// header is grouped the same way): coordinator.cc (lifecycle, the stage loop, the pipeline's
// end, status), coordinator_dispatch.cc (groups, the queue, capacity-based dispatch),
// coordinator_workers.cc (registry, leases, liveness, the workers' RPCs, weight loads),
// coordinator_eval.cc (eval results), coordinator_persistence.cc (state.json, the acknowledged
// groups' check with the learner). Pure parts have their own headers: request_checks.h,
// group_id.h, weight_orchestrator.h, eval_report.h, eval_stats.h, state.h.
//
// Thread safety: every public method may be called from any thread. One mutex guards the
// registry and the pipeline state; calls to the learner, file writes of eval outputs and stream
// writes happen outside it.
#ifndef SWARR_COORDINATOR_COORDINATOR_H_
#define SWARR_COORDINATOR_COORDINATOR_H_

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/math/prompt_set.h"
#include "common/rpc/service_options.h"
#include "common/util/sequence_id_set.h"
#include "coordinator/assignment_stream.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/learner_client.h"
#include "coordinator/state.h"
#include "coordinator/weight_orchestrator.h"
#include "proto/swarr/v1/config.pb.h"
#include "proto/swarr/v1/coordinator.pb.h"
#include "proto/swarr/v1/learner.pb.h"

namespace prometheus {
class Registry;
}

namespace swarr {

struct CoordinatorOptions {
  // The pipeline, already checked by ValidatePipeline, with its name filled in.
  v1::PipelineConfig pipeline;
  // Run directory: coordinator/state.json, stages/<eval stage>/{metrics,samples}.jsonl,
  // summary.json. Created if missing.
  std::string run_dir;
  // The learner's gRPC address (host:port); workers are told the same address.
  std::string learner_address;
  // Bearer token / TLS: what CoordinatorService requires of callers and what the coordinator
  // presents to the learner.
  RpcSecurity security;
  // Period of the pipeline loop, in seconds.
  double tick_seconds = 0.05;
  // A worker ordered to load weights gets this long to report the version before the next
  // worker is ordered, in seconds.
  double weight_load_timeout_seconds = 30;
  // state.json is rewritten at once after a stage change or an eval result; after changes of
  // counters only (groups drawn, dispatched) at most this often, in seconds.
  double persist_interval_seconds = 1;
  // How long the end of the pipeline waits for the learner's final status (the trajectory
  // counts of summary.json) before using the last one it has, in seconds.
  double final_status_timeout_seconds = 10;
  // Registry the metrics are added to (nullptr: a private one).
  std::shared_ptr<prometheus::Registry> metrics_registry;
  // What the learner and the rollout servers do once the pipeline has ended (docs/deploy.md
  // "How a run ends"). kExit: the learner is asked to finish (Learner.Finish: it exits 0) and
  // every worker to drain and exit 0. kIdle: the learner keeps serving and the workers stay up
  // idle (no heartbeats, no reconnection) until something stops them (a deployment that keeps
  // its pods, `swarr launch`). Either way every worker is told (PipelineEnd), so none loops on
  // failed heartbeats after the coordinator has gone.
  enum class AtEnd { kExit, kIdle };
  AtEnd at_end = AtEnd::kExit;
  // Coordinator incarnation ("" = 8 random hex digits). Tests only.
  std::string incarnation_for_test;
};

class Coordinator {
 public:
  // Reads RUN_DIR/coordinator/state.json if there is one (and resumes its stage), opens the
  // prompts of the current stage. Errors: kInvalidArgument for options or data that cannot be
  // used (naming them), kFailedPrecondition for a state.json of another pipeline, kDataLoss for
  // a corrupt state.json.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(CoordinatorOptions options);
  // Shutdown().
  ~Coordinator();

  // Starts the pipeline loop thread. Call once.
  void Start();
  // Stops the loop, closes every WatchAssignments stream (UNAVAILABLE), refuses further calls
  // (UNAVAILABLE) and writes state.json. Idempotent. Call before shutting the gRPC server down
  // (open streams would keep it waiting).
  void Shutdown();
  // Blocks until the pipeline is over (summary.json written: true) or Shutdown() or `timeout`
  // (false). By then the learner has been asked to finish (AtEnd::kExit; it may not have
  // answered) and every open assignment stream has been sent the PipelineEnd.
  bool WaitForDone(absl::Duration timeout);
  // Once done, before exiting: blocks until every worker not dead has been told that the
  // pipeline ended (a heartbeat or registration answered with PipelineEnd, or it drains), at
  // most lease + heartbeat seconds (a worker silent that long has gone), or Shutdown(). false
  // when some worker was not told (it may then loop on failed heartbeats until stopped).
  bool WaitForWorkersReleased();
  // Once done: OK, or why the pipeline failed (a stage the learner reported FAILED, ...).
  absl::Status result() const;
  const std::string& incarnation() const { return incarnation_; }

  // The RPCs (docs/services.md). kInvalidArgument names the offending field; kNotFound for an
  // unknown or dead worker id; kUnavailable after Shutdown().
  absl::StatusOr<v1::RegisterWorkerResponse> RegisterWorker(const v1::RegisterWorkerRequest& request);
  // `response` (may be null) gets the PipelineEnd once the pipeline has ended. rl groups it
  // reports finished are on disk (acked.journal) before it returns OK (kUnavailable when that
  // write fails: the worker reports them again).
  absl::Status Heartbeat(const v1::HeartbeatRequest& request, v1::HeartbeatResponse* response = nullptr);
  // Attaches `sink` as the worker's assignment stream (replacing an older one, whose unsent
  // groups go back to the queue) and sends it the current StageInfo first.
  absl::Status OpenStream(const std::string& worker_id, std::shared_ptr<AssignmentSink> sink);
  // The worker's stream `sink` broke (client gone, write failed): groups that may not have
  // reached the worker go back to the front of the queue.
  void StreamBroken(const std::string& worker_id, const AssignmentSink* sink,
                    const std::vector<std::string>& unsent_group_ids);
  absl::Status ReportEval(const v1::ReportEvalRequest& request);
  v1::PipelineStatus GetStatus() const;

 private:
  using Clock = std::chrono::steady_clock;

  struct Worker {
    std::string id, name, address, device, metric_label;
    int64_t max_sequences = 0;  // effective capacity
    int64_t max_tokens = 0;     // 0 = no token limit
    v1::WorkerStatus::State state = v1::WorkerStatus::ALIVE;
    v1::WeightVersion loaded;
    int32_t active_sequences = 0;
    int64_t tokens_generated = 0;
    double tokens_per_second = 0;
    std::deque<std::pair<Clock::time_point, int64_t>> token_samples;
    Clock::time_point last_heartbeat;
    Clock::time_point registered;
    std::set<std::string> assigned;  // group ids given to it and not finished / returned
    int64_t assigned_samples = 0;    // sequences of those groups
    int64_t assigned_tokens = 0;     // (prompt + max_new_tokens) x samples of those groups
    int64_t finished_groups = 0;
    // Engine progress (heartbeats of workers that report it): decode steps, sequences running,
    // and when the steps last moved (or nothing was running).
    bool reports_progress = false;
    int64_t decode_steps = -1;
    int32_t running_sequences = 0;
    Clock::time_point last_progress;
    // Groups of an earlier coordinator process this worker holds (current rl stage): counted
    // in flight until it reports them finished or stops holding them.
    std::set<std::string> adopted;
    // Told that the pipeline ended (a heartbeat or registration answer carried PipelineEnd).
    bool told_end = false;
    std::shared_ptr<AssignmentSink> stream;
    prometheus::Gauge* version_gauge = nullptr;
  };

  struct Group {
    v1::PromptGroup group;
    int32_t stage_index = 0;
    int64_t problem = -1;     // eval: the problem index
    std::string worker;       // "" = in the pending queue
    int64_t tokens = 0;       // token budget it takes on a worker
    bool ever_sent = false;   // counted in groups_dispatched
    bool ever_finished = false;  // counted in groups_finished
    Clock::time_point assigned_at;  // when it went to `worker` (workers.group_timeout_seconds)
    std::string avoid;              // the worker it timed out on: others first
  };

  // What to do once the lock is released.
  struct Outbox {
    std::vector<std::shared_ptr<AssignmentSink>> flush;
  };

  explicit Coordinator(CoordinatorOptions options);

  // --- The pipeline (coordinator.cc): stages in order, driven by the learner's status. ------
  // Reads state.json (resuming its stage), opens the current stage's prompts.
  absl::Status Init();
  void Loop();
  // One pass: leases, the learner's status (StartStage when it is elsewhere), the acknowledged
  // groups' check, dispatch and weight loads, the stage's end.
  void Tick();
  // Opens the prompts of `stage` and tells every stream about it. Outside the lock.
  absl::Status PrepareStage(int32_t stage);
  void HandleLearnerStatus(int32_t stage, const v1::LearnerStatus& status, int64_t finish_mark);
  // Marks `stage` done and moves on; the pipeline ends after the last one.
  void CompleteStageLocked(int32_t stage, int64_t steps, const std::map<std::string, double>& metrics)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FailPipeline(int32_t stage, const std::string& message);
  // Final learner status, summary.json, Learner.Finish (AtEnd::kExit), done, PipelineEnd to
  // every stream.
  void FinishPipeline();
  // Learner.Finish, retried within final_status_timeout_seconds; logs when it cannot.
  void FinishLearner(const std::string& reason);
  v1::Assignment StageInfoLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static void Deliver(Outbox& out);

  // --- Persistence and crash consistency (coordinator_persistence.cc). -----------------------
  // state.json holds state_ plus acked_ (CoordinatorState.acked_groups). Changes of stage or
  // eval results are urgent (written on the next tick), counters at most every
  // persist_interval_seconds; groups a heartbeat acknowledges are appended to acked.journal
  // before it is answered (docs/reliability.md "The last second"). Init reads both.
  void MarkDirtyLocked(bool urgent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes state.json when due (`force`: now). Persist(): the same, with the write's status.
  // Takes persist_mu_, then mu_: call without mu_.
  void PersistIfDue(bool force);
  absl::Status Persist(bool force);
  // Appends acknowledged groups (base64 PromptGroups, one a line) to
  // RUN_DIR/coordinator/acked.journal and syncs it: what a heartbeat acknowledged survives a
  // kill before the next state.json write, which empties the journal. Takes persist_mu_.
  absl::Status JournalAcked(const std::vector<std::string>& entries);
  // Asks the learner about acknowledged rl groups not yet durable; re-queues those a restarted
  // learner does not know. `final`: the stage is over; what is left is counted (unused /
  // never trained). Loop thread, outside the lock. false: the learner did not answer.
  bool CheckAckedGroups(int32_t stage, bool final);

  // --- Groups and dispatch (coordinator_dispatch.cc). -----------------------------------------
  // Groups live in groups_ from creation until finished (then acked_ for rl groups until the
  // learner says they are durable, then finished_ids_); pending_ is the queue of those on no
  // worker. A worker gets a group when its free sequences and tokens fit it (the most free
  // first); rl groups are drawn while fewer than prompts_per_step x (1 + max_staleness) are in
  // flight (ours, the learner's buffer, adopted ones).
  void DispatchRlLocked(const v1::LearnerStatus& status, int64_t finish_mark, Outbox* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CreateEvalGroupsLocked(const v1::WeightVersion& version) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A group of the current stage for its `index`-th prompt (rl: drawn, eval: the problem), with
  // what rl and eval groups share: id, prompt, answer, stop tokens, version, reward, seed and
  // token budget. The caller sets the sampling mode.
  Group NewGroupLocked(int64_t index, const StagePrompt& prompt, const v1::WeightVersion& version,
                       int64_t num_samples, int64_t max_new_tokens) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DispatchPendingLocked(Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Worker* FindWorkerForLocked(const Group& g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnassignLocked(Group& g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequeueFrontLocked(const std::vector<std::string>& ids, const std::string& from_worker, bool count)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A group reported finished (heartbeat) or answered (ReportEval). false if already counted.
  bool FinishGroupLocked(const std::string& group_id, Worker* reporter) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t CurrentStageUnfinishedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool KnownIncarnationLocked(const std::string& incarnation) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // swarr_coordinator_groups{state="queued|assigned"}.
  void UpdateGroupGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- Workers, leases and weight loads (coordinator_workers.cc). -----------------------------
  // The registry behind RegisterWorker / Heartbeat / OpenStream / StreamBroken. A worker is
  // DEAD when its lease (lease_seconds without a heartbeat) expires, UNHEALTHY when its engine
  // makes no decode step for progress_timeout_seconds with work; either way its groups go back
  // to the front of the queue, as does a group held past group_timeout_seconds.
  void ExpireLeasesLocked(Clock::time_point now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkDeadLocked(Worker& w, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // No engine progress: its groups are re-queued, it gets no work until it progresses.
  void MarkUnhealthyLocked(Worker& w, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Groups of an earlier coordinator process that `w` holds (RegisterWorker / Heartbeat).
  void AdoptHeldLocked(Worker& w, const google::protobuf::RepeatedPtrField<std::string>& held, bool prune)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t AdoptedInFlightLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateWorkerGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Orders the next weight load, if any (weights_: weight_orchestrator.h).
  void OrchestrateWeightsLocked(Clock::time_point now, Outbox* out) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- Eval results (coordinator_eval.cc). ----------------------------------------------------
  // ReportEval records one result per problem (state_.eval_results, idempotent by problem);
  // once every group of the layout has one, the outputs are written (eval_report.h) and the
  // stage completes.
  void MaybeFinishEval(int32_t stage);

  const CoordinatorOptions options_;
  const std::string incarnation_;
  const std::string state_path_;
  const std::string journal_path_;  // RUN_DIR/coordinator/acked.journal
  double heartbeat_seconds_ = 1;
  double lease_seconds_ = 5;
  double progress_timeout_seconds_ = 60;
  double group_timeout_seconds_ = 1800;
  int64_t default_max_sequences_ = 64;
  int64_t default_max_tokens_ = 0;
  RpcLimits limits_;
  std::unique_ptr<LearnerClient> learner_client_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<CoordinatorMetrics> metrics_;
  std::thread loop_;
  // Loop thread only.
  Clock::time_point next_start_attempt_;
  std::string last_logged_learner_error_;
  // state.json said the pipeline had ended already (a restart after the end). Set by Init.
  bool resumed_done_ = false;

  // Serializes state.json writes (acquired before mu_).
  absl::Mutex persist_mu_;
  mutable absl::Mutex mu_;
  CoordinatorState state_ ABSL_GUARDED_BY(mu_);
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool urgent_ ABSL_GUARDED_BY(mu_) = false;
  Clock::time_point last_persist_ ABSL_GUARDED_BY(mu_);

  std::map<std::string, Worker> workers_ ABSL_GUARDED_BY(mu_);
  int64_t next_worker_ ABSL_GUARDED_BY(mu_) = 0;
  // Unfinished groups by id (the current stage's, and earlier stages' still on a worker).
  std::map<std::string, Group> groups_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> pending_ ABSL_GUARDED_BY(mu_);
  SequenceIdSet finished_ids_ ABSL_GUARDED_BY(mu_);  // bounded: runs of n as intervals
  // Bumped for every current-stage group reported finished (the rl in-flight bound).
  int64_t finish_counter_ ABSL_GUARDED_BY(mu_) = 0;
  // rl groups of the current stage reported finished (the learner acknowledged their
  // trajectories) and not yet trained in a checkpointed step (or dropped) by the learner's
  // word; not in finished_ids_ until then.
  std::map<std::string, Group> acked_ ABSL_GUARDED_BY(mu_);
  bool group_states_supported_ ABSL_GUARDED_BY(mu_) = true;
  Clock::time_point last_acked_check_;  // loop thread only
  std::string last_acked_error_;        // loop thread only: logged once

  // The stage the prompts below belong to (-1 = none yet).
  int32_t prepared_stage_ ABSL_GUARDED_BY(mu_) = -1;
  std::unique_ptr<PromptSet> prompts_ ABSL_GUARDED_BY(mu_);
  std::string tokenizer_json_ ABSL_GUARDED_BY(mu_);
  std::string reward_kind_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  bool eval_groups_created_ ABSL_GUARDED_BY(mu_) = false;
  int64_t eval_problems_ ABSL_GUARDED_BY(mu_) = 0;

  v1::LearnerStatus learner_ ABSL_GUARDED_BY(mu_);
  std::string learner_error_ ABSL_GUARDED_BY(mu_);

  // The order of weight loads (the learner's latest version, who was ordered, who is loading).
  WeightOrchestrator weights_ ABSL_GUARDED_BY(mu_);

  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  // Once done_: what every worker is told (streams, heartbeat and registration answers).
  v1::PipelineEnd pipeline_end_ ABSL_GUARDED_BY(mu_);
  absl::Status result_ ABSL_GUARDED_BY(mu_);
};

}  // namespace swarr

#endif  // SWARR_COORDINATOR_COORDINATOR_H_
