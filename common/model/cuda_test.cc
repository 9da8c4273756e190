// Attention and the model on a CUDA device (bf16 and fp32). Skipped where LibTorch sees no
// GPU, so CI (CPU only) builds it and reports it skipped; on the GPU machine it runs.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <torch/csrc/autograd/autograd.h>

#include "common/attention/attention.h"
#include "common/attention/ring_decode_op.h"
#include "common/model/generator.h"
#include "common/model/model.h"
#include "common/model/tensor_io.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

const std::string kFixtures = std::string(SWARR_SHARED_DIR) + "/fixtures/hf/";

double RelErr(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor x = a.to(at::kCPU, at::kDouble), y = b.to(at::kCPU, at::kDouble);
  return (x - y).norm().item<double>() / y.norm().item<double>();
}

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
    at::globalContext().setAllowTF32CuBLAS(false);
  }
};

TEST_F(CudaTest, BandAttentionMatchesReferenceFp32AndBf16) {
  for (int64_t window : {16, 128, 0}) {
    at::manual_seed(window);
    const int64_t B = 2, H = 8, Hkv = 2, T = 700, D = 64;
    at::Tensor q32 = at::randn({B, H, T, D}), k32 = at::randn({B, Hkv, T, D}), v32 = at::randn({B, Hkv, T, D});
    at::Tensor go = at::randn({B, H, T, D});
    AttentionSpec spec{window, window == 16 ? 4 : 0, 0.125};
    // Ground truth: float64 reference on the CPU.
    auto truth_in = std::vector<at::Tensor>{q32.to(at::kDouble).requires_grad_(), k32.to(at::kDouble).requires_grad_(),
                                            v32.to(at::kDouble).requires_grad_()};
    at::Tensor truth = ReferenceSelfAttention(truth_in[0], truth_in[1], truth_in[2], spec);
    auto truth_grads = torch::autograd::grad({truth}, truth_in, {go.to(at::kDouble)});
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      auto in = [&](const at::Tensor& t) { return t.to(at::kCUDA, dt).requires_grad_(); };
      std::vector<at::Tensor> a = {in(q32), in(k32), in(v32)}, r = {in(q32), in(k32), in(v32)};
      at::Tensor band = BandAttention(a[0], a[1], a[2], spec);
      at::Tensor ref = ReferenceSelfAttention(r[0], r[1], r[2], spec);
      at::Tensor g = go.to(at::kCUDA, dt);
      auto band_grads = torch::autograd::grad({band}, a, {g});
      auto ref_grads = torch::autograd::grad({ref}, r, {g});
      const double band_err = RelErr(band, truth), ref_err = RelErr(ref, truth);
      std::printf("window %lld %s: out rel err band %.2e reference %.2e\n", static_cast<long long>(window),
                  dt == at::kFloat ? "fp32" : "bf16", band_err, ref_err);
      // flash-attention's rule: at most 2x the error of the plain implementation at the
      // same precision (plus a floor for fp32 round-off).
      EXPECT_LE(band_err, 2 * ref_err + 1e-6);
      for (int i = 0; i < 3; ++i) {
        const double be = RelErr(band_grads[i], truth_grads[i]), re = RelErr(ref_grads[i], truth_grads[i]);
        std::printf("  grad %d rel err band %.2e reference %.2e\n", i, be, re);
        EXPECT_LE(be, 2 * re + 1e-6) << "grad " << i;
      }
      if (dt == at::kFloat) EXPECT_LT(RelErr(band, ref), 1e-5);
    }
  }
}

