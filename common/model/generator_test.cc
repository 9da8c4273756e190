#include "common/model/generator.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "common/kv_cache/kv_cache.h"
#include "common/testing/numeric.h"
#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using testing_numeric::Float32Tolerance;
using testing_numeric::LogProbTolerance;

GenerationRequest Request(std::vector<int64_t> prompt, int64_t n, uint64_t seed, double temp = 1.0) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_new_tokens = n;
  r.sampling.temperature = temp;
  r.sampling.seed = seed;
  return r;
}

// Every sampled token's log-prob equals log_softmax(recomputed logits / T) at that position, up
// to the float32 rounding of the two forward passes (cached decode vs full recompute; the
// tolerance rule of docs/testing.md at the scale of the logits / T).
void ExpectLogProbsMatchRecompute(const Model& model, const GenerationResult& r, double temp) {
  at::NoGradGuard no_grad;
  at::Tensor logits = model.Logits(at::tensor(r.tokens, at::kLong).view({1, -1}))[0];
  at::Tensor lp = at::log_softmax(logits.to(at::kDouble) / temp, -1);
  const int64_t len = static_cast<int64_t>(r.tokens.size());
  const double tol =
      LogProbTolerance(ForwardReductionLength(model.config(), len), logits.abs().max().item<double>() / temp);
  double max_err = 0;
  for (size_t i = 0; i < r.logprobs.size(); ++i) {
    const int64_t pos = r.prompt_length + static_cast<int64_t>(i);
    const double want = lp[pos - 1][r.tokens[pos]].item<double>();
    ASSERT_NEAR(r.logprobs[i], want, tol) << "token " << i;
    max_err = std::max(max_err, std::abs(r.logprobs[i] - want));
  }
  testing_numeric::ReportMargin(max_err, tol);
}

TEST(GeneratorTest, SampledLogProbsMatchRecomputeUnderWindow) {
  for (int64_t w : {1, 2, 7, 16}) {
    auto model = SharpRandomModel(TinyConfig({w, 0, w}, w > 2 ? 2 : 0), 100 + w);
    GeneratorOptions opts;
    opts.max_batch = 3;
    opts.prefill_chunk = 4;
    Generator gen(*model, opts);
    std::vector<GenerationRequest> reqs;
    for (int i = 0; i < 5; ++i) {
      std::vector<int64_t> prompt;
      for (int j = 0; j < 3 + 9 * i; ++j) prompt.push_back(3 + (j * 7 + i) % 60);
      reqs.push_back(Request(prompt, 20 + 5 * i, 1000 + i, 0.8));
      if (i == 3) reqs.back().sampling.top_p = 0.9;
      if (i == 4) reqs.back().sampling.top_k = 5;
    }
    auto res = gen.Generate(reqs);
    ASSERT_TRUE(res.ok()) << res.status();
    for (size_t i = 0; i < res->size(); ++i) {
      EXPECT_EQ((*res)[i].logprobs.size(), static_cast<size_t>(reqs[i].max_new_tokens));
      ExpectLogProbsMatchRecompute(*model, (*res)[i], 0.8);
    }
    EXPECT_TRUE(gen.idle());
    EXPECT_EQ(gen.cache().num_free(), 3);
  }
}

TEST(GeneratorTest, GreedyEqualsArgmaxOfRecompute) {
  auto model = SharpRandomModel(TinyConfig({5, 5}), 3);
  GenerationRequest r;
  r.prompt = {4, 9, 13, 22, 31, 40, 41, 50, 7, 8, 9};
  r.max_new_tokens = 30;
  r.sampling.greedy = true;
  Generator gen(*model);
  auto res = gen.Generate({r});
  ASSERT_TRUE(res.ok());
  at::NoGradGuard no_grad;
  at::Tensor logits = model->Logits(at::tensor((*res)[0].tokens, at::kLong).view({1, -1}))[0];
  // Cached decoding and the recompute round differently: only a near tie (logits closer than
  // the float32 tolerance at the logits' scale) may pick another token, and the texts part there.
  const double tie = 2 * Float32Tolerance(ForwardReductionLength(model->config(), 41)) *
                     logits.abs().max().item<double>();
  for (int64_t i = 0; i < 30; ++i) {
    const int64_t pos = 11 + i;
    const int64_t best = logits[pos - 1].argmax().item<int64_t>(), got = (*res)[0].tokens[pos];
    if (best == got) continue;
    EXPECT_LT((logits[pos - 1][best] - logits[pos - 1][got]).item<double>(), tie) << "step " << i;
    break;
  }
}

