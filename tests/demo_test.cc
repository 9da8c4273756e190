// `swarr demo --quick` end to end in CI (issue 6): the services run the shortened schedule, the
// run leaves a complete results.json and a report with its plots, and it shows the finding: the
// window costs the SFT'd model most of its accuracy and RL under the window wins most of it back
// (bounds from the seed spread measured in docs/testing.md).
#include <cmath>
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

// Bounds for the quick demo's finding (see QuickRunWritesCompleteResultsAndReport).
constexpr double kMinGap = 0.6;
constexpr double kMinRecovered = 0.8;
constexpr double kMinWindowFriendlyAfter = 0.9;

// The Wilson score interval (z = 1.96) of a proportion p over n trials.
std::pair<double, double> Wilson95(double p, int n) {
  const double z = 1.96, z2n = z * z / n;
  const double centre = (p + z2n / 2) / (1 + z2n);
  const double half = z * std::sqrt(p * (1 - p) / n + z2n / (4.0 * n)) / (1 + z2n);
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

TEST(DemoTest, QuickRunWritesCompleteResultsAndReport) {
  const std::string dir = cli_testing::TempDir() + "/demo";
  const cli_testing::Result r = cli_testing::RunSwarr("demo --quick --seed 1 --run-dir " + dir);
  ASSERT_EQ(r.status, 0) << r.err << "\n" << cli_testing::Slurp(dir + "/logs/coordinator.log");
  EXPECT_THAT(r.out, HasSubstr("SWA after RL (W=12)"));
  EXPECT_THAT(r.out, HasSubstr(dir + "/report.md"));

  auto j = nlohmann::json::parse(cli_testing::Slurp(dir + "/results.json"), nullptr, false);
  ASSERT_FALSE(j.is_discarded());
  for (const char* key : {"sa_acc", "swa_sft_acc", "swa_rl_acc", "window", "seed", "eval_n",
                          "window_friendly_share_before_rl", "window_friendly_share_after_rl", "kv_bytes_per_seq_sa",
                          "kv_bytes_per_seq_swa", "wall_seconds"}) {
    ASSERT_TRUE(j.contains(key)) << key;
    ASSERT_TRUE(j[key].is_number()) << key;
  }
  // The finding. Issue 6's criterion is SA - SWA-SFT >= 0.20 and RL recovering >= 50% of that
  // gap; --quick reaches far more on every seed measured (docs/testing.md: gap 0.88-0.92,
  // recovered 0.93-0.99, window-friendly after RL 0.98-1.00), so the bounds sit below the worst
  // seed with a margin and still fail a run where SFT or RL did not do their part.
  const double sa = j["sa_acc"].get<double>(), sft = j["swa_sft_acc"].get<double>(), rl = j["swa_rl_acc"].get<double>();
  EXPECT_GE(sa, 0.95) << "the SA model solves the task";
  EXPECT_GE(sa - sft, kMinGap) << "SA " << sa << ", SWA after SFT " << sft;
  const double recovered = sa > sft ? (rl - sft) / (sa - sft) : 0.0;
  EXPECT_GE(recovered, kMinRecovered) << "SWA after SFT " << sft << ", after RL " << rl << ", SA " << sa;
  EXPECT_LE(j["window_friendly_share_before_rl"].get<double>(), 0.2);
  EXPECT_GE(j["window_friendly_share_after_rl"].get<double>(), kMinWindowFriendlyAfter);
  EXPECT_EQ(j["criterion_met"], true);
  EXPECT_EQ(j["window"].get<int>(), 12);
  EXPECT_EQ(j["seed"].get<int>(), 1);
  EXPECT_EQ(j["eval_n"].get<int>(), 200);
  EXPECT_GT(j["kv_bytes_per_seq_swa"].get<int64_t>(), 0);
  EXPECT_LT(j["kv_bytes_per_seq_swa"].get<int64_t>(), j["kv_bytes_per_seq_sa"].get<int64_t>());
  EXPECT_GT(j["wall_seconds"].get<double>(), 0.0);
  // Each confidence interval is the Wilson 95% interval of its accuracy over 200 problems.
  for (const char* key : {"sa_acc", "swa_sft_acc", "swa_rl_acc"}) {
    const auto ci = j[std::string(key) + "_ci95"];
    const auto [lo, hi] = Wilson95(j[key].get<double>(), 200);
    EXPECT_NEAR(ci[0].get<double>(), lo, 1e-4) << key;
    EXPECT_NEAR(ci[1].get<double>(), hi, 1e-4) << key;
  }

  // Sampled answers (issue 17): 8 per problem at the RL temperature on the first 50 problems;
  // sampled accuracy (= pass@1) <= pass@8, each inside its bootstrap interval. The SWA-SFT
  // model samples right answers far more often than its greedy answer is right.
  EXPECT_EQ(j["eval_samples_per_problem"].get<int>(), 8);
  EXPECT_EQ(j["eval_sampled_n"].get<int>(), 50);
  EXPECT_EQ(j["eval_temperature"].get<double>(), 1.0);
  for (const std::string p : {"sa", "swa_sft", "swa_rl"}) {
    ASSERT_TRUE(j[p + "_sampled_acc"].is_number()) << p;
    ASSERT_TRUE(j[p + "_pass_at_8"].is_number()) << p;
    const double acc = j[p + "_sampled_acc"].get<double>(), pass8 = j[p + "_pass_at_8"].get<double>();
    EXPECT_DOUBLE_EQ(j[p + "_pass_at_1"].get<double>(), acc) << p;
    EXPECT_LE(acc, pass8 + 1e-12) << p;
    for (const auto& [key, value] : {std::pair<std::string, double>{p + "_sampled_acc_ci95", acc},
                                     {p + "_pass_at_8_ci95", pass8}}) {
      EXPECT_LE(j[key][0].get<double>(), value) << key;
      EXPECT_GE(j[key][1].get<double>(), value) << key;
    }
  }
  EXPECT_GT(j["swa_sft_pass_at_8"].get<double>(), sft) << "pass@8 of the SWA-SFT model against its greedy accuracy";
  EXPECT_THAT(j["ci_method"].get<std::string>(), HasSubstr("bootstrap"));
  // The RL stage's PPO epochs x minibatches make the ratio leave 1: clipping acts on some step;
  // every step logs the response length.
  double max_clip = 0;
  int rl_lines = 0;
  const std::vector<std::string> lines =
      absl::StrSplit(cli_testing::Slurp(dir + "/stages/swa_rl/metrics.jsonl"), '\n', absl::SkipEmpty());
  for (const std::string& line : lines) {
    auto m = nlohmann::json::parse(line, nullptr, false);
    if (m.is_discarded() || !m.is_object()) continue;
    ++rl_lines;
    max_clip = std::max(max_clip, m.value("clip_frac", 0.0));
    EXPECT_GT(m.value("response_length_mean", 0.0), 0.0);
  }
  // 40 RL steps of 2 x 2 updates; a batch with a single group left after dynamic sampling
  // makes 2 updates, so the learner may take a step or two more to reach its 160.
  EXPECT_GE(rl_lines, 40);
  EXPECT_LE(rl_lines, 80);
  EXPECT_GT(max_clip, 0.0);

  const std::string report = cli_testing::Slurp(dir + "/report.md");
  EXPECT_THAT(report, HasSubstr("pass@8"));
  for (const char* plot : {"plots/rl_reward_accuracy.svg", "plots/window_friendly_share.svg", "plots/kv_memory.svg"}) {
    EXPECT_THAT(report, HasSubstr(plot));
    EXPECT_THAT(cli_testing::Slurp(dir + "/" + plot), HasSubstr("<svg")) << plot;
  }
  EXPECT_THAT(report, HasSubstr("before RL:"));
  EXPECT_THAT(report, HasSubstr("after RL:"));
  // The services' own record of the run agrees with the demo's.
  auto summary = nlohmann::json::parse(cli_testing::Slurp(dir + "/summary.json"), nullptr, false);
  ASSERT_FALSE(summary.is_discarded());
  EXPECT_EQ(summary["trajectory_ids_trained_twice"].get<int64_t>(), 0);
  EXPECT_EQ(summary["stages"].size(), 5u);
}

TEST(DemoTest, BadFlagsAreOneLineErrors) {
  cli_testing::ExpectUsageError("demo --device tpu", "--device must be cpu or cuda");
  cli_testing::ExpectUsageError("demo --seed -3", "--seed must be >= 0");
  cli_testing::ExpectUsageError("demo --configs /nonexistent", "no demo.yaml");
}

}  // namespace
}  // namespace swarr
