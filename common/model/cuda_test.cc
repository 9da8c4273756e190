// Attention and the model on a CUDA device (bf16 and fp32). Skipped where LibTorch sees no
// GPU, so CI (CPU only) builds it and reports it skipped; on the GPU machine it runs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <torch/csrc/autograd/autograd.h>

#include "common/attention/attention.h"
#include "common/attention/ring_decode_op.h"
#include "common/kv_cache/kv_cache.h"
#include "common/model/device_decoder.h"
#include "common/model/generator.h"
#include "common/model/sampler.h"
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
  // The eager path (host sampling) with and without the kernel.
  GeneratorOptions eager;
  eager.device_decode = false;
  Generator ga(**a, eager), gb(**b, eager);
  auto ra = ga.Generate({req}), rb = gb.Generate({req});
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ((*ra)[0].tokens, (*rb)[0].tokens);
  for (size_t i = 0; i < (*ra)[0].logprobs.size(); ++i) EXPECT_NEAR((*ra)[0].logprobs[i], (*rb)[0].logprobs[i], 1e-4);
}

}  // namespace
}  // namespace swarr

namespace swarr {
namespace {

// The split-K kernel over head dims 64/128/256 (and the simple kernel for others), GQA
// groups from 1 to 16, caches long enough to split, scattered and empty slots, an unused row
// (query position -1, output 0), against a float64 reference.
TEST_F(CudaTest, SplitDecodeKernelMatchesReference) {
  if (!RingDecodeKernelBuilt()) GTEST_SKIP() << "built without SWARR_WITH_CUDA";
  struct Shape {
    int64_t H, Hkv, D, S, window, sinks;
  };
  const std::vector<Shape> shapes = {{14, 2, 64, 2048, 1024, 0}, {12, 2, 128, 1100, 1024, 4}, {16, 16, 64, 300, 0, 0},
                                     {32, 8, 128, 4096, 4096, 0}, {8, 4, 256, 700, 512, 2}, {16, 1, 64, 900, 0, 0},
                                     {6, 2, 96, 400, 256, 0}};
  for (const Shape& sh : shapes) {
    const int64_t B = 4;
    at::manual_seed(sh.H * 1000 + sh.D + sh.S);
    at::Tensor k = at::randn({B, sh.S, sh.Hkv, sh.D}), v = at::randn({B, sh.S, sh.Hkv, sh.D});
    at::Tensor q = at::randn({B, sh.H, 1, sh.D});
    at::Tensor q_pos = at::tensor({3000L, 1500L, 77L, -1L}, at::kLong).view({B, 1});
    // Slot s holds position p with p mod S = s for the last S positions up to the query
    // (as a ring), some slots empty.
    at::Tensor k_pos = at::full({B, sh.S}, -1, at::kLong);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t qp = q_pos[b][0].item<int64_t>();
      for (int64_t p = std::max<int64_t>(0, qp - sh.S + 1); p <= qp; ++p) k_pos[b][p % sh.S] = p;
    }
    k_pos[1][5] = -1;
    const double scale = 1.0 / std::sqrt(static_cast<double>(sh.D));
    AttentionSpec spec{sh.window, sh.window > 0 ? sh.sinks : 0, scale};
    // Reference on rows 0..2 (row 3 sees nothing: MaskedAttention requires a visible key).
    at::Tensor truth = MaskedAttention(q.narrow(0, 0, 3).to(at::kDouble), k.narrow(0, 0, 3).to(at::kDouble).transpose(1, 2),
                                       v.narrow(0, 0, 3).to(at::kDouble).transpose(1, 2), q_pos.narrow(0, 0, 3),
                                       k_pos.narrow(0, 0, 3), spec);
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
      auto c = [&](const at::Tensor& t) { return t.to(at::kCUDA, dt); };
      at::Tensor kc = c(k), vc = c(v), qc = c(q), qp = q_pos.to(at::kCUDA), kp = k_pos.to(at::kCUDA);
      at::Tensor kernel = RingDecodeAttention(qc, kc, vc, qp, kp, spec);
      at::Tensor ref = MaskedAttention(qc.narrow(0, 0, 3), kc.narrow(0, 0, 3).transpose(1, 2),
                                       vc.narrow(0, 0, 3).transpose(1, 2), qp.narrow(0, 0, 3), kp.narrow(0, 0, 3), spec);
      const double ke = RelErr(kernel.narrow(0, 0, 3), truth), re = RelErr(ref, truth);
      std::printf("split decode H=%lld Hkv=%lld D=%lld S=%lld W=%lld %s: rel err kernel %.2e torch %.2e\n",
                  static_cast<long long>(sh.H), static_cast<long long>(sh.Hkv), static_cast<long long>(sh.D),
                  static_cast<long long>(sh.S), static_cast<long long>(sh.window), dt == at::kFloat ? "fp32" : "bf16", ke,
                  re);
      EXPECT_LE(ke, 2 * re + 1e-6);
      EXPECT_EQ(kernel[3].abs().max().item<double>(), 0.0) << "an unused row must come out 0";
    }
  }
}

