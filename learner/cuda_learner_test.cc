// The learner's GPU path (issue: GPU learner): FlashAttention-2 training attention over packed
// sequences, chunked log-probs, checkpointed layers, against float64 references and against
// the rollout engine's log-probs. Skipped where LibTorch sees no GPU (CI builds it and reports
// it skipped); bench/gpu/learner_bench.sh runs it on the GPU machine.
//
// Tolerance rule for bf16 (as common/model/cuda_test.cc): a GPU result's error against a
// float64 ground truth may be at most twice the error of the plain implementation (the band
// path) at the same precision, plus a small floor.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <torch/csrc/autograd/autograd.h>

#include "absl/strings/str_cat.h"
#include "common/attention/attention.h"
#include "common/attention/flash_train.h"
#include "common/model/generator.h"
#include "common/model/model.h"
#include "common/testing/test_models.h"
#include "gtest/gtest.h"
#include "learner/logprobs.h"
#include "learner/rl_trainer.h"

namespace swarr {
namespace {

double RelErr(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.detach().to(at::kCPU, at::kDouble), y = b.detach().to(at::kCPU, at::kDouble);
  return (x - y).norm().item<double>() / y.norm().item<double>();
}

class CudaLearnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
    at::globalContext().setAllowTF32CuBLAS(false);
  }
};

// Packed sequences of different lengths through FlashAttention-2 (window with sinks, window,
// full; GQA): values
// and q/k/v gradients against a float64 per-sequence reference, within 2x the band path's
// bf16 error.
TEST_F(CudaLearnerTest, FlashVarlenAttentionMatchesReference) {
  if (!FlashTrainAttentionBuilt()) GTEST_SKIP() << "no FlashAttention training path in this build";
  const std::vector<int64_t> lengths = {300, 17, 1024, 1, 555};
  std::vector<int32_t> cu{0};
  for (int64_t l : lengths) cu.push_back(cu.back() + static_cast<int32_t>(l));
  const int64_t total = cu.back(), H = 8, Hkv = 2, D = 64;
  for (int64_t window : {16, 128, 0}) {
    at::manual_seed(window + 1);
    // Window 16 with 4 sinks: FlashAttention-2 merged with the sink attention by log-sum-exp.
    AttentionSpec spec{window, window == 16 ? 4 : 0, 0.125};
    at::Tensor q32 = at::randn({total, H, D}), k32 = at::randn({total, Hkv, D}), v32 = at::randn({total, Hkv, D});
    at::Tensor go = at::randn({total, H, D});
    // Per sequence: float64 truth on the CPU, and the band path in bf16 on the GPU.
    std::vector<at::Tensor> truth_out, truth_g[3], band_out, band_g[3];
    for (size_t i = 0; i < lengths.size(); ++i) {
      const int64_t s = cu[i], l = lengths[i];
      auto bhtd = [&](const at::Tensor& t) { return t.narrow(0, s, l).transpose(0, 1).unsqueeze(0); };
      std::vector<at::Tensor> in64 = {bhtd(q32).to(at::kDouble).requires_grad_(), bhtd(k32).to(at::kDouble).requires_grad_(),
                                      bhtd(v32).to(at::kDouble).requires_grad_()};
      at::Tensor o64 = ReferenceSelfAttention(in64[0], in64[1], in64[2], spec);
      auto g64 = torch::autograd::grad({o64}, in64, {bhtd(go).to(at::kDouble)});
      std::vector<at::Tensor> inb = {bhtd(q32).to(at::kCUDA, at::kBFloat16).requires_grad_(),
                                     bhtd(k32).to(at::kCUDA, at::kBFloat16).requires_grad_(),
                                     bhtd(v32).to(at::kCUDA, at::kBFloat16).requires_grad_()};
      at::Tensor ob = BandAttention(inb[0], inb[1], inb[2], spec);
      auto gb = torch::autograd::grad({ob}, inb, {bhtd(go).to(at::kCUDA, at::kBFloat16)});
      auto back = [](const at::Tensor& t) { return t.squeeze(0).transpose(0, 1).to(at::kCPU, at::kDouble); };
      truth_out.push_back(back(o64));
      band_out.push_back(back(ob));
      for (int j = 0; j < 3; ++j) {
        truth_g[j].push_back(back(g64[j]));
        band_g[j].push_back(back(gb[j]));
      }
    }
    std::vector<at::Tensor> in = {q32.to(at::kCUDA, at::kBFloat16).requires_grad_(),
                                  k32.to(at::kCUDA, at::kBFloat16).requires_grad_(),
                                  v32.to(at::kCUDA, at::kBFloat16).requires_grad_()};
    at::Tensor cu_t = at::tensor(cu, at::kInt).to(at::kCUDA);
    at::Tensor out = FlashVarlenSelfAttention(in[0], in[1], in[2], cu_t, 1024, spec);
    auto grads = torch::autograd::grad({out}, in, {go.to(at::kCUDA, at::kBFloat16)});
    const double fe = RelErr(out, at::cat(truth_out)), be = RelErr(at::cat(band_out), at::cat(truth_out));
    std::printf("window %lld: out rel err flash %.2e band %.2e\n", static_cast<long long>(window), fe, be);
    EXPECT_LE(fe, 2 * be + 1e-6);
    for (int j = 0; j < 3; ++j) {
      const double fg = RelErr(grads[j], at::cat(truth_g[j])), bg = RelErr(at::cat(band_g[j]), at::cat(truth_g[j]));
      std::printf("  grad %d rel err flash %.2e band %.2e\n", j, fg, bg);
      EXPECT_LE(fg, 2 * bg + 1e-6) << "grad " << j << " window " << window;
    }
  }
}

