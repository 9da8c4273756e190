// The `swarr` binary as other tools use it: exact interfaces, exit statuses, errors.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "common/model/config.h"
#include "common/model/tensor_io.h"
#include "common/testing/numeric.h"
#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace cli_testing;  // NOLINT

const std::string kFixtures = std::string(SWARR_SHARED_DIR) + "/fixtures/hf/";

using testing_numeric::Float32Tolerance;
using testing_numeric::RelErr;
using testing_numeric::RelErrWithin;

// Float32 rounding tolerance of the logits of fixture `dir` over `positions` (docs/testing.md).
double FixtureTolerance(const std::string& dir, int64_t positions) {
  auto config = LoadModelConfig(dir);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? Float32Tolerance(ForwardReductionLength(*config, positions)) : 0.0;
}

TEST(CliTest, ScoreMatchesTransformersLogits) {
  for (const std::string name : {"qwen2_swa", "llama_full"}) {
    const std::string dir = kFixtures + name;
    const std::string out = TempDir() + "/logits.safetensors";
    Result r = RunSwarr("score --model " + dir + " --input " + dir + "/expected.safetensors --out " + out);
    ASSERT_EQ(r.status, 0) << r.err;
    auto got = ReadTensor(out, "logits");
    auto want = ReadTensor(dir + "/expected.safetensors", "logits");
    ASSERT_TRUE(got.ok() && want.ok());
    EXPECT_EQ(got->scalar_type(), at::kFloat);
    // Transformers' float32 logits from PyTorch's kernels: equal up to rounding.
    EXPECT_TRUE(RelErrWithin(*got, *want, FixtureTolerance(dir, want->size(1)))) << name;
  }
}

TEST(CliTest, ScoreWindowOverrideChangesOnlyLaterPositions) {
  const std::string dir = kFixtures + "qwen2_full";
  const std::string a = TempDir() + "/a.safetensors", b = TempDir() + "/b.safetensors";
  ASSERT_EQ(RunSwarr("score --model " + dir + " --input " + dir + "/expected.safetensors --out " + a).status, 0);
  ASSERT_EQ(RunSwarr("score --model " + dir + " --input " + dir + "/expected.safetensors --out " + b +
                " --window 8 --sinks 2").status, 0);
  at::Tensor full = *ReadTensor(a, "logits"), swa = *ReadTensor(b, "logits");
  // W = 8 with 2 sinks: position q sees q-7..q and 0, 1, i.e. everything up to q = 9;
  // position 10 is the first to lose a key (position 2).
  // Band against full attention: other kernels, equal up to rounding before that.
  const double tol = FixtureTolerance(dir, full.size(1));
  EXPECT_TRUE(RelErrWithin(full.narrow(1, 0, 10), swa.narrow(1, 0, 10), tol));
  EXPECT_GT(RelErr(full.narrow(1, 10, 1), swa.narrow(1, 10, 1)), 10 * tol) << "tolerance " << tol;
}

TEST(CliTest, GreedyGenerateMatchesTransformers) {
  const std::string dir = kFixtures + "qwen2_swa";
  at::Tensor prompt = *ReadTensor(dir + "/expected.safetensors", "gen2_prompt");
  at::Tensor output = *ReadTensor(dir + "/expected.safetensors", "gen2_output");
  at::Tensor margin = *ReadTensor(dir + "/expected.safetensors", "gen2_margin");
  std::string ids;
  for (int64_t i = 0; i < prompt.numel(); ++i) ids += (i ? "," : "") + std::to_string(prompt[0][i].item<int64_t>());
  Result r = RunSwarr("generate --model " + dir + " --prompt-ids " + ids + " --max-new-tokens 40 --greedy --ignore-eos");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  std::vector<int64_t> got = j["ids"];
  ASSERT_EQ(static_cast<int64_t>(got.size()), output.size(1));
  EXPECT_EQ(j["logprobs"].size(), 40u);
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != output[0][i].item<int64_t>()) {
      EXPECT_LT(margin[i - prompt.numel()].item<float>(), 1e-3) << "differs at " << i;
      break;
    }
  }
}

TEST(CliTest, SampledGenerateIsSeeded) {
  const std::string base = "generate --model " + kFixtures + "llama_full --prompt-ids 5,17,42 --max-new-tokens 12 "
                           "--temperature 0.9 --top-p 0.95 --top-k 50 --ignore-eos --seed ";
  Result a = RunSwarr(base + "7"), b = RunSwarr(base + "7"), c = RunSwarr(base + "8");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_NE(a.out, c.out);
  auto j = nlohmann::json::parse(a.out);
  EXPECT_EQ(j["ids"].size(), 15u);
  for (double lp : j["logprobs"]) EXPECT_LE(lp, 0.0);
}

