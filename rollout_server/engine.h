// The rollout engine: one thread drives a Generator over the loaded policy, with continuous
// batching of prompt groups, plus a loader thread that fetches weight versions from the
// learner and hands them to the engine thread, which swaps them in between decode steps.
//
//   Submit(group) ─▶ pending groups ─(admission: slots, token budget, min_policy_version)─▶
//   Generator::Step() ─▶ finished samples scored (CompletionDecoder + ComputeReward) ─▶
//   Trajectory ─▶ callbacks (per sample, then once per group)
//
// Admission is per sample, in group arrival order: a sample joins the running batch when a
// sequence slot is free and its tokens (prompt + max_new_tokens) fit in `max_tokens` next to
// the running ones (a lone sequence is admitted even if it alone exceeds the budget). A group
// whose `min_policy_version` is newer than the loaded version waits, and makes the loader
// fetch the learner's latest (retried with backoff while it is still too old); later groups
// are not held up by it.
//
// Weights: a version whose config has the running model's architecture (SameArchitecture)
// is copied into the model in place between two decode steps: running sequences continue
// with it, and every token carries the version that produced it (Trajectory.token_versions).
// A version with another architecture / attention (a new stage's window) stops admission
// until the running batch is empty, then the model and generator are rebuilt. A failed load
// (network, checksum, shapes) keeps the old weights and is logged.
//
// Thread safety: every public method may be called from any thread. Callbacks run on the
// engine thread (or the loader thread for load results) with no engine lock held; they must
// not block for long and may call back into the engine.
#ifndef SWARR_ROLLOUT_SERVER_ENGINE_H_
#define SWARR_ROLLOUT_SERVER_ENGINE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/math/prompt_set.h"
#include "common/model/config.h"
#include "common/rpc/weights_wire.h"
#include "proto/swarr/v1/rollout_types.pb.h"
#include "rollout_server/metrics.h"

namespace swarr {

class Generator;
class Model;
struct DecodedWeights;

struct EngineOptions {
  // Sequences decoded at once (the generator's batch and KV-cache slots). >= 1.
  int64_t max_sequences = 64;
  // Prompt + max_new_tokens summed over running sequences; 0 = no limit.
  int64_t max_tokens = 0;
  // Model placement: "cpu", "cuda", "cuda:1"; dtype "" = float32 on CPU, bfloat16 on CUDA.
  std::string device = "cpu";
  std::string dtype;
  // Prompt tokens per prefill pass.
  int64_t prefill_chunk = 256;
  // Retry delays of the automatic "load the learner's latest" for groups that need a newer
  // version than the one loaded: initial, doubling up to max.
  double load_retry_initial_seconds = 0.1;
  double load_retry_max_seconds = 5.0;
  // A group whose batch fails this many times (LibTorch errors, e.g. out of memory) fails.
  int max_group_attempts = 3;
};

// One finished sample of a group.
struct SampleResult {
  v1::Trajectory trajectory;
  std::string completion_text;  // decoded completion (special tokens dropped)
};

struct GroupCallbacks {
  // Each sample as soon as it is finished (optional).
  std::function<void(const SampleResult&)> on_sample;
  // Exactly once (unless the group is taken back with TakeUnstarted): OK with every sample
  // in index order, or the error that ended the group (kCancelled after Cancel, the status
  // given to AbortAll, kInvalidArgument for a group the loaded model cannot take, kInternal
  // after repeated engine failures).
  std::function<void(absl::Status, std::vector<SampleResult>)> on_done;
};

// Who a group belongs to; TakeUnstarted and counts select by it.
enum class GroupSource { kCoordinator, kDirect };

struct LoadResult {
  v1::WeightVersion loaded;
  double seconds = 0;  // fetch + decode + swap
  int64_t bytes = 0;   // transferred (0 when the version was already loaded)
  bool ipc = false;    // through the device fetcher (CUDA IPC), not GetWeights
};

struct EngineStats {
  bool has_weights = false;
  v1::WeightVersion loaded;
  int64_t active_sequences = 0;  // in the running batch
  int64_t queued_sequences = 0;  // received, not started
  int64_t kv_cache_bytes = 0;    // allocated by the KV cache
  int64_t tokens_generated = 0;  // since the engine started
  // Progress (docs/reliability.md): decode steps since the engine started, and sequences that
  // are running or could start now (not waiting for a weight version to arrive; waiting for
  // fetched weights to be swapped in counts as runnable). While the latter is > 0
  // the steps must move; if they do not, the engine loop is stuck.
  int64_t decode_steps = 0;
  int64_t runnable_sequences = 0;
};

// Fetches one version from the learner (Learner.GetWeights).
using FetchWeightsFn = std::function<absl::StatusOr<WeightsBlob>(const v1::GetWeightsRequest&)>;
// Fetches one version already on the engine's device (same-host CUDA IPC,
// rollout_server/weights_ipc.h).
using FetchDeviceWeightsFn =
    std::function<absl::StatusOr<std::shared_ptr<DecodedWeights>>(const v1::GetWeightsRequest&)>;

class RolloutEngine {
 public:
  // Starts the engine and loader threads. No weights yet: groups wait until a load (their
  // own min_policy_version, or RequestLoad) succeeds. `metrics` must outlive the engine.
  static absl::StatusOr<std::unique_ptr<RolloutEngine>> Create(const EngineOptions& options,
                                                               RolloutMetrics* metrics);
  ~RolloutEngine();  // Stop()

