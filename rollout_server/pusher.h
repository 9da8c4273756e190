// Delivers finished groups: rl groups to Learner.PushTrajectories (one call per group), eval
// groups to Coordinator.ReportEval, and says how each ended (docs/services.md
// "Trajectories"):
//
//   every trajectory acknowledged (ACCEPTED / DUPLICATE / DROPPED_STALE), ReportEval OK
//                                   -> kFinished (report it in the next heartbeat)
//   UNAVAILABLE / DEADLINE_EXCEEDED -> the same call again (same ids: the learner
//                                      de-duplicates) after 0.1 s, doubling to 5 s
//   FAILED_PRECONDITION             -> kReturned (hand the group back to the coordinator)
//   INVALID_ARGUMENT, anything else -> logged loudly, kFinished (never loop on a bad group)
//   Abort() (drain deadline)        -> kReturned for the group in progress and those queued
//
// One thread, groups in arrival order. Thread-safe.
#ifndef SWARR_ROLLOUT_SERVER_PUSHER_H_
#define SWARR_ROLLOUT_SERVER_PUSHER_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/client_context.h>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/rpc/service_options.h"
#include "proto/swarr/v1/coordinator.grpc.pb.h"
#include "proto/swarr/v1/learner.grpc.pb.h"
#include "rollout_server/engine.h"
#include "rollout_server/metrics.h"

namespace swarr {

struct PushJob {
  std::string group_id;
  bool eval = false;
  std::vector<SampleResult> samples;  // in sample order
};

// Where and how to call, read at every attempt (the worker may re-register meanwhile).
struct PushTargets {
  std::shared_ptr<v1::Learner::StubInterface> learner;          // null: not known yet (retried)
  std::shared_ptr<v1::Coordinator::StubInterface> coordinator;  // null: not known yet (retried)
  std::string worker_id;
  RpcSecurity security;
  RpcLimits limits;
};

struct PusherOptions {
  double backoff_initial_seconds = 0.1;
  double backoff_max_seconds = 5.0;
};

enum class PushOutcome { kFinished, kReturned };

class Pusher {
 public:
  using TargetsFn = std::function<PushTargets()>;
  using OutcomeFn = std::function<void(const std::string& group_id, PushOutcome outcome)>;

  // `metrics` must outlive the pusher. `outcome` runs on the pusher thread.
  Pusher(const PusherOptions& options, RolloutMetrics* metrics, TargetsFn targets, OutcomeFn outcome);
  ~Pusher();  // Stop()

  void Enqueue(PushJob job);
  // Groups queued or being pushed.
  int64_t pending() const;
  // Ends the group in progress and every queued one as kReturned (no more calls).
  void Abort();
  // Stops the thread; unfinished groups get no outcome.
  void Stop();

 private:
  void Loop();
  PushOutcome Deliver(const PushJob& job);
  // One attempt; the call's status.
  grpc::Status Call(const PushJob& job, const PushTargets& targets, PushOutcome* outcome);
  // Sleeps `seconds` unless aborted / stopped; false if it was.
  bool Backoff(double seconds);

  const PusherOptions options_;
  RolloutMetrics* const metrics_;
  const TargetsFn targets_;
  const OutcomeFn outcome_;

  mutable absl::Mutex mu_;
  std::deque<PushJob> queue_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool aborted_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* call_ ABSL_GUARDED_BY(mu_) = nullptr;  // in flight, for TryCancel
  std::thread thread_;
};

}  // namespace swarr

#endif  // SWARR_ROLLOUT_SERVER_PUSHER_H_
