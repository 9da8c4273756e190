// `swarr coordinator` and `swarr status` as a user runs them: real processes.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using cli_testing::ExpectUsageError;
using cli_testing::RunSwarr;
using cli_testing::Slurp;
using cli_testing::TempDir;

const std::string kSource = SWARR_SOURCE_DIR;

std::string WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

std::string GoodPipeline(const std::string& dir) {
  return WriteFile(dir + "/good.yaml",
                   "stages:\n"
                   "  - name: pre\n"
                   "    train: {}\n"
                   "    model: {path: " + kSource + "/configs/models/tiny}\n"
                   "    data: {format: synthetic, synthetic_task: sum_digits}\n"
                   "    optimizer: {lr: 0.001}\n"
                   "    stop: {max_steps: 5}\n"
                   "  - name: ev\n"
                   "    eval: {greedy: true, max_new_tokens: 4}\n"
                   "    data: {format: synthetic, synthetic_task: sum_digits, synthetic_size: 3}\n");
}

TEST(CoordinatorCliTest, MalformedConfigsAreOneLineErrorsNamingTheField) {
  const std::string dir = TempDir();
  const std::string common = " --run-dir " + dir + "/run --learner 127.0.0.1:1";
  const std::string typo = WriteFile(dir + "/typo.yaml",
                                     "stages:\n  - name: a\n    rl: {prompts_per_step: lots}\n");
  ExpectUsageError("coordinator --config " + typo + common, {"typo.yaml", "stages[0].rl.prompts_per_step"});
  const std::string invalid = WriteFile(
      dir + "/invalid.yaml",
      "stages:\n  - name: a\n    rl: {prompts_per_step: 0, samples_per_prompt: 2, max_new_tokens: 4}\n"
      "    model: {path: m}\n    data: {format: synthetic, synthetic_task: sum_digits}\n"
      "    optimizer: {lr: 0.001}\n    stop: {max_steps: 5}\n"
      "workers: {heartbeat_seconds: 2, lease_seconds: 1}\n");
  ExpectUsageError("coordinator --config " + invalid + common,
                   {"invalid.yaml", "stages[0].rl.prompts_per_step", "workers.lease_seconds"});
  ExpectUsageError("coordinator --config " + dir + "/missing.yaml" + common, "missing.yaml");
  ExpectUsageError("coordinator --config " + GoodPipeline(dir) + " --run-dir " + dir + "/run", "--learner");
  ExpectUsageError("coordinator --config " + GoodPipeline(dir) + common + " --bogus 1", "--bogus");
  // The eval stage's data cannot be opened: named before anything starts.
  const std::string no_data = WriteFile(dir + "/nodata.yaml",
                                        "stages:\n  - name: ev\n    eval: {greedy: true, max_new_tokens: 4}\n"
                                        "    model: {path: " + kSource + "/configs/models/tiny}\n"
                                        "    data: {format: jsonl, path: " + dir + "/absent.jsonl}\n");
  const cli_testing::Result r = RunSwarr("coordinator --config " + no_data + common);
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_THAT(r.err, HasSubstr("swarr: stages[0] (ev): data."));
  ExpectUsageError("status", "--coordinator");
}

TEST(CoordinatorCliTest, StatusOfARunningCoordinatorAndSigterm) {
  const std::string dir = TempDir();
  const std::string config = GoodPipeline(dir);
  const std::string run = dir + "/run";
  // The learner is not there (port 1): the coordinator waits for it and says so.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string err = dir + "/coordinator.err";
    freopen(err.c_str(), "w", stderr);
    execl(cli_testing::SwarrBinary().c_str(), "swarr", "coordinator", "--config", config.c_str(), "--run-dir",
          run.c_str(), "--learner", "127.0.0.1:1", static_cast<char*>(nullptr));
    _exit(127);
  }
  std::string port;
  for (int i = 0; i < 1000 && port.empty(); ++i) {
    port = Slurp(run + "/ports/coordinator.port");
    if (port.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_FALSE(port.empty()) << Slurp(dir + "/coordinator.err");
  port = port.substr(0, port.find('\n'));

  const cli_testing::Result text = RunSwarr("status --coordinator 127.0.0.1:" + port);
  EXPECT_EQ(text.status, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("pipeline good"));
  EXPECT_THAT(text.out, HasSubstr("stage    0/2 pre (train)"));
  EXPECT_THAT(text.out, HasSubstr("workers (0)"));

  const cli_testing::Result json = RunSwarr("status --json --coordinator 127.0.0.1:" + port);
  ASSERT_EQ(json.status, 0) << json.err;
  const auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["pipeline"], "good");
  EXPECT_EQ(j["stageIndex"], 0);
  EXPECT_EQ(j["stageName"], "pre");
  EXPECT_EQ(j["groupsDispatched"], "0");
  EXPECT_THAT(j["error"].get<std::string>(), HasSubstr("learner"));
  EXPECT_EQ(j["stages"].size(), 2u);
  EXPECT_EQ(j["done"], false);

  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int raw = 0;
  ASSERT_EQ(waitpid(pid, &raw, 0), pid);
  ASSERT_TRUE(WIFEXITED(raw)) << Slurp(dir + "/coordinator.err");
  EXPECT_EQ(WEXITSTATUS(raw), 0) << Slurp(dir + "/coordinator.err");
  EXPECT_THAT(Slurp(dir + "/coordinator.err"), HasSubstr("SIGTERM"));
  const auto state = nlohmann::json::parse(Slurp(run + "/coordinator/state.json"));
  EXPECT_EQ(state["stage_index"], 0);
  EXPECT_EQ(state["pipeline"], "good");

  // Nobody there any more.
  const cli_testing::Result gone = RunSwarr("status --coordinator 127.0.0.1:" + port);
  EXPECT_EQ(gone.status, 1);
  EXPECT_THAT(gone.err, HasSubstr("UNAVAILABLE"));
}

}  // namespace
}  // namespace swarr
