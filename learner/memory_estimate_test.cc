// The learner's GPU memory estimate (stage_common.h): what it counts, and that a stage on the
// CPU is never refused for it.
#include <cstdio>
#include <string>

#include <ATen/Context.h>

#include "gtest/gtest.h"
#include "common/testing/test_models.h"
#include "learner/stage_common.h"

namespace swarr {
namespace {

constexpr int64_t kParams = 1543714304;  // Qwen2.5-1.5B, tied embeddings
constexpr double kGib = 1 << 30;

TEST(MemoryEstimateTest, CountsStateActivationsAndLogProbChunk) {
  ScoringOptions s;
  s.chunk_tokens = 2048;
  const MemoryEstimate bf16 = EstimateTrainingMemory(Qwen15bShape(1024), kParams, at::kBFloat16, 16384, s, false);
  // bf16 weights and gradients (2 + 2 bytes), fp32 master + two AdamW moments (12 bytes).
  EXPECT_EQ(bf16.weights, 2 * kParams);
  EXPECT_EQ(bf16.gradients, 2 * kParams);
  EXPECT_EQ(bf16.optimizer, 12 * kParams);
  EXPECT_EQ(bf16.reference, 0);
  // One chunk of [2048, V]: bf16 logits and three float32 buffers.
  EXPECT_EQ(bf16.logprobs, int64_t{2048} * 151936 * (2 + 12));
  EXPECT_EQ(bf16.total(), bf16.weights + bf16.gradients + bf16.optimizer + bf16.activations + bf16.logprobs);
  // float32 models keep no master copy.
  const MemoryEstimate fp32 = EstimateTrainingMemory(Qwen15bShape(1024), kParams, at::kFloat, 16384, s, false);
  EXPECT_EQ(fp32.optimizer, 8 * kParams);
  // A frozen reference adds its weights.
  EXPECT_EQ(EstimateTrainingMemory(Qwen15bShape(1024), kParams, at::kBFloat16, 16384, s, true).reference, 2 * kParams);
  // Checkpointing keeps one [tokens, hidden] input per layer instead of every activation.
  ScoringOptions ck = s;
  ck.checkpoint_layers = true;
  const MemoryEstimate with_ck = EstimateTrainingMemory(Qwen15bShape(1024), kParams, at::kBFloat16, 16384, ck, false);
  EXPECT_LT(with_ck.activations * 5, bf16.activations);
  EXPECT_GE(with_ck.activations, int64_t{28} * 16384 * 1536 * 2);
  // Activations grow with the micro-batch; the log-prob chunk does not.
  const MemoryEstimate big = EstimateTrainingMemory(Qwen15bShape(1024), kParams, at::kBFloat16, 65536, s, false);
  EXPECT_EQ(big.activations, 4 * bf16.activations);
  EXPECT_EQ(big.logprobs, bf16.logprobs);
  // Unchunked: the whole micro-batch's [tokens, V].
  ScoringOptions whole;
  EXPECT_EQ(EstimateTrainingMemory(Qwen15bShape(1024), kParams, at::kBFloat16, 16384, whole, false).logprobs,
            int64_t{16384} * 151936 * 14);
  // The 1.5B step of the GPU benchmark: within an H200 with checkpointing.
  std::printf("1.5B, 16k tokens, checkpointing: %s\n", with_ck.ToString().c_str());
  EXPECT_LT(with_ck.total() / kGib, 100);
  EXPECT_GT(with_ck.total() / kGib, 24);  // the weights and optimizer state alone are ~24 GiB
}

TEST(MemoryEstimateTest, CpuStagesAreNeverRefused) {
  v1::Stage stage;
  stage.set_name("s");
  stage.mutable_model()->set_device("cpu");
  stage.mutable_memory()->set_max_gib(0.001);
  auto model = Model::RandomInit(TinyConfig({0}, 0, /*vocab=*/32), 1);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE(CheckStageFitsMemory(stage, **model, 1 << 20).ok());
  EXPECT_TRUE(PeakMemoryFields(**model).empty());
}

TEST(MemoryEstimateTest, ScoringFollowsTheDevice) {
  v1::Stage stage;
  stage.mutable_model()->set_device("cpu");
  ScoringOptions cpu = ScoringFromStage(stage);
  EXPECT_FALSE(cpu.packed);
  EXPECT_EQ(cpu.chunk_tokens, 0);  // CPU: unchanged, unchunked
  stage.mutable_model()->set_device("cuda:1");
  ScoringOptions gpu = ScoringFromStage(stage);
  EXPECT_TRUE(gpu.packed);
  EXPECT_EQ(gpu.chunk_tokens, 2048);
  EXPECT_FALSE(gpu.checkpoint_layers);
  stage.mutable_model()->set_dtype("float32");  // no FlashAttention: auto packing stays off
  EXPECT_FALSE(ScoringFromStage(stage).packed);
  stage.mutable_model()->set_dtype("bfloat16");
  EXPECT_TRUE(ScoringFromStage(stage).packed);
  stage.mutable_memory()->set_packing("off");
  stage.mutable_memory()->set_logprob_chunk_tokens(512);
  stage.mutable_memory()->set_activation_checkpointing(true);
  gpu = ScoringFromStage(stage);
  EXPECT_FALSE(gpu.packed);
  EXPECT_EQ(gpu.chunk_tokens, 512);
  EXPECT_TRUE(gpu.checkpoint_layers);
}

// On a GPU (skipped elsewhere): a stage whose estimate exceeds memory.max_gib is refused at the
// start with the estimate in the message; the same stage within its limit passes.
TEST(MemoryEstimateTest, GpuStageOverItsLimitIsRefusedWithTheEstimate) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  ModelOptions mo;
  mo.device = "cuda";
  auto model = Model::RandomInit(TinyConfig({0, 0}, 0, /*vocab=*/1000), 1, mo);
  ASSERT_TRUE(model.ok()) << model.status();
  v1::Stage stage;
  stage.set_name("big");
  stage.mutable_model()->set_device("cuda");
  stage.mutable_memory()->set_max_gib(0.01);
  const absl::Status refused = CheckStageFitsMemory(stage, **model, 1 << 20);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_NE(refused.message().find("GiB"), std::string::npos) << refused;
  EXPECT_NE(refused.message().find("'big'"), std::string::npos) << refused;
  EXPECT_TRUE(CheckStageFitsMemory(stage, **model, 16).ok());
  stage.mutable_memory()->set_max_gib(0);  // the device's memory
  EXPECT_TRUE(CheckStageFitsMemory(stage, **model, 1 << 20).ok());
  EXPECT_FALSE(PeakMemoryFields(**model).empty());
}

}  // namespace
}  // namespace swarr