TEST(CliTest, ConvertWritesALoadableCheckpoint) {
  const std::string out = TempDir() + "/converted";
  Result r = RunSwarr("convert --model " + kFixtures + "qwen2_full --out " + out + " --layer-windows 8,0,8 --sinks 1");
  ASSERT_EQ(r.status, 0) << r.err;
  auto config = nlohmann::json::parse(Slurp(out + "/config.json"));
  EXPECT_EQ(config["layer_types"], nlohmann::json({"sliding_attention", "full_attention", "sliding_attention"}));
  EXPECT_EQ(config["sliding_window"], 8);
  const std::string a = TempDir() + "/a.safetensors", b = TempDir() + "/b.safetensors";
  const std::string input = kFixtures + "qwen2_full/expected.safetensors";
  ASSERT_EQ(RunSwarr("score --model " + out + " --input " + input + " --out " + a).status, 0);
  ASSERT_EQ(RunSwarr("score --model " + kFixtures + "qwen2_full --layer-windows 8,0,8 --sinks 1 --input " + input +
                " --out " + b).status, 0);
  // The converted checkpoint holds the same float32 weights bit for bit and the same windows:
  // the same code gives identical logits.
  EXPECT_TRUE(at::equal(*ReadTensor(a, "logits"), *ReadTensor(b, "logits")));
}

TEST(CliTest, BadArgumentsAndInputs) {
  const std::string model = kFixtures + "llama_full";
  const std::string input = model + "/expected.safetensors";
  const std::string out = TempDir() + "/x.safetensors";
  ExpectUsageError("frobnicate", "unknown command 'frobnicate'");
  ExpectUsageError("score --model " + model + " --input " + input, "--out");
  ExpectUsageError("score --model " + model + " --input " + input + " --out " + out + " --bogus 1", "--bogus");
  ExpectUsageError("score --model /nonexistent --input " + input + " --out " + out, "/nonexistent");
  ExpectUsageError("score --model " + model + " --input " + input + " --out " + out + " --window -4", "negative");
  ExpectUsageError("score --model " + model + " --input " + input + " --out " + out + " --window x", "--window");
  ExpectUsageError("score --model " + model + " --input " + input + " --out " + out + " --layer-windows 4,4",
                   "2 entries");
  ExpectUsageError("generate --model " + model + " --prompt-ids 5,600 --max-new-tokens 3", "id 600");
  ExpectUsageError("generate --model " + model + " --prompt-ids 5,x --max-new-tokens 3", "--prompt-ids");
  ExpectUsageError("generate --model " + model + " --prompt-ids 5 --max-new-tokens 3 --greedy --temperature 2",
                   "--greedy");
  ExpectUsageError("generate --model " + model + " --prompt-ids 5 --max-new-tokens 3 --top-p 1.5", "top_p");
  ExpectUsageError("generate --model " + model + " --prompt-ids 5", "--max-new-tokens");

  // Input files: missing tensor, wrong dtype, corrupt file, out-of-vocabulary ids.
  const std::string dir = TempDir();
  ASSERT_TRUE(WriteTensors(dir + "/noids.safetensors", {{"x", at::zeros({2})}}).ok());
  ExpectUsageError("score --model " + model + " --input " + dir + "/noids.safetensors --out " + out, "input_ids");
  ASSERT_TRUE(WriteTensors(dir + "/float.safetensors", {{"input_ids", at::zeros({1, 4})}}).ok());
  ExpectUsageError("score --model " + model + " --input " + dir + "/float.safetensors --out " + out, "int64");
  std::ofstream(dir + "/corrupt.safetensors") << "\x10\0\0\0\0\0\0\0{\"a\": broken";
  ExpectUsageError("score --model " + model + " --input " + dir + "/corrupt.safetensors --out " + out,
                   "corrupt.safetensors");
  ASSERT_TRUE(WriteTensors(dir + "/oov.safetensors",
                           {{"input_ids", at::tensor({3L, 4L, 9999L}, at::kLong).view({1, 3})}}).ok());
  ExpectUsageError("score --model " + model + " --input " + dir + "/oov.safetensors --out " + out, "9999");

  // A GPU device on a machine without one.
  if (!at::hasCUDA()) ExpectUsageError("score --model " + model + " --input " + input + " --out " + out + " --device cuda",
                   "no CUDA support or sees no GPU");

  // A model directory whose config is broken.
  const std::string bad_model = TempDir();
  std::ofstream(bad_model + "/config.json") << R"({"model_type": "gpt_neox", "vocab_size": 10})";
  ExpectUsageError("score --model " + bad_model + " --input " + input + " --out " + out, "gpt_neox");
}

}  // namespace
}  // namespace swarr
