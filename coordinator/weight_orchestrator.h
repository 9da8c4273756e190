// The order of weight loads across rollout servers (docs/weight-sync.md): when the learner
// publishes a new version, the live workers are ordered to load it one at a time, the one with
// the oldest weights first, so that the learner serves one weight stream at full speed instead of
// all at once and most workers keep generating meanwhile. The next worker is ordered once the
// one loading reports the version (or newer), stops being alive, or `load_timeout_seconds`
// passes; each worker is ordered at most once per target version.
//
// Decisions only: the coordinator sends the LoadWeightsCommand and tells this class what it did.
// No torch, no gRPC. Not thread-safe: the coordinator calls it under its mutex.
#ifndef SWARR_COORDINATOR_WEIGHT_ORCHESTRATOR_H_
#define SWARR_COORDINATOR_WEIGHT_ORCHESTRATOR_H_

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proto/swarr/v1/rollout_types.pb.h"

namespace swarr {

// `have` is `want` or newer weights of the same learner incarnation.
bool HasAtLeast(const v1::WeightVersion& have, const v1::WeightVersion& want);

class WeightOrchestrator {
 public:
  using Clock = std::chrono::steady_clock;

  // What the orchestrator needs to know of a worker.
  struct WorkerView {
    std::string id;
    bool alive = false;       // WorkerStatus::ALIVE (not draining, unhealthy or dead)
    bool has_stream = false;  // an open assignment stream to send the order on
    v1::WeightVersion loaded;
  };

  explicit WeightOrchestrator(double load_timeout_seconds) : load_timeout_seconds_(load_timeout_seconds) {}

  // The learner's newest weights. A version other than the target (number or learner
  // incarnation) becomes the target, and every worker may be ordered once more. Ignored
  // without a learner incarnation (a learner with no weights yet).
  void SetTarget(const v1::WeightVersion& latest);
  bool has_target() const { return has_target_; }
  const v1::WeightVersion& target() const { return target_; }

  // The worker to order to load target() now, or nullopt: none without a target or while the
  // worker ordered last is still loading (alive, below the version it was ordered, within the
  // timeout; once that is over it no longer counts as loading); else, among the workers alive
  // with a stream, not yet ordered for this target and below it, the one with the oldest
  // version (the first in `workers` among equals).
  std::optional<std::string> Next(Clock::time_point now, const std::vector<WorkerView>& workers);
  // The order to load target() went out to `worker_id` at `now`.
  void Ordered(const std::string& worker_id, Clock::time_point now);
  // `worker_id` died, drains or is unhealthy: if it was loading, the next may be ordered.
  void Forget(const std::string& worker_id);
  // The version `worker_id` is loading (ordered and not over yet), or nullptr.
  const v1::WeightVersion* LoadingFor(const std::string& worker_id) const;

 private:
  const double load_timeout_seconds_;
  v1::WeightVersion target_;
  bool has_target_ = false;
  std::set<std::string> ordered_;  // for target_
  std::string loading_;            // "" = none
  v1::WeightVersion loading_version_;
  Clock::time_point load_sent_;
};

}  // namespace swarr

#endif  // SWARR_COORDINATOR_WEIGHT_ORCHESTRATOR_H_
