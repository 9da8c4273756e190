// The coordinator's Prometheus metrics (docs/services.md "Metrics"), declared in one place and
// built from the registry at start-up.
#ifndef SWARR_COORDINATOR_COORDINATOR_METRICS_H_
#define SWARR_COORDINATOR_COORDINATOR_METRICS_H_

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace swarr {

struct CoordinatorMetrics {
  explicit CoordinatorMetrics(prometheus::Registry& registry);

  // swarr_coordinator_workers{state="alive|draining|dead|unhealthy"}
  prometheus::Family<prometheus::Gauge>& workers;
  prometheus::Gauge& workers_alive;
  prometheus::Gauge& workers_draining;
  prometheus::Gauge& workers_dead;
  prometheus::Gauge& workers_unhealthy;  // state="unhealthy": no engine progress (docs/reliability.md)
  // swarr_coordinator_worker_weight_version{worker}: one series per live worker (its name).
  prometheus::Family<prometheus::Gauge>& worker_weight_version;
  prometheus::Counter& groups_dispatched;  // swarr_coordinator_groups_dispatched_total
  prometheus::Counter& groups_finished;    // swarr_coordinator_groups_finished_total
  prometheus::Counter& groups_reassigned;  // swarr_coordinator_groups_reassigned_total
  // swarr_coordinator_groups{state="queued|assigned"}: groups of the pipeline waiting for a
  // rollout server with free capacity (the pending work an autoscaler scales rollouts on,
  // deploy/k8s/hpa/), and groups on rollout servers not yet reported finished. Set every tick.
  prometheus::Family<prometheus::Gauge>& groups;
  prometheus::Gauge& groups_queued;
  prometheus::Gauge& groups_assigned;
  prometheus::Gauge& stage_index;          // swarr_coordinator_stage_index
  prometheus::Gauge& learner_step;         // swarr_coordinator_learner_step
  // swarr_coordinator_eval_accuracy{stage}
  prometheus::Family<prometheus::Gauge>& eval_accuracy;
};

}  // namespace swarr

#endif  // SWARR_COORDINATOR_COORDINATOR_METRICS_H_