// A bf16 model on the GPU: ScoreSequences packed through FlashAttention-2 with chunked
// log-probs and checkpointed layers, against the same weights in float32 on the CPU (the
// ground truth: ~1e-7 against bf16's ~1e-2); within
// 2x the error of the unpacked band path in bf16. Gradients likewise.
TEST_F(CudaLearnerTest, PackedFlashScoringMatchesFloat32) {
  ModelConfig c = TinyConfig({32, 0, 32}, /*sinks=*/2, /*vocab=*/500);
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 32;
  auto cpu = SharpRandomModel(c, 3, 1.0);
  std::vector<std::pair<std::string, at::Tensor>> weights;
  for (const auto& [name, p] : cpu->named_parameters()) weights.push_back({name, p});
  ModelOptions o64, obf;  // o64: float32 on the CPU
  obf.device = "cuda";
  obf.dtype = "bfloat16";
  auto m64 = Model::FromTensors(c, weights, o64);
  auto mbf = Model::FromTensors(c, weights, obf);
  ASSERT_TRUE(m64.ok()) << m64.status();
  ASSERT_TRUE(mbf.ok()) << mbf.status();
  std::vector<std::vector<int64_t>> prompts, completions;
  at::manual_seed(5);
  for (int i = 0; i < 6; ++i) {
    auto r = [&](int64_t n) {
      at::Tensor t = at::randint(3, c.vocab_size, {n}, at::kLong);
      return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n);
    };
    prompts.push_back(r(10 + 13 * i));
    completions.push_back(r(40 + 17 * i));
  }
  auto batch = PackSequences(prompts, completions, c.vocab_size);
  ASSERT_TRUE(batch.ok());
  at::Tensor w = at::randn(batch->mask.sizes(), at::kDouble) * batch->mask.to(at::kDouble);
  auto score = [&](const Model& m, const ScoringOptions& so) {
    for (const auto& [name, p] : m.named_parameters()) {
      p.requires_grad_(true);
      p.mutable_grad() = at::Tensor();
    }
    TokenLogProbs lp = ScoreSequences(m, *batch, 0.8, true, so);
    ((lp.logprobs.to(at::kDouble) * w.to(lp.logprobs.device())).sum() +
     (lp.entropy.to(at::kDouble) * w.to(lp.logprobs.device())).sum())
        .backward();
    std::vector<at::Tensor> g;
    for (const auto& [name, p] : m.named_parameters()) g.push_back(p.grad().to(at::kCPU, at::kDouble));
    return std::make_pair(lp.logprobs.detach().to(at::kCPU, at::kDouble), g);
  };
  ScoringOptions plain;  // padded band path, unchunked-size chunk
  ScoringOptions fast;
  fast.packed = true;
  fast.chunk_tokens = 37;
  fast.checkpoint_layers = true;
  auto truth = score(**m64, plain);
  auto band = score(**mbf, plain);
  auto flash = score(**mbf, fast);
  const at::Tensor m = batch->mask.to(at::kDouble);
  const double fe = RelErr(flash.first * m, truth.first * m), be = RelErr(band.first * m, truth.first * m);
  std::printf("log-probs rel err packed flash %.2e, band %.2e\n", fe, be);
  EXPECT_LE(fe, 2 * be + 1e-6);
  for (size_t i = 0; i < truth.second.size(); ++i) {
    const double fg = RelErr(flash.second[i], truth.second[i]), bg = RelErr(band.second[i], truth.second[i]);
    if (i < 4) std::printf("  grad %s rel err flash %.2e band %.2e\n", (*m64)->named_parameters()[i].first.c_str(), fg, bg);
    if ((*m64)->named_parameters()[i].first.find("k_proj.bias") != std::string::npos) continue;
    EXPECT_LE(fg, 2 * bg + 1e-3) << (*m64)->named_parameters()[i].first;
  }
}

