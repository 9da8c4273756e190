// eval_stats: pass@k, Wilson and bootstrap intervals, the summary of an eval stage and its
// group layout, each on cases computed by hand.
#include "coordinator/eval_stats.h"

#include <cmath>

#include "gtest/gtest.h"

namespace swarr {
namespace {

TEST(PassAtKTest, HandComputedValues) {
  EXPECT_DOUBLE_EQ(PassAtK(8, 2, 1), 0.25);             // c / n
  EXPECT_DOUBLE_EQ(PassAtK(8, 2, 8), 1.0);              // n - c < k: some sample is right
  EXPECT_DOUBLE_EQ(PassAtK(8, 0, 8), 0.0);
  EXPECT_NEAR(PassAtK(5, 2, 2), 1.0 - 3.0 / 10.0, 1e-12);   // 1 - C(3,2)/C(5,2)
  EXPECT_NEAR(PassAtK(10, 3, 4), 1.0 - 35.0 / 210.0, 1e-12);  // 1 - C(7,4)/C(10,4)
  EXPECT_TRUE(std::isnan(PassAtK(4, 5, 1)));  // c > n
  EXPECT_TRUE(std::isnan(PassAtK(4, 1, 5)));  // k > n
  EXPECT_TRUE(std::isnan(PassAtK(4, 1, 0)));
}

TEST(Wilson95Test, HandComputedValues) {
  // p = 0.5, n = 100: centre 0.5, half 1.96 * sqrt(0.0025 + 1.96^2 / 40000) / (1 + 1.96^2 / 100).
  auto [lo, hi] = Wilson95(0.5, 100);
  EXPECT_NEAR(lo, 0.4038298, 1e-6);
  EXPECT_NEAR(hi, 0.5961702, 1e-6);
  // p = 0, n = 10: the interval starts at 0 and ends at 2 * (1.96^2 / 20) / (1 + 1.96^2 / 10).
  std::tie(lo, hi) = Wilson95(0.0, 10);
  EXPECT_DOUBLE_EQ(lo, 0.0);
  EXPECT_NEAR(hi, 0.2775402, 1e-6);
  std::tie(lo, hi) = Wilson95(0.3, 0);
  EXPECT_EQ(lo, 0.0);
  EXPECT_EQ(hi, 1.0);
}

TEST(BootstrapMean95Test, DegenerateAndTwoPointCases) {
  // Every resample of equal values has the same mean.
  auto [lo, hi] = BootstrapMean95({0.25, 0.25, 0.25});
  EXPECT_DOUBLE_EQ(lo, 0.25);
  EXPECT_DOUBLE_EQ(hi, 0.25);
  // Two problems, 0 and 1: resample means are 0, 0.5, 1 with probability 1/4, 1/2, 1/4, so
  // the 2.5th and 97.5th percentiles of 2000 of them are 0 and 1.
  std::tie(lo, hi) = BootstrapMean95({0.0, 1.0});
  EXPECT_DOUBLE_EQ(lo, 0.0);
  EXPECT_DOUBLE_EQ(hi, 1.0);
  // Reproducible for a seed; the interval holds the mean and is narrower than the range.
  std::vector<double> v;
  for (int i = 0; i < 200; ++i) v.push_back(i % 4 == 0 ? 1.0 : 0.0);  // mean 0.25
  const auto a = BootstrapMean95(v), b = BootstrapMean95(v);
  EXPECT_EQ(a, b);
  EXPECT_LT(a.first, 0.25);
  EXPECT_GT(a.second, 0.25);
  EXPECT_GT(a.first, 0.15);  // normal approximation: 0.25 -+ 1.96 * sqrt(0.1875 / 200) = [0.19, 0.31]
  EXPECT_LT(a.second, 0.35);
  std::tie(lo, hi) = BootstrapMean95({});
  EXPECT_EQ(lo, 0.0);
  EXPECT_EQ(hi, 1.0);
}

TEST(SummarizeEvalTest, GreedyAndSampledOfThreeProblems) {
  // Greedy right, wrong, right; sampled 2/8, 0/8, 8/8.
  std::vector<EvalProblemOutcome> p(3);
  p[0] = {true, true, 8, 2};
  p[1] = {true, false, 8, 0};
  p[2] = {true, true, 8, 8};
  const EvalSummary s = SummarizeEval(p, {1, 8, 16});
  EXPECT_EQ(s.greedy_n, 3);
  EXPECT_NEAR(s.greedy_accuracy, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(s.greedy_ci95.first, 0.2076550, 1e-6);  // Wilson(2/3, 3)
  EXPECT_NEAR(s.greedy_ci95.second, 0.9385097, 1e-6);
  EXPECT_EQ(s.sampled_n, 3);
  EXPECT_EQ(s.samples, 8);
  EXPECT_NEAR(s.sampled_accuracy, (0.25 + 0 + 1) / 3, 1e-12);
  ASSERT_EQ(s.pass_at.size(), 2u);  // k = 16 > 8 samples is left out
  EXPECT_EQ(s.pass_at[0].k, 1);
  EXPECT_NEAR(s.pass_at[0].value, s.sampled_accuracy, 1e-12);  // pass@1 == mean of c / n
  EXPECT_EQ(s.pass_at[1].k, 8);
  EXPECT_NEAR(s.pass_at[1].value, 2.0 / 3.0, 1e-12);  // (1 + 0 + 1) / 3
  for (const auto& pa : s.pass_at) {
    EXPECT_LE(pa.ci95.first, pa.value);
    EXPECT_GE(pa.ci95.second, pa.value);
  }
  // Sampled answers on a subset only; greedy on all.
  p.push_back({true, false, 0, 0});
  const EvalSummary t = SummarizeEval(p);
  EXPECT_EQ(t.greedy_n, 4);
  EXPECT_NEAR(t.greedy_accuracy, 0.5, 1e-12);
  EXPECT_EQ(t.sampled_n, 3);
  EXPECT_NEAR(t.sampled_accuracy, (0.25 + 0 + 1) / 3, 1e-12);
}

TEST(EvalLayoutTest, GreedyPlusSampledSubsetAndSamplesOnly) {
  v1::EvalConfig e;
  e.set_greedy(true);
  e.set_sampled(8);
  e.set_sampled_problems(2);
  const EvalLayout l = MakeEvalLayout(e, 5);
  EXPECT_EQ(l.groups(), 7);
  EXPECT_EQ(l.Problem(4), 4);
  EXPECT_EQ(l.Problem(5), 0);
  EXPECT_EQ(l.Problem(6), 1);
  EXPECT_EQ(l.Samples(4), 1);
  EXPECT_EQ(l.Samples(5), 8);
  EXPECT_TRUE(l.Greedy(4));
  EXPECT_FALSE(l.Greedy(5));
  e.set_sampled_problems(0);  // every problem
  EXPECT_EQ(MakeEvalLayout(e, 5).groups(), 10);
  e.set_sampled_problems(9);  // capped by the problems there are
  EXPECT_EQ(MakeEvalLayout(e, 5).groups(), 10);

  v1::EvalConfig k;  // samples only (pass@k without a greedy answer)
  k.set_samples_per_problem(4);
  const EvalLayout m = MakeEvalLayout(k, 5);
  EXPECT_EQ(m.groups(), 5);
  EXPECT_EQ(m.Samples(3), 4);
  EXPECT_FALSE(m.Greedy(3));
}

}  // namespace
}  // namespace swarr
