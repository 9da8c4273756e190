#include "common/model/sampler.h"

#include <cmath>
#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace swarr {
namespace {

// Empirical frequencies of SampleToken over `n` draws.
std::map<int64_t, double> Frequencies(const std::vector<float>& logits, const SamplingParams& p, int n) {
  SamplerRng rng(p.seed);
  std::map<int64_t, double> freq;
  for (int i = 0; i < n; ++i) freq[SampleToken(logits.data(), logits.size(), p, &rng).id] += 1.0 / n;
  return freq;
}

TEST(SamplerTest, GreedyPicksFirstMaximum) {
  std::vector<float> logits = {0.1f, 2.0f, 2.0f, -1.0f};
  SamplingParams p;
  p.greedy = true;
  SamplerRng rng(0);
  SampledToken t = SampleToken(logits.data(), 4, p, &rng);
  EXPECT_EQ(t.id, 1);
  // Both in double; the sampled one is stored as float32: |log-prob| < 4 rounds by < 2.4e-7.
  EXPECT_NEAR(t.logprob, TokenLogProb(logits.data(), 4, 1.0, 1), 1e-6);
}

TEST(SamplerTest, LogProbIsBeforeTruncation) {
  std::vector<float> logits = {1.0f, 2.0f, 3.0f, 0.5f};
  SamplingParams p;
  p.temperature = 0.7;
  p.top_k = 2;
  p.top_p = 0.5;
  SamplerRng rng(3);
  for (int i = 0; i < 20; ++i) {
    SampledToken t = SampleToken(logits.data(), 4, p, &rng);
    // Hand computation: log softmax(logits / 0.7) over all four tokens.
    double z = 0;
    for (float l : logits) z += std::exp(l / 0.7);
    // Computed in double, stored as float32: |log-prob| < 6 rounds by < 3.6e-7.
    EXPECT_NEAR(t.logprob, logits[t.id] / 0.7 - std::log(z), 1e-6);
  }
}

TEST(SamplerTest, TopKAndTopPRestrictSupport) {
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  SamplingParams p;
  p.top_k = 2;
  auto f = Frequencies(logits, p, 20000);
  EXPECT_EQ(f.count(2) + f.count(3), 0u);
  // Sampling noise, not rounding: a frequency over n draws has standard deviation
  // sqrt(p (1 - p) / n) = 0.0034 here; the bounds are about 6 of those (the draws are seeded,
  // so a run repeats exactly).
  EXPECT_NEAR(f[0], 0.5 / 0.8, 0.02);
  p.top_k = 0;
  p.top_p = 0.75;  // {0.5, 0.3} reaches 0.8 >= 0.75
  f = Frequencies(logits, p, 20000);
  EXPECT_EQ(f.count(2) + f.count(3), 0u);
  EXPECT_NEAR(f[1], 0.3 / 0.8, 0.02);
  p.top_p = 0.4;  // the top token alone
  f = Frequencies(logits, p, 1000);
  EXPECT_EQ(f.size(), 1u);
}

TEST(SamplerTest, TemperatureMatchesDistribution) {
  std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  SamplingParams p;
  p.temperature = 2.0;
  auto f = Frequencies(logits, p, 40000);
  double z = 1 + std::exp(0.5) + std::exp(1.0);
  // Sampling noise: standard deviation sqrt(p (1 - p) / 40000) <= 0.0025; bounds of 4 of those.
  EXPECT_NEAR(f[0], 1 / z, 0.01);
  EXPECT_NEAR(f[2], std::exp(1.0) / z, 0.01);
}

TEST(SamplerTest, SeededStreamsRepeat) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = std::sin(i * 1.3f);
  SamplingParams p;
  p.seed = 42;
  p.top_p = 0.9;
  SamplerRng a(p.seed), b(p.seed), c(p.seed + 1);
  std::vector<int64_t> sa, sb, sc;
  for (int i = 0; i < 64; ++i) {
    sa.push_back(SampleToken(logits.data(), 50, p, &a).id);
    sb.push_back(SampleToken(logits.data(), 50, p, &b).id);
    sc.push_back(SampleToken(logits.data(), 50, p, &c).id);
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(SamplerTest, NegativeInfinityNeverSampled) {
  std::vector<float> logits = {-INFINITY, 0.0f, -INFINITY};
  SamplingParams p;
  auto f = Frequencies(logits, p, 500);
  EXPECT_EQ(f.size(), 1u);
  EXPECT_EQ(f.begin()->first, 1);
}

TEST(SamplerTest, ValidateNamesField) {
  SamplingParams p;
  p.temperature = 0;
  EXPECT_NE(ValidateSamplingParams(p).message().find("temperature"), std::string::npos);
  p = {};
  p.top_p = 1.5;
  EXPECT_NE(ValidateSamplingParams(p).message().find("top_p"), std::string::npos);
  p = {};
  p.top_k = -2;
  EXPECT_NE(ValidateSamplingParams(p).message().find("top_k"), std::string::npos);
  p.greedy = true;
  EXPECT_TRUE(ValidateSamplingParams(p).ok());
}

}  // namespace
}  // namespace swarr
