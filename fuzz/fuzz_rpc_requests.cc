// Request validation of the RPCs that take user data: PushTrajectories' trajectories
// (learner/service/trajectory_checks.h) and Rollout.Generate's prompt groups
// (rollout_server/validation.h). The first byte chooses; the rest is the serialized message.
#include "fuzz/fuzz_target.h"
#include "learner/service/trajectory_checks.h"
#include "proto/swarr/v1/learner.pb.h"
#include "proto/swarr/v1/rollout_types.pb.h"
#include "rollout_server/validation.h"

namespace swarr_fuzz {
std::vector<std::string> FuzzSeeds() {
  swarr::v1::PushTrajectoriesRequest push;
  auto* t = push.add_trajectories();
  t->set_id("rl/g-1/0");
  t->set_group_id("rl/g-1");
  t->set_group_size(2);
  for (int i : {5, 9, 13}) t->add_prompt_ids(i);
  for (int i : {3, 4}) {
    t->add_completion_ids(i);
    t->add_behaviour_logprobs(-0.5f);
    t->add_token_versions(1);
  }
  t->set_policy_version(1);
  t->set_reward(1.0);
  t->set_learner_incarnation("inc");
  swarr::v1::PromptGroup g;
  g.set_group_id("rl/g-1");
  for (int i : {5, 9, 13}) g.add_prompt_ids(i);
  g.set_num_samples(4);
  g.set_max_new_tokens(8);
  g.mutable_sampling()->set_temperature(0.9);
  g.mutable_sampling()->set_top_p(0.95);
  g.mutable_sampling()->set_top_k(20);
  g.mutable_sampling()->add_stop_token_ids(2);
  g.set_reward("exact");
  return {std::string(1, '\0') + push.SerializeAsString(), std::string(1, '\1') + g.SerializeAsString()};
}
}  // namespace swarr_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t* body = data + 1;
  const int n = static_cast<int>(size - 1);
  if (data[0] % 2 == 0) {
    swarr::v1::PushTrajectoriesRequest req;
    if (!req.ParseFromArray(body, n)) return 0;
    swarr::TrajectoryLimits limits;
    limits.vocab_size = 32;
    limits.max_completion_tokens = 16;
    limits.max_total_tokens = 64;
    for (int i = 0; i < req.trajectories_size(); ++i) {
      (void)swarr::ValidateTrajectory(req.trajectories(i), i, limits);
      (void)swarr::ValidateTokenVersionOrder(req.trajectories(i));
    }
  } else {
    swarr::v1::PromptGroup g;
    if (!g.ParseFromArray(body, n)) return 0;
    if (swarr::ValidatePromptGroup(g, 32, 256).ok()) {
      for (int i = 0; i < g.num_samples() && i < 64; ++i) (void)swarr::SamplingForSample(g, i);
      (void)swarr::TokensPerSample(g);
    }
  }
  return 0;
}
