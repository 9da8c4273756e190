#include "learner/service/idle_bound.h"

#include "absl/strings/str_cat.h"

namespace swarr {

IdleBound::IdleBound(double max_idle_minutes, Clock::time_point start)
    : minutes_(max_idle_minutes > 0 ? max_idle_minutes : kDefaultMaxIdleMinutes),
      max_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(minutes_ * 60))),
      last_(start) {}

void IdleBound::Progress(Clock::time_point when) {
  if (when > last_) last_ = when;
}

absl::Status IdleBound::Error(const std::string& stage, int64_t groups_per_step, int64_t resolved,
                              int64_t partial) const {
  return absl::DeadlineExceededError(absl::StrCat(
      "stage ", stage, ": no trajectories arrived for ", minutes_, " minutes (rl.max_idle_minutes: ", minutes_,
      ") while the stage waited for ", groups_per_step, " resolved groups (", resolved, " resolved, ", partial,
      " partly arrived): no rollout server is generating for it (none registered, the coordinator down or not "
      "dispatching, or every rollout stuck)"));
}

}  // namespace swarr
