#include "learner/service/learner_metrics.h"

#include "learner/rl_trainer.h"

namespace swarr {
namespace {

prometheus::Gauge& G(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

prometheus::Counter& C(prometheus::Registry& r, const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}

prometheus::Family<prometheus::Counter>& TrajectoryFamily(prometheus::Registry& r) {
  return prometheus::BuildCounter()
      .Name("swarr_learner_trajectories_total")
      .Help("Pushed trajectories by what the learner did with them")
      .Register(r);
}

}  // namespace

LearnerMetrics::LearnerMetrics(prometheus::Registry& r)
    : step_seconds(prometheus::BuildHistogram()
                       .Name("swarr_learner_step_seconds")
                       .Help("Wall time of one optimizer step (train) or RlTrainer::Step (rl)")
                       .Register(r)
                       .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300})),
      loss(G(r, "swarr_learner_loss", "Training loss of the last step")),
      reward(G(r, "swarr_learner_reward", "Mean reward of the last rl step's trajectories")),
      kl(G(r, "swarr_learner_kl", "KL to the reference policy at the last rl step")),
      clip_fraction(G(r, "swarr_learner_clip_fraction", "Share of clipped tokens at the last rl step")),
      policy_version(G(r, "swarr_learner_policy_version", "Newest published weight version")),
      trajectories(TrajectoryFamily(r)),
      accepted(trajectories.Add({{"result", "accepted"}})),
      duplicate(trajectories.Add({{"result", "duplicate"}})),
      dropped_stale(trajectories.Add({{"result", "dropped_stale"}})),
      trained(C(r, "swarr_learner_trajectories_trained_total", "Trajectories consumed by an rl step")),
      staleness(prometheus::BuildHistogram()
                    .Name("swarr_learner_trajectory_staleness")
                    .Help("Versions a pushed trajectory's policy_version is behind the learner's at arrival")
                    .Register(r)
                    .Add({}, prometheus::Histogram::BucketBoundaries{0, 1, 2, 3, 4, 6, 8, 16, 32})),
      weights_served_bytes(C(r, "swarr_learner_weights_served_bytes_total", "Weight bytes streamed by GetWeights")),
      uniform_batches(C(r, "swarr_learner_uniform_batches_total",
                        "rl batches in which dynamic sampling dropped every group (all rewards of each group "
                        "equal): no update was made")),
      uniform_batches_in_a_row(G(r, "swarr_learner_uniform_batches_consecutive",
                                 "rl batches in a row with every group dropped as uniform (the stage fails at "
                                 "rl.max_uniform_batches)")) {
  for (const auto& [key, value] : RlAlgorithmMetricFields(RlStepMetrics{})) {
    const std::string name = "swarr_learner_rl_" + key;
    rl_step[key] = &G(r, name.c_str(), ("The last rl step's " + key + " (docs/learner.md, metrics.jsonl)").c_str());
  }
}

}  // namespace swarr