TEST(GeneratorTest, SeededRequestsIndependentOfBatching) {
  auto model = SharpRandomModel(TinyConfig({6, 6}), 5);
  GenerationRequest target = Request({5, 6, 7, 8, 9, 10, 11}, 25, 77);
  GeneratorOptions one;
  one.max_batch = 1;
  Generator alone(*model, one);
  auto a = alone.Generate({target});
  GeneratorOptions many;
  many.max_batch = 4;
  Generator batched(*model, many);
  auto b = batched.Generate({Request({3, 4}, 10, 1), Request({12, 13, 14}, 40, 2), target, Request({9}, 5, 3)});
  ASSERT_TRUE(a.ok() && b.ok());
  // Same seed, same sampler: the same tokens (a draw within rounding of a token boundary could
  // part them, with probability about the tolerance below per token).
  EXPECT_EQ((*a)[0].tokens, (*b)[2].tokens);
  // Alone and in a batch of 4: other matrix shapes, so equal up to float32 rounding.
  const at::Tensor ids = at::tensor((*a)[0].tokens, at::kLong).view({1, -1});
  const double tol = LogProbTolerance(ForwardReductionLength(model->config(), ids.size(1)), MaxAbsLogit(*model, ids));
  for (size_t i = 0; i < (*a)[0].logprobs.size(); ++i) EXPECT_NEAR((*a)[0].logprobs[i], (*b)[2].logprobs[i], tol);
}

TEST(GeneratorTest, StopTokensAndZeroLength) {
  auto model = SharpRandomModel(TinyConfig({4}), 9);
  GenerationRequest r = Request({5, 6, 7}, 200, 11);
  // Every token is a stop token: generation ends after the first.
  for (int64_t i = 0; i < 64; ++i) r.stop_token_ids.push_back(i);
  GenerationRequest zero = Request({5, 6}, 0, 1);
  Generator gen(*model);
  auto res = gen.Generate({r, zero});
  ASSERT_TRUE(res.ok());
  EXPECT_TRUE((*res)[0].stopped);
  EXPECT_EQ((*res)[0].tokens.size(), 4u);
  EXPECT_EQ((*res)[1].tokens, (std::vector<int64_t>{5, 6}));
  EXPECT_TRUE((*res)[1].logprobs.empty());
}

TEST(GeneratorTest, FailedStepFreesSlotsAndGeneratorRecovers) {
  auto model = SharpRandomModel(TinyConfig({4, 0}), 12);
  GeneratorOptions opts;
  opts.max_batch = 2;
  Generator gen(*model, opts);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(gen.Submit(Request({5, 6, 7}, 10, i)).ok());
  gen.FailNextStepForTest();
  auto step = gen.Step();
  ASSERT_FALSE(step.ok());
  EXPECT_THAT(std::string(step.status().message()), HasSubstr("injected failure"));
  EXPECT_EQ(gen.num_running(), 0);
  EXPECT_EQ(gen.num_queued(), 1);  // the third request never started
  EXPECT_EQ(gen.cache().num_free(), 2);
  // Still usable: the request queued before the failure (id 2) completes ...
  EXPECT_EQ(gen.Generate({Request({1}, 1, 0)}).status().code(), absl::StatusCode::kFailedPrecondition);
  std::vector<int64_t> done_ids;
  while (!gen.idle()) {
    auto done = gen.Step();
    ASSERT_TRUE(done.ok()) << done.status();
    for (auto& [id, r] : *done) done_ids.push_back(id);
  }
  EXPECT_EQ(done_ids, (std::vector<int64_t>{2}));
  EXPECT_EQ(gen.cache().num_free(), 2);
  // ... and new requests give what a fresh generator gives.
  auto res = gen.Generate({Request({9, 10}, 6, 99)});
  ASSERT_TRUE(res.ok()) << res.status();
  Generator fresh(*model, opts);
  auto want = fresh.Generate({Request({9, 10}, 6, 99)});
  EXPECT_EQ((*res)[0].tokens, (*want)[0].tokens);
}

