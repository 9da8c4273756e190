// Coordinator: prompt groups and their dispatch to workers by free capacity (coordinator.h
// "Groups and dispatch").
#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "coordinator/coordinator.h"
#include "coordinator/eval_stats.h"
#include "coordinator/group_id.h"
#include "coordinator/internal.h"

namespace swarr {

using coordinator_internal::Clock;
using coordinator_internal::Log;
using coordinator_internal::SplitMix64;
using coordinator_internal::ClampInt32;

int64_t Coordinator::CurrentStageUnfinishedLocked() const {
  int64_t n = 0;
  for (const auto& [id, g] : groups_) n += g.stage_index == state_.stage_index ? 1 : 0;
  return n;
}

bool Coordinator::KnownIncarnationLocked(const std::string& incarnation) const {
  return std::find(state_.incarnations.begin(), state_.incarnations.end(), incarnation) != state_.incarnations.end();
}

void Coordinator::DispatchRlLocked(const v1::LearnerStatus& st, int64_t finish_mark, Outbox* out) {
  const int32_t stage = state_.stage_index;
  const v1::Stage& s = options_.pipeline.stages(stage);
  const v1::RlConfig& rl = s.rl();
  if (!prompts_) return;
  // Groups in flight: ours not yet finished, those the learner holds, and those reported
  // finished after this poll began (the status may predate their arrival at the learner).
  const int64_t bound = std::max<int64_t>(1, rl.prompts_per_step()) * (1 + std::max<int64_t>(0, rl.max_staleness()));
  const int64_t learner_side =
      static_cast<int64_t>(st.buffered_groups()) + st.partial_groups() + (finish_counter_ - finish_mark);
  DispatchPendingLocked(out);
  // The learner has made its last step (its DONE follows): new groups would be wasted.
  // st.step() counts optimizer steps: epochs x minibatches per RL step (the learner's own stop
  // rule, RlUpdatesPerStep).
  const int64_t updates_per_step = std::max<int64_t>(1, rl.epochs()) * std::max<int64_t>(1, rl.minibatches());
  if (s.stop().max_steps() > 0 && st.step() >= s.stop().max_steps() * updates_per_step) return;
  // Groups a re-registered worker holds from an earlier coordinator process are in flight too.
  int64_t unfinished = CurrentStageUnfinishedLocked() + AdoptedInFlightLocked();
  while (pending_.empty() && unfinished + learner_side < bound) {
    bool any_worker = false;
    for (const auto& [id, w] : workers_) any_worker = any_worker || (w.state == v1::WorkerStatus::ALIVE && w.stream);
    if (!any_worker) break;
    StageRecord& rec = state_.stages[stage];
    const int64_t n = rec.groups_drawn++;
    Group g = NewGroupLocked(n, prompts_->Draw(rng_), st.latest(), rl.samples_per_prompt(), rl.max_new_tokens());
    v1::SamplingParams* sp = g.group.mutable_sampling();
    sp->set_temperature(rl.has_temperature() ? rl.temperature() : 1.0);
    sp->set_top_p(rl.top_p());
    sp->set_top_k(rl.top_k());
    const std::string id = g.group.group_id();
    groups_[id] = std::move(g);
    pending_.push_back(id);
    ++unfinished;
    MarkDirtyLocked(false);
    DispatchPendingLocked(out);
  }
}

Coordinator::Group Coordinator::NewGroupLocked(int64_t index, const StagePrompt& prompt,
                                               const v1::WeightVersion& version, int64_t num_samples,
                                               int64_t max_new_tokens) const {
  const v1::Stage& s = options_.pipeline.stages(state_.stage_index);
  Group g;
  g.stage_index = state_.stage_index;
  v1::PromptGroup& pg = g.group;
  pg.set_group_id(GroupId(s.name(), incarnation_, index));
  pg.set_stage(s.name());
  for (int64_t id : prompt.ids) pg.add_prompt_ids(static_cast<int32_t>(id));
  pg.set_answer(prompt.answer);
  pg.set_num_samples(ClampInt32(num_samples));
  pg.set_max_new_tokens(ClampInt32(max_new_tokens));
  for (int64_t id : prompts_->stop_token_ids()) pg.mutable_sampling()->add_stop_token_ids(static_cast<int32_t>(id));
  pg.set_min_policy_version(version.version());
  pg.set_learner_incarnation(version.learner_incarnation());
  pg.set_reward(reward_kind_);
  pg.set_seed(SplitMix64(s.seed() ^ SplitMix64(static_cast<uint64_t>(index) + 1)));
  g.tokens = (static_cast<int64_t>(prompt.ids.size()) + pg.max_new_tokens()) * pg.num_samples();
  return g;
}

void Coordinator::CreateEvalGroupsLocked(const v1::WeightVersion& version) {
  const int32_t stage = state_.stage_index;
  const v1::Stage& s = options_.pipeline.stages(stage);
  const v1::EvalConfig& e = s.eval();
  if (!prompts_) return;
  // Group n answers problem layout.Problem(n): greedily (or with samples_per_problem samples)
  // for n < eval_problems_, then eval.sampled samples for the first sampled_problems problems.
  const EvalLayout layout = MakeEvalLayout(e, eval_problems_);
  int64_t created = 0;
  for (int64_t n = 0; n < layout.groups(); ++n) {
    if (state_.eval_results.count(n) > 0) continue;
    Group g = NewGroupLocked(n, prompts_->At(layout.Problem(n)), version, layout.Samples(n), e.max_new_tokens());
    g.problem = n;
    g.group.set_eval(true);
    v1::SamplingParams* sp = g.group.mutable_sampling();
    sp->set_greedy(layout.Greedy(n));
    sp->set_temperature(e.has_temperature() ? e.temperature() : 1.0);
    const std::string id = g.group.group_id();
    if (groups_.count(id) > 0 || finished_ids_.Contains(id)) continue;
    groups_[id] = std::move(g);
    pending_.push_back(id);
    ++created;
  }
  eval_groups_created_ = true;
  Log(absl::StrCat("eval stage '", s.name(), "': ", eval_problems_, " problems (", layout.groups(), " groups), ", created,
                   " to generate with version ", version.version()));
}

Coordinator::Worker* Coordinator::FindWorkerForLocked(const Group& g) {
  const int64_t need_seq = g.group.num_samples();
  const int64_t need_tok = g.tokens;
  Worker* best = nullptr;
  int64_t best_seq = 0, best_tok = 0;
  bool oversized_everywhere = true;
  for (auto& [id, w] : workers_) {
    if (w.state != v1::WorkerStatus::ALIVE || !w.stream) continue;
    if (id == g.avoid) continue;  // considered below if no other worker has room
    const bool oversized = need_seq > w.max_sequences || (w.max_tokens > 0 && need_tok > w.max_tokens);
    oversized_everywhere = oversized_everywhere && oversized;
    const int64_t free_seq = w.max_sequences - w.assigned_samples;
    const int64_t free_tok = w.max_tokens > 0 ? w.max_tokens - w.assigned_tokens : std::numeric_limits<int64_t>::max();
    if (free_seq < need_seq || free_tok < need_tok) continue;
    if (best == nullptr || free_seq > best_seq || (free_seq == best_seq && free_tok > best_tok)) {
      best = &w;
      best_seq = free_seq;
      best_tok = free_tok;
    }
  }
  if (best == nullptr && !g.avoid.empty()) {
    auto it = workers_.find(g.avoid);
    if (it != workers_.end() && it->second.state == v1::WorkerStatus::ALIVE && it->second.stream) {
      const Worker& w = it->second;
      const int64_t free_tok = w.max_tokens > 0 ? w.max_tokens - w.assigned_tokens : std::numeric_limits<int64_t>::max();
      if (w.max_sequences - w.assigned_samples >= need_seq && free_tok >= need_tok) return &it->second;
    }
  }
  if (best != nullptr || !oversized_everywhere) return best;
  // A group larger than any worker's whole capacity would never fit: it goes to an idle worker
  // (the biggest), which queues what it cannot run at once.
  for (auto& [id, w] : workers_) {
    if (w.state != v1::WorkerStatus::ALIVE || !w.stream || !w.assigned.empty()) continue;
    if (best == nullptr || w.max_sequences > best->max_sequences) best = &w;
  }
  return best;
}

void Coordinator::DispatchPendingLocked(Outbox* out) {
  if (prepared_stage_ != state_.stage_index) return;
  while (!pending_.empty()) {
    auto it = groups_.find(pending_.front());
    if (it == groups_.end() || !it->second.worker.empty()) {
      pending_.pop_front();
      continue;
    }
    Group& g = it->second;
    Worker* w = FindWorkerForLocked(g);
    if (w == nullptr) return;
    if (g.ever_sent && !g.group.eval() &&
        (learner_.latest().version() > g.group.min_policy_version() ||
         learner_.latest().learner_incarnation() != g.group.learner_incarnation())) {
      // A re-assigned rl group: generate it with the current weights.
      g.group.set_min_policy_version(learner_.latest().version());
      g.group.set_learner_incarnation(learner_.latest().learner_incarnation());
    }
    v1::Assignment a;
    *a.mutable_group() = g.group;
    if (!w->stream->Enqueue(std::move(a))) {
      w->stream = nullptr;  // closed under us: try another worker
      continue;
    }
    pending_.pop_front();
    g.worker = w->id;
    g.assigned_at = Clock::now();
    w->assigned.insert(g.group.group_id());
    w->assigned_samples += g.group.num_samples();
    w->assigned_tokens += g.tokens;
    out->flush.push_back(w->stream);
    if (!g.ever_sent) {
      g.ever_sent = true;
      ++state_.groups_dispatched;
      metrics_->groups_dispatched.Increment();
      MarkDirtyLocked(false);
    }
  }
}

void Coordinator::UnassignLocked(Group& g) {
  if (g.worker.empty()) return;
  auto it = workers_.find(g.worker);
  if (it != workers_.end() && it->second.assigned.erase(g.group.group_id()) > 0) {
    it->second.assigned_samples -= g.group.num_samples();
    it->second.assigned_tokens -= g.tokens;
  }
  g.worker.clear();
}

void Coordinator::RequeueFrontLocked(const std::vector<std::string>& ids, const std::string& from_worker,
                                     bool count) {
  for (auto rit = ids.rbegin(); rit != ids.rend(); ++rit) {
    auto it = groups_.find(*rit);
    if (it == groups_.end() || it->second.worker != from_worker) continue;
    Group& g = it->second;
    UnassignLocked(g);
    if (g.stage_index != state_.stage_index) {
      groups_.erase(it);  // a finished stage's group: nobody needs it any more
      continue;
    }
    pending_.push_front(*rit);
    if (count) {
      ++state_.groups_reassigned;
      metrics_->groups_reassigned.Increment();
      MarkDirtyLocked(false);
    }
  }
}

bool Coordinator::FinishGroupLocked(const std::string& group_id, Worker* reporter) {
  if (finished_ids_.Contains(group_id) || acked_.count(group_id) > 0) return false;
  auto it = groups_.find(group_id);
  bool count = true;
  if (it == groups_.end()) {
    // A group of an earlier incarnation of this coordinator (a worker re-registered after a
    // restart reports what it got before): count it once; it may be in the learner's buffer.
    GroupIdParts parts;
    if (!ParseGroupId(group_id, &parts) || parts.incarnation == incarnation_ ||
        !KnownIncarnationLocked(parts.incarnation)) {
      return false;
    }
    for (auto& [id, w] : workers_) w.adopted.erase(group_id);
    ++finish_counter_;
    finished_ids_.Insert(group_id);
  } else {
    Group& g = it->second;
    if (g.stage_index == state_.stage_index) ++finish_counter_;
    UnassignLocked(g);
    auto p = std::find(pending_.begin(), pending_.end(), group_id);
    if (p != pending_.end()) pending_.erase(p);
    count = !g.ever_finished;  // a group re-dispatched after a learner restart counts once
    g.ever_finished = true;
    if (!g.group.eval() && g.stage_index == state_.stage_index && group_states_supported_) {
      // Kept until the learner says it was trained in a checkpointed step (or dropped).
      acked_[group_id] = std::move(g);
    } else {
      finished_ids_.Insert(group_id);
    }
    groups_.erase(it);
  }
  if (!count) return true;
  ++state_.groups_finished;
  metrics_->groups_finished.Increment();
  if (reporter != nullptr) ++reporter->finished_groups;
  MarkDirtyLocked(false);
  return true;
}

void Coordinator::UpdateGroupGaugesLocked() {
  int64_t queued = 0, assigned = 0;
  for (const std::string& id : pending_) {
    auto it = groups_.find(id);
    queued += it != groups_.end() && it->second.worker.empty() ? 1 : 0;
  }
  for (const auto& [id, w] : workers_) assigned += static_cast<int64_t>(w.assigned.size());
  metrics_->groups_queued.Set(static_cast<double>(queued));
  metrics_->groups_assigned.Set(static_cast<double>(assigned));
}

}  // namespace swarr
