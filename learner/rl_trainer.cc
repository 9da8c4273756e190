#include "learner/rl_trainer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_set>
#include <utility>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"
#include "learner/logprobs.h"

namespace swarr {
namespace {

// Why `t` cannot be trained on, or "" if it can (duplicates are checked by the caller).
std::string InvalidReason(const Trajectory& t, int64_t vocab, int64_t max_seq_len, int64_t version) {
  if (t.id.empty()) return "empty id";
  if (!std::isfinite(t.reward)) return absl::StrCat("non-finite reward ", t.reward);
  if (t.prompt.empty()) return "empty prompt";
  if (t.completion.empty()) return "empty completion";
  for (const auto* part : {&t.prompt, &t.completion}) {
    for (size_t j = 0; j < part->size(); ++j) {
      const int64_t id = (*part)[j];
      if (id < 0 || id >= vocab) {
        return absl::StrCat(part == &t.prompt ? "prompt" : "completion", " token ", j, " has id ", id,
                            ", outside the vocabulary [0, ", vocab, ")");
      }
    }
  }
  if (t.behaviour_logprobs.size() != t.completion.size()) {
    return absl::StrCat(t.behaviour_logprobs.size(), " behaviour log-probs for ", t.completion.size(),
                        " completion tokens");
  }
  for (size_t j = 0; j < t.behaviour_logprobs.size(); ++j) {
    if (!std::isfinite(t.behaviour_logprobs[j])) {
      return absl::StrCat("behaviour log-prob ", j, " is not finite (", t.behaviour_logprobs[j], ")");
    }
  }
  const int64_t len = static_cast<int64_t>(t.prompt.size() + t.completion.size());
  if (max_seq_len > 0 && len > max_seq_len) {
    return absl::StrCat(len, " tokens, longer than max_seq_len ", max_seq_len);
  }
  if (t.policy_version > version) {
    return absl::StrCat("policy_version ", t.policy_version, " is ahead of the trainer's ", version);
  }
  return "";
}

// One micro-batch of a minibatch (consecutive rows), with its no-grad log-probs from before
// the first update.
struct MicroBatch {
  SequenceBatch batch;   // tokens [N, L] int64 CPU, mask [N, L-1] CPU, lengths
  at::Tensor mask;       // [N, L-1] on the policy's device, in the log-prob dtype
  at::Tensor behaviour;  // [N, L-1] behaviour log-probs at the mask positions, 0 elsewhere
  at::Tensor advantages; // [N]
  at::Tensor old, ref;   // [N, L-1]; ref undefined without a reference
  int64_t tokens = 0;    // completion (masked) tokens
  double weight = 0;     // its share of the minibatch's loss (token_mean: tokens; sequence_mean: rows)
};
using Minibatch = std::vector<MicroBatch>;


}  // namespace

RlTrainer::RlTrainer(Model* policy, const Model* reference, const RlOptions& options)
    : policy_(policy), reference_(reference), options_(options) {
  optimizer_ = std::make_unique<AdamW>(policy->named_parameters(), options.adam);
}

absl::StatusOr<std::unique_ptr<RlTrainer>> RlTrainer::Create(Model* policy, const Model* reference,
                                                             const RlOptions& options) {
  if (policy == nullptr) return absl::InvalidArgumentError("policy is null");
  const PolicyLossOptions& l = options.loss;
  if (absl::Status st = ValidatePolicyLossOptions(l); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("loss.", st.message()));
  }
  if (l.kl_coef > 0 && reference == nullptr) {
    return absl::InvalidArgumentError("loss.kl_coef > 0 needs a reference model, got null");
  }
  if (reference != nullptr && reference->config().vocab_size != policy->config().vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("reference vocab_size ", reference->config().vocab_size,
                                                   " differs from the policy's ", policy->config().vocab_size));
  }
  if (options.advantages.divide_by_std && !(options.advantages.eps > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("advantages.eps must be > 0 with divide_by_std, got ", options.advantages.eps));
  }
  if (options.advantages.divide_by_std && !options.advantages.subtract_mean) {
    return absl::InvalidArgumentError("advantages.divide_by_std needs subtract_mean (no baseline means A = r)");
  }
  if (!(options.temperature > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be > 0, got ", options.temperature));
  }
  if (options.overlong_buffer < 0) {
    return absl::InvalidArgumentError(absl::StrCat("overlong_buffer must be >= 0, got ", options.overlong_buffer));
  }
  if (options.overlong_buffer > 0 && options.max_new_tokens <= 0) {
    return absl::InvalidArgumentError("overlong_buffer > 0 needs max_new_tokens (the rollouts' limit) > 0");
  }
  if (!(options.overlong_penalty >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("overlong_penalty must be >= 0, got ", options.overlong_penalty));
  }
  if (!(options.kl_reward_coef >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("kl_reward_coef must be >= 0, got ", options.kl_reward_coef));
  }
  if (options.kl_reward_coef > 0 && reference == nullptr) {
    return absl::InvalidArgumentError("kl_reward_coef > 0 needs a reference model, got null");
  }
  if (options.epochs < 1) return absl::InvalidArgumentError(absl::StrCat("epochs must be >= 1, got ", options.epochs));
  if (options.minibatches < 1) {
    return absl::InvalidArgumentError(absl::StrCat("minibatches must be >= 1, got ", options.minibatches));
  }
  if (options.max_seq_len < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_seq_len must be >= 0, got ", options.max_seq_len));
  }
  if (options.micro_batch_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("micro_batch_tokens must be >= 0, got ", options.micro_batch_tokens));
  }
  if (options.scoring.chunk_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("log-prob chunk_tokens must be >= 0, got ", options.scoring.chunk_tokens));
  }
  SWARR_RETURN_IF_ERROR(ValidateLrSchedule(options.schedule));
  return std::unique_ptr<RlTrainer>(new RlTrainer(policy, reference, options));
}

