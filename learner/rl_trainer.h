// On-policy RL (GRPO / PPO-clip) over batches of trajectories: the learner's half of one RL
// step (docs/architecture.md, "Data flow of one RL step"). docs/rl.md describes the update as
// implemented; docs/rl-losses.md the loss formulas.
//
// Step(batch):
//   1. validate each trajectory; invalid ones are skipped, counted and their reason recorded
//      (never a crash, never silent)
//   2. drop stale ones (policy_version < version - max_staleness)
//   3. group-normalised advantages over the remaining trajectories (groups by `group`)
//   4. dynamic sampling: drop groups whose rewards are all equal (their advantage is 0)
//   5. old (proximal) and reference log-probs, once, with no grad, before any update
//   6. epochs x minibatches PPO-clip updates, each its own AdamW step at the scheduled lr
//   7. policy_version += 1 (only if at least one update was applied)
//
// Not thread-safe; the policy must not be used by anyone else (e.g. a Generator) while
// Step() runs.
#ifndef SWARR_LEARNER_RL_TRAINER_H_
#define SWARR_LEARNER_RL_TRAINER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "learner/checkpoint.h"
#include "learner/logprobs.h"
#include "learner/losses.h"
#include "learner/optimizer.h"

namespace swarr {

struct Trajectory {
  std::string id;     // non-empty, unique within a batch (a repeated id is invalid)
  std::string group;  // trajectories of the same prompt share a group (any string)
  std::vector<int64_t> prompt, completion;  // both non-empty, ids in [0, vocab_size)
  std::vector<float> behaviour_logprobs;    // one per completion token, finite (sampler.h's definition)
  double reward = 0;                        // finite
  int64_t policy_version = 0;               // version that generated it; <= the trainer's
  bool truncated = false;  // max_new_tokens ended it, not a stop token (overlong filtering)
};

struct RlOptions {
  // clip_low/high, aggregation, kl_coef (needs a reference), entropy_coef,
  // max_importance_weight (0 = off: no correction for the behaviour/learner mismatch).
  PolicyLossOptions loss;
  AdvantageOptions advantages;  // divide_by_std (GRPO) or not (Dr. GRPO, default)
  // The rollout's sampling temperature (> 0): log-probs are recomputed with it, so that an
  // unchanged policy reproduces the behaviour log-probs. Greedy rollouts: 1.
  double temperature = 1.0;
  int64_t epochs = 1;       // passes over each batch, >= 1
  // Optimizer steps per epoch, >= 1: the kept groups, in order of first appearance, are cut
  // into this many contiguous chunks of (nearly) equal group count (fewer if there are fewer
  // groups). No shuffling: a Step is a deterministic function of weights, state and batch.
  int64_t minibatches = 1;
  bool dynamic_sampling = true;  // drop groups whose rewards are all equal (zero advantage)
  // Reward shaping before advantages (docs/rl-losses.md), each off by default:
  //  - DAPO's soft overlong penalty: with overlong_buffer > 0, SoftOverlongPenalty(completion
  //    length, max_new_tokens, overlong_buffer, overlong_penalty) is added to the reward
  //    (needs max_new_tokens > 0, the rollouts' limit).
  //  - KL in the reward: r -= kl_reward_coef * sum_t (behaviour - reference log-prob) over the
  //    completion (SequenceKlK1; needs a reference model). Beside loss.kl_coef (k3 in the loss).
  // Dynamic sampling and the advantages see the shaped reward; reward_mean stays the raw one.
  int64_t max_new_tokens = 0;
  int64_t overlong_buffer = 0;
  double overlong_penalty = 1.0;
  double kl_reward_coef = 0.0;
  // DAPO's overlong filtering: truncated trajectories (Trajectory::truncated) are left out of
  // the loss; their rewards still count in their group's mean.
  bool overlong_filter = false;
  // Drop trajectories with policy_version < policy_version() - max_staleness; < 0 = keep all.
  int64_t max_staleness = 0;
  int64_t max_seq_len = 0;  // prompt + completion tokens; 0 = no limit; longer = invalid
  // Prompt + completion tokens per micro-batch: each minibatch's gradient is accumulated
  // over micro-batches of consecutive trajectories of at most this many tokens (at least one
  // trajectory each), the loss normalised over the whole minibatch as without them (exactly:
  // each micro-batch's mean is weighted by its share of tokens, or of sequences for
  // sequence_mean). The old / reference log-prob passes use the same micro-batches. 0 = the
  // whole minibatch at once.
  int64_t micro_batch_tokens = 0;
  ScoringOptions scoring;   // packing, log-prob chunking, activation checkpointing
  LrSchedule schedule;      // indexed by optimizer step (epochs x minibatches per Step)
  AdamWOptions adam;
};

struct RlStepMetrics {
  int64_t step = 0;            // optimizer steps completed, after this Step
  int64_t policy_version = 0;  // after this Step
  int64_t updates = 0;         // optimizer steps applied by this Step (0: nothing to train on)
  int64_t updates_skipped = 0; // optimizer steps skipped for a non-finite loss or gradient
  // Means over this Step's applied updates (0 when there were none):
  double loss = 0;
  double lr = 0;               // of the last update
  double kl = 0;               // masked token-mean k3 KL to the reference (0 without one)
  double clip_frac = 0;        // share of tokens where the clipped branch was taken
  double grad_norm = 0;        // before clipping
  // Over the kept trajectories, measured once before the first update:
  double entropy = 0;          // token-mean entropy of the policy (nats, at `temperature`)
  // Token-mean of exp(old - behaviour), UNtruncated: 1 for on-policy data scored exactly as
  // it was sampled; the rollout/learner mismatch (or staleness) shows as a departure from 1.
  double importance_weight_mean = 0;
  // Over every valid trajectory of the batch (stale ones included), before dropping groups:
  double reward_mean = 0;
  double reward_std = 0;       // population std
  int64_t tokens = 0;          // completion tokens of the kept trajectories (one pass)
  int64_t trajectories_used = 0;
  int64_t groups_used = 0;
  int64_t groups_dropped_uniform = 0;
  int64_t trajectories_dropped_uniform = 0;
  int64_t trajectories_dropped_stale = 0;
  // Invalid: non-finite reward, empty id/prompt/completion, an id outside the vocabulary,
  // behaviour log-prob count != completion length or non-finite, longer than max_seq_len,
  // a duplicate id (the later ones), a policy_version ahead of the trainer's.
  int64_t trajectories_invalid = 0;
  std::vector<std::string> skip_reasons;  // one per invalid trajectory: "trajectory <index> (<id>): <why>"
  // Over every valid trajectory (stale ones included): completion length and truncation.
  double response_length_mean = 0;
  int64_t response_length_max = 0;
  double truncated_frac = 0;  // share with Trajectory::truncated
  // Over the fresh trajectories: reward shaping (0 when off) and overlong filtering.
  double overlong_penalty_mean = 0;  // mean SoftOverlongPenalty added to the reward
  double kl_reward_mean = 0;         // mean per-sequence k1 KL to the reference (before the coef)
  double reward_shaped_mean = 0;     // mean reward after the penalties (what advantages see)
  int64_t trajectories_overlong_filtered = 0;  // truncated ones left out of the loss
};

// The metrics above that issue 17 added (length, truncation, shaping, filtering), as
// (metrics.jsonl key, value) pairs for the learner service and `swarr train` to log.
std::vector<std::pair<std::string, double>> RlAlgorithmMetricFields(const RlStepMetrics& m);

class RlTrainer {
 public:
  // `policy` is trained in place. `reference` is a frozen model for the KL term and its
  // metric; it may be null only if options.loss.kl_coef == 0. Both must outlive the
  // trainer. kInvalidArgument names the bad option (or a reference of another vocabulary).
  static absl::StatusOr<std::unique_ptr<RlTrainer>> Create(Model* policy, const Model* reference,
                                                           const RlOptions& options);