TEST(GeneratorTest, BadRequestsAreRejected) {
  auto model = SharpRandomModel(TinyConfig({4}), 9);
  Generator gen(*model);
  EXPECT_THAT(std::string(gen.Submit(Request({}, 3, 0)).status().message()), HasSubstr("prompt is empty"));
  EXPECT_THAT(std::string(gen.Submit(Request({1, 64}, 3, 0)).status().message()), HasSubstr("id 64"));
  EXPECT_THAT(std::string(gen.Submit(Request({1}, -1, 0)).status().message()), HasSubstr("max_new_tokens"));
  EXPECT_THAT(std::string(gen.Submit(Request({1}, 3, 0, -1.0)).status().message()), HasSubstr("temperature"));
  EXPECT_TRUE(gen.idle());
}

TEST(GeneratorTest, TokenTagsRecordTheTagOfEachStep) {
  auto model = SharpRandomModel(TinyConfig({4, 0}), 21);
  GeneratorOptions opts;
  opts.max_batch = 2;
  Generator gen(*model, opts);
  gen.SetTokenTag(7);
  ASSERT_TRUE(gen.Submit(Request({5, 6, 7}, 6, 1)).ok());
  // Steps 1 and 2 run under tag 7 (prefill's first token + one decode, then another decode).
  ASSERT_TRUE(gen.Step().ok());
  ASSERT_TRUE(gen.Step().ok());
  gen.SetTokenTag(9);
  EXPECT_EQ(gen.token_tag(), 9);
  // A request admitted after the change is all 9.
  ASSERT_TRUE(gen.Submit(Request({8, 9}, 3, 2)).ok());
  std::map<int64_t, GenerationResult> done;
  while (!gen.idle()) {
    auto step = gen.Step();
    ASSERT_TRUE(step.ok()) << step.status();
    for (auto& [id, r] : *step) done[id] = std::move(r);
  }
  ASSERT_EQ(done.size(), 2u);
  // Step 1 samples two tokens for request 0 (prefill + decode), step 2 one more.
  EXPECT_EQ(done[0].token_tags, (std::vector<int64_t>{7, 7, 7, 9, 9, 9}));
  EXPECT_EQ(done[1].token_tags, (std::vector<int64_t>{9, 9, 9}));
  EXPECT_EQ(done[0].token_tags.size(), done[0].logprobs.size());
  EXPECT_EQ(gen.num_generated_tokens(), 9);
}

TEST(GeneratorTest, CancelFreesTheSlotAndDropsTheResult) {
  auto model = SharpRandomModel(TinyConfig({4}), 22);
  GeneratorOptions opts;
  opts.max_batch = 1;
  Generator gen(*model, opts);
  ASSERT_EQ(*gen.Submit(Request({5, 6}, 50, 1)), 0);
  ASSERT_EQ(*gen.Submit(Request({7, 8}, 50, 2)), 1);
  ASSERT_EQ(*gen.Submit(Request({9, 10}, 4, 3)), 2);
  ASSERT_TRUE(gen.Step().ok());
  EXPECT_EQ(gen.num_running(), 1);
  EXPECT_TRUE(gen.Cancel(1));   // queued
  EXPECT_TRUE(gen.Cancel(0));   // running: its slot frees at once
  EXPECT_FALSE(gen.Cancel(0));
  EXPECT_FALSE(gen.Cancel(42));
  EXPECT_EQ(gen.num_running(), 0);
  EXPECT_EQ(gen.num_queued(), 1);
  EXPECT_EQ(gen.cache().num_free(), 1);
  std::vector<int64_t> finished;
  GenerationResult last;
  while (!gen.idle()) {
    auto step = gen.Step();
    ASSERT_TRUE(step.ok()) << step.status();
    for (auto& [id, r] : *step) {
      finished.push_back(id);
      last = r;
    }
  }
  EXPECT_EQ(finished, (std::vector<int64_t>{2}));
  // The survivor is what it would have been alone.
  Generator fresh(*model, opts);
  auto want = fresh.Generate({Request({9, 10}, 4, 3)});
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(last.tokens, (*want)[0].tokens);
}

}  // namespace
}  // namespace swarr
