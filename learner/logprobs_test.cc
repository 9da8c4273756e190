#include "learner/logprobs.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include "common/model/generator.h"
#include "common/testing/numeric.h"
#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using testing_numeric::Float32Tolerance;
using testing_numeric::LogProbTolerance;
using testing_numeric::RelErrWithin;

std::vector<int64_t> Row(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

TEST(PackSequencesTest, RightPaddedLayoutAndMask) {
  auto batch = PackSequences({{5, 6, 7}, {8}}, {{9, 10}, {11, 12, 13}}, 64);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->tokens.sizes(), (std::vector<int64_t>{2, 5}));
  ASSERT_EQ(batch->mask.sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(batch->tokens.scalar_type(), at::kLong);
  EXPECT_EQ(batch->mask.scalar_type(), at::kFloat);
  EXPECT_EQ(Row(batch->tokens[0]), (std::vector<int64_t>{5, 6, 7, 9, 10}));
  EXPECT_EQ(Row(batch->tokens[1]), (std::vector<int64_t>{8, 11, 12, 13, 0}));
  // Position t predicts token t+1: row 0's completion is at 3..4, row 1's at 1..3.
  EXPECT_EQ(Row(batch->mask[0]), (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(Row(batch->mask[1]), (std::vector<int64_t>{1, 1, 1, 0}));
}

TEST(PackSequencesTest, Errors) {
  auto expect = [](absl::Status st, const std::string& a, const std::string& b) {
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_THAT(st.message(), HasSubstr(a));
    EXPECT_THAT(st.message(), HasSubstr(b));
  };
  expect(PackSequences({{1}, {}}, {{2}, {3}}, 64).status(), "trajectory 1", "empty prompt");
  expect(PackSequences({{1}, {2}}, {{2}, {}}, 64).status(), "trajectory 1", "empty completion");
  expect(PackSequences({{1}, {2}, {64}}, {{2}, {3}, {4}}, 64).status(), "trajectory 2", "64");
  expect(PackSequences({{1}, {2}}, {{-1}, {3}}, 64).status(), "trajectory 0", "-1");
  expect(PackSequences({{1}, {2}}, {{2}}, 64).status(), "2 prompts", "1 completions");
  expect(PackSequences({}, {}, 64).status(), "empty", "batch");
}

GenerationRequest Request(std::vector<int64_t> prompt, int64_t n, uint64_t seed, double temp) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.sampling.temperature = temp;
  r.sampling.top_p = 0.9;
  r.sampling.seed = seed;
  return r;
}

// Generates, packs and rescored: every completion token's learner log-prob equals the
// generator's behaviour log-prob.
TEST(ComputeTokenLogProbsTest, ReproducesBehaviourLogProbsOfGenerator) {
  // Layers 0 and 2 slide with window 4; prompts are longer than the window.
  auto model = SharpRandomModel(TinyConfig({4, 0, 4}), 17);
  for (double temp : {0.7, 1.0}) {
    SCOPED_TRACE(testing::Message() << "temperature " << temp);
    GeneratorOptions gopts;
    gopts.max_batch = 2;  // continuous batching: later requests join mid-run
    gopts.prefill_chunk = 3;
    Generator gen(*model, gopts);
    std::vector<GenerationRequest> reqs;
    const std::vector<int64_t> prompt_lens = {3, 9, 14, 6};
    const std::vector<int64_t> new_tokens = {12, 5, 20, 9};
    for (size_t i = 0; i < prompt_lens.size(); ++i) {
      std::vector<int64_t> prompt;
      for (int64_t j = 0; j < prompt_lens[i]; ++j) prompt.push_back(3 + (j * 11 + 5 * i) % 60);
      reqs.push_back(Request(prompt, new_tokens[i], 500 + i, temp));
    }
    if (temp == 1.0) {  // greedy reports the log-prob at temperature 1
      reqs[3].sampling.greedy = true;
    }
    auto res = gen.Generate(reqs);
    ASSERT_TRUE(res.ok()) << res.status();

    std::vector<std::vector<int64_t>> prompts, completions;
    for (const GenerationResult& r : *res) {
      ASSERT_EQ(r.logprobs.size() + r.prompt_length, r.tokens.size());
      prompts.emplace_back(r.tokens.begin(), r.tokens.begin() + r.prompt_length);
      completions.emplace_back(r.tokens.begin() + r.prompt_length, r.tokens.end());
    }
    auto batch = PackSequences(prompts, completions, model->config().vocab_size);
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_EQ(batch->tokens.size(1), 14 + 20);

    at::NoGradGuard no_grad;
    // The reference scorer, and the trainers' GPU configuration (packed, chunked) on the CPU.
    for (bool packed : {false, true}) {
      SCOPED_TRACE(testing::Message() << "packed + chunked " << packed);
      ScoringOptions so;
      so.packed = packed;
      so.chunk_tokens = packed ? 7 : 0;
      TokenLogProbs lp = ScoreSequences(*model, *batch, temp, /*with_entropy=*/true, so);
      ASSERT_EQ(lp.logprobs.sizes(), batch->mask.sizes());
      ASSERT_EQ(lp.entropy.sizes(), batch->mask.sizes());
      EXPECT_EQ(lp.logprobs.scalar_type(), at::kFloat);
      EXPECT_TRUE(at::isfinite(lp.logprobs).all().item<bool>());
      EXPECT_TRUE(at::isfinite(lp.entropy).all().item<bool>());
      at::Tensor got = lp.logprobs.contiguous();
      // Cached decoding against one full forward pass: float32 rounding of the two (docs/testing.md).
      const double tol = LogProbTolerance(ForwardReductionLength(model->config(), batch->tokens.size(1)),
                                          MaxAbsLogit(*model, batch->tokens) / temp);
      double max_err = 0, min_logprob = 0;
      int64_t checked = 0;
      for (size_t i = 0; i < res->size(); ++i) {
        const GenerationResult& r = (*res)[i];
        for (size_t k = 0; k < r.logprobs.size(); ++k) {
          const int64_t pos = r.prompt_length + static_cast<int64_t>(k) - 1;  // predicting position
          ASSERT_EQ(batch->mask[i][pos].item<float>(), 1.0f);
          const double learner = got[i][pos].item<double>();
          ASSERT_NEAR(learner, r.logprobs[k], tol) << "sequence " << i << " token " << k;
          max_err = std::max(max_err, std::abs(learner - r.logprobs[k]));
          min_logprob = std::min(min_logprob, static_cast<double>(r.logprobs[k]));
          ++checked;
        }
      }
      EXPECT_EQ(checked, batch->mask.sum().item<double>());
      EXPECT_LT(min_logprob, -0.5);  // the comparison is not between near-zero log-probs
      testing_numeric::ReportMargin(max_err, tol);
    }
  }
}

TEST(ComputeTokenLogProbsTest, MatchesDoubleReferenceWithEntropy) {
  auto model = SharpRandomModel(TinyConfig({4, 0, 4}), 5);
  auto batch = PackSequences({{4, 9, 13, 22, 31, 40}, {7, 8}}, {{50, 3, 2}, {1, 60, 61, 62, 63, 0}}, 64);
  ASSERT_TRUE(batch.ok());
  const double temp = 0.8;
  at::NoGradGuard no_grad;
  TokenLogProbs lp = ComputeTokenLogProbs(*model, batch->tokens, temp, true);
  const at::Tensor logits = model->Logits(batch->tokens).to(at::kDouble);
  const at::Tensor ref = at::log_softmax(logits / temp, -1);  // [N, L, V]
  const int64_t L = batch->tokens.size(1);
  // The same logits; log_softmax (and the entropy's sum) over V = 64 in float32 against double.
  const double tol = LogProbTolerance(64, logits.abs().max().item<double>() / temp);
  double max_entropy = 0;
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t t = 0; t + 1 < L; ++t) {
      const at::Tensor dist = ref[i][t];
      const int64_t next = batch->tokens[i][t + 1].item<int64_t>();
      EXPECT_NEAR(lp.logprobs[i][t].item<double>(), dist[next].item<double>(), tol) << i << "," << t;
      const double h = -(dist.exp() * dist).sum().item<double>();
      EXPECT_NEAR(lp.entropy[i][t].item<double>(), h, tol) << i << "," << t;
      max_entropy = std::max(max_entropy, h);
    }
  }
  EXPECT_GT(max_entropy, 0.1);  // the entropies compared are not all near zero
  TokenLogProbs no_ent = ComputeTokenLogProbs(*model, batch->tokens, temp, false);
  EXPECT_FALSE(no_ent.entropy.defined());
  // The entropy is computed after the log-probs, from them: the same code gives the same bits.
  EXPECT_TRUE(at::equal(no_ent.logprobs, lp.logprobs));
}