// FlashAttention-2 decode on caches that keep the ring invariant (full rings, partly
// filled rings, full layers), against a float64 reference and the split kernel.
TEST_F(CudaTest, FlashDecodeMatchesReferenceOnRingCaches) {
  struct Shape {
    int64_t H, Hkv, D, S, window;
  };
  for (const Shape& sh : std::vector<Shape>{{14, 2, 64, 1024, 1024}, {12, 2, 128, 1024, 1024}, {28, 4, 128, 3000, 0}}) {
    const int64_t B = 3;
    at::manual_seed(sh.S + sh.D);
    at::Tensor k = at::randn({B, sh.S, sh.Hkv, sh.D}), v = at::randn({B, sh.S, sh.Hkv, sh.D});
    at::Tensor q = at::randn({B, sh.H, 1, sh.D});
    const std::vector<int64_t> qps = {sh.window > 0 ? 5000 : 2999, 700, 77};
    at::Tensor q_pos = at::tensor(qps, at::kLong).view({B, 1});
    at::Tensor k_pos = at::full({B, sh.S}, -1, at::kLong);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t p = std::max<int64_t>(0, qps[b] - sh.S + 1); p <= qps[b]; ++p) k_pos[b][p % sh.S] = p;
    }
    AttentionSpec spec{sh.window, 0, 1.0 / std::sqrt(static_cast<double>(sh.D))};
    at::Tensor truth = MaskedAttention(q.to(at::kDouble), k.to(at::kDouble).transpose(1, 2),
                                       v.to(at::kDouble).transpose(1, 2), q_pos, k_pos, spec);
    auto c = [&](const at::Tensor& t) { return t.to(at::kCUDA, at::kBFloat16); };
    at::Tensor kc = c(k), vc = c(v), qc = c(q), qp = q_pos.to(at::kCUDA), kp = k_pos.to(at::kCUDA);
    if (!FlashDecodeSupported(qc, kc, spec)) GTEST_SKIP() << "no FlashAttention-2 in this LibTorch";
    at::Tensor flash = FlashRingDecodeAttention(qc, kc, vc, qp, spec);
    at::Tensor split = RingDecodeAttention(qc, kc, vc, qp, kp, spec);
    const double fe = RelErr(flash, truth), se = RelErr(split, truth);
    std::printf("flash decode H=%lld Hkv=%lld D=%lld S=%lld: rel err flash %.2e split kernel %.2e\n",
                static_cast<long long>(sh.H), static_cast<long long>(sh.Hkv), static_cast<long long>(sh.D),
                static_cast<long long>(sh.S), fe, se);
    EXPECT_LE(fe, 2 * se + 1e-6);
    if (sh.window > 0) {  // row 0's ring is full: the dense path
      at::Tensor dense = FlashRingDecodeAttention(qc.narrow(0, 0, 1), kc.narrow(0, 0, 1), vc.narrow(0, 0, 1),
                                                  qp.narrow(0, 0, 1), spec, /*all_full=*/true);
      const double de = RelErr(dense, truth.narrow(0, 0, 1)), se0 = RelErr(split.narrow(0, 0, 1), truth.narrow(0, 0, 1));
      std::printf("  dense flash on a full ring: rel err %.2e (split kernel %.2e)\n", de, se0);
      EXPECT_LE(de, 2 * se0 + 1e-6);
    }
  }
}

