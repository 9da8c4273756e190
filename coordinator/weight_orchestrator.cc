#include "coordinator/weight_orchestrator.h"

namespace swarr {

bool HasAtLeast(const v1::WeightVersion& have, const v1::WeightVersion& want) {
  return have.learner_incarnation() == want.learner_incarnation() && have.version() >= want.version();
}

void WeightOrchestrator::SetTarget(const v1::WeightVersion& latest) {
  if (latest.learner_incarnation().empty()) return;
  if (has_target_ && target_.version() == latest.version() &&
      target_.learner_incarnation() == latest.learner_incarnation()) {
    return;
  }
  target_ = latest;
  has_target_ = true;
  ordered_.clear();
}

std::optional<std::string> WeightOrchestrator::Next(Clock::time_point now, const std::vector<WorkerView>& workers) {
  if (!has_target_) return std::nullopt;
  if (!loading_.empty()) {
    const WorkerView* loading = nullptr;
    for (const WorkerView& w : workers) {
      if (w.id == loading_) loading = &w;
    }
    const bool over = loading == nullptr || !loading->alive || HasAtLeast(loading->loaded, loading_version_) ||
                      std::chrono::duration<double>(now - load_sent_).count() >= load_timeout_seconds_;
    if (!over) return std::nullopt;
    loading_.clear();
  }
  const WorkerView* next = nullptr;
  for (const WorkerView& w : workers) {
    if (!w.alive || !w.has_stream || ordered_.count(w.id) > 0 || HasAtLeast(w.loaded, target_)) continue;
    if (next == nullptr || w.loaded.version() < next->loaded.version()) next = &w;
  }
  if (next == nullptr) return std::nullopt;
  return next->id;
}

void WeightOrchestrator::Ordered(const std::string& worker_id, Clock::time_point now) {
  ordered_.insert(worker_id);
  loading_ = worker_id;
  loading_version_ = target_;
  load_sent_ = now;
}

void WeightOrchestrator::Forget(const std::string& worker_id) {
  if (loading_ == worker_id) loading_.clear();
}

const v1::WeightVersion* WeightOrchestrator::LoadingFor(const std::string& worker_id) const {
  return !loading_.empty() && loading_ == worker_id ? &loading_version_ : nullptr;
}

}  // namespace swarr
