#include "coordinator/weight_orchestrator.h"

#include <chrono>
#include <vector>

#include "gtest/gtest.h"

namespace swarr {
namespace {

using View = WeightOrchestrator::WorkerView;
using Clock = WeightOrchestrator::Clock;

v1::WeightVersion Version(int64_t v, const std::string& incarnation = "L1") {
  v1::WeightVersion w;
  w.set_version(v);
  w.set_learner_incarnation(incarnation);
  return w;
}

View Worker(const std::string& id, int64_t loaded, bool alive = true, bool stream = true) {
  return View{id, alive, stream, Version(loaded)};
}

TEST(WeightOrchestratorTest, OneWorkerAtATimeOldestFirstEachOncePerVersion) {
  WeightOrchestrator o(30);
  const Clock::time_point t0 = Clock::now();
  EXPECT_FALSE(o.Next(t0, {Worker("a", 0)}).has_value()) << "no target yet";
  o.SetTarget(Version(3));
  std::vector<View> ws = {Worker("a", 2), Worker("b", 1), Worker("c", 3)};
  ASSERT_EQ(o.Next(t0, ws), "b");  // the oldest; c already has it
  o.Ordered("b", t0);
  ASSERT_NE(o.LoadingFor("b"), nullptr);
  EXPECT_EQ(o.LoadingFor("b")->version(), 3);
  EXPECT_EQ(o.LoadingFor("a"), nullptr);
  EXPECT_FALSE(o.Next(t0, ws).has_value()) << "b is still loading";
  ws[1].loaded = Version(3);  // b reports it
  ASSERT_EQ(o.Next(t0, ws), "a");
  o.Ordered("a", t0);
  // a never reports it: after the timeout nobody is ordered twice for the same version.
  EXPECT_FALSE(o.Next(t0 + std::chrono::seconds(29), ws).has_value());
  EXPECT_FALSE(o.Next(t0 + std::chrono::seconds(31), ws).has_value());
  EXPECT_EQ(o.LoadingFor("a"), nullptr);
  // A new version: everyone below it may be ordered again.
  o.SetTarget(Version(4));
  EXPECT_EQ(o.Next(t0, ws), "a");
}

TEST(WeightOrchestratorTest, DeadOrStreamlessWorkersAreSkippedAndALoadingOneThatDiesFreesTheTurn) {
  WeightOrchestrator o(30);
  const Clock::time_point t0 = Clock::now();
  o.SetTarget(Version(1));
  EXPECT_FALSE(o.Next(t0, {Worker("a", 0, /*alive=*/false), Worker("b", 0, true, /*stream=*/false)}).has_value());
  std::vector<View> ws = {Worker("a", 0), Worker("b", 0)};
  ASSERT_EQ(o.Next(t0, ws), "a");  // the first among equals
  o.Ordered("a", t0);
  o.Forget("a");
  EXPECT_EQ(o.Next(t0, ws), "b");
  // Another learner incarnation is not "at least" the target, whatever its number.
  EXPECT_FALSE(HasAtLeast(Version(9, "L0"), Version(1, "L1")));
  EXPECT_TRUE(HasAtLeast(Version(2), Version(1)));
  // A status without weights (no incarnation) leaves the target alone.
  o.SetTarget(v1::WeightVersion());
  EXPECT_EQ(o.target().version(), 1);
}

}  // namespace
}  // namespace swarr
