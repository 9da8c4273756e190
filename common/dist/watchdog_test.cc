#include "common/dist/watchdog.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace swarr::dist {
namespace {

using std::chrono::milliseconds;

template <typename F>
bool Eventually(F cond) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return cond();
}

TEST(WatchdogTest, FiresOnceAfterTheTimeout) {
  std::atomic<int> aborts{0};
  Watchdog dog([&](const std::string&) { ++aborts; });
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t token = dog.Arm(milliseconds(50), "broadcast v7 bucket 3");
  ASSERT_TRUE(Eventually([&] { return aborts.load() == 1; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, milliseconds(50));
  EXPECT_EQ(dog.last_fired(), "broadcast v7 bucket 3");
  EXPECT_FALSE(dog.Disarm(token));  // too late: it fired
  std::this_thread::sleep_for(milliseconds(60));
  EXPECT_EQ(aborts.load(), 1);  // once
  EXPECT_EQ(dog.armed_count(), 0);
}

TEST(WatchdogTest, DisarmedInTimeNeverFires) {
  std::atomic<int> aborts{0};
  Watchdog dog([&](const std::string&) { ++aborts; });
  for (int i = 0; i < 20; ++i) {
    Watchdog::Scope scope(dog, milliseconds(200), "op");
    EXPECT_TRUE(scope.Done());
  }
  std::this_thread::sleep_for(milliseconds(250));
  EXPECT_EQ(aborts.load(), 0);
  EXPECT_EQ(dog.fired_count(), 0);
}

TEST(WatchdogTest, OnlyTheLateOperationFires) {
  std::mutex mu;
  std::vector<std::string> fired;
  Watchdog dog([&](const std::string& what) {
    std::lock_guard<std::mutex> l(mu);
    fired.push_back(what);
  });
  const uint64_t slow = dog.Arm(milliseconds(30), "slow");
  const uint64_t fast = dog.Arm(milliseconds(5000), "fast");
  // A later, earlier-deadline arm is picked up while the thread waits on the longer one.
  const uint64_t later = dog.Arm(milliseconds(10), "later");
  ASSERT_TRUE(Eventually([&] { return dog.fired_count() == 2; }));
  EXPECT_TRUE(dog.Disarm(fast));
  EXPECT_FALSE(dog.Disarm(slow));
  EXPECT_FALSE(dog.Disarm(later));
  std::lock_guard<std::mutex> l(mu);
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0], "later");
  EXPECT_EQ(fired[1], "slow");
}

TEST(WatchdogTest, AbortUnblocksAHungWaiter) {
  // The shape NcclComm relies on: a waiter polls a "communicator" that never completes (a dead
  // peer); the watchdog's abort makes it return instead of hanging.
  std::atomic<bool> aborted{false};
  Watchdog dog([&](const std::string&) { aborted = true; });
  Watchdog::Scope scope(dog, milliseconds(30), "broadcast");
  const auto t0 = std::chrono::steady_clock::now();
  while (!aborted.load()) {
    ASSERT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5)) << "hung";
    std::this_thread::sleep_for(milliseconds(1));
  }
  EXPECT_FALSE(scope.Done());  // it did not finish in time
}

TEST(WatchdogTest, DestructionWithArmedOperationsDoesNotFire) {
  std::atomic<int> aborts{0};
  {
    Watchdog dog([&](const std::string&) { ++aborts; });
    dog.Arm(milliseconds(10'000), "never");
  }
  EXPECT_EQ(aborts.load(), 0);
}

}  // namespace
}  // namespace swarr::dist
