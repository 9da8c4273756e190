// Multi-process pipeline tests: run `swarr launch` (coordinator, learner, rollout servers as
// real processes on loopback) on a toy pipeline and look at it from outside — its run
// directory, its processes, its gRPC services and its /metrics endpoints.
#ifndef SWARR_TESTS_PIPELINE_TESTING_H_
#define SWARR_TESTS_PIPELINE_TESTING_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/testing/http_get.h"
#include "common/util/file.h"
#include "common/util/subprocess.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/swarr_cli.h"

namespace swarr {
namespace pipeline_testing {

// Settings of the toy pipeline (configs/examples/pipeline_toy.yaml, made smaller): the tiny
// model learns one-digit sums by SFT (300 steps: greedy eval accuracy 1.0 here, 0.13 after 60),
// then RL at a small learning rate keeps it there (mean reward ~0.66 at temperature 1; larger
// rates, 3e-4 and up, make this toy's reward and accuracy fall within 12 steps), then eval. The
// fault tests check that the model still works at the end (pipeline_test.cc).
struct ToyPipeline {
  int sft_steps = 300;
  int rl_steps = 12;
  int rl_prompts = 8;
  int rl_samples = 8;
  int rl_checkpoint_every = 0;
  int eval_problems = 100;
  double rl_lr = 3e-5;
  double heartbeat_seconds = 0.3;
  double lease_seconds = 2.0;
  int max_sequences = 64;

  std::string Yaml() const {
    return absl::StrCat(R"(name: toy
workers: {max_sequences: )", max_sequences, ", heartbeat_seconds: ", heartbeat_seconds,
                        ", lease_seconds: ", lease_seconds, R"(}
stages:
  - name: sft
    train: {micro_batch_tokens: 1024, max_seq_len: 64}
    model: {path: )", SWARR_SOURCE_DIR, R"(/configs/models/tiny, dtype: float32}
    data: {format: synthetic, synthetic_task: sum_digits, chat_template: none, seed: 1}
    optimizer: {lr: 1.0e-3, weight_decay: 0.01, beta2: 0.99, warmup_steps: 10, schedule: cosine, min_lr_ratio: 0.1}
    stop: {max_steps: )", sft_steps, R"(}
  - name: rl
    rl: {prompts_per_step: )", rl_prompts, ", samples_per_prompt: ", rl_samples,
                        R"(, max_new_tokens: 4, reward: exact, clip_high: 0.28, max_importance_weight: 2.0}
    model: {attention: {window: 28}}
    data: {format: synthetic, synthetic_task: sum_digits, chat_template: none, seed: 2}
    optimizer: {lr: )", rl_lr, R"(, grad_clip: 1.0}
    stop: {max_steps: )", rl_steps, R"(}
    checkpoint: {every_steps: )", rl_checkpoint_every, R"(}
  - name: eval
    eval: {num_problems: )", eval_problems, R"(, greedy: true, max_new_tokens: 4}
    model: {attention: {window: 28}}
    data: {format: synthetic, synthetic_task: sum_digits, synthetic_size: )", eval_problems,
                        R"(, chat_template: none, seed: 99}
)");
  }
};

inline bool WaitUntil(const std::function<bool()>& done, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

inline std::vector<nlohmann::json> JsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  for (absl::string_view line : absl::StrSplit(cli_testing::Slurp(path), '\n', absl::SkipWhitespace())) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

// GET http://127.0.0.1:PORT/PATH; the body ("" on failure).
inline std::string HttpGet(int port, const std::string& path) { return testing_http::GetBody(port, path); }

// A free TCP port on loopback (bound and released; good enough for a test).
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

// The entry of worker `name` in `swarr status --json` of the coordinator on `port`, asked with
// the operator token of `token_dir` (null when it is not listed or the coordinator did not
// answer). Proto JSON: int64 fields are strings, fields at their default value are left out.
inline nlohmann::json WorkerStatus(int port, const std::string& name, const std::string& token_dir) {
  const auto r =
      cli_testing::RunSwarr(absl::StrCat("status --json --coordinator 127.0.0.1:", port, " --token-dir ", token_dir));
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.contains("workers")) return nullptr;
  for (const auto& w : j["workers"]) {
    if (w.value("name", "") == name) return w;
  }
  return nullptr;
}

// One `swarr launch` run in its own directory, output in DIR/launch.log.
class LaunchRun {
 public:
  explicit LaunchRun(const ToyPipeline& pipeline, int rollouts = 2, std::vector<std::string> extra = {})
      : LaunchRun(pipeline.Yaml(), rollouts, std::move(extra)) {}
  LaunchRun(const std::string& yaml, int rollouts, std::vector<std::string> extra = {})
      : dir_(cli_testing::TempDir()) {
    const std::string config = dir_ + "/pipeline.yaml";
    EXPECT_TRUE(WriteFileAtomically(config, {yaml}).ok());
    std::vector<std::string> argv = {cli_testing::SwarrBinary(), "launch", "--config", config, "--run-dir",
                                     dir_ + "/run", "--rollouts", std::to_string(rollouts)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Subprocess::Options opts;
    opts.output_file = dir_ + "/launch.log";
    auto p = Subprocess::Start(argv, opts);
    EXPECT_TRUE(p.ok()) << p.status();
    if (p.ok()) proc_ = std::move(*p);
  }
  ~LaunchRun() {
    if (proc_ && proc_->running()) {
      proc_->Signal(SIGTERM);
      if (proc_->Wait(60) < 0) proc_->Signal(SIGKILL);
    }
  }

  const std::string& dir() const { return dir_; }
  std::string run() const { return dir_ + "/run"; }
  // The per-role tokens `swarr launch` made for the run (RUN/tokens/<role>.token).
  std::string tokens() const { return run() + "/tokens"; }
  Subprocess& proc() { return *proc_; }
  std::string Log() const { return cli_testing::Slurp(dir_ + "/launch.log"); }

  int Wait(double seconds) { return proc_->Wait(seconds); }
  int Port(const std::string& file) const {
    int port = 0;
    const std::string text = cli_testing::Slurp(run() + "/ports/" + file);
    return absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &port) ? port : 0;
  }
  int ServicePort(const std::string& name) const { return Port(name + ".port"); }
  int MetricsPort(const std::string& name) const { return Port(name + ".metrics.port"); }
  pid_t Pid(const std::string& name) const {
    int pid = 0;
    const std::string text = cli_testing::Slurp(run() + "/pids/" + name + ".pid");
    return absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid) ? pid : 0;
  }
  std::vector<nlohmann::json> StageMetrics(const std::string& stage) const {
    return JsonLines(run() + "/stages/" + stage + "/metrics.jsonl");
  }
  // Optimizer steps the rl stage has logged so far.
  int RlSteps() const { return static_cast<int>(StageMetrics("rl").size()); }
  nlohmann::json Summary() const {
    auto j = nlohmann::json::parse(cli_testing::Slurp(run() + "/summary.json"), nullptr, false);
    return j.is_discarded() ? nlohmann::json() : j;
  }

 private:
  std::string dir_;
  std::unique_ptr<Subprocess> proc_;
};

}  // namespace pipeline_testing
}  // namespace swarr

#endif  // SWARR_TESTS_PIPELINE_TESTING_H_
