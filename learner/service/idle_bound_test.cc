#include "learner/service/idle_bound.h"

#include <chrono>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using Clock = IdleBound::Clock;
using std::chrono::minutes;
using std::chrono::seconds;

TEST(IdleBoundTest, ExpiresAfterTheBoundWithoutProgressAndProgressMovesIt) {
  const Clock::time_point t0{};  // made-up times: nothing waits
  IdleBound idle(2, t0);
  EXPECT_EQ(idle.deadline(), t0 + minutes(2));
  EXPECT_FALSE(idle.Expired(t0 + seconds(119)));
  EXPECT_TRUE(idle.Expired(t0 + seconds(120)));
  idle.Progress(t0 + seconds(100));  // a trajectory arrived
  EXPECT_FALSE(idle.Expired(t0 + seconds(219)));
  EXPECT_TRUE(idle.Expired(t0 + seconds(220)));
  idle.Progress(t0 + seconds(50));  // older than the last progress: no change
  EXPECT_EQ(idle.deadline(), t0 + seconds(220));
}

TEST(IdleBoundTest, UnsetMeansThirtyMinutesAndTheErrorNamesTheStageTheBoundAndTheWait) {
  const Clock::time_point t0{};
  IdleBound idle(0, t0);
  EXPECT_EQ(idle.max_idle_minutes(), kDefaultMaxIdleMinutes);
  EXPECT_FALSE(idle.Expired(t0 + minutes(29)));
  EXPECT_TRUE(idle.Expired(t0 + minutes(30)));
  const absl::Status st = IdleBound(1.5, t0).Error("rl", 4, 1, 2);
  EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(st.message(),
            "stage rl: no trajectories arrived for 1.5 minutes (rl.max_idle_minutes: 1.5) while the stage waited "
            "for 4 resolved groups (1 resolved, 2 partly arrived): no rollout server is generating for it (none "
            "registered, the coordinator down or not dispatching, or every rollout stuck)");
}

}  // namespace
}  // namespace swarr
