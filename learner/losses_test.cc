#include "learner/losses.h"

#include <cmath>
#include <limits>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "common/testing/numeric.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

// Everything below is in double (eps 2.2e-16) over a handful of operations on values of order
// 1: 1e-12 leaves a margin of about 1000 over rounding.
constexpr double kTol = 1e-12;

at::Tensor D(std::vector<double> v) { return at::tensor(v, at::kDouble); }
at::Tensor D2(std::vector<double> v, int64_t rows) { return D(std::move(v)).view({rows, -1}); }

void ExpectTensorNear(const at::Tensor& got, const std::vector<double>& want, double tol = kTol) {
  at::Tensor g = got.to(at::kDouble).contiguous().view({-1});
  ASSERT_EQ(g.numel(), static_cast<int64_t>(want.size()));
  for (int64_t i = 0; i < g.numel(); ++i) EXPECT_NEAR(g[i].item<double>(), want[i], tol) << "element " << i;
}

// d loss / d logprobs.
at::Tensor GradLogprobs(const PolicyLossOutput& out, const at::Tensor& logprobs) {
  return torch::autograd::grad({out.loss}, {logprobs})[0];
}

// ---------------------------------------------------------------- GroupAdvantages

TEST(GroupAdvantagesTest, MeanCentredPerGroupWithInterleavedIds) {
  // Group 7: {1, 0, 0, 1} (mean 0.5); group 3: {5} (alone); group -1: {2, 4} (mean 3).
  const at::Tensor rewards = D({1, 2, 0, 5, 0, 4, 1});
  const at::Tensor groups = at::tensor(std::vector<int64_t>{7, -1, 7, 3, 7, -1, 7}, at::kLong);
  auto adv = GroupAdvantages(rewards, groups, {});
  ASSERT_TRUE(adv.ok()) << adv.status();
  EXPECT_EQ(adv->scalar_type(), at::kDouble);
  ExpectTensorNear(*adv, {0.5, -1, -0.5, 0, -0.5, 1, 0.5});
}

TEST(GroupAdvantagesTest, DividedByPopulationStd) {
  const at::Tensor rewards = D({1, 2, 0, 5, 0, 4, 1});
  const at::Tensor groups = at::tensor(std::vector<int64_t>{7, -1, 7, 3, 7, -1, 7}, at::kLong);
  AdvantageOptions opts;
  opts.divide_by_std = true;
  opts.eps = 1e-6;
  auto adv = GroupAdvantages(rewards, groups, opts);
  ASSERT_TRUE(adv.ok()) << adv.status();
  // Group 7: population std 0.5; group -1: std 1; group 3: std 0 -> 0 / eps = 0.
  const double a = 0.5 / (0.5 + 1e-6), b = 1.0 / (1.0 + 1e-6);
  ExpectTensorNear(*adv, {a, -b, -a, 0, -a, b, a});
}

TEST(GroupAdvantagesTest, NoBaselineIsTheReward) {
  AdvantageOptions o;
  o.subtract_mean = false;
  auto a = GroupAdvantages(D({1, 0, 1, 0.5}), at::tensor(std::vector<int64_t>{0, 0, 1, 1}), o);
  ASSERT_TRUE(a.ok()) << a.status();
  ExpectTensorNear(*a, {1, 0, 1, 0.5});
  o.divide_by_std = true;
  a = GroupAdvantages(D({1, 0}), at::tensor(std::vector<int64_t>{0, 0}), o);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(std::string(a.status().message()), HasSubstr("divide_by_std needs subtract_mean"));
}

TEST(GroupAdvantagesTest, Float32) {
  const at::Tensor rewards = at::tensor(std::vector<float>{3, 1, 10, 10}, at::kFloat);
  const at::Tensor groups = at::tensor(std::vector<int64_t>{0, 0, 1, 1}, at::kLong);
  auto adv = GroupAdvantages(rewards, groups, {});
  ASSERT_TRUE(adv.ok()) << adv.status();
  EXPECT_EQ(adv->scalar_type(), at::kFloat);
  ExpectTensorNear(*adv, {1, -1, 0, 0}, 1e-6);
}

