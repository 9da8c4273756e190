// `swarr demo --quick` end to end in CI (issue 6): the services run the shortened schedule and
// the run leaves a complete, sane results.json and a report with its plots. The demo's
// criterion itself is measured over seeds in docs/results.md, not asserted here.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

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
  for (const char* key : {"sa_acc", "swa_sft_acc", "swa_rl_acc", "window_friendly_share_before_rl",
                          "window_friendly_share_after_rl"}) {
    EXPECT_GE(j[key].get<double>(), 0.0) << key;
    EXPECT_LE(j[key].get<double>(), 1.0) << key;
  }
  EXPECT_EQ(j["window"].get<int>(), 12);
  EXPECT_EQ(j["seed"].get<int>(), 1);
  EXPECT_EQ(j["eval_n"].get<int>(), 200);
  EXPECT_GT(j["kv_bytes_per_seq_swa"].get<int64_t>(), 0);
  EXPECT_LT(j["kv_bytes_per_seq_swa"].get<int64_t>(), j["kv_bytes_per_seq_sa"].get<int64_t>());
  EXPECT_GT(j["wall_seconds"].get<double>(), 0.0);
  // Each confidence interval contains its accuracy.
  for (const char* key : {"sa_acc", "swa_sft_acc", "swa_rl_acc"}) {
    const auto ci = j[std::string(key) + "_ci95"];
    EXPECT_LE(ci[0].get<double>(), j[key].get<double>()) << key;
    EXPECT_GE(ci[1].get<double>(), j[key].get<double>()) << key;
  }

  const std::string report = cli_testing::Slurp(dir + "/report.md");
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
