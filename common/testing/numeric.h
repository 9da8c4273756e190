// Float comparisons in tests: one rule, stated in docs/testing.md.
//
// Two float32 computations of the same values by different code (another algorithm, a
// batched instead of a single product, another BLAS kernel on another CPU) differ only by
// rounding. A sum of K terms in float32 is off by at most about K * u * sum|terms|
// (u = eps / 2, the unit roundoff), so two such computations differ by at most
//     tol = K * eps      (relative),  eps = 2^-23 = 1.19e-7,
// where K is the length of the longest chain of reductions that produced the value (the
// reduction lengths along its path added up, forward and backward). Tests compare whole
// tensors by their norm-wise relative error RelErr(a, b) = ||a - b||_2 / ||b||_2 against
// Float32Tolerance(K). Log-probabilities are differences of logits: their absolute error is
// at most twice the logits' absolute error, LogProbTolerance(K, S) with S = max |logit|.
// Exact equality (at::equal, EXPECT_EQ on floats) is only for one code path that must give
// bit-identical output (e.g. a saved and reloaded float32 model), said so where it is used.
#ifndef SWARR_COMMON_TESTING_NUMERIC_H_
#define SWARR_COMMON_TESTING_NUMERIC_H_

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>

#include <ATen/ATen.h>

#include "gtest/gtest.h"

namespace swarr {
namespace testing_numeric {

constexpr double kFloat32Eps = 1.1920928955078125e-07;  // 2^-23 = std::numeric_limits<float>::epsilon()

// Relative tolerance for two float32 computations of one value whose reductions add up to
// `reduction_length` terms along its longest path.
inline double Float32Tolerance(int64_t reduction_length) {
  return static_cast<double>(reduction_length) * kFloat32Eps;
}

// Absolute tolerance for log-probabilities (log_softmax of logits) computed two ways: the
// logits' absolute error Float32Tolerance(K) * max_abs_logit, twice (the token's logit and the
// log-sum-exp), plus the float32 rounding of a stored log-prob of magnitude up to max_abs_logit.
inline double LogProbTolerance(int64_t reduction_length, double max_abs_logit) {
  return (2 * Float32Tolerance(reduction_length) + kFloat32Eps) * std::max(max_abs_logit, 1.0);
}

// ||a - b||_2 / ||b||_2 over all elements, in double.
inline double RelErr(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ad = a.detach().to(at::kCPU, at::kDouble), bd = b.detach().to(at::kCPU, at::kDouble);
  return (ad - bd).norm().item<double>() / std::max(bd.norm().item<double>(), std::numeric_limits<double>::min());
}

// With SWARR_PRINT_TOLERANCES set in the environment, prints "error / tolerance" of a
// comparison (to see the margins on a machine: docs/testing.md).
inline void ReportMargin(double err, double tol) {
  if (std::getenv("SWARR_PRINT_TOLERANCES") == nullptr) return;
  const ::testing::TestInfo* test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::printf("tolerance %s.%s: error %.3g, tolerance %.3g, ratio %.2g\n", test ? test->test_suite_name() : "?",
              test ? test->name() : "?", err, tol, err / tol);
}

// EXPECT_TRUE(RelErrWithin(a, b, tol)): RelErr(a, b) <= tol, and the error and the tolerance
// in the failure message.
inline ::testing::AssertionResult RelErrWithin(const at::Tensor& a, const at::Tensor& b, double tol) {
  if (a.sizes() != b.sizes()) {
    return ::testing::AssertionFailure() << "shapes differ: " << a.sizes() << " vs " << b.sizes();
  }
  const double err = RelErr(a, b);
  ReportMargin(err, tol);
  if (err <= tol) return ::testing::AssertionSuccess() << "relative error " << err << " <= " << tol;
  return ::testing::AssertionFailure() << "relative error " << err << " > tolerance " << tol;
}

}  // namespace testing_numeric
}  // namespace swarr

#endif  // SWARR_COMMON_TESTING_NUMERIC_H_