  // One RL update on `batch` (see the top of this file).
  //   - An empty batch: kFailedPrecondition (nothing was collected; no state change).
  //   - A batch where nothing is left after validation / staleness / dynamic sampling: OK,
  //     metrics with updates == 0 and the counts saying why; the version is NOT bumped.
  //   - A non-finite loss or gradient skips that optimizer step (counted in
  //     updates_skipped); the version is bumped iff at least one update was applied.
  //   - A LibTorch failure: kInternal; updates already applied in this Step stay applied
  //     but the version is not bumped.
  absl::StatusOr<RlStepMetrics> Step(std::vector<Trajectory> batch);

  int64_t policy_version() const { return policy_version_; }
  // For checkpoints: optimizer step and policy version.
  TrainerState state() const;
  // Continues from a checkpoint written with state(): loads the optimizer moments, step and
  // policy version of `checkpoint_dir` (the policy must have been loaded from it).
  absl::Status Restore(const std::string& checkpoint_dir);
  const AdamW& optimizer() const { return *optimizer_; }

 private:
  RlTrainer(Model* policy, const Model* reference, const RlOptions& options);
  // Per row: SequenceKlK1(behaviour log-probs, reference log-probs) over its completion.
  absl::StatusOr<std::vector<double>> SequenceKlToReference(const std::vector<const Trajectory*>& rows);

  Model* policy_;
  const Model* reference_;
  RlOptions options_;
  std::unique_ptr<AdamW> optimizer_;
  int64_t step_ = 0;
  int64_t policy_version_ = 0;
};

}  // namespace swarr

#endif  // SWARR_LEARNER_RL_TRAINER_H_
