// Coordinator: the worker registry, leases and liveness, the workers' RPCs and the order of
// weight loads (coordinator.h "Workers, leases and weight loads").
#include <algorithm>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/util/status_macros.h"
#include "coordinator/coordinator.h"
#include "coordinator/group_id.h"
#include "coordinator/internal.h"
#include "coordinator/request_checks.h"

namespace swarr {

using coordinator_internal::Clock;
using coordinator_internal::Seconds;
using coordinator_internal::Log;
using coordinator_internal::ClampInt32;
using coordinator_internal::kMaxDeadWorkers;

absl::StatusOr<v1::RegisterWorkerResponse> Coordinator::RegisterWorker(const v1::RegisterWorkerRequest& req) {
  SWARR_RETURN_IF_ERROR(CheckRegisterWorkerRequest(req));
  absl::MutexLock l(&mu_);
  if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
  Worker w;
  w.id = absl::StrFormat("w-%s-%04d", incarnation_, ++next_worker_);
  w.name = !req.name().empty() ? req.name() : (!req.address().empty() ? req.address() : w.id);
  w.address = req.address();
  w.device = req.device();
  w.max_sequences = req.max_sequences() > 0 ? req.max_sequences() : default_max_sequences_;
  w.max_tokens = req.max_tokens() > 0 ? req.max_tokens() : default_max_tokens_;
  w.loaded = req.loaded();
  w.registered = w.last_heartbeat = w.last_progress = Clock::now();
  w.metric_label = w.name;
  for (const auto& [id, other] : workers_) {
    if (other.state != v1::WorkerStatus::DEAD && other.metric_label == w.metric_label) {
      w.metric_label = absl::StrCat(w.name, "/", w.id);
      break;
    }
  }
  w.version_gauge = &metrics_->worker_weight_version.Add({{"worker", w.metric_label}});
  w.version_gauge->Set(static_cast<double>(w.loaded.version()));
  Log(absl::StrCat("worker ", w.id, " (", w.name, ", ", w.device.empty() ? "cpu" : w.device, ") registered: ",
                   w.max_sequences, " sequences, ", w.max_tokens > 0 ? absl::StrCat(w.max_tokens) : "no", " token limit"));
  v1::RegisterWorkerResponse resp;
  resp.set_worker_id(w.id);
  resp.set_heartbeat_seconds(heartbeat_seconds_);
  resp.set_lease_seconds(lease_seconds_);
  resp.set_learner_address(options_.learner_address);
  resp.set_max_sequences(ClampInt32(default_max_sequences_));
  resp.set_max_tokens(default_max_tokens_);
  resp.set_max_message_bytes(limits_.max_message_bytes);
  resp.set_deadline_seconds(limits_.deadline_seconds);
  resp.set_keepalive_time_seconds(limits_.keepalive_time_seconds);
  resp.set_keepalive_timeout_seconds(limits_.keepalive_timeout_seconds);
  resp.set_progress_timeout_seconds(progress_timeout_seconds_);
  if (done_) {
    *resp.mutable_pipeline_end() = pipeline_end_;
    w.told_end = true;
  }
  const std::string id = w.id;
  Worker& added = workers_[id] = std::move(w);
  // Before its stream opens: what it holds from an earlier coordinator counts in flight.
  AdoptHeldLocked(added, req.held_group_ids(), /*prune=*/false);
  UpdateWorkerGaugesLocked();
  return resp;
}

absl::Status Coordinator::Heartbeat(const v1::HeartbeatRequest& req, v1::HeartbeatResponse* response) {
  SWARR_RETURN_IF_ERROR(CheckHeartbeatRequest(req));

  absl::ReleasableMutexLock l(&mu_);
  if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
  auto it = workers_.find(req.worker_id());
  if (it == workers_.end()) {
    return absl::NotFoundError(absl::StrCat("worker_id: unknown worker '", req.worker_id(), "'; register again"));
  }
  Worker& w = it->second;
  if (w.state == v1::WorkerStatus::DEAD) {
    return absl::NotFoundError(
        absl::StrCat("worker_id: worker '", req.worker_id(), "' was declared dead (lease expired); register again"));
  }
  const Clock::time_point now = Clock::now();
  w.last_heartbeat = now;
  w.loaded = req.loaded();
  w.active_sequences = req.active_sequences();
  if (!w.token_samples.empty() && req.tokens_generated() < w.token_samples.back().second) w.token_samples.clear();
  w.tokens_generated = req.tokens_generated();
  w.token_samples.emplace_back(now, req.tokens_generated());
  while (w.token_samples.size() > 2 && Seconds(now - w.token_samples.front().first) > 10) w.token_samples.pop_front();
  if (w.token_samples.size() >= 2) {
    const double dt = Seconds(w.token_samples.back().first - w.token_samples.front().first);
    w.tokens_per_second =
        dt > 0 ? static_cast<double>(w.token_samples.back().second - w.token_samples.front().second) / dt : 0;
  }
  if (w.version_gauge != nullptr) w.version_gauge->Set(static_cast<double>(w.loaded.version()));
  if (req.has_progress()) {
    const v1::EngineProgress& pr = req.progress();
    const bool moved = pr.decode_steps() != w.decode_steps;
    if (moved || pr.running_sequences() == 0) w.last_progress = now;
    if (moved && w.state == v1::WorkerStatus::UNHEALTHY) {
      w.state = v1::WorkerStatus::ALIVE;
      UpdateWorkerGaugesLocked();
      Log(absl::StrCat("worker ", w.id, " (", w.name, ") makes progress again (decode step ", pr.decode_steps(),
                       "): healthy"));
    }
    w.reports_progress = true;
    w.decode_steps = pr.decode_steps();
    w.running_sequences = pr.running_sequences();
  }
  if (req.draining() && w.state == v1::WorkerStatus::ALIVE) {
    w.state = v1::WorkerStatus::DRAINING;
    UpdateWorkerGaugesLocked();
    Log(absl::StrCat("worker ", w.id, " (", w.name, ") is draining"));
    weights_.Forget(w.id);
  }
  std::vector<std::string> journal;  // rl groups this call acknowledges (serialized)
  for (const std::string& id : req.finished_group_ids()) {
    auto g = groups_.find(id);
    if (g != groups_.end() && g->second.group.eval() && g->second.stage_index == state_.stage_index &&
        state_.eval_results.count(g->second.problem) == 0) {
      // An eval group is finished by its ReportEval; "finished" without a result would leave
      // the problem unanswered forever: generate it again.
      Log(absl::StrCat("worker ", w.id, " reported eval group ", id, " finished without a result; re-queued"));
      RequeueFrontLocked({id}, g->second.worker, /*count=*/false);
      continue;
    }
    const bool was_acked = acked_.count(id) > 0;
    FinishGroupLocked(id, &w);
    if (auto a = acked_.find(id); !was_acked && a != acked_.end()) {
      journal.push_back(absl::Base64Escape(a->second.group.SerializeAsString()));
    }
  }
  if (req.returned_group_ids_size() > 0) {
    const std::vector<std::string> ids(req.returned_group_ids().begin(), req.returned_group_ids().end());
    RequeueFrontLocked(ids, w.id, /*count=*/true);
  }
  // Workers that report progress also name what they hold (possibly nothing).
  if (req.has_progress() || req.held_group_ids_size() > 0) AdoptHeldLocked(w, req.held_group_ids(), /*prune=*/true);
  if (done_) {
    if (response != nullptr) *response->mutable_pipeline_end() = pipeline_end_;
    w.told_end = true;
  }
  // Crash consistency (docs/reliability.md "The last second"): once answered, the worker forgets
  // the groups it reported finished. Those the learner acknowledged are on disk (the journal)
  // before the answer, so a coordinator killed right after still checks them with the learner.
  l.Release();
  if (!journal.empty()) {
    if (absl::Status s = JournalAcked(journal); !s.ok()) {
      absl::MutexLock again(&mu_);
      MarkDirtyLocked(true);  // state.json on the next tick holds them
      return absl::UnavailableError(absl::StrCat("cannot record the finished groups (", s.message(),
                                                 "); report them again"));
    }
  }
  return absl::OkStatus();
}

absl::Status Coordinator::OpenStream(const std::string& worker_id, std::shared_ptr<AssignmentSink> sink) {
  if (worker_id.empty()) return absl::InvalidArgumentError("worker_id: required");
  Outbox out;
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
    auto it = workers_.find(worker_id);
    if (it == workers_.end() || it->second.state == v1::WorkerStatus::DEAD) {
      return absl::NotFoundError(absl::StrCat("worker_id: unknown worker '", worker_id.substr(0, kMaxTextField),
                                              "'; register again"));
    }
    Worker& w = it->second;
    if (w.stream) {
      std::vector<v1::Assignment> unsent =
          w.stream->Close(absl::AbortedError("replaced by a newer WatchAssignments stream of the same worker"));
      std::vector<std::string> ids;
      for (const v1::Assignment& a : unsent) {
        if (a.has_group()) ids.push_back(a.group().group_id());
      }
      w.stream = nullptr;
      RequeueFrontLocked(ids, w.id, /*count=*/false);
    }
    sink->Enqueue(StageInfoLocked());
    if (const v1::WeightVersion* loading = weights_.LoadingFor(w.id); loading != nullptr) {
      v1::Assignment load;
      *load.mutable_load_weights()->mutable_version() = *loading;
      sink->Enqueue(std::move(load));
    }
    if (done_) {
      v1::Assignment end;
      *end.mutable_pipeline_end() = pipeline_end_;
      sink->Enqueue(std::move(end));
    }
    w.stream = sink;
    out.flush.push_back(sink);
    // New capacity: hand out what is waiting without waiting for the next tick.
    DispatchPendingLocked(&out);
  }
  Deliver(out);
  return absl::OkStatus();
}