TEST(ComputeTokenLogProbsTest, PaddingDoesNotChangeValues) {
  auto model = SharpRandomModel(TinyConfig({4, 0, 4}), 23);
  const std::vector<std::vector<int64_t>> prompts = {{4, 9, 13, 22, 31, 40, 41}, {7, 8}, {10, 11, 12}};
  const std::vector<std::vector<int64_t>> completions = {{50, 3}, {1, 60, 61, 62, 63, 5, 6, 7, 8, 9, 10, 11}, {20}};
  auto batch = PackSequences(prompts, completions, 64);
  ASSERT_TRUE(batch.ok());
  at::NoGradGuard no_grad;
  TokenLogProbs all = ComputeTokenLogProbs(*model, batch->tokens, 0.9, true);
  // Alone and padded into a batch: other matrix shapes, equal up to float32 rounding.
  const double tol = LogProbTolerance(ForwardReductionLength(model->config(), batch->tokens.size(1)),
                                      MaxAbsLogit(*model, batch->tokens) / 0.9);
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto alone = PackSequences({prompts[i]}, {completions[i]}, 64);
    ASSERT_TRUE(alone.ok());
    TokenLogProbs one = ComputeTokenLogProbs(*model, alone->tokens, 0.9, true);
    const int64_t n = one.logprobs.size(1);
    ASSERT_LT(n, all.logprobs.size(1) + 1);
    EXPECT_LE((one.logprobs[0] - all.logprobs[i].narrow(0, 0, n)).abs().max().item<double>(), tol) << "sequence " << i;
    EXPECT_LE((one.entropy[0] - all.entropy[i].narrow(0, 0, n)).abs().max().item<double>(), tol) << "sequence " << i;
    EXPECT_TRUE(at::equal(alone->mask[0], batch->mask[i].narrow(0, 0, n)));  // 0/1 values
  }
}

