#include "common/attention/attention.h"

#include <tuple>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "common/testing/numeric.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using testing_numeric::Float32Tolerance;
using testing_numeric::RelErr;
using testing_numeric::RelErrWithin;

// Band and reference attention sum the same terms in another order and with other matrix
// shapes (so other BLAS kernels): equal up to float32 rounding of the longest reduction chain.
// Forward: score (D), softmax and weighted sum (T each). Backward: dP (D), softmax backward
// (T), dQ/dK/dV (T). D + 4T bounds both (docs/testing.md).
double AttentionTolerance(int64_t T, int64_t D) { return Float32Tolerance(D + 4 * T); }

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

  const double tol = AttentionTolerance(T, D);
  EXPECT_TRUE(RelErrWithin(band, ref, tol));
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(RelErrWithin(band_grads[i], ref_grads[i], tol)) << "grad " << i;
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
  // Full attention is the T x T reference product, the window the banded one: other shapes,
  // other kernels, so equal only up to rounding (at::allclose's default atol of 1e-8 failed on
  // an AMD EPYC's OpenBLAS kernels).
  at::Tensor a = BandAttention(q, k, v, full), b = BandAttention(q, k, v, swa);
  const double tol = AttentionTolerance(40, 8);
  EXPECT_TRUE(RelErrWithin(a.narrow(2, 0, 16), b.narrow(2, 0, 16), tol));
  // Position 16 loses key 0 (1 of 17): a change far beyond rounding.
  const double changed = RelErr(a.narrow(2, 16, 1), b.narrow(2, 16, 1));
  EXPECT_GT(changed, 100 * tol) << "tolerance " << tol;
}

}  // namespace
}  // namespace swarr