void Coordinator::StreamBroken(const std::string& worker_id, const AssignmentSink* sink,
                               const std::vector<std::string>& unsent_group_ids) {
  absl::MutexLock l(&mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.stream.get() != sink) return;
  it->second.stream = nullptr;
  RequeueFrontLocked(unsent_group_ids, worker_id, /*count=*/false);
}

void Coordinator::ExpireLeasesLocked(Clock::time_point now) {
  bool changed = false;
  for (auto& [id, w] : workers_) {
    if (w.state != v1::WorkerStatus::DEAD && Seconds(now - w.last_heartbeat) > lease_seconds_) {
      MarkDeadLocked(w, absl::StrFormat("no heartbeat for %.1f s (lease %.1f s)", Seconds(now - w.last_heartbeat),
                                        lease_seconds_));
      changed = true;
    }
  }
  // Keep the newest dead workers for `swarr status`.
  size_t dead = 0;
  for (const auto& [id, w] : workers_) dead += w.state == v1::WorkerStatus::DEAD;
  while (dead > kMaxDeadWorkers) {
    auto oldest = workers_.end();
    for (auto it = workers_.begin(); it != workers_.end(); ++it) {
      if (it->second.state == v1::WorkerStatus::DEAD &&
          (oldest == workers_.end() || it->second.last_heartbeat < oldest->second.last_heartbeat)) {
        oldest = it;
      }
    }
    workers_.erase(oldest);
    --dead;
  }
  for (auto& [id, w] : workers_) {
    if (w.state == v1::WorkerStatus::ALIVE && w.reports_progress && !w.assigned.empty() && w.running_sequences > 0 &&
        Seconds(now - w.last_progress) > progress_timeout_seconds_) {
      MarkUnhealthyLocked(w, absl::StrFormat("its engine made no decode step for %.1f s with %d sequences running "
                                             "(workers.progress_timeout_seconds %.1f)",
                                             Seconds(now - w.last_progress), w.running_sequences,
                                             progress_timeout_seconds_));
      changed = true;
    }
  }
  // Per-group deadlines: a group a worker holds for too long goes to the queue again.
  std::vector<std::pair<std::string, std::string>> late;
  for (const auto& [id, g] : groups_) {
    if (!g.worker.empty() && Seconds(now - g.assigned_at) > group_timeout_seconds_) late.emplace_back(id, g.worker);
  }
  for (const auto& [id, worker] : late) {
    groups_[id].avoid = worker;
    Log(absl::StrFormat("group %s not finished %.1f s after it went to worker %s (workers.group_timeout_seconds): "
                        "re-queued", id, group_timeout_seconds_, worker));
    RequeueFrontLocked({id}, worker, /*count=*/true);
  }
  if (changed) UpdateWorkerGaugesLocked();
}