TEST(ComputeTokenLogProbsTest, GradientsReachParameters) {
  auto model = SharpRandomModel(TinyConfig({4, 0, 4}), 29);
  std::vector<at::Tensor> params;
  for (const auto& [name, p] : model->named_parameters()) {
    p.requires_grad_(true);
    params.push_back(p);
  }
  auto batch = PackSequences({{4, 9, 13, 22, 31, 40}, {7, 8}}, {{50, 3, 2}, {1, 60, 61, 62, 63, 5}}, 64);
  ASSERT_TRUE(batch.ok());
  TokenLogProbs lp = ComputeTokenLogProbs(*model, batch->tokens, 0.7, true);
  ASSERT_TRUE(lp.logprobs.requires_grad());
  const at::Tensor objective = (lp.logprobs * batch->mask).sum() + (lp.entropy * batch->mask).sum();
  std::vector<at::Tensor> grads = torch::autograd::grad({objective}, params, /*grad_outputs=*/{},
                                                        /*retain_graph=*/false, /*create_graph=*/false,
                                                        /*allow_unused=*/true);
  int64_t nonzero = 0;
  for (size_t i = 0; i < grads.size(); ++i) {
    const std::string& name = model->named_parameters()[i].first;
    ASSERT_TRUE(grads[i].defined()) << name;
    EXPECT_TRUE(at::isfinite(grads[i]).all().item<bool>()) << name;
    // k_proj's bias shifts every score of a query equally: softmax-invariant, ~zero gradient.
    if (name.find("k_proj.bias") == std::string::npos) {
      EXPECT_GT(grads[i].abs().max().item<double>(), 0) << name;
    }
    if (grads[i].abs().max().item<double>() > 0) ++nonzero;
  }
  EXPECT_GE(nonzero, static_cast<int64_t>(grads.size()) - 3);
  for (at::Tensor& p : params) p.requires_grad_(false);
}