TEST(GroupAdvantagesTest, Errors) {
  const at::Tensor groups = at::tensor(std::vector<int64_t>{0, 0, 1}, at::kLong);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto st = GroupAdvantages(D({1, nan, 0}), groups, {}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("rewards"));
  st = GroupAdvantages(D({1, std::numeric_limits<double>::infinity(), 0}), groups, {}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  st = GroupAdvantages(at::zeros({0}, at::kDouble), at::zeros({0}, at::kLong), {}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("empty"));
  st = GroupAdvantages(D({1, 2}), groups, {}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("group_ids"));
  st = GroupAdvantages(D({1, 2, 3}), D({0, 0, 1}), {}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("group_ids"));
  st = GroupAdvantages(D2({1, 2, 3, 4, 5, 6}, 3), groups, {}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("rewards"));
  AdvantageOptions zero_eps;
  zero_eps.divide_by_std = true;
  zero_eps.eps = 0;
  st = GroupAdvantages(D({1, 2, 3}), groups, zero_eps).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("eps"));
}

// ---------------------------------------------------------------- K3Kl

TEST(K3KlTest, ZeroWhenEqualPositiveOtherwiseAndHandValue) {
  const at::Tensor lp = D2({-0.1, -2.0, -5.0, -0.7}, 2);
  ExpectTensorNear(K3Kl(lp, lp), {0, 0, 0, 0});

  const at::Tensor ref = D2({-0.3, -1.0, -5.5, -0.2}, 2);
  const at::Tensor k3 = K3Kl(lp, ref);
  EXPECT_EQ(k3.sizes(), lp.sizes());
  EXPECT_TRUE(k3.gt(0).all().item<bool>());

  // pi = 0.5, ref = 0.25: d = log(0.5), k3 = 0.5 - log(0.5) - 1 = log(2) - 0.5.
  const at::Tensor hand = K3Kl(D2({std::log(0.5)}, 1), D2({std::log(0.25)}, 1));
  ExpectTensorNear(hand, {std::log(2.0) - 0.5});
}

// ---------------------------------------------------------------- PolicyLoss

// Builds inputs whose ratios exp(logprobs - old) are exactly `ratios`.
struct Case {
  at::Tensor logprobs, old;
};
Case WithRatios(const std::vector<double>& ratios, int64_t rows) {
  std::vector<double> old, lp;
  for (size_t i = 0; i < ratios.size(); ++i) {
    old.push_back(-0.5 - 0.25 * static_cast<double>(i));
    lp.push_back(old.back() + std::log(ratios[i]));
  }
  return {D2(lp, rows).requires_grad_(), D2(old, rows)};
}

TEST(SoftOverlongPenaltyTest, DapoPiecewiseLinearHandValues) {
  // max 100 tokens, buffer 20: free up to 80, then linear to -penalty at 100.
  EXPECT_EQ(SoftOverlongPenalty(50, 100, 20, 1.0), 0.0);
  EXPECT_EQ(SoftOverlongPenalty(80, 100, 20, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(81, 100, 20, 1.0), -0.05);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(90, 100, 20, 1.0), -0.5);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(100, 100, 20, 1.0), -1.0);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(101, 100, 20, 1.0), -1.0);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(90, 100, 20, 0.5), -0.25);
  // Off: no buffer or no penalty. A buffer longer than the limit is the whole range.
  EXPECT_EQ(SoftOverlongPenalty(100, 100, 0, 1.0), 0.0);
  EXPECT_EQ(SoftOverlongPenalty(100, 100, 20, 0.0), 0.0);
  EXPECT_DOUBLE_EQ(SoftOverlongPenalty(5, 10, 40, 1.0), -0.5);
}

TEST(SequenceKlK1Test, MaskedSumPerSequence) {
  // Row 0: tokens 1 and 2 count: (-2 - -1) + (-3 - -3) = -1 (a negative k1 is possible).
  // Row 1: tokens 0 and 1: (-0.5 - -1) + (-1 - -2) = 1.5; token 2 (masked, -inf-free) ignored.
  const at::Tensor logp = D2({-1, -2, -3, -0.5, -1, -7}, 2);
  const at::Tensor ref = D2({-1.5, -1, -3, -1, -2, -1}, 2);
  const at::Tensor mask = D2({0, 1, 1, 1, 1, 0}, 2).to(at::kFloat);
  ExpectTensorNear(SequenceKlK1(logp, ref, mask), {-1.0, 1.5});
  // Equal policies: 0 everywhere.
  ExpectTensorNear(SequenceKlK1(logp, logp, mask), {0.0, 0.0});
}

