#include "common/attention/attention.h"

#include <tuple>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "gtest/gtest.h"

namespace swarr {
namespace {

double RelErr(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).norm().item<double>() / std::max(b.norm().item<double>(), 1e-30);
}

TEST(VisibilityMaskTest, HfWindowSemantics) {
  // W = 3: query 5 sees keys 3, 4, 5 (W keys including itself).
  at::Tensor q = at::tensor({5L}, at::kLong).view({1, 1});
  at::Tensor k = at::arange(8, at::kLong).view({1, 8});
  AttentionSpec spec;
  spec.window = 3;
  at::Tensor m = VisibilityMask(q, k, spec).view({8});
  std::vector<bool> expect = {false, false, false, true, true, true, false, false};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(m[i].item<bool>(), expect[i]) << i;
  spec.sinks = 2;  // plus keys 0 and 1
  m = VisibilityMask(q, k, spec).view({8});
  expect = {true, true, false, true, true, true, false, false};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(m[i].item<bool>(), expect[i]) << i;
  // Empty slots (position -1) are never visible; full attention sees k <= q.
  at::Tensor k2 = at::tensor({-1L, 0L, 5L, 6L}, at::kLong).view({1, 4});
  m = VisibilityMask(q, k2, AttentionSpec{}).view({4});
  EXPECT_FALSE(m[0].item<bool>());
  EXPECT_TRUE(m[1].item<bool>());
  EXPECT_TRUE(m[2].item<bool>());
  EXPECT_FALSE(m[3].item<bool>());
}

// (T, window, sinks, block)
class BandAttentionTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t, int64_t>> {};

TEST_P(BandAttentionTest, ValuesAndGradientsMatchReference) {
  auto [T, window, sinks, block] = GetParam();
  at::manual_seed(T * 31 + window * 7 + sinks);
  const int64_t B = 2, H = 4, Hkv = 2, D = 8;
  at::Tensor q = at::randn({B, H, T, D}).requires_grad_();
  at::Tensor k = at::randn({B, Hkv, T, D}).requires_grad_();
  at::Tensor v = at::randn({B, Hkv, T, D}).requires_grad_();
  AttentionSpec spec{window, sinks, 1.0 / std::sqrt(8.0)};
  at::Tensor go = at::randn({B, H, T, D});

  at::Tensor ref = ReferenceSelfAttention(q, k, v, spec);
  auto ref_grads = torch::autograd::grad({ref}, {q, k, v}, {go});
  at::Tensor band = BandAttention(q, k, v, spec, block);
  auto band_grads = torch::autograd::grad({band}, {q, k, v}, {go});

  EXPECT_LT(RelErr(band, ref), 1e-6);
  for (int i = 0; i < 3; ++i) EXPECT_LT(RelErr(band_grads[i], ref_grads[i]), 1e-6) << "grad " << i;
}

INSTANTIATE_TEST_SUITE_P(
    Windows, BandAttentionTest,
    ::testing::Values(std::make_tuple(64, 1, 0, 16), std::make_tuple(64, 2, 0, 16), std::make_tuple(100, 7, 0, 16),
                      std::make_tuple(100, 16, 0, 0), std::make_tuple(130, 64, 0, 32), std::make_tuple(97, 16, 4, 16),
                      std::make_tuple(97, 7, 3, 8), std::make_tuple(90, 0, 0, 32), std::make_tuple(40, 64, 2, 16)));

TEST(BandAttentionTest, WindowChangesOutputOnlyAfterW) {
  // SWA equals full attention for positions < W and differs from position W on.
  at::manual_seed(0);
  at::Tensor q = at::randn({1, 2, 40, 8}), k = at::randn({1, 2, 40, 8}), v = at::randn({1, 2, 40, 8});
  AttentionSpec full{0, 0, 0.3}, swa{16, 0, 0.3};
  at::Tensor a = BandAttention(q, k, v, full), b = BandAttention(q, k, v, swa);
  EXPECT_TRUE(at::allclose(a.narrow(2, 0, 16), b.narrow(2, 0, 16)));
  EXPECT_FALSE(at::allclose(a.narrow(2, 16, 1), b.narrow(2, 16, 1)));
}

}  // namespace
}  // namespace swarr