// The trainers' scorer: the same log-probs and entropies as the unchunked reference at every
// completion position (0 elsewhere), padded or packed, for any chunk size, with or without
// activation checkpointing; and the same gradients.
TEST(ScoreSequencesTest, EqualsUnchunkedReferenceAtCompletionPositions) {
  auto model = SharpRandomModel(TinyConfig({4, 0, 4}, /*sinks=*/1), 31);
  const std::vector<std::vector<int64_t>> prompts = {{4, 9, 13, 22, 31, 40, 41}, {7, 8}, {10, 11, 12}};
  const std::vector<std::vector<int64_t>> completions = {{50, 3}, {1, 60, 61, 62, 63, 5, 6, 7, 8, 9, 10, 11}, {20}};
  auto batch = PackSequences(prompts, completions, 64);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(batch->lengths, (std::vector<int64_t>{9, 14, 4}));
  const double temp = 0.8;
  at::NoGradGuard no_grad;
  const TokenLogProbs ref = ComputeTokenLogProbs(*model, batch->tokens, temp, true);
  // Another batching of the same rows (packed, per-sequence attention) and of the vocabulary
  // product (chunks): float32 rounding of a forward pass, as in PaddingDoesNotChangeValues.
  const double tol = LogProbTolerance(ForwardReductionLength(model->config(), batch->tokens.size(1)),
                                      MaxAbsLogit(*model, batch->tokens) / temp);
  for (bool packed : {false, true}) {
    for (int64_t chunk : {0, 1, 5, 2048}) {
      if (!packed && chunk == 0) continue;  // that is ComputeTokenLogProbs itself
      ScoringOptions o;
      o.packed = packed;
      o.chunk_tokens = chunk;
      const TokenLogProbs lp = ScoreSequences(*model, *batch, temp, true, o);
      ASSERT_EQ(lp.logprobs.sizes(), ref.logprobs.sizes());
      const at::Tensor m = batch->mask;
      EXPECT_LE(((lp.logprobs - ref.logprobs) * m).abs().max().item<double>(), tol) << packed << " " << chunk;
      EXPECT_LE(((lp.entropy - ref.entropy) * m).abs().max().item<double>(), tol) << packed << " " << chunk;
      // Nothing is computed where the mask is 0.
      EXPECT_EQ((lp.logprobs * (1 - m)).abs().max().item<double>(), 0);
      EXPECT_EQ((lp.entropy * (1 - m)).abs().max().item<double>(), 0);
    }
  }
  EXPECT_GT((ref.logprobs * batch->mask).abs().max().item<double>(), 0.1);  // not trivially zero
}

TEST(ScoreSequencesTest, GradientsEqualUnchunkedReference) {
  auto model = SharpRandomModel(TinyConfig({4, 0, 4}), 37, 2.0);
  std::vector<at::Tensor> params;
  for (const auto& [name, p] : model->named_parameters()) {
    p.requires_grad_(true);
    params.push_back(p);
  }
  auto batch = PackSequences({{4, 9, 13, 22, 31, 40}, {7, 8}, {3}}, {{50, 3, 2}, {1, 60, 61, 62, 63, 5}, {9, 9}}, 64);
  ASSERT_TRUE(batch.ok());
  at::manual_seed(2);
  const at::Tensor w1 = at::randn(batch->mask.sizes()) * batch->mask;
  const at::Tensor w2 = at::randn(batch->mask.sizes()) * batch->mask;
  // Through backward() into .grad, as the trainers do (checkpointed layers re-enter the
  // autograd engine, so torch::autograd::grad with inputs would not see their parameters).
  const auto grads_of = [&](const TokenLogProbs& lp) {
    for (at::Tensor& p : params) p.mutable_grad() = at::Tensor();
    ((lp.logprobs * w1).sum() + (lp.entropy * w2).sum()).backward();
    std::vector<at::Tensor> g;
    for (at::Tensor& p : params) g.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    return g;
  };
  const std::vector<at::Tensor> ref = grads_of(ComputeTokenLogProbs(*model, batch->tokens, 0.7, true));
  // Forward and backward of the whole model in another batching: twice the forward's chain.
  const double tol = Float32Tolerance(2 * ForwardReductionLength(model->config(), batch->tokens.size(1)));
  for (bool packed : {false, true}) {
    for (bool checkpoint : {false, true}) {
      ScoringOptions o;
      o.packed = packed;
      o.chunk_tokens = 3;
      o.checkpoint_layers = checkpoint;
      const std::vector<at::Tensor> got = grads_of(ScoreSequences(*model, *batch, 0.7, true, o));
      for (size_t i = 0; i < got.size(); ++i) {
        const std::string& name = model->named_parameters()[i].first;
        ASSERT_TRUE(got[i].defined()) << name;
        if (name.find("k_proj.bias") != std::string::npos) continue;  // ~0: softmax-invariant
        EXPECT_TRUE(RelErrWithin(got[i], ref[i], tol)) << name << " packed " << packed << " checkpoint " << checkpoint;
      }
    }
  }
  for (at::Tensor& p : params) p.requires_grad_(false);
}

}  // namespace
}  // namespace swarr