// Chi-square of the device sampler's draws against the exact (truncated, renormalised)
// softmax, for several temperature / top-k / top-p settings; every behaviour log-prob equal
// to the host's definition (sampler.h).
TEST_F(CudaTest, DeviceSamplerMatchesExactSoftmax) {
  if (!DeviceDecoder::Available()) GTEST_SKIP() << "built without SWARR_WITH_CUDA";
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = 12;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 16;
  c.layer_windows = {8};
  ModelOptions mo;
  mo.device = "cuda";
  mo.dtype = "float32";
  auto model = Model::RandomInit(c, 1, mo);
  ASSERT_TRUE(model.ok()) << model.status();
  KvCacheOptions ko;
  ko.max_seqs = 64;
  ko.device = (*model)->device();
  KvCache cache((*model)->config(), ko);
  auto decoder = DeviceDecoder::Create(**model, &cache);
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  const std::vector<float> logits = {1.0f, 0.5f, -0.3f, 2.0f, 0.0f, -1.0f, 1.5f, 0.7f, -2.0f, 0.2f, 1.1f, -0.5f};
  const int64_t V = 12, rows = 64, calls = 400;
  at::Tensor x = at::tensor(logits).view({1, V}).expand({rows, V}).contiguous().to(at::kCUDA);
  struct Case {
    double temperature;
    int64_t top_k;
    double top_p;
  };
  for (const Case& cs : {Case{1.0, 0, 1.0}, Case{0.7, 5, 1.0}, Case{1.3, 0, 0.8}, Case{1.0, 6, 0.9}}) {
    SamplingParams sp;
    sp.temperature = cs.temperature;
    sp.top_k = cs.top_k;
    sp.top_p = cs.top_p;
    // Exact distribution, with the host sampler's truncation rule.
    std::vector<double> p(V);
    double z = 0;
    for (int64_t i = 0; i < V; ++i) z += std::exp(logits[i] / cs.temperature);
    for (int64_t i = 0; i < V; ++i) p[i] = std::exp(logits[i] / cs.temperature) / z;
    std::vector<int64_t> order(V);
    for (int64_t i = 0; i < V; ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    int64_t keep = cs.top_k > 0 ? cs.top_k : V;
    double mass = 0;
    for (int64_t i = 0; i < keep; ++i) mass += p[order[i]];
    if (cs.top_p < 1) {
      double acc = 0;
      int64_t n = 0;
      while (n < keep) {
        acc += p[order[n++]];
        if (acc >= cs.top_p * mass) break;
      }
      keep = n;
      mass = acc;
    }
    std::vector<double> expected(V, 0.0);
    for (int64_t i = 0; i < keep; ++i) expected[order[i]] = p[order[i]] / mass;
    std::vector<int64_t> counts(V, 0);
    for (int64_t call = 0; call < calls; ++call) {
      std::vector<DecodeRowInput> in(rows);
      for (int64_t r = 0; r < rows; ++r) {
        in[r].sampling = &sp;
        sp.seed = 0;  // the seed is read per row below
        in[r].draw = call;
      }
      // Different requests: one seed per row.
      std::vector<SamplingParams> per_row(rows, sp);
      for (int64_t r = 0; r < rows; ++r) {
        per_row[r].seed = 1000 + r;
        in[r].sampling = &per_row[r];
      }
      std::vector<SampledToken> out;
      ASSERT_TRUE((*decoder)->Sample(x, in, &out).ok());
      for (const SampledToken& t : out) {
        ASSERT_GE(t.id, 0);
        ASSERT_LT(t.id, V);
        ASSERT_GT(expected[t.id], 0.0) << "token " << t.id << " is outside the kept set";
        ++counts[t.id];
        const double want = TokenLogProb(logits.data(), V, cs.temperature, t.id);
        ASSERT_NEAR(t.logprob, want, 1e-5);
      }
    }
    const double n = static_cast<double>(rows * calls);
    double chi2 = 0;
    for (int64_t i = 0; i < V; ++i) {
      if (expected[i] > 0) chi2 += std::pow(counts[i] - n * expected[i], 2) / (n * expected[i]);
    }
    // 99.9% quantiles of chi-square with df = keep - 1 (df 1..11).
    const double q999[] = {0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88, 29.59, 31.26};
    std::printf("sampler T=%.1f top_k=%lld top_p=%.2f: kept %lld, chi2 %.2f (99.9%% bound %.2f)\n", cs.temperature,
                static_cast<long long>(cs.top_k), cs.top_p, static_cast<long long>(keep), chi2, q999[keep - 1]);
    if (keep > 1) {
      EXPECT_LT(chi2, q999[keep - 1]);
    }
  }
}

ModelConfig SmallSwaConfig() {
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = 1000;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.qkv_bias = true;
  c.layer_windows = {16, 0, 16};  // hybrid: a full layer grows its cache under the graphs
  return c;
}

std::vector<GenerationRequest> Requests(int n, int64_t new_tokens) {
  std::vector<GenerationRequest> out;
  for (int i = 0; i < n; ++i) {
    GenerationRequest r;
    for (int t = 0; t < 5 + 3 * i; ++t) r.prompt.push_back((i * 37 + t * 11) % 997 + 3);
    r.max_new_tokens = new_tokens;
    r.sampling.temperature = 0.9;
    r.sampling.top_p = 0.95;
    r.sampling.top_k = i % 2 == 0 ? 0 : 50;
    r.sampling.seed = 100 + i;
    out.push_back(r);
  }
  return out;
}

// GPU greedy generation (device path: graphs, device sampling) equals the CPU's on the HF
// fixtures, float32.
TEST_F(CudaTest, DevicePathGreedyEqualsCpuOnFixtures) {
  if (!DeviceDecoder::Available()) GTEST_SKIP() << "built without SWARR_WITH_CUDA";
  for (const std::string name : {"qwen2_swa", "qwen2_tied", "llama_full"}) {
    ModelOptions cpu, gpu;
    gpu.device = "cuda";
    gpu.dtype = "float32";
    auto mc = Model::Load(kFixtures + name, cpu), mg = Model::Load(kFixtures + name, gpu);
    ASSERT_TRUE(mc.ok() && mg.ok());
    std::vector<GenerationRequest> reqs;
    for (int k = 0; k < 3; ++k) {
      GenerationRequest r;
      r.prompt = {5, 17, 42, 99, 100, 101, 7, 8, 9, 10, 11, 12};
      r.prompt.resize(5 + 7 * k);
      for (size_t i = 0; i < r.prompt.size(); ++i) r.prompt[i] = (r.prompt[i] + 31 * k + 3) % 500 + 3;
      r.max_new_tokens = 40;
      r.sampling.greedy = true;
      reqs.push_back(r);
    }
    Generator gc(**mc), gg(**mg);
    ASSERT_NE(gg.device_decoder(), nullptr);
    auto rc = gc.Generate(reqs), rg = gg.Generate(reqs);
    ASSERT_TRUE(rc.ok() && rg.ok()) << rg.status();
    for (size_t i = 0; i < reqs.size(); ++i) {
      EXPECT_EQ((*rc)[i].tokens, (*rg)[i].tokens) << name << " request " << i;
      for (size_t t = 0; t < (*rc)[i].logprobs.size(); ++t) EXPECT_NEAR((*rc)[i].logprobs[t], (*rg)[i].logprobs[t], 1e-4);
    }
    EXPECT_GT(gg.device_decoder()->stats().graph_replays, 0);
  }
}

// A request's tokens depend on its seed, not on what else is in the batch.
TEST_F(CudaTest, DevicePathSameSeedSameTokensWhateverTheBatch) {
  if (!DeviceDecoder::Available()) GTEST_SKIP() << "built without SWARR_WITH_CUDA";
  ModelOptions gpu;
  gpu.device = "cuda";
  gpu.dtype = "float32";
  auto model = Model::RandomInit(SmallSwaConfig(), 7, gpu);
  ASSERT_TRUE(model.ok());
  std::vector<GenerationRequest> all = Requests(6, 48);
  GeneratorOptions go;
  go.max_batch = 8;
  Generator alone(**model, go), crowd(**model, go);
  auto a = alone.Generate({all[3]});
  auto b = crowd.Generate(all);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)[0].tokens, (*b)[3].tokens);
  // And the same request again with other neighbours.
  std::vector<GenerationRequest> other = Requests(8, 30);
  other[5] = all[3];
  Generator crowd2(**model, go);
  auto c = crowd2.Generate(other);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*a)[0].tokens, (*c)[5].tokens);
}

