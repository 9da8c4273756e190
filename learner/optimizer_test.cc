#include "learner/optimizer.h"

#include <cmath>

#include <ATen/ATen.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

TEST(LrScheduleTest, WarmupCosineLinearConstant) {
  LrSchedule s;
  s.lr = 1.0;
  s.warmup_steps = 4;
  s.total_steps = 14;
  s.min_lr_ratio = 0.1;
  ASSERT_TRUE(ValidateLrSchedule(s).ok());
  EXPECT_DOUBLE_EQ(ScheduledLr(s, 0), 0.25);
  EXPECT_DOUBLE_EQ(ScheduledLr(s, 3), 1.0);
  EXPECT_DOUBLE_EQ(ScheduledLr(s, 4), 1.0);
  EXPECT_NEAR(ScheduledLr(s, 9), 0.1 + 0.9 * 0.5, 1e-12);  // halfway through the cosine
  EXPECT_DOUBLE_EQ(ScheduledLr(s, 14), 0.1);
  EXPECT_DOUBLE_EQ(ScheduledLr(s, 100), 0.1);
  s.kind = "linear";
  EXPECT_NEAR(ScheduledLr(s, 9), 0.55, 1e-12);
  s.kind = "constant";
  EXPECT_DOUBLE_EQ(ScheduledLr(s, 9), 1.0);
  s.kind = "exp";
  EXPECT_THAT(std::string(ValidateLrSchedule(s).message()), HasSubstr("'exp'"));
  s.kind = "cosine";
  s.lr = 0;
  EXPECT_THAT(std::string(ValidateLrSchedule(s).message()), HasSubstr("lr"));
}

TEST(AdamWTest, MatchesHandComputedSteps) {
  // Two steps on a 2-element weight and a bias, in double, against the textbook formulas.
  at::Tensor w = at::tensor({1.0, -2.0}, at::kDouble).view({1, 2}).clone(), b = at::tensor({0.5}, at::kDouble);
  AdamWOptions opts;
  opts.weight_decay = 0.1;
  opts.grad_clip = 0;
  AdamW adam({{"layer.weight", w}, {"layer.bias", b}}, opts);
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  double ew[2] = {1.0, -2.0}, eb = 0.5, mw[2] = {0, 0}, vw[2] = {0, 0}, mb = 0, vb = 0;
  const double gw[2][2] = {{0.3, -0.1}, {0.2, 0.4}}, gb[2] = {1.0, -0.5};
  for (int t = 1; t <= 2; ++t) {
    w.mutable_grad() = at::tensor({gw[t - 1][0], gw[t - 1][1]}, at::kDouble).view({1, 2});
    b.mutable_grad() = at::tensor({gb[t - 1]}, at::kDouble);
    auto norm = adam.Step(lr);
    ASSERT_TRUE(norm.ok()) << norm.status();
    for (int i = 0; i < 2; ++i) {
      ew[i] *= 1 - lr * wd;
      mw[i] = b1 * mw[i] + (1 - b1) * gw[t - 1][i];
      vw[i] = b2 * vw[i] + (1 - b2) * gw[t - 1][i] * gw[t - 1][i];
      ew[i] -= lr * (mw[i] / (1 - std::pow(b1, t))) / (std::sqrt(vw[i] / (1 - std::pow(b2, t))) + eps);
    }
    mb = b1 * mb + (1 - b1) * gb[t - 1];
    vb = b2 * vb + (1 - b2) * gb[t - 1] * gb[t - 1];
    eb -= lr * (mb / (1 - std::pow(b1, t))) / (std::sqrt(vb / (1 - std::pow(b2, t))) + eps);  // no decay
  }
  EXPECT_NEAR(w[0][0].item<double>(), ew[0], 1e-12);
  EXPECT_NEAR(w[0][1].item<double>(), ew[1], 1e-12);
  EXPECT_NEAR(b[0].item<double>(), eb, 1e-12);
  EXPECT_EQ(adam.step(), 2);
}