void Coordinator::MarkDeadLocked(Worker& w, const std::string& why) {
  w.state = v1::WorkerStatus::DEAD;
  if (w.stream) {
    // Everything queued on it is among its assigned groups, re-queued below.
    w.stream->Close(absl::NotFoundError(absl::StrCat("worker ", w.id, ": ", why, "; register again")));
    w.stream = nullptr;
  }
  const std::vector<std::string> ids(w.assigned.begin(), w.assigned.end());
  const int64_t before = state_.groups_reassigned;
  RequeueFrontLocked(ids, w.id, /*count=*/true);
  if (w.version_gauge != nullptr) {
    metrics_->worker_weight_version.Remove(w.version_gauge);
    w.version_gauge = nullptr;
  }
  weights_.Forget(w.id);
  Log(absl::StrCat("worker ", w.id, " (", w.name, ") is dead: ", why, "; ", state_.groups_reassigned - before,
                   " groups re-queued"));
}

void Coordinator::MarkUnhealthyLocked(Worker& w, const std::string& why) {
  w.state = v1::WorkerStatus::UNHEALTHY;
  const std::vector<std::string> ids(w.assigned.begin(), w.assigned.end());
  const int64_t before = state_.groups_reassigned;
  RequeueFrontLocked(ids, w.id, /*count=*/true);
  w.adopted.clear();  // stuck with it: no longer in flight (they cannot be sent elsewhere)
  weights_.Forget(w.id);
  Log(absl::StrCat("worker ", w.id, " (", w.name, ") is unhealthy: ", why, "; ", state_.groups_reassigned - before,
                   " groups re-queued"));
}

