#include "rollout_server/pusher.h"

#include <algorithm>
#include <iostream>

#include "absl/strings/str_cat.h"

namespace swarr {
namespace {

bool Retryable(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

}  // namespace

Pusher::Pusher(const PusherOptions& options, RolloutMetrics* metrics, TargetsFn targets, OutcomeFn outcome)
    : options_(options), metrics_(metrics), targets_(std::move(targets)), outcome_(std::move(outcome)) {
  thread_ = std::thread([this] { Loop(); });
}

Pusher::~Pusher() { Stop(); }

void Pusher::Enqueue(PushJob job) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(job));
}

int64_t Pusher::pending() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size()) + (busy_ ? 1 : 0);
}

void Pusher::Abort() {
  absl::MutexLock lock(&mu_);
  aborted_ = true;
  if (call_ != nullptr) call_->TryCancel();
}

void Pusher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (call_ != nullptr) call_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool Pusher::Backoff(double seconds) {
  absl::MutexLock lock(&mu_);
  auto interrupted = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return aborted_ || stop_; };
  return !mu_.AwaitWithTimeout(absl::Condition(&interrupted), absl::Seconds(seconds));
}

void Pusher::Loop() {
  while (true) {
    PushJob job;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    const PushOutcome outcome = Deliver(job);
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
    }
    outcome_(job.group_id, outcome);
    absl::MutexLock lock(&mu_);
    busy_ = false;
  }
}

PushOutcome Pusher::Deliver(const PushJob& job) {
  double backoff = options_.backoff_initial_seconds;
  for (int attempt = 0;; ++attempt) {
    {
      absl::MutexLock lock(&mu_);
      if (aborted_ || stop_) return PushOutcome::kReturned;
    }
    const PushTargets targets = targets_();
    PushOutcome outcome = PushOutcome::kFinished;
    grpc::Status st = Call(job, targets, &outcome);
    if (st.ok()) return outcome;
    {
      absl::MutexLock lock(&mu_);
      if (aborted_ || stop_) return PushOutcome::kReturned;
    }
    const std::string what = job.eval ? "ReportEval" : "PushTrajectories";
    if (Retryable(st.error_code())) {
      if (attempt == 0 || attempt % 10 == 0) {
        std::cerr << "rollout: " << what << " of group '" << job.group_id << "' failed (" << st.error_message()
                  << "), retrying in " << backoff << " s\n";
      }
      metrics_->push_retries.Increment();
      if (!Backoff(backoff)) return PushOutcome::kReturned;
      backoff = std::min(options_.backoff_max_seconds, backoff * 2);
      continue;
    }
    if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      std::cerr << "rollout: " << what << " rejected group '" << job.group_id << "' (FAILED_PRECONDITION: "
                << st.error_message() << "): handing it back\n";
      return PushOutcome::kReturned;
    }
    std::cerr << "rollout: ERROR: " << what << " rejected group '" << job.group_id << "' with code "
              << st.error_code() << ": " << st.error_message()
              << " -- dropping it and reporting it finished (it would fail again)\n";
    return PushOutcome::kFinished;
  }
}

grpc::Status Pusher::Call(const PushJob& job, const PushTargets& targets, PushOutcome* outcome) {
  *outcome = PushOutcome::kFinished;
  grpc::ClientContext ctx;
  PrepareContext(&ctx, targets.security, targets.limits);
  auto track = [this](grpc::ClientContext* c) {
    absl::MutexLock lock(&mu_);
    call_ = c;
    if (c != nullptr && (aborted_ || stop_)) c->TryCancel();
  };
  if (job.eval) {
    if (targets.coordinator == nullptr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no coordinator yet");
    v1::ReportEvalRequest req;
    req.set_worker_id(targets.worker_id);
    req.set_group_id(job.group_id);
    int64_t oldest = INT64_MAX;
    for (const SampleResult& s : job.samples) {
      const v1::Trajectory& t = s.trajectory;
      if (t.policy_version() < oldest) {
        oldest = t.policy_version();
        req.mutable_version()->set_version(t.policy_version());
        req.mutable_version()->set_learner_incarnation(t.learner_incarnation());
      }
      v1::EvalSample* e = req.add_samples();
      *e->mutable_completion_ids() = t.completion_ids();
      e->set_completion_text(s.completion_text);
      e->set_reward(t.reward());
      e->set_stopped(t.stopped());
    }
    v1::ReportEvalResponse resp;
    track(&ctx);
    grpc::Status st = targets.coordinator->ReportEval(&ctx, req, &resp);
    track(nullptr);
    if (st.ok()) metrics_->trajectories_pushed.Increment(static_cast<double>(job.samples.size()));
    return st;
  }
  if (targets.learner == nullptr) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no learner address yet");
  v1::PushTrajectoriesRequest req;
  for (const SampleResult& s : job.samples) {
    v1::Trajectory* t = req.add_trajectories();
    *t = s.trajectory;
    t->set_worker_id(targets.worker_id);
  }
  v1::PushTrajectoriesResponse resp;
  track(&ctx);
  grpc::Status st = targets.learner->PushTrajectories(&ctx, req, &resp);
  track(nullptr);
  if (!st.ok()) return st;
  int acked = 0;
  std::string problem;
  for (int i = 0; i < req.trajectories_size(); ++i) {
    if (i >= resp.acks_size()) {
      problem = absl::StrCat("no acknowledgement for '", req.trajectories(i).id(), "'");
      break;
    }
    const v1::TrajectoryAck& a = resp.acks(i);
    const bool known = a.result() == v1::TrajectoryAck::ACCEPTED || a.result() == v1::TrajectoryAck::DUPLICATE ||
                       a.result() == v1::TrajectoryAck::DROPPED_STALE;
    if (a.id() != req.trajectories(i).id() || !known) {
      problem = absl::StrCat("acknowledgement ", i, " is '", a.id(), "' with result ", a.result(), " for '",
                             req.trajectories(i).id(), "'");
      break;
    }
    ++acked;
  }
  metrics_->trajectories_pushed.Increment(acked);
  if (!problem.empty()) {
    std::cerr << "rollout: ERROR: the learner's answer for group '" << job.group_id << "' is malformed: " << problem
              << " -- reporting the group finished\n";
  }
  return grpc::Status::OK;
}

}  // namespace swarr
