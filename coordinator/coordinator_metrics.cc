#include "coordinator/coordinator_metrics.h"

namespace swarr {

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& registry)
    : workers(prometheus::BuildGauge()
                  .Name("swarr_coordinator_workers")
                  .Help("Registered rollout servers by state.")
                  .Register(registry)),
      workers_alive(workers.Add({{"state", "alive"}})),
      workers_draining(workers.Add({{"state", "draining"}})),
      workers_dead(workers.Add({{"state", "dead"}})),
      workers_unhealthy(workers.Add({{"state", "unhealthy"}})),
      worker_weight_version(prometheus::BuildGauge()
                                .Name("swarr_coordinator_worker_weight_version")
                                .Help("Weight version each rollout server reported in its last heartbeat.")
                                .Register(registry)),
      groups_dispatched(prometheus::BuildCounter()
                            .Name("swarr_coordinator_groups_dispatched_total")
                            .Help("Prompt groups sent to rollout servers (a re-assigned group counts once).")
                            .Register(registry)
                            .Add({})),
      groups_finished(prometheus::BuildCounter()
                          .Name("swarr_coordinator_groups_finished_total")
                          .Help("Prompt groups reported finished.")
                          .Register(registry)
                          .Add({})),
      groups_reassigned(prometheus::BuildCounter()
                            .Name("swarr_coordinator_groups_reassigned_total")
                            .Help("Prompt groups put back in the queue (worker lease expired, or returned).")
                            .Register(registry)
                            .Add({})),
      groups(prometheus::BuildGauge()
                 .Name("swarr_coordinator_groups")
                 .Help("Prompt groups outstanding: queued (waiting for a rollout server with free capacity) "
                       "and assigned (on a rollout server, not reported finished).")
                 .Register(registry)),
      groups_queued(groups.Add({{"state", "queued"}})),
      groups_assigned(groups.Add({{"state", "assigned"}})),
      stage_index(prometheus::BuildGauge()
                      .Name("swarr_coordinator_stage_index")
                      .Help("Index of the running pipeline stage (the number of stages once done).")
                      .Register(registry)
                      .Add({})),
      learner_step(prometheus::BuildGauge()
                       .Name("swarr_coordinator_learner_step")
                       .Help("Optimizer step of the learner's current stage.")
                       .Register(registry)
                       .Add({})),
      eval_accuracy(prometheus::BuildGauge()
                        .Name("swarr_coordinator_eval_accuracy")
                        .Help("Accuracy (pass@k) of each finished eval stage.")
                        .Register(registry)) {}

}  // namespace swarr
