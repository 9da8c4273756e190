// The rollout server's Prometheus metrics (docs/services.md "Metrics"), declared in one place
// and built from the service's registry at start-up. No torch.
#ifndef SWARR_ROLLOUT_SERVER_METRICS_H_
#define SWARR_ROLLOUT_SERVER_METRICS_H_

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace swarr {

struct RolloutMetrics {
  explicit RolloutMetrics(prometheus::Registry& registry);

  prometheus::Counter& tokens_generated;        // swarr_rollout_tokens_generated_total
  prometheus::Gauge& active_sequences;          // swarr_rollout_active_sequences
  prometheus::Gauge& queued_sequences;          // swarr_rollout_queued_sequences
  prometheus::Gauge& kv_cache_bytes;            // swarr_rollout_kv_cache_bytes (allocated)
  prometheus::Histogram& trajectory_latency;    // swarr_rollout_trajectory_latency_seconds
  prometheus::Gauge& weight_version;            // swarr_rollout_weight_version (-1: none)
  prometheus::Histogram& weight_sync_seconds;   // swarr_rollout_weight_sync_seconds
  prometheus::Counter& weight_sync_bytes;       // swarr_rollout_weight_sync_bytes_total
  prometheus::Counter& push_retries;            // swarr_rollout_push_retries_total
  prometheus::Counter& trajectories_pushed;     // swarr_rollout_trajectories_pushed_total
};

}  // namespace swarr

#endif  // SWARR_ROLLOUT_SERVER_METRICS_H_
