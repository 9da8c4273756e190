// How long an rl stage may wait with no trajectories arriving (issue 16, docs/reliability.md
// "A learner with no data fails instead of waiting forever"). The learner's rl stage waits for
// rl.prompts_per_step resolved groups before each step; when no rollout server generates for
// it (none registered, the coordinator down or not dispatching, every rollout stuck), it
// waited forever unless stop.max_minutes was set. IdleBound keeps the time of the last sign of
// progress (a trajectory of the stage arrived, a step ended) and says when the bound
// (rl.max_idle_minutes) is exceeded, and words the error the stage fails with.
//
// No torch, no clock of its own (the caller passes the time: tests use made-up time points).
// Not thread-safe (one per stage loop).
#ifndef SWARR_LEARNER_SERVICE_IDLE_BOUND_H_
#define SWARR_LEARNER_SERVICE_IDLE_BOUND_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace swarr {

// rl.max_idle_minutes when unset (0).
inline constexpr double kDefaultMaxIdleMinutes = 30;

class IdleBound {
 public:
  using Clock = std::chrono::steady_clock;

  // `max_idle_minutes` <= 0: kDefaultMaxIdleMinutes. The wait starts at `start`.
  IdleBound(double max_idle_minutes, Clock::time_point start);

  // Progress at `when`; earlier times than the last one change nothing.
  void Progress(Clock::time_point when);
  // When the bound runs out unless there is progress before.
  Clock::time_point deadline() const { return last_ + max_; }
  bool Expired(Clock::time_point now) const { return now >= deadline(); }
  double max_idle_minutes() const { return minutes_; }

  // kDeadlineExceeded naming the stage, the bound and what the stage was waiting for, e.g.
  // "stage rl: no trajectories arrived for 30 minutes (rl.max_idle_minutes: 30) while the
  // stage waited for 4 resolved groups (1 resolved, 2 partly arrived): no rollout server is
  // generating for it (none registered, the coordinator down or not dispatching, or every
  // rollout stuck)".
  absl::Status Error(const std::string& stage, int64_t groups_per_step, int64_t resolved, int64_t partial) const;

 private:
  double minutes_;
  Clock::duration max_;
  Clock::time_point last_;
};

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_IDLE_BOUND_H_
