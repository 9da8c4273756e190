// The embedded experiment's committed files (configs/demo/, docs/demo-task.md): the SA
// pretraining stage runs (briefly, on the CPU) and its output evaluates; the committed SA
// checkpoint is small and still solves the task; the pipelines agree with the stage files.
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/config/config_loader.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {
namespace {

const std::string kSource = SWARR_SOURCE_DIR;
const std::string kBin = std::string(SWARR_BINARY_DIR) + "/bin";
const std::string kDemo = kSource + "/configs/demo";

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string TempDir() {
  char tmpl[] = "/tmp/swarr_demo_XXXXXX";
  return mkdtemp(tmpl);
}

// Exit status of a shell command (stdout to *out, stderr appended to *err).
int RunCommand(const std::string& cmd, std::string* out, std::string* err) {
  const std::string dir = TempDir();
  const int raw = std::system((cmd + " >" + dir + "/out 2>" + dir + "/err").c_str());
  *out = Slurp(dir + "/out");
  *err = Slurp(dir + "/err");
  return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
}

void Replace(std::string* text, const std::string& from, const std::string& to) {
  const size_t at = text->find(from);
  ASSERT_NE(at, std::string::npos) << from;
  text->replace(at, from.size(), to);
}

v1::Stage LoadStage(const std::string& path) {
  v1::Stage stage;
  const absl::Status st = LoadYamlConfig(path, &stage);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_TRUE(ValidateStage(stage).ok());
  return stage;
}

v1::PipelineConfig LoadPipeline(const std::string& path) {
  v1::PipelineConfig p;
  const absl::Status st = LoadYamlConfig(path, &p);
  EXPECT_TRUE(st.ok()) << st;
  EXPECT_TRUE(ValidatePipeline(p).ok()) << ValidatePipeline(p);
  return p;
}

// The committed pretraining stage, shortened to a few CPU steps, trains from random
// initialisation, and demo_eval reads what it wrote.
TEST(DemoConfigsTest, PretrainingStageRunsBriefly) {
  const std::string dir = TempDir();
  std::string yaml = Slurp(kDemo + "/sa_pretrain.yaml");
  Replace(&yaml, "path: configs/demo/model_init", "path: " + kDemo + "/model_init");
  Replace(&yaml, "max_steps: 4000", "max_steps: 4");
  Replace(&yaml, "warmup_steps: 200", "warmup_steps: 1");
  Replace(&yaml, "synthetic_size: 400000", "synthetic_size: 300");
  Replace(&yaml, "micro_batch_tokens: 32768", "micro_batch_tokens: 2048");
  Replace(&yaml, "every_steps: 1000", "every_steps: 2");
  std::ofstream(dir + "/stage.yaml") << yaml;
  std::string out, err;
  ASSERT_EQ(RunCommand("OMP_NUM_THREADS=1 " + kBin + "/swarr train --config " + dir + "/stage.yaml --run-dir " + dir + "/run",
                &out, &err),
            0)
      << err;
  std::vector<nlohmann::json> rows;
  std::istringstream metrics(Slurp(dir + "/run/metrics.jsonl"));
  for (std::string line; std::getline(metrics, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_LT(rows.back()["loss"].get<double>(), rows.front()["loss"].get<double>());
  const auto config = nlohmann::json::parse(Slurp(dir + "/run/final/config.json"));
  EXPECT_EQ(config["num_hidden_layers"], 2);
  EXPECT_EQ(config["vocab_size"], 24);
  ASSERT_EQ(RunCommand("OMP_NUM_THREADS=1 " + kBin + "/demo_eval --config " + kDemo + "/eval.yaml --model " + dir +
                    "/run/final --window 0 --n 4",
                &out, &err),
            0)
      << err;
  const auto result = nlohmann::json::parse(out);
  EXPECT_EQ(result["n"], 4);
}

// The committed SA checkpoint: small, and (full attention, greedy) it solves held-out
// problems; the same weights under the 12-token window without SFT do not.
TEST(DemoConfigsTest, CommittedSaCheckpointSolvesTheTask) {
  struct stat st;
  ASSERT_EQ(::stat((kDemo + "/sa_model/model.safetensors").c_str(), &st), 0);
  EXPECT_LT(st.st_size, 10 << 20);
  std::string out, err;
  ASSERT_EQ(RunCommand("cd " + kSource + " && OMP_NUM_THREADS=1 " + kBin + "/demo_eval --config configs/demo/eval.yaml --n 40",
                &out, &err),
            0)
      << err;
  const auto sa = nlohmann::json::parse(out);
  EXPECT_GE(sa["accuracy"].get<double>(), 0.95) << out;
  ASSERT_EQ(RunCommand("cd " + kSource + " && OMP_NUM_THREADS=1 " + kBin +
                    "/demo_eval --config configs/demo/eval.yaml --n 40 --window 12",
                &out, &err),
            0)
      << err;
  const auto swa = nlohmann::json::parse(out);
  EXPECT_LE(swa["accuracy"].get<double>(), 0.4) << out;
}

// configs/demo/demo.yaml runs the stage files' settings; demo_quick.yaml differs only where
// its header says.
TEST(DemoConfigsTest, PipelinesAgreeWithTheStageFiles) {
  const v1::PipelineConfig demo = LoadPipeline(kDemo + "/demo.yaml");
  const v1::PipelineConfig quick = LoadPipeline(kDemo + "/demo_quick.yaml");
  ASSERT_EQ(demo.stages_size(), 5);
  ASSERT_EQ(quick.stages_size(), 5);
  const v1::Stage eval = LoadStage(kDemo + "/eval.yaml");
  v1::Stage sft = LoadStage(kDemo + "/swa_sft.yaml");
  v1::Stage rl = LoadStage(kDemo + "/swa_rl.yaml");
  LoadStage(kDemo + "/sa_pretrain.yaml");
  // In the pipeline, stages after the first start from the previous stage's model.
  sft.mutable_model()->clear_path();
  rl.mutable_model()->clear_path();
  // The pipeline's rl stage also logs its trajectories (swarr demo plots their style per step).
  rl.mutable_rl()->set_log_trajectories(true);
  auto same = [](v1::Stage a, v1::Stage b) {
    a.clear_name();
    b.clear_name();
    return a.SerializeAsString() == b.SerializeAsString();
  };
  v1::Stage eval_swa = eval;
  eval_swa.mutable_model()->clear_path();
  eval_swa.mutable_model()->mutable_attention()->set_window(12);
  EXPECT_TRUE(same(demo.stages(0), eval)) << demo.stages(0).DebugString();
  EXPECT_TRUE(same(demo.stages(1), sft)) << demo.stages(1).DebugString();
  EXPECT_TRUE(same(demo.stages(2), eval_swa)) << demo.stages(2).DebugString();
  EXPECT_TRUE(same(demo.stages(3), rl)) << demo.stages(3).DebugString();
  EXPECT_TRUE(same(demo.stages(4), eval_swa)) << demo.stages(4).DebugString();
  // Quick: fewer SFT and RL steps, fewer evaluation problems, and the SFT data at 10 %
  // window-friendly instead of the default's 2 % (CI's smoke check keeps its margin).
  v1::PipelineConfig expected = demo;
  expected.set_name("demo_quick");
  for (v1::Stage& s : *expected.mutable_stages()) {
    if (s.has_eval()) {
      s.mutable_eval()->set_num_problems(200);
      s.mutable_eval()->set_sampled_problems(50);
      s.mutable_data()->set_synthetic_size(200);
    }
  }
  expected.mutable_stages(1)->mutable_stop()->set_max_steps(150);
  expected.mutable_stages(1)->mutable_data()->set_synthetic_task("lagsum:m=5,n=6-9,wf=0.1");
  expected.mutable_stages(3)->mutable_stop()->set_max_steps(40);
  EXPECT_EQ(quick.SerializeAsString(), expected.SerializeAsString()) << quick.DebugString();
}

}  // namespace
}  // namespace swarr
