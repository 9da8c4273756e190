#include "common/dist/zero_step.h"

#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace swarr::dist {
namespace {

// Parameters of awkward sizes so that several straddle rank boundaries; norms/biases not decayed.
const std::vector<ParamSpec> kParams = {{"embed", 257}, {"norm", 13}, {"w1", 311}, {"b1", 7}, {"w2", 199}, {"head", 101}};
const std::vector<bool> kDecay = {true, false, true, false, true, true};

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> out(n);
  for (float& x : out) x = d(rng);
  return out;
}

// The unsharded reference: one process, the mean gradient (summed in rank order), AdamW per parameter.
std::vector<float> Reference(int world, int steps, const AdamWConfig& c) {
  int64_t total = 0;
  for (const auto& p : kParams) total += p.numel;
  std::vector<float> w = Random(total, 1), m(total, 0.0f), v(total, 0.0f);
  for (int step = 1; step <= steps; ++step) {
    std::vector<float> g(total, 0.0f);
    for (int r = 0; r < world; ++r) {
      const std::vector<float> gr = Random(total, 100 * step + r);
      for (int64_t i = 0; i < total; ++i) g[i] += gr[i];
    }
    for (float& x : g) x /= static_cast<float>(world);
    int64_t off = 0;
    for (size_t p = 0; p < kParams.size(); ++p) {
      AdamWUpdate(c, step, kDecay[p], w.data() + off, m.data() + off, v.data() + off, g.data() + off, kParams[p].numel);
      off += kParams[p].numel;
    }
  }
  return w;
}

std::vector<float> Sharded(int world, int steps, const AdamWConfig& c, int64_t align) {
  auto plan = PlanZero1(kParams, world, align);
  EXPECT_TRUE(plan.ok()) << plan.status();
  std::vector<float> w = Random(plan->total_numel, 1);
  std::vector<ZeroRankState> states = InitZeroStates(*plan, w);
  for (int step = 1; step <= steps; ++step) {
    std::vector<std::vector<float>> grads;
    for (int r = 0; r < world; ++r) grads.push_back(Random(plan->total_numel, 100 * step + r));
    EXPECT_TRUE(ZeroStep(*plan, c, step, kDecay, grads, states, &w).ok());
  }
  return w;
}

TEST(ZeroStepTest, ShardedStepEqualsTheUnshardedOneBitForBit) {
  AdamWConfig c;
  c.lr = 1e-2f;
  c.weight_decay = 0.1f;
  for (int world : {1, 2, 3, 4, 8}) {
    for (int64_t align : {1, 64}) {
      const std::vector<float> ref = Reference(world, 5, c);
      const std::vector<float> got = Sharded(world, 5, c, align);
      ASSERT_EQ(ref.size(), got.size());
      EXPECT_EQ(std::memcmp(ref.data(), got.data(), ref.size() * sizeof(float)), 0)
          << "world " << world << " align " << align;
    }
  }
}

TEST(ZeroStepTest, EachRankHoldsOnlyItsRange) {
  auto plan = PlanZero1(kParams, 4);
  ASSERT_TRUE(plan.ok());
  std::vector<ZeroRankState> states = InitZeroStates(*plan, Random(plan->total_numel, 1));
  int64_t held = 0;
  for (const RankShard& s : plan->ranks) {
    EXPECT_EQ(static_cast<int64_t>(states[s.rank].master.size()), s.numel());
    EXPECT_EQ(states[s.rank].m.size(), states[s.rank].master.size());
    held += s.numel();
  }
  EXPECT_EQ(held, plan->total_numel);  // masters and moments exist once across the ranks
}

TEST(ZeroStepTest, SizeMismatchesAreRefused) {
  auto plan = PlanZero1(kParams, 2);
  ASSERT_TRUE(plan.ok());
  std::vector<float> w = Random(plan->total_numel, 1);
  std::vector<ZeroRankState> states = InitZeroStates(*plan, w);
  std::vector<std::vector<float>> grads(2, std::vector<float>(plan->total_numel, 0.0f));
  grads[1].pop_back();
  EXPECT_EQ(ZeroStep(*plan, AdamWConfig(), 1, kDecay, grads, states, &w).code(), absl::StatusCode::kInvalidArgument);
  grads.pop_back();
  EXPECT_EQ(ZeroStep(*plan, AdamWConfig(), 1, kDecay, grads, states, &w).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace swarr::dist
