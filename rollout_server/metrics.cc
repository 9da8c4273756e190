#include "rollout_server/metrics.h"

namespace swarr {
namespace {

prometheus::Histogram::BucketBoundaries SecondsBuckets() {
  return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500};
}

}  // namespace

RolloutMetrics::RolloutMetrics(prometheus::Registry& r)
    : tokens_generated(prometheus::BuildCounter()
                           .Name("swarr_rollout_tokens_generated_total")
                           .Help("Tokens sampled by this rollout server.")
                           .Register(r)
                           .Add({})),
      active_sequences(prometheus::BuildGauge()
                           .Name("swarr_rollout_active_sequences")
                           .Help("Sequences in the running batch.")
                           .Register(r)
                           .Add({})),
      queued_sequences(prometheus::BuildGauge()
                           .Name("swarr_rollout_queued_sequences")
                           .Help("Sequences received and not started yet.")
                           .Register(r)
                           .Add({})),
      kv_cache_bytes(prometheus::BuildGauge()
                         .Name("swarr_rollout_kv_cache_bytes")
                         .Help("Bytes the KV cache has allocated.")
                         .Register(r)
                         .Add({})),
      trajectory_latency(prometheus::BuildHistogram()
                             .Name("swarr_rollout_trajectory_latency_seconds")
                             .Help("From receiving a group to one of its trajectories being finished.")
                             .Register(r)
                             .Add({}, SecondsBuckets())),
      weight_version(prometheus::BuildGauge()
                         .Name("swarr_rollout_weight_version")
                         .Help("Policy version loaded (-1 before the first load).")
                         .Register(r)
                         .Add({})),
      weight_sync_seconds(prometheus::BuildHistogram()
                              .Name("swarr_rollout_weight_sync_seconds")
                              .Help("Time of one weight load: fetch, decode and swap.")
                              .Register(r)
                              .Add({}, SecondsBuckets())),
      weight_sync_bytes(prometheus::BuildCounter()
                            .Name("swarr_rollout_weight_sync_bytes_total")
                            .Help("Weight bytes received from the learner.")
                            .Register(r)
                            .Add({})),
      push_retries(prometheus::BuildCounter()
                       .Name("swarr_rollout_push_retries_total")
                       .Help("PushTrajectories / ReportEval calls retried after UNAVAILABLE or DEADLINE_EXCEEDED.")
                       .Register(r)
                       .Add({})),
      trajectories_pushed(prometheus::BuildCounter()
                              .Name("swarr_rollout_trajectories_pushed_total")
                              .Help("Trajectories acknowledged by the learner (and eval samples accepted by "
                                    "the coordinator).")
                              .Register(r)
                              .Add({})) {
  weight_version.Set(-1);
}

}  // namespace swarr
