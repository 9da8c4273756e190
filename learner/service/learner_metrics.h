// The learner's Prometheus metrics (docs/services.md "Metrics"), declared in one place and
// registered on the service's registry at start-up. Thread-safe (prometheus-cpp metrics are).
#ifndef SWARR_LEARNER_SERVICE_LEARNER_METRICS_H_
#define SWARR_LEARNER_SERVICE_LEARNER_METRICS_H_

#include <map>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace swarr {

struct LearnerMetrics {
  explicit LearnerMetrics(prometheus::Registry& registry);

  prometheus::Histogram& step_seconds;    // swarr_learner_step_seconds: one optimizer Step (train or rl)
  prometheus::Gauge& loss;                // swarr_learner_loss: of the last step
  prometheus::Gauge& reward;              // swarr_learner_reward: mean reward of the last rl step's batch
  prometheus::Gauge& kl;                  // swarr_learner_kl
  prometheus::Gauge& clip_fraction;       // swarr_learner_clip_fraction
  prometheus::Gauge& policy_version;      // swarr_learner_policy_version: newest published version
  prometheus::Family<prometheus::Counter>& trajectories;  // swarr_learner_trajectories_total
  prometheus::Counter& accepted;          // swarr_learner_trajectories_total{result="accepted"}
  prometheus::Counter& duplicate;         // ... {result="duplicate"}
  prometheus::Counter& dropped_stale;     // ... {result="dropped_stale"}
  prometheus::Counter& trained;           // swarr_learner_trajectories_trained_total
  prometheus::Histogram& staleness;       // swarr_learner_trajectory_staleness: versions behind at arrival
  prometheus::Counter& weights_served_bytes;  // swarr_learner_weights_served_bytes_total
  // rl with dynamic sampling: batches in which every group was dropped as uniform (all rewards
  // of each group equal), so no update was made; and how many such batches came in a row
  // (the stage fails at rl.max_uniform_batches; reset by a batch with a group to train on).
  prometheus::Counter& uniform_batches;          // swarr_learner_uniform_batches_total
  prometheus::Gauge& uniform_batches_in_a_row;   // swarr_learner_uniform_batches_consecutive
  // The last rl step's RlAlgorithmMetricFields (learner/rl_trainer.h) as gauges
  // swarr_learner_rl_<key>: response_length_mean / _max, truncated_frac, overlong_penalty_mean,
  // kl_reward_mean, reward_shaped_mean, trajectories_overlong_filtered, trajectories_used,
  // trajectories_dropped_uniform. SetRl ignores an unknown key.
  std::map<std::string, prometheus::Gauge*> rl_step;
  void SetRl(const std::string& key, double value) const {
    auto it = rl_step.find(key);
    if (it != rl_step.end()) it->second->Set(value);
  }
};

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_LEARNER_METRICS_H_