void Coordinator::AdoptHeldLocked(Worker& w, const google::protobuf::RepeatedPtrField<std::string>& held,
                                  bool prune) {
  if (prune) {
    const std::set<std::string> still(held.begin(), held.end());
    for (auto it = w.adopted.begin(); it != w.adopted.end();) {
      it = still.count(*it) > 0 ? std::next(it) : w.adopted.erase(it);
    }
  }
  const int32_t stage = state_.stage_index;
  if (w.state == v1::WorkerStatus::UNHEALTHY || stage >= options_.pipeline.stages_size() ||
      !options_.pipeline.stages(stage).has_rl()) {
    return;
  }
  const std::string& name = options_.pipeline.stages(stage).name();
  for (const std::string& id : held) {
    if (w.adopted.count(id) > 0 || groups_.count(id) > 0 || acked_.count(id) > 0 || finished_ids_.Contains(id)) continue;
    GroupIdParts parts;
    if (!ParseGroupId(id, &parts) || parts.incarnation == incarnation_ || parts.stage != name ||
        !KnownIncarnationLocked(parts.incarnation)) {
      continue;
    }
    bool elsewhere = false;
    for (const auto& [oid, o] : workers_) elsewhere = elsewhere || (&o != &w && o.adopted.count(id) > 0);
    if (elsewhere) continue;
    w.adopted.insert(id);
    ++state_.groups_adopted;
    MarkDirtyLocked(false);
  }
}

int64_t Coordinator::AdoptedInFlightLocked() const {
  int64_t n = 0;
  for (const auto& [id, w] : workers_) {
    if (w.state != v1::WorkerStatus::DEAD) n += static_cast<int64_t>(w.adopted.size());
  }
  return n;
}

void Coordinator::UpdateWorkerGaugesLocked() {
  int alive = 0, draining = 0, dead = 0;
  for (const auto& [id, w] : workers_) {
    alive += w.state == v1::WorkerStatus::ALIVE;
    draining += w.state == v1::WorkerStatus::DRAINING;
    dead += w.state == v1::WorkerStatus::DEAD;
  }
  metrics_->workers_alive.Set(alive);
  metrics_->workers_draining.Set(draining);
  metrics_->workers_dead.Set(dead);
  int unhealthy = 0;
  for (const auto& [id, w] : workers_) unhealthy += w.state == v1::WorkerStatus::UNHEALTHY;
  metrics_->workers_unhealthy.Set(unhealthy);
}

void Coordinator::OrchestrateWeightsLocked(Clock::time_point now, Outbox* out) {
  std::vector<WeightOrchestrator::WorkerView> views;
  views.reserve(workers_.size());
  for (const auto& [id, w] : workers_) views.push_back({id, w.state == v1::WorkerStatus::ALIVE, w.stream != nullptr, w.loaded});
  const std::optional<std::string> next_id = weights_.Next(now, views);
  if (!next_id.has_value()) return;
  Worker& next = workers_.at(*next_id);
  v1::Assignment a;
  *a.mutable_load_weights()->mutable_version() = weights_.target();
  if (!next.stream->Enqueue(std::move(a))) {
    next.stream = nullptr;
    return;
  }
  out->flush.push_back(next.stream);
  weights_.Ordered(next.id, now);
}

}  // namespace swarr