  // OK if models can be placed on `device` ("cpu", "cuda", "cuda:1"; kInvalidArgument for a
  // malformed name or a CUDA device this LibTorch cannot use).
  static absl::Status CheckDevice(const std::string& device);

  // Where weights come from (the learner's address is known after registration). Without a
  // fetcher, loads fail with kUnavailable.
  void SetFetcher(FetchWeightsFn fetch);
  // Tried before the fetcher when set; on any error the load goes on through the fetcher
  // (logged once per distinct reason), so a learner on another host, a CPU learner or a
  // failed map cost one call.
  void SetDeviceFetcher(FetchDeviceWeightsFn fetch);
  // Stamped on every trajectory.
  void SetWorkerId(const std::string& worker_id);
  // Capacity. Applied at once to admission; a new max_sequences rebuilds the generator when
  // its batch is next empty.
  void SetLimits(int64_t max_sequences, int64_t max_tokens);
  int64_t max_sequences() const;
  int64_t max_tokens() const;

  // ValidatePromptGroup against the loaded model's vocabulary and the limits, and a sequence
  // within the model's max_position_embeddings; kUnavailable when no weights are loaded yet.
  absl::Status Validate(const v1::PromptGroup& group) const;

  // Queues `group` (checked with ValidatePromptGroup; the vocabulary again when it starts).
  // `decoder` scores its completions (nullptr = the synthetic character vocabulary). Returns
  // a handle for Cancel. kFailedPrecondition after Stop().
  absl::StatusOr<uint64_t> Submit(v1::PromptGroup group, GroupSource source,
                                  std::shared_ptr<const CompletionDecoder> decoder, GroupCallbacks callbacks);
  // Ends a group: unstarted samples are dropped, running ones freed; on_done(kCancelled).
  // Unknown / finished handles are ignored.
  void Cancel(uint64_t handle);
  // Takes back every group of `source` none of whose samples has started (waiting for a slot
  // or a weight version), in arrival order. Their callbacks are never called.
  std::vector<v1::PromptGroup> TakeUnstarted(GroupSource source);
  // Ends every group of `source` none of whose samples has started with `why` (on_done).
  void FailUnstarted(GroupSource source, const absl::Status& why);
  // Ends every group (queued and running) with `why`; returns when done.
  void AbortAll(const absl::Status& why);
  // Groups of `source` submitted and not ended yet.
  int64_t NumGroups(GroupSource source) const;

  // Loads a version (request.latest = the newest) and calls `done` when it is in use (or
  // failed: the learner's error as is, or kDataLoss / kInvalidArgument for a bad transfer).
  // Loads run one at a time in request order. A version already loaded is not fetched again.
  void RequestLoad(const v1::GetWeightsRequest& request, std::function<void(absl::StatusOr<LoadResult>)> done);

  EngineStats Stats() const;

  // Stops both threads. Groups not finished end with kCancelled; pending loads fail with
  // kCancelled. Waits for a weight fetch in progress (bounded by its deadline).
  void Stop();