// Replayed CUDA graphs compute exactly what the eager device step computes, bf16, with a
// hybrid model whose full layer outgrows its cache (graphs re-captured).
TEST_F(CudaTest, DevicePathGraphsOnOffIdentical) {
  if (!DeviceDecoder::Available()) GTEST_SKIP() << "built without SWARR_WITH_CUDA";
  ModelOptions gpu;
  gpu.device = "cuda";
  gpu.dtype = "bfloat16";
  auto model = Model::RandomInit(SmallSwaConfig(), 11, gpu);
  ASSERT_TRUE(model.ok());
  GeneratorOptions on, off;
  on.max_batch = off.max_batch = 8;
  on.full_initial_capacity = off.full_initial_capacity = 32;
  off.cuda_graphs = false;
  Generator g_on(**model, on), g_off(**model, off);
  auto a = g_on.Generate(Requests(7, 80));
  auto b = g_off.Generate(Requests(7, 80));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].tokens, (*b)[i].tokens) << "request " << i;
    EXPECT_EQ((*a)[i].logprobs, (*b)[i].logprobs) << "request " << i;
  }
  EXPECT_GT(g_on.device_decoder()->stats().graph_replays, 0);
  EXPECT_EQ(g_off.device_decoder()->stats().graph_replays, 0);
}

}  // namespace
}  // namespace swarr