// The learner scores a rollout's tokens as the rollout engine sampled them: on a bf16 model,
// ScoreSequences (packed, flash) against the generator's behaviour log-probs, within 2x the
// gap of the plain (padded band) scorer.
TEST_F(CudaLearnerTest, LearnerLogProbsEqualGeneratorsOnGpu) {
  ModelConfig c = TinyConfig({16, 0}, 0, /*vocab=*/300);
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.head_dim = 32;
  ModelOptions obf;
  obf.device = "cuda";
  obf.dtype = "bfloat16";
  auto model = Model::RandomInit(c, 8, obf);
  ASSERT_TRUE(model.ok());
  Generator gen(**model);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 8; ++i) {
    GenerationRequest r;
    for (int t = 0; t < 5 + 3 * i; ++t) r.prompt.push_back(3 + (7 * t + 11 * i) % 290);
    r.max_new_tokens = 40;
    r.sampling.temperature = 0.9;
    r.sampling.seed = 40 + i;
    reqs.push_back(r);
  }
  auto res = gen.Generate(reqs);
  ASSERT_TRUE(res.ok()) << res.status();
  std::vector<std::vector<int64_t>> prompts, completions;
  std::vector<float> behaviour;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const GenerationResult& g = (*res)[i];
    prompts.push_back(reqs[i].prompt);
    completions.push_back(std::vector<int64_t>(g.tokens.begin() + g.prompt_length, g.tokens.end()));
    behaviour.insert(behaviour.end(), g.logprobs.begin(), g.logprobs.end());
  }
  auto batch = PackSequences(prompts, completions, c.vocab_size);
  ASSERT_TRUE(batch.ok());
  at::NoGradGuard no_grad;
  auto gather = [&](const at::Tensor& lp) {  // completion positions, row by row
    at::Tensor flat = lp.to(at::kCPU, at::kDouble).reshape({-1});
    at::Tensor idx = batch->mask.reshape({-1}).nonzero().squeeze(1);
    return flat.index_select(0, idx);
  };
  ScoringOptions fast;
  fast.packed = true;
  fast.chunk_tokens = 64;
  const at::Tensor beh = at::tensor(behaviour, at::kDouble);
  const at::Tensor f = gather(ScoreSequences(**model, *batch, 0.9, false, fast).logprobs);
  const at::Tensor b = gather(ScoreSequences(**model, *batch, 0.9, false, ScoringOptions()).logprobs);
  ASSERT_EQ(f.numel(), beh.numel());
  const double fe = (f - beh).abs().max().item<double>(), be = (b - beh).abs().max().item<double>();
  std::printf("max |learner - generator| log-prob: packed flash %.3e, padded band %.3e\n", fe, be);
  // bf16 logits carry ~3 significant digits: allow 2x the plain scorer's gap, and 0.05 nats.
  EXPECT_LE(fe, std::max(2 * be, 0.05));
}

}  // namespace
}  // namespace swarr