  // Test hooks. The observer runs on the engine thread after every decode step with the ids
  // ("<group>/<i>") of the sequences that were in the batch.
  void SetStepObserverForTest(std::function<void(int64_t step, const std::vector<std::string>& running)> observer);
  // Weight versions fetched and waiting to be swapped in.
  int PendingInstallsForTest() const;

 private:
  struct Group;
  struct Inflight {
    uint64_t group = 0;
    int sample = 0;
    int64_t tokens = 0;
    absl::Time started;
  };
  struct Install;
  struct LoadJob {
    v1::GetWeightsRequest request;
    std::function<void(absl::StatusOr<LoadResult>)> done;
    bool automatic = false;
  };

  explicit RolloutEngine(const EngineOptions& options, RolloutMetrics* metrics);
  void EngineLoop();
  void LoaderLoop();
  absl::StatusOr<LoadResult> RunLoad(const LoadJob& job);
  // Engine thread, mu_ held.
  bool HasWorkLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AdmitLocked(std::vector<std::function<void()>>* calls) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndGroupLocked(uint64_t handle, absl::Status status, std::vector<std::function<void()>>* calls)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeAutoLoadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishStatsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A queued group that cannot start before another weight version is loaded.
  bool WaitsForWeightsLocked(const Group& g) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const EngineOptions options_;
  RolloutMetrics* const metrics_;
  std::shared_ptr<const CompletionDecoder> default_decoder_;

  mutable absl::Mutex mu_;
  absl::CondVar engine_cv_;  // work for the engine thread
  absl::CondVar loader_cv_;  // work for the loader thread, or an install applied
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool wake_ ABSL_GUARDED_BY(mu_) = false;  // something changed: the engine thread looks again
  int64_t max_sequences_ ABSL_GUARDED_BY(mu_);
  int64_t max_tokens_ ABSL_GUARDED_BY(mu_);
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  FetchWeightsFn fetch_ ABSL_GUARDED_BY(mu_);
  FetchDeviceWeightsFn device_fetch_ ABSL_GUARDED_BY(mu_);
  std::string device_fetch_last_error_;  // loader thread only

  // Groups.
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, std::shared_ptr<Group>> groups_ ABSL_GUARDED_BY(mu_);
  std::deque<uint64_t> pending_ ABSL_GUARDED_BY(mu_);  // groups with samples not started
  std::vector<std::pair<uint64_t, absl::Status>> cancels_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> abort_ ABSL_GUARDED_BY(mu_);
  int64_t aborts_done_ ABSL_GUARDED_BY(mu_) = 0;

  // The engine thread's model and generator: used and replaced by the engine thread alone.
  std::unique_ptr<Model> model_;
  std::unique_ptr<Generator> generator_;
  std::map<int64_t, Inflight> inflight_ ABSL_GUARDED_BY(mu_);  // generator request id ->
  int64_t tokens_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool regenerate_generator_ ABSL_GUARDED_BY(mu_) = false;  // max_sequences changed
  int64_t step_ = 0;
  int64_t generated_before_ = 0;  // tokens of generators replaced

  // Weights.
  std::optional<ModelConfig> config_ ABSL_GUARDED_BY(mu_);  // of the loaded model
  v1::WeightVersion loaded_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::WeightVersion> tags_ ABSL_GUARDED_BY(mu_);  // token tag -> version
  std::unique_ptr<Install> install_ ABSL_GUARDED_BY(mu_);     // fetched, to swap in
  std::deque<LoadJob> loads_ ABSL_GUARDED_BY(mu_);
  bool auto_load_queued_ ABSL_GUARDED_BY(mu_) = false;
  int64_t wanted_version_ ABSL_GUARDED_BY(mu_) = -1;  // newest min_policy_version waiting
  int64_t latest_loads_ ABSL_GUARDED_BY(mu_) = 0;     // automatic "latest" loads completed
  absl::Time next_auto_load_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  double auto_load_backoff_ ABSL_GUARDED_BY(mu_) = 0;

  // Published by the engine thread.
  EngineStats stats_ ABSL_GUARDED_BY(mu_);

  std::function<void(int64_t, const std::vector<std::string>&)> step_observer_ ABSL_GUARDED_BY(mu_);

  std::thread engine_thread_;
  std::thread loader_thread_;
};

}  // namespace swarr

#endif  // SWARR_ROLLOUT_SERVER_ENGINE_H_