TEST(AdamWTest, WeightDecaySkipsNormsAndBiases) {
  EXPECT_TRUE(IsNoDecayParameter("model.norm.weight", at::zeros({4})));
  EXPECT_TRUE(IsNoDecayParameter("q_proj.bias", at::zeros({4})));
  EXPECT_FALSE(IsNoDecayParameter("q_proj.weight", at::zeros({4, 4})));
}

TEST(AdamWTest, ClipsGlobalNormAndSkipsNonFinite) {
  at::Tensor a = at::zeros({3}, at::kDouble), c = at::zeros({2, 2}, at::kDouble);
  AdamWOptions opts;
  opts.grad_clip = 1.0;
  AdamW adam({{"a", a}, {"c", c}}, opts);
  a.mutable_grad() = at::full({3}, 2.0, at::kDouble);
  c.mutable_grad() = at::full({2, 2}, 2.0, at::kDouble);
  auto norm = adam.Step(0.1);
  ASSERT_TRUE(norm.ok());
  EXPECT_NEAR(*norm, std::sqrt(7 * 4.0), 1e-12);  // reported before clipping
  // Adam's first step moves each coordinate by lr whatever the (clipped) gradient scale.
  EXPECT_NEAR(a[0].item<double>(), -0.1, 1e-6);
  at::Tensor before = c.clone();
  c.mutable_grad() = at::full({2, 2}, NAN, at::kDouble);
  auto bad = adam.Step(0.1);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(at::equal(c, before));
  EXPECT_EQ(adam.step(), 1);
  EXPECT_FALSE(c.grad().defined());
}

TEST(AdamWTest, Bf16ParametersKeepFloat32Masters) {
  // 1.0 in bfloat16 has a resolution of 2^-7: 100 updates of 1e-4 each vanish in bf16
  // arithmetic but accumulate in the float32 master.
  at::Tensor p = at::ones({2, 2}, at::kBFloat16);
  AdamWOptions opts;
  opts.grad_clip = 0;
  AdamW adam({{"w", p}}, opts);
  for (int i = 0; i < 100; ++i) {
    p.mutable_grad() = at::ones({2, 2}, at::kBFloat16);
    ASSERT_TRUE(adam.Step(1e-4).ok());
  }
  EXPECT_EQ(p.scalar_type(), at::kBFloat16);
  // bf16 rounding of the master's 0.99: bf16 keeps 8 significant bits, a spacing of 2^-8 = 0.0039
  // just below 1, so the rounded value is within half of that.
  EXPECT_NEAR(p[0][0].item<float>(), 0.99f, 0.004f);
  bool has_master = false;
  for (auto& [name, t] : adam.StateTensors()) {
    if (name == "w.master") {
      has_master = true;
      EXPECT_EQ(t.scalar_type(), at::kFloat);
      // 100 float32 updates of 1e-4 from 1.0: at most 100 roundings of half an ulp (6e-8) each.
      EXPECT_NEAR(t[0][0].item<float>(), 0.99f, 1e-5f);
    }
  }
  EXPECT_TRUE(has_master);
}

TEST(AdamWTest, LoadStateChecksNamesAndShapes) {
  at::Tensor a = at::zeros({3});
  AdamW adam({{"a", a}}, {});
  std::map<std::string, at::Tensor> state = {{"a.exp_avg", at::ones({3})}, {"a.exp_avg_sq", at::ones({3})}};
  EXPECT_TRUE(adam.LoadState(state, 5).ok());
  EXPECT_EQ(adam.step(), 5);
  state["a.exp_avg"] = at::ones({4});
  EXPECT_THAT(std::string(adam.LoadState(state, 5).message()), HasSubstr("'a.exp_avg' has shape"));
  state.erase("a.exp_avg");
  EXPECT_THAT(std::string(adam.LoadState(state, 5).message()), HasSubstr("lacks 'a.exp_avg'"));
}

}  // namespace
}  // namespace swarr
