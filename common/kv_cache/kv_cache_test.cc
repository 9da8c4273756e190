// The ring cache must reproduce what recomputing the whole sequence gives.
#include "common/kv_cache/kv_cache.h"

#include <tuple>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "common/testing/numeric.h"
#include "common/testing/test_models.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using testing_numeric::Float32Tolerance;
using testing_numeric::RelErrWithin;

// Cached decoding (one position against the ring) and the full recompute (all positions at
// once, band attention) sum in other orders and shapes: equal up to float32 rounding of a
// forward pass over `len` positions (docs/testing.md).
double CacheTolerance(const Model& model, int64_t len) {
  return Float32Tolerance(ForwardReductionLength(model.config(), len));
}

// (window, sinks, hybrid: first layer full attention)
class RingCacheTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, bool>> {};

TEST_P(RingCacheTest, CachedLogitsEqualFullRecompute) {
  auto [w, sinks, hybrid] = GetParam();
  ModelConfig config = TinyConfig({hybrid ? 0 : w, w, w}, sinks);
  auto model = SharpRandomModel(config, 7 + w);
  at::NoGradGuard no_grad;
  KvCacheOptions opts;
  opts.max_seqs = 3;
  opts.full_initial_capacity = 4;  // forces the growing cache to reallocate
  KvCache cache(model->config(), opts);

  // Three sequences with prompts shorter and longer than W, prefilled in chunks of 5
  // (which wrap the ring), then decoded together; one is replaced halfway.
  at::manual_seed(w * 13 + sinks);
  const int64_t vocab = config.vocab_size;
  std::vector<int64_t> prompt_lens = {std::max<int64_t>(1, w / 2), w + 3, 2 * w + 11};
  std::vector<std::vector<int64_t>> seqs(3);
  std::vector<int> slots;
  auto prefill = [&](int i, int64_t len) {
    auto slot = cache.Allocate();
    ASSERT_TRUE(slot.ok());
    slots.resize(3);
    slots[i] = *slot;
    at::Tensor prompt = at::randint(3, vocab, {len}, at::kLong);
    seqs[i].assign(prompt.data_ptr<int64_t>(), prompt.data_ptr<int64_t>() + len);
    at::Tensor logits;
    for (int64_t s = 0; s < len; s += 5) {
      const int64_t e = std::min(len, s + 5);
      logits = model->ForwardCached(prompt.narrow(0, s, e - s).view({1, e - s}), {slots[i]}, &cache);
    }
    at::Tensor full = model->Logits(at::tensor(seqs[i], at::kLong).view({1, -1})).select(1, len - 1);
    EXPECT_TRUE(RelErrWithin(logits, full, CacheTolerance(*model, len))) << "prefill of " << len;
  };
  for (int i = 0; i < 3; ++i) prefill(i, prompt_lens[i]);
  const int64_t steps = 2 * w + 9;
  for (int64_t step = 0; step < steps; ++step) {
    if (step == steps / 2) {  // seq 0 finishes; a new one takes its slot
      cache.Release(slots[0]);
      prefill(0, w + 1);
    }
    at::Tensor next = at::randint(3, vocab, {3, 1}, at::kLong);
    at::Tensor logits = model->ForwardCached(next, slots, &cache);
    for (int i = 0; i < 3; ++i) {
      seqs[i].push_back(next[i][0].item<int64_t>());
      at::Tensor full = model->Logits(at::tensor(seqs[i], at::kLong).view({1, -1})).select(1, -1);
      const int64_t len = static_cast<int64_t>(seqs[i].size());
      ASSERT_TRUE(RelErrWithin(logits[i].unsqueeze(0), full, CacheTolerance(*model, len)))
          << "seq " << i << " at length " << seqs[i].size() << " step " << step;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Windows, RingCacheTest,
                         ::testing::Combine(::testing::Values(1, 2, 7, 16, 64), ::testing::Values(0, 2),
                                            ::testing::Bool()));

TEST(KvCacheTest, SlidingBytesStayFlatFullBytesGrow) {
  ModelConfig swa = TinyConfig({8, 8}), full = TinyConfig({0, 0});
  auto m_swa = SharpRandomModel(swa, 1), m_full = SharpRandomModel(full, 1);
  at::NoGradGuard no_grad;
  KvCache c_swa(swa, {}), c_full(full, {});
  int s1 = *c_swa.Allocate(), s2 = *c_full.Allocate();
  std::vector<int64_t> bytes_swa, bytes_full;
  for (int64_t t = 0; t < 40; ++t) {
    at::Tensor id = at::full({1, 1}, 5, at::kLong);
    m_swa->ForwardCached(id, {s1}, &c_swa);
    m_full->ForwardCached(id, {s2}, &c_full);
    bytes_swa.push_back(c_swa.BytesForSeq(s1));
    bytes_full.push_back(c_full.BytesForSeq(s2));
  }
  const int64_t slot = 2 * 2 * 8 * 4;  // K+V x Hkv x D x float
  EXPECT_EQ(bytes_swa.front(), 2 * 8 * slot);
  EXPECT_EQ(bytes_swa.back(), 2 * 8 * slot);
  EXPECT_EQ(bytes_full.back(), 2 * 40 * slot);
}

TEST(KvCacheTest, AllocateFailsWhenFull) {
  KvCacheOptions opts;
  opts.max_seqs = 2;
  KvCache cache(TinyConfig({4}), opts);
  EXPECT_TRUE(cache.Allocate().ok());
  int b = *cache.Allocate();
  EXPECT_EQ(cache.Allocate().status().code(), absl::StatusCode::kResourceExhausted);
  cache.Release(b);
  EXPECT_EQ(*cache.Allocate(), b);
}

}  // namespace
}  // namespace swarr
