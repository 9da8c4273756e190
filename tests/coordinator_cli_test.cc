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
#include "common/util/subprocess.h"
#include "nlohmann/json.hpp"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using cli_testing::ExpectUsageError;
using cli_testing::RunSwarr;
using cli_testing::Slurp;
using cli_testing::TempDir;

const std::string kSource = SWARR_SOURCE_DIR;

std::string WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// A small train -> eval pipeline's stages (YAML).
std::string ToyStages() {
  return "stages:\n"
         "  - name: pre\n"
         "    train: {}\n"
         "    model: {path: " + kSource + "/configs/models/tiny}\n"
         "    data: {format: synthetic, synthetic_task: sum_digits}\n"
         "    optimizer: {lr: 0.001}\n"
         "    stop: {max_steps: 5}\n"
         "  - name: ev\n"
         "    eval: {greedy: true, max_new_tokens: 4}\n"
         "    data: {format: synthetic, synthetic_task: sum_digits, synthetic_size: 3}\n";
}

std::string GoodPipeline(const std::string& dir) { return WriteFile(dir + "/good.yaml", ToyStages()); }

TEST(CoordinatorCliTest, MalformedConfigsAreOneLineErrorsNamingTheField) {
  const std::string dir = TempDir();
  const std::string common = " --run-dir " + dir + "/run --learner 127.0.0.1:1 --insecure";
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
          run.c_str(), "--learner", "127.0.0.1:1", "--insecure", static_cast<char*>(nullptr));
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

// A `swarr` process with its output in `log`.
std::unique_ptr<Subprocess> StartSwarr(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv = {cli_testing::SwarrBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess::Options opts;
  opts.output_file = log;
  auto p = Subprocess::Start(argv, opts);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

// The port `proc` writes to `file` ("" once it has exited without, or after a minute).
std::string WaitForPort(const std::string& file, Subprocess* proc) {
  for (int i = 0; i < 3000; ++i) {
    const std::string text = Slurp(file);
    if (!text.empty() && text.back() == '\n') return text.substr(0, text.find('\n'));
    if (!proc->running()) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
}

// A learner, a coordinator (`coordinator_flags` added) and a rollout server as real processes
// on loopback, running a short pipeline (5 SFT steps, 3 greedy eval problems on the rollout).
struct ThreeServices {
  std::string dir = TempDir();
  std::unique_ptr<Subprocess> learner, coordinator, rollout;
  std::string Log(const std::string& name) const { return Slurp(dir + "/" + name + ".log"); }
  std::string Logs() const {
    return "--- learner\n" + Log("learner") + "--- coordinator\n" + Log("coordinator") + "--- rollout\n" +
           Log("rollout");
  }

  explicit ThreeServices(const std::vector<std::string>& coordinator_flags) {
    const std::string config =
        WriteFile(dir + "/end.yaml", "workers: {heartbeat_seconds: 0.3, lease_seconds: 2}\n" + ToyStages());
    const std::string run = dir + "/run";
    learner = StartSwarr({"learner", "--run-dir", run, "--port-file", dir + "/learner.port", "--insecure"},
                         dir + "/learner.log");
    if (learner == nullptr) return;
    const std::string learner_port = WaitForPort(dir + "/learner.port", learner.get());
    if (learner_port.empty()) return;
    std::vector<std::string> args = {"coordinator", "--config", config, "--run-dir", run,
                                     "--learner", "127.0.0.1:" + learner_port, "--insecure"};
    args.insert(args.end(), coordinator_flags.begin(), coordinator_flags.end());
    coordinator = StartSwarr(args, dir + "/coordinator.log");
    if (coordinator == nullptr) return;
    const std::string port = WaitForPort(run + "/ports/coordinator.port", coordinator.get());
    if (port.empty()) return;
    rollout = StartSwarr({"rollout", "--coordinator", "127.0.0.1:" + port, "--name", "r0", "--insecure"},
                         dir + "/rollout.log");
  }
};

TEST(CoordinatorCliTest, PipelineEndEndsTheLearnerAndTheRolloutServers) {
  ThreeServices s({});
  ASSERT_NE(s.rollout, nullptr) << s.Logs();
  ASSERT_EQ(s.coordinator->Wait(300), 0) << s.Logs();
  const auto summary = nlohmann::json::parse(Slurp(s.dir + "/run/summary.json"));
  EXPECT_EQ(summary["stages"][1]["state"], "done") << summary.dump();
  // Told by the coordinator, both end by themselves, with status 0.
  EXPECT_EQ(s.learner->Wait(60), 0) << s.Logs();
  EXPECT_EQ(s.rollout->Wait(60), 0) << s.Logs();
  EXPECT_THAT(s.Log("learner"), HasSubstr("the pipeline has ended: checkpointing the running stage and exiting"));
  EXPECT_THAT(s.Log("rollout"), HasSubstr("the pipeline 'end' has ended; exiting"));
  EXPECT_THAT(s.Log("rollout"), Not(HasSubstr("heartbeat failed"))) << s.Logs();
}

TEST(CoordinatorCliTest, PipelineEndWithAtEndIdleLeavesThemUpAndQuiet) {
  ThreeServices s({"--at-end", "idle"});
  ASSERT_NE(s.rollout, nullptr) << s.Logs();
  ASSERT_EQ(s.coordinator->Wait(300), 0) << s.Logs();
  // The rollout server was told before the coordinator exited.
  EXPECT_THAT(s.Log("rollout"), HasSubstr("the pipeline 'end' has ended; idle until stopped")) << s.Logs();
  EXPECT_TRUE(s.learner->running()) << s.Logs();
  EXPECT_TRUE(s.rollout->running()) << s.Logs();
  // Stopped the usual way, both still exit 0; the idle server sends no heartbeat meanwhile.
  s.rollout->Signal(SIGTERM);
  s.learner->Signal(SIGTERM);
  EXPECT_EQ(s.rollout->Wait(60), 0) << s.Logs();
  EXPECT_EQ(s.learner->Wait(60), 0) << s.Logs();
  EXPECT_THAT(s.Log("rollout"), Not(HasSubstr("heartbeat failed"))) << s.Logs();
  EXPECT_THAT(s.Log("learner"), HasSubstr("SIGTERM")) << s.Logs();
  // A bad value is a usage error naming the flag.
  ExpectUsageError("coordinator --config " + s.dir + "/end.yaml --run-dir " + s.dir + "/run2 --learner 127.0.0.1:1"
                   " --insecure --at-end sometimes", {"--at-end", "sometimes"});
}

}  // namespace
}  // namespace swarr