TEST(PolicyLossTest, ClipBothSidesValuesAndGradients) {
  // Row 0, A = +1; row 1, A = -2. Ratios: inside, above 1 + 0.28, below 1 - 0.2.
  Case c = WithRatios({1.1, 1.5, 0.5, 1.1, 1.5, 0.5}, 2);
  PolicyLossInputs in;
  in.logprobs = c.logprobs;
  in.old_logprobs = c.old;
  in.advantages = D({1, -2});
  in.mask = at::ones({2, 3}, at::kDouble);
  PolicyLossOptions opts;  // clip_low 0.2, clip_high 0.28, token-mean
  auto out = PolicyLoss(in, opts);
  ASSERT_TRUE(out.ok()) << out.status();
  // Per token -min(r A, clip(r) A):
  //   A=+1: r=1.1 -> -1.1; r=1.5 -> -1.28 (clipped); r=0.5 -> -0.5 (unclipped: 0.5 < 0.8)
  //   A=-2: r=1.1 -> 2.2;  r=1.5 -> 3.0 (unclipped: -3 < -2.56); r=0.5 -> 1.6 (clipped)
  const double want = (-1.1 - 1.28 - 0.5 + 2.2 + 3.0 + 1.6) / 6;
  EXPECT_NEAR(out->loss.item<double>(), want, kTol);
  EXPECT_NEAR(out->clip_frac, 2.0 / 6, kTol);
  EXPECT_EQ(out->kl, 0);
  EXPECT_EQ(out->entropy, 0);
  EXPECT_EQ(out->importance_weight_mean, 1);
  EXPECT_EQ(out->truncated_frac, 0);
  // d(-r A)/d logp = -r A; zero where clipped.
  ExpectTensorNear(GradLogprobs(*out, c.logprobs), {-1.1 / 6, 0, -0.5 / 6, 2.2 / 6, 3.0 / 6, 0});
}

TEST(PolicyLossTest, ClipHighAndLowAreSeparate) {
  // r = 1.25 with A > 0 is inside [0.8, 1.28] (not clipped); with symmetric 0.2 it is clipped.
  Case c = WithRatios({1.25}, 1);
  PolicyLossInputs in;
  in.logprobs = c.logprobs;
  in.old_logprobs = c.old;
  in.advantages = D({1});
  in.mask = at::ones({1, 1}, at::kDouble);
  PolicyLossOptions opts;
  auto out = PolicyLoss(in, opts);
  ASSERT_TRUE(out.ok());
  EXPECT_NEAR(out->loss.item<double>(), -1.25, kTol);
  EXPECT_EQ(out->clip_frac, 0);
  opts.clip_high = 0.2;
  out = PolicyLoss(in, opts);
  ASSERT_TRUE(out.ok());
  EXPECT_NEAR(out->loss.item<double>(), -1.2, kTol);
  EXPECT_EQ(out->clip_frac, 1);
  ExpectTensorNear(GradLogprobs(*out, c.logprobs), {0});
}

PolicyLossInputs RaggedInputs(at::Tensor* logprobs) {
  // Row 0 has 1 completion token, row 1 has 3, row 2 none. Masked-out entries hold values
  // that would dominate (or overflow) the loss if they leaked in.
  *logprobs = D2({-1.0, 40.0, 30.0, -0.5, -0.75, -2.0, 50.0, 60.0, 70.0}, 3).requires_grad_();
  PolicyLossInputs in;
  in.logprobs = *logprobs;
  in.old_logprobs = D2({-1.0, -900.0, 0.0, -0.5 - std::log(1.1), -0.75, -2.0, 0.0, 0.0, 0.0}, 3);
  in.advantages = D({1, -2, 5});
  in.mask = D2({1, 0, 0, 1, 1, 1, 0, 0, 0}, 3);
  return in;
}

TEST(PolicyLossTest, TokenMeanVersusSequenceMean) {
  at::Tensor logprobs;
  PolicyLossInputs in = RaggedInputs(&logprobs);
  // Per-token losses: row 0: [-1]; row 1: ratios [1.1, 1, 1] with A = -2 -> [2.2, 2, 2].
  PolicyLossOptions opts;
  opts.aggregation = LossAggregation::kTokenMean;
  auto tok = PolicyLoss(in, opts);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_NEAR(tok->loss.item<double>(), (-1 + 2.2 + 2 + 2) / 4, kTol);
  ExpectTensorNear(GradLogprobs(*tok, logprobs), {-1.0 / 4, 0, 0, 2.2 / 4, 2.0 / 4, 2.0 / 4, 0, 0, 0});

  opts.aggregation = LossAggregation::kSequenceMean;
  auto seq = PolicyLoss(in, opts);
  ASSERT_TRUE(seq.ok()) << seq.status();
  // Mean over the two rows that have tokens: (-1 + 6.2 / 3) / 2.
  EXPECT_NEAR(seq->loss.item<double>(), (-1 + 6.2 / 3) / 2, kTol);
  ExpectTensorNear(GradLogprobs(*seq, logprobs), {-1.0 / 2, 0, 0, 2.2 / 6, 2.0 / 6, 2.0 / 6, 0, 0, 0});
  EXPECT_GT(std::abs(seq->loss.item<double>() - tok->loss.item<double>()), 0.1);
}