absl::StatusOr<RlStepMetrics> RlTrainer::Step(std::vector<Trajectory> batch) {
  if (batch.empty()) return absl::FailedPreconditionError("RL batch is empty: collect trajectories first");
  RlStepMetrics m;
  auto finish = [&]() -> RlStepMetrics {
    m.step = step_;
    m.policy_version = policy_version_;
    return std::move(m);
  };
  const int64_t vocab = policy_->config().vocab_size;

  // 1. Validation.
  std::unordered_set<std::string> seen;
  std::vector<const Trajectory*> valid;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Trajectory& t = batch[i];
    std::string why = seen.insert(t.id).second || t.id.empty()
                          ? InvalidReason(t, vocab, options_.max_seq_len, policy_version_)
                          : "duplicate id";
    if (!why.empty()) {
      ++m.trajectories_invalid;
      m.skip_reasons.push_back(absl::StrCat("trajectory ", i, " (", t.id, "): ", why));
      continue;
    }
    valid.push_back(&t);
  }
  if (!valid.empty()) {
    double sum = 0, sq = 0;
    for (const Trajectory* t : valid) sum += t->reward;
    m.reward_mean = sum / static_cast<double>(valid.size());
    for (const Trajectory* t : valid) sq += (t->reward - m.reward_mean) * (t->reward - m.reward_mean);
    m.reward_std = std::sqrt(sq / static_cast<double>(valid.size()));
    int64_t len_sum = 0, truncated = 0;
    for (const Trajectory* t : valid) {
      const int64_t len = static_cast<int64_t>(t->completion.size());
      len_sum += len;
      m.response_length_max = std::max(m.response_length_max, len);
      truncated += t->truncated ? 1 : 0;
    }
    m.response_length_mean = static_cast<double>(len_sum) / static_cast<double>(valid.size());
    m.truncated_frac = static_cast<double>(truncated) / static_cast<double>(valid.size());
  }

  // 2. Staleness.
  std::vector<const Trajectory*> fresh;
  for (const Trajectory* t : valid) {
    if (options_.max_staleness >= 0 && t->policy_version < policy_version_ - options_.max_staleness) {
      ++m.trajectories_dropped_stale;
    } else {
      fresh.push_back(t);
    }
  }
  if (fresh.empty()) return finish();

  // 3. Groups (in order of first appearance) and their advantages.
  std::map<std::string, int64_t> group_index;
  std::vector<int64_t> gid(fresh.size());
  for (size_t i = 0; i < fresh.size(); ++i) {
    gid[i] = group_index.emplace(fresh[i]->group, static_cast<int64_t>(group_index.size())).first->second;
  }
  const int64_t num_groups = static_cast<int64_t>(group_index.size());
  std::vector<double> rewards(fresh.size());
  for (size_t i = 0; i < fresh.size(); ++i) rewards[i] = fresh[i]->reward;
  // Reward shaping: the soft overlong penalty and KL in the reward.
  if (options_.overlong_buffer > 0) {
    double sum = 0;
    for (size_t i = 0; i < fresh.size(); ++i) {
      const double pen = SoftOverlongPenalty(static_cast<int64_t>(fresh[i]->completion.size()), options_.max_new_tokens,
                                             options_.overlong_buffer, options_.overlong_penalty);
      rewards[i] += pen;
      sum += pen;
    }
    m.overlong_penalty_mean = sum / static_cast<double>(fresh.size());
  }
  if (options_.kl_reward_coef > 0) {
    SWARR_ASSIGN_OR_RETURN(std::vector<double> kl, SequenceKlToReference(fresh));
    double sum = 0;
    for (size_t i = 0; i < fresh.size(); ++i) {
      rewards[i] -= options_.kl_reward_coef * kl[i];
      sum += kl[i];
    }
    m.kl_reward_mean = sum / static_cast<double>(fresh.size());
  }
  {
    double sum = 0;
    for (double r : rewards) sum += r;
    m.reward_shaped_mean = sum / static_cast<double>(rewards.size());
  }
  std::vector<double> adv(fresh.size());
  SWARR_RETURN_IF_ERROR(CatchTorch("RL advantages", [&]() -> absl::Status {
    const int64_t n = static_cast<int64_t>(fresh.size());
    at::Tensor r = at::from_blob(rewards.data(), {n}, at::kDouble).clone();
    at::Tensor g = at::from_blob(gid.data(), {n}, at::kLong).clone();
    SWARR_ASSIGN_OR_RETURN(at::Tensor a, GroupAdvantages(r, g, options_.advantages));
    a = a.contiguous();
    std::copy(a.data_ptr<double>(), a.data_ptr<double>() + n, adv.begin());
    return absl::OkStatus();
  }));

  // 4. Dynamic sampling: a group whose rewards are all equal (a group of one included) has
  // zero advantage everywhere and only adds noise to the token mean.
  std::vector<double> gmin(num_groups, INFINITY), gmax(num_groups, -INFINITY);
  std::vector<int64_t> gsize(num_groups, 0);
  for (size_t i = 0; i < fresh.size(); ++i) {
    gmin[gid[i]] = std::min(gmin[gid[i]], rewards[i]);
    gmax[gid[i]] = std::max(gmax[gid[i]], rewards[i]);
    ++gsize[gid[i]];
  }
  std::vector<std::vector<size_t>> members(num_groups);  // kept trajectories per group
  for (size_t i = 0; i < fresh.size(); ++i) {
    const bool uniform = options_.dynamic_sampling && gmin[gid[i]] == gmax[gid[i]];
    if (options_.overlong_filter && fresh[i]->truncated && !uniform) {
      ++m.trajectories_overlong_filtered;  // DAPO overlong filtering: out of the loss
      continue;
    }
    members[gid[i]].push_back(i);
  }
  std::vector<int64_t> kept_groups;
  for (int64_t g = 0; g < num_groups; ++g) {
    if (options_.dynamic_sampling && gmin[g] == gmax[g]) {
      ++m.groups_dropped_uniform;
      m.trajectories_dropped_uniform += gsize[g];
    } else if (!members[g].empty()) {
      kept_groups.push_back(g);
    }
  }
  m.groups_used = static_cast<int64_t>(kept_groups.size());
  if (kept_groups.empty()) return finish();

  // 5. Minibatches (cut into micro-batches of at most micro_batch_tokens tokens) and their
  // old / reference log-probs, before any update.
  const int64_t chunks = std::min<int64_t>(options_.minibatches, m.groups_used);
  std::vector<Minibatch> minibatches(chunks);
  double entropy_sum = 0, weight_sum = 0;
  const bool seq_mean = options_.loss.aggregation == LossAggregation::kSequenceMean;
  absl::Status st = CatchTorch("RL old log-probs", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    for (int64_t c = 0; c < chunks; ++c) {
      std::vector<const Trajectory*> rows;
      std::vector<double> row_adv;
      for (int64_t k = c * m.groups_used / chunks; k < (c + 1) * m.groups_used / chunks; ++k) {
        for (size_t i : members[kept_groups[k]]) {
          rows.push_back(fresh[i]);
          row_adv.push_back(adv[i]);
        }
      }
      int64_t mb_tokens = 0;
      for (const Trajectory* t : rows) mb_tokens += static_cast<int64_t>(t->completion.size());
      for (size_t begin = 0; begin < rows.size();) {
        size_t end = begin;
        int64_t budget_used = 0;
        while (end < rows.size()) {
          const int64_t len = static_cast<int64_t>(rows[end]->prompt.size() + rows[end]->completion.size());
          if (end > begin && options_.micro_batch_tokens > 0 && budget_used + len > options_.micro_batch_tokens) break;
          budget_used += len;
          ++end;
        }
        std::vector<std::vector<int64_t>> prompts, completions;
        for (size_t r = begin; r < end; ++r) {
          prompts.push_back(rows[r]->prompt);
          completions.push_back(rows[r]->completion);
        }
        MicroBatch mb;
        SWARR_ASSIGN_OR_RETURN(mb.batch, PackSequences(prompts, completions, vocab));
        TokenLogProbs old = ScoreSequences(*policy_, mb.batch, options_.temperature, /*with_entropy=*/true,
                                           options_.scoring);
        mb.old = old.logprobs.detach();
        const auto opts = mb.old.options();
        mb.mask = mb.batch.mask.to(opts);
        at::Tensor beh = at::zeros_like(mb.batch.mask);  // float32, CPU
        auto acc = beh.accessor<float, 2>();
        for (size_t r = begin; r < end; ++r) {
          const int64_t start = static_cast<int64_t>(rows[r]->prompt.size()) - 1;
          for (size_t j = 0; j < rows[r]->behaviour_logprobs.size(); ++j) {
            acc[r - begin][start + static_cast<int64_t>(j)] = rows[r]->behaviour_logprobs[j];
          }
          mb.tokens += static_cast<int64_t>(rows[r]->completion.size());
        }
        m.tokens += mb.tokens;
        mb.behaviour = beh.to(opts);
        mb.advantages =
            at::tensor(std::vector<double>(row_adv.begin() + begin, row_adv.begin() + end), at::kDouble).to(opts);
        if (reference_ != nullptr) {
          mb.ref = ScoreSequences(*reference_, mb.batch, options_.temperature, false, options_.scoring)
                       .logprobs.to(opts);
        }
        mb.weight = seq_mean ? static_cast<double>(end - begin) / static_cast<double>(rows.size())
                             : static_cast<double>(mb.tokens) / static_cast<double>(mb_tokens);
        entropy_sum += (old.entropy * mb.mask).sum().item<double>();
        weight_sum += (at::exp(at::where(mb.mask.gt(0), mb.old - mb.behaviour, at::zeros_like(mb.old))) * mb.mask)
                          .sum()
                          .item<double>();
        minibatches[c].push_back(std::move(mb));
        begin = end;
      }
      m.trajectories_used += static_cast<int64_t>(rows.size());
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  m.entropy = entropy_sum / static_cast<double>(m.tokens);
  m.importance_weight_mean = weight_sum / static_cast<double>(m.tokens);

  // 6. PPO-clip updates.
  double loss_sum = 0, kl_sum = 0, clip_sum = 0, norm_sum = 0;
  const bool with_entropy = options_.loss.entropy_coef > 0;
  for (int64_t epoch = 0; epoch < options_.epochs; ++epoch) {
    for (const Minibatch& minibatch : minibatches) {
      const double lr = ScheduledLr(options_.schedule, step_);
      double loss = 0, kl = 0, clip = 0;
      int64_t mb_tokens = 0;
      for (const MicroBatch& mb : minibatch) mb_tokens += mb.tokens;
      st = CatchTorch("RL update", [&]() -> absl::Status {
        // Gradient accumulation: each micro-batch's loss (a mean over its own tokens or
        // sequences) weighted by its share, so the sum is the minibatch's loss.
        for (const MicroBatch& mb : minibatch) {
          TokenLogProbs lp = ScoreSequences(*policy_, mb.batch, options_.temperature, with_entropy, options_.scoring);
          PolicyLossInputs in;
          in.logprobs = lp.logprobs;
          in.old_logprobs = mb.old;
          in.behaviour_logprobs = mb.behaviour;
          in.ref_logprobs = mb.ref;
          in.entropy = lp.entropy;
          in.advantages = mb.advantages;
          in.mask = mb.mask;
          SWARR_ASSIGN_OR_RETURN(PolicyLossOutput out, PolicyLoss(in, options_.loss));
          const double part = out.loss.item<double>();
          loss += mb.weight * part;
          const double share = static_cast<double>(mb.tokens) / static_cast<double>(mb_tokens);
          kl += share * out.kl;
          clip += share * out.clip_frac;
          if (!std::isfinite(part)) break;
          (out.loss * mb.weight).backward();
        }
        return absl::OkStatus();
      });
      if (!st.ok()) {
        optimizer_->ZeroGrad();
        return st;
      }
      if (!std::isfinite(loss)) {
        optimizer_->ZeroGrad();
        ++m.updates_skipped;
        continue;
      }
      absl::StatusOr<double> norm = optimizer_->Step(lr);
      if (absl::IsDataLoss(norm.status())) {
        ++m.updates_skipped;
        continue;
      }
      if (!norm.ok()) return norm.status();
      ++step_;
      ++m.updates;
      m.lr = lr;
      loss_sum += loss;
      kl_sum += kl;
      clip_sum += clip;
      norm_sum += *norm;
    }
  }
  if (m.updates > 0) {
    const double u = static_cast<double>(m.updates);
    m.loss = loss_sum / u;
    m.kl = kl_sum / u;
    m.clip_frac = clip_sum / u;
    m.grad_norm = norm_sum / u;
    ++policy_version_;  // 7.
  }
  return finish();
}

absl::StatusOr<std::vector<double>> RlTrainer::SequenceKlToReference(const std::vector<const Trajectory*>& rows) {
  std::vector<double> out;
  out.reserve(rows.size());
  const int64_t vocab = policy_->config().vocab_size;
  SWARR_RETURN_IF_ERROR(CatchTorch("RL KL in the reward", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    for (size_t begin = 0; begin < rows.size();) {
      size_t end = begin;
      int64_t used = 0;
      while (end < rows.size()) {
        const int64_t len = static_cast<int64_t>(rows[end]->prompt.size() + rows[end]->completion.size());
        if (end > begin && options_.micro_batch_tokens > 0 && used + len > options_.micro_batch_tokens) break;
        used += len;
        ++end;
      }
      std::vector<std::vector<int64_t>> prompts, completions;
      for (size_t r = begin; r < end; ++r) {
        prompts.push_back(rows[r]->prompt);
        completions.push_back(rows[r]->completion);
      }
      SWARR_ASSIGN_OR_RETURN(SequenceBatch batch, PackSequences(prompts, completions, vocab));
      const at::Tensor ref = ScoreSequences(*reference_, batch, options_.temperature, false, options_.scoring).logprobs;
      at::Tensor beh = at::zeros_like(batch.mask);  // float32, CPU
      auto acc = beh.accessor<float, 2>();
      for (size_t r = begin; r < end; ++r) {
        const int64_t start = static_cast<int64_t>(rows[r]->prompt.size()) - 1;
        for (size_t j = 0; j < rows[r]->behaviour_logprobs.size(); ++j) {
          acc[r - begin][start + static_cast<int64_t>(j)] = rows[r]->behaviour_logprobs[j];
        }
      }
      const at::Tensor kl = SequenceKlK1(beh.to(ref.options()), ref, batch.mask).to(at::kDouble).cpu().contiguous();
      for (int64_t i = 0; i < kl.size(0); ++i) out.push_back(kl[i].item<double>());
      begin = end;
    }
    return absl::OkStatus();
  }));
  return out;
}

std::vector<std::pair<std::string, double>> RlAlgorithmMetricFields(const RlStepMetrics& m) {
  return {{"response_length_mean", m.response_length_mean},
          {"response_length_max", static_cast<double>(m.response_length_max)},
          {"truncated_frac", m.truncated_frac},
          {"overlong_penalty_mean", m.overlong_penalty_mean},
          {"kl_reward_mean", m.kl_reward_mean},
          {"reward_shaped_mean", m.reward_shaped_mean},
          {"trajectories_overlong_filtered", static_cast<double>(m.trajectories_overlong_filtered)},
          {"trajectories_used", static_cast<double>(m.trajectories_used)},
          {"trajectories_dropped_uniform", static_cast<double>(m.trajectories_dropped_uniform)}};
}

TrainerState RlTrainer::state() const {
  TrainerState s;
  s.step = step_;
  s.policy_version = policy_version_;
  return s;
}

absl::Status RlTrainer::Restore(const std::string& checkpoint_dir) {
  SWARR_ASSIGN_OR_RETURN(TrainerState s, LoadTrainerState(checkpoint_dir, optimizer_.get()));
  step_ = s.step;
  policy_version_ = s.policy_version;
  return absl::OkStatus();
}

}  // namespace swarr
