#include "common/util/fifo_gate.h"

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace swarr {
namespace {

using Clock = std::chrono::steady_clock;

// Waits (bounded) until `cond`.
template <typename F>
bool Eventually(F cond) {
  const auto end = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

TEST(FifoGateTest, AtMostCapacityInsideAndArrivalOrder) {
  FifoGate gate(2);
  const auto far = Clock::now() + std::chrono::seconds(30);
  ASSERT_TRUE(gate.Enter(far));
  ASSERT_TRUE(gate.Enter(far));
  EXPECT_EQ(gate.inside(), 2);
  // Three more arrive one after another; they must enter in that order as places free up.
  std::vector<int> order;
  std::mutex mu;
  std::vector<std::thread> threads;
  for (int k = 0; k < 3; ++k) {
    threads.emplace_back([&, k] {
      ASSERT_TRUE(gate.Enter(far));
      {
        std::lock_guard<std::mutex> l(mu);
        order.push_back(k);
      }
    });
    ASSERT_TRUE(Eventually([&] { return gate.waiting() == k + 1; }));
  }
  EXPECT_EQ(gate.inside(), 2);
  for (int k = 0; k < 3; ++k) {
    gate.Leave();
    ASSERT_TRUE(Eventually([&] {
      std::lock_guard<std::mutex> l(mu);
      return static_cast<int>(order.size()) == k + 1;
    }));
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(gate.inside(), 2);
}

TEST(FifoGateTest, AWaiterThatGivesUpDoesNotBlockTheOnesBehindIt) {
  FifoGate gate(1);
  ASSERT_TRUE(gate.Enter(Clock::now() + std::chrono::seconds(30)));
  std::atomic<bool> second_gave_up{false}, third_in{false};
  std::thread second([&] { second_gave_up = !gate.Enter(Clock::now() + std::chrono::milliseconds(50)); });
  ASSERT_TRUE(Eventually([&] { return gate.waiting() == 1; }));
  std::thread third([&] {
    third_in = gate.Enter(Clock::now() + std::chrono::seconds(30));
  });
  second.join();
  EXPECT_TRUE(second_gave_up);
  EXPECT_FALSE(third_in);
  gate.Leave();
  third.join();
  EXPECT_TRUE(third_in);
  {
    FifoGateHold hold(&gate, Clock::now() + std::chrono::milliseconds(20));
    EXPECT_FALSE(hold.entered());  // the third is still inside
  }
  gate.Leave();
  FifoGateHold hold(&gate, Clock::now() + std::chrono::milliseconds(20));
  EXPECT_TRUE(hold.entered());
}

}  // namespace
}  // namespace swarr