TEST(PolicyLossTest, KlAndEntropyTerms) {
  at::Tensor logprobs;
  PolicyLossInputs in = RaggedInputs(&logprobs);
  // Reference differs on row 1's first token only: pi = exp(-0.5) = 1.1 x old; ref = 0.5 x pi.
  const double lp10 = -0.5;
  in.ref_logprobs = D2({-1.0, 0, 0, lp10 + std::log(0.5), -0.75, -2.0, 0, 0, 0}, 3);
  at::Tensor entropy = D2({0.3, 9, 9, 0.1, 0.2, 0.4, 9, 9, 9}, 3).requires_grad_();
  in.entropy = entropy;
  PolicyLossOptions opts;
  opts.kl_coef = 0.1;
  opts.entropy_coef = 0.01;
  auto out = PolicyLoss(in, opts);
  ASSERT_TRUE(out.ok()) << out.status();
  const double k3 = std::log(2.0) - 0.5;  // see K3KlTest
  EXPECT_NEAR(out->kl, k3 / 4, kTol);
  EXPECT_NEAR(out->entropy, (0.3 + 0.1 + 0.2 + 0.4) / 4, kTol);
  const double pg = (-1 + 2.2 + 2 + 2) / 4;
  EXPECT_NEAR(out->loss.item<double>(), pg + 0.1 * k3 / 4 - 0.01 * 1.0 / 4, kTol);

  auto grads = torch::autograd::grad({out->loss}, {logprobs, entropy});
  // d k3 / d logp = 1 - exp(ref - logp) = 1 - 0.5 on the differing token, 0 elsewhere.
  ExpectTensorNear(grads[0], {-1.0 / 4, 0, 0, (2.2 + 0.1 * 0.5) / 4, 2.0 / 4, 2.0 / 4, 0, 0, 0});
  ExpectTensorNear(grads[1], {-0.01 / 4, 0, 0, -0.01 / 4, -0.01 / 4, -0.01 / 4, 0, 0, 0});

  // The reference alone (kl_coef 0) is reported but does not change the loss.
  opts.kl_coef = 0;
  opts.entropy_coef = 0;
  out = PolicyLoss(in, opts);
  ASSERT_TRUE(out.ok());
  EXPECT_NEAR(out->kl, k3 / 4, kTol);
  EXPECT_NEAR(out->loss.item<double>(), pg, kTol);
}

TEST(PolicyLossTest, TruncatedImportanceWeights) {
  Case c = WithRatios({1, 1, 1, 1}, 1);
  PolicyLossInputs in;
  in.logprobs = c.logprobs;
  in.old_logprobs = c.old;
  // exp(old - behaviour) = [0.5, 3, 1.5, 1].
  in.behaviour_logprobs = c.old - D2({std::log(0.5), std::log(3.0), std::log(1.5), 0}, 1);
  in.advantages = D({1});
  in.mask = at::ones({1, 4}, at::kDouble);
  PolicyLossOptions opts;
  opts.max_importance_weight = 2;
  auto out = PolicyLoss(in, opts);
  ASSERT_TRUE(out.ok()) << out.status();
  // Weights [0.5, 2 (truncated from 3), 1.5, 1]; per token -w r A = -w.
  EXPECT_NEAR(out->importance_weight_mean, 5.0 / 4, kTol);
  EXPECT_NEAR(out->truncated_frac, 1.0 / 4, kTol);
  EXPECT_NEAR(out->loss.item<double>(), -5.0 / 4, kTol);
  ExpectTensorNear(GradLogprobs(*out, c.logprobs), {-0.5 / 4, -2.0 / 4, -1.5 / 4, -1.0 / 4});

  opts.max_importance_weight = 0;  // off: behaviour ignored
  out = PolicyLoss(in, opts);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->importance_weight_mean, 1);
  EXPECT_EQ(out->truncated_frac, 0);
  EXPECT_NEAR(out->loss.item<double>(), -1, kTol);
}