TEST_F(CudaTest, FixtureParityOnGpu) {
  for (const std::string name : {"qwen2_swa", "llama_full"}) {
    const std::string dir = kFixtures + name;
    at::Tensor ids = *ReadTensor(dir + "/expected.safetensors", "input_ids");
    at::Tensor want = *ReadTensor(dir + "/expected.safetensors", "logits");
    for (const std::string dtype : {"float32", "bfloat16"}) {
      ModelOptions opts;
      opts.device = "cuda";
      opts.dtype = dtype;
      auto model = Model::Load(dir, opts);
      ASSERT_TRUE(model.ok()) << model.status();
      auto got = (*model)->Score(ids);
      ASSERT_TRUE(got.ok()) << got.status();
      const double err = RelErr(*got, want);
      std::printf("%s on cuda %s: logits rel err %.2e\n", name.c_str(), dtype.c_str(), err);
      EXPECT_LT(err, dtype == "float32" ? 1e-4 : 3e-2);
      if (dtype != "float32") continue;
      at::Tensor prompt = *ReadTensor(dir + "/expected.safetensors", "gen1_prompt");
      at::Tensor output = *ReadTensor(dir + "/expected.safetensors", "gen1_output");
      at::Tensor margin = *ReadTensor(dir + "/expected.safetensors", "gen1_margin");
      GenerationRequest req;
      req.prompt.assign(prompt.data_ptr<int64_t>(), prompt.data_ptr<int64_t>() + prompt.numel());
      req.max_new_tokens = 40;
      req.sampling.greedy = true;
      Generator gen(**model);
      auto res = gen.Generate({req});
      ASSERT_TRUE(res.ok()) << res.status();
      for (int64_t i = 0; i < output.numel(); ++i) {
        if ((*res)[0].tokens[i] != output[0][i].item<int64_t>()) {
          EXPECT_LT(margin[i - prompt.numel()].item<float>(), 1e-3) << name << " differs at " << i;
          break;
        }
      }
    }
  }
}

}  // namespace
}  // namespace swarr

namespace swarr {
namespace {

TEST_F(CudaTest, RingDecodeKernelMatchesMaskedAttention) {
  if (!RingDecodeKernelBuilt()) GTEST_SKIP() << "built without SWARR_WITH_CUDA";
  const int64_t B = 3, H = 8, Hkv = 2, D = 64;
  for (int64_t window : {1, 7, 64, 0}) {
    for (int64_t sinks : {0, 3}) {
      const int64_t S = window > 0 ? window + sinks : 300;
      at::manual_seed(window * 10 + sinks);
      // A cache [B, S, Hkv, D] whose slots hold scattered positions (some empty).
      at::Tensor k = at::randn({B, S, Hkv, D}), v = at::randn({B, S, Hkv, D}), q = at::randn({B, H, 1, D});
      at::Tensor q_pos = at::tensor({5L, 40L, 299L}, at::kLong).view({B, 1});
      at::Tensor k_pos = at::randint(-1, 300, {B, S}, at::kLong);
      for (int64_t b = 0; b < B; ++b) k_pos[b][b % S] = q_pos[b][0];  // every query sees itself
      AttentionSpec spec{window, window > 0 ? sinks : 0, 0.125};
      at::Tensor truth = MaskedAttention(q.to(at::kDouble), k.to(at::kDouble).transpose(1, 2),
                                         v.to(at::kDouble).transpose(1, 2), q_pos, k_pos, spec);
      for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
        auto c = [&](const at::Tensor& t) { return t.to(at::kCUDA, dt); };
        at::Tensor kc = c(k), vc = c(v), qc = c(q);
        at::Tensor qp = q_pos.to(at::kCUDA), kp = k_pos.to(at::kCUDA);
        at::Tensor kernel = RingDecodeAttention(qc, kc, vc, qp, kp, spec);
        at::Tensor ref = MaskedAttention(qc, kc.transpose(1, 2), vc.transpose(1, 2), qp, kp, spec);
        const double ke = RelErr(kernel, truth), re = RelErr(ref, truth);
        std::printf("decode kernel W=%lld S=%lld sinks=%lld %s: rel err kernel %.2e torch %.2e\n",
                    static_cast<long long>(window), static_cast<long long>(S), static_cast<long long>(sinks),
                    dt == at::kFloat ? "fp32" : "bf16", ke, re);
        EXPECT_LE(ke, 2 * re + 1e-6);
      }
    }
  }
}

TEST_F(CudaTest, GenerationWithKernelEqualsTorchOps) {
  const std::string dir = kFixtures + "qwen2_swa";
  ModelOptions with, without;
  with.device = without.device = "cuda";
  with.dtype = without.dtype = "float32";
  without.cuda_decode_kernel = false;
  auto a = Model::Load(dir, with), b = Model::Load(dir, without);
  ASSERT_TRUE(a.ok() && b.ok());
  GenerationRequest req;
  req.prompt = {5, 17, 42, 99, 100, 101, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  req.max_new_tokens = 60;
  req.sampling.temperature = 0.8;
  req.sampling.seed = 3;
  Generator ga(**a), gb(**b);
  auto ra = ga.Generate({req}), rb = gb.Generate({req});
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ((*ra)[0].tokens, (*rb)[0].tokens);
  for (size_t i = 0; i < (*ra)[0].logprobs.size(); ++i) EXPECT_NEAR((*ra)[0].logprobs[i], (*rb)[0].logprobs[i], 1e-4);
}

}  // namespace
}  // namespace swarr