TEST(PolicyLossTest, Float32InputsAndDoubleAdvantages) {
  Case c = WithRatios({1.1, 1.5, 0.5, 1.1, 1.5, 0.5}, 2);
  at::Tensor lp = c.logprobs.detach().to(at::kFloat).requires_grad_();
  PolicyLossInputs in;
  in.logprobs = lp;
  in.old_logprobs = c.old.to(at::kFloat);
  in.advantages = D({1, -2});
  in.mask = at::ones({2, 3}, at::kBool);
  auto out = PolicyLoss(in, {});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->loss.scalar_type(), at::kFloat);
  // float32 inputs: about 12 roundings along the chain (inputs, difference, exp, product, clip,
  // the 6-term mean) at terms up to 3 in size (docs/testing.md).
  EXPECT_NEAR(out->loss.item<double>(), (-1.1 - 1.28 - 0.5 + 2.2 + 3.0 + 1.6) / 6,
              3 * testing_numeric::Float32Tolerance(12));
}

PolicyLossInputs ValidInputs() {
  PolicyLossInputs in;
  in.logprobs = D2({-1, -2, -3, -4}, 2).requires_grad_();
  in.old_logprobs = D2({-1, -2, -3, -4}, 2);
  in.advantages = D({1, -1});
  in.mask = D2({1, 1, 1, 0}, 2);
  return in;
}

void ExpectInvalid(const PolicyLossInputs& in, const std::string& needle, const PolicyLossOptions& opts = {}) {
  auto out = PolicyLoss(in, opts);
  ASSERT_FALSE(out.ok()) << needle;
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
  EXPECT_THAT(out.status().message(), HasSubstr(needle));
}

TEST(PolicyLossTest, Errors) {
  ASSERT_TRUE(PolicyLoss(ValidInputs(), {}).ok());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();

  PolicyLossInputs in = ValidInputs();
  in.advantages = D({nan, 1});
  ExpectInvalid(in, "advantages");
  in = ValidInputs();
  in.old_logprobs = D2({-1, -inf, -3, -4}, 2);
  ExpectInvalid(in, "old_logprobs");
  in = ValidInputs();
  in.behaviour_logprobs = D2({-1, nan, -3, -4}, 2);
  ExpectInvalid(in, "behaviour_logprobs");

  in = ValidInputs();
  in.advantages = D({1, -1, 0});
  ExpectInvalid(in, "advantages");
  in = ValidInputs();
  in.mask = at::ones({2, 3}, at::kDouble);
  ExpectInvalid(in, "mask");
  in = ValidInputs();
  in.old_logprobs = D2({-1, -2, -3, -4}, 1);
  ExpectInvalid(in, "old_logprobs");
  in = ValidInputs();
  in.ref_logprobs = D({-1, -2});
  ExpectInvalid(in, "ref_logprobs");
  in = ValidInputs();
  in.old_logprobs = at::Tensor();
  ExpectInvalid(in, "old_logprobs");
  in = ValidInputs();
  in.logprobs = D({-1, -2});
  ExpectInvalid(in, "logprobs");

  in.logprobs = at::zeros({0, 3}, at::kDouble);
  in.old_logprobs = at::zeros({0, 3}, at::kDouble);
  in.mask = at::zeros({0, 3}, at::kDouble);
  in.advantages = at::zeros({0}, at::kDouble);
  ExpectInvalid(in, "empty");

  in = ValidInputs();
  in.mask = at::zeros({2, 2}, at::kDouble);
  ExpectInvalid(in, "all zero");
  in = ValidInputs();
  in.mask = D2({1, 0.5, 1, 0}, 2);
  ExpectInvalid(in, "mask");

  PolicyLossOptions opts;
  opts.kl_coef = 0.1;
  ExpectInvalid(ValidInputs(), "ref_logprobs", opts);
  opts = {};
  opts.entropy_coef = 0.1;
  ExpectInvalid(ValidInputs(), "entropy", opts);
  opts = {};
  opts.clip_low = 1.0;
  ExpectInvalid(ValidInputs(), "clip_low", opts);
  opts = {};
  opts.clip_high = -0.1;
  ExpectInvalid(ValidInputs(), "clip_high", opts);
}

}  // namespace
}  // namespace swarr
