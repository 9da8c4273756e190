#include "learner/fused_logprobs.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/CPUAllocator.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>

#include "common/testing/numeric.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using testing_numeric::Float32Tolerance;
using testing_numeric::LogProbTolerance;
using testing_numeric::RelErrWithin;

// The float32 rule of docs/testing.md carried to float64: the same K, the unit roundoff of
// double (eps 2^-52 instead of 2^-23).
constexpr double kFloat64OverFloat32Eps = 1.0 / (1 << 29);
double Scale(at::ScalarType dtype) { return dtype == at::kDouble ? kFloat64OverFloat32Eps : 1.0; }

struct Problem {
  at::Tensor hidden;   // [N, H]
  at::Tensor weight;   // [V, H]
  at::Tensor targets;  // [N]
};

// Logits of order a few units (|logit| up to ~4 sigma = 8): peaked enough that log-probs span
// several nats, flat enough that entropies are far from zero.
Problem MakeProblem(int64_t n, int64_t h, int64_t v, at::ScalarType dtype, uint64_t seed) {
  at::manual_seed(seed);
  Problem p;
  p.hidden = at::randn({n, h}, at::kDouble).to(dtype);
  p.weight = (at::randn({v, h}, at::kDouble) * (2.0 / std::sqrt(static_cast<double>(h)))).to(dtype);
  p.targets = at::randint(v, {n}, at::kLong);
  return p;
}

struct Reference {
  at::Tensor logits;  // [N, V] in the compute dtype, divided by the temperature
  at::Tensor logprobs;
  at::Tensor entropy;
};

// The unchunked definition (as in ComputeTokenLogProbs): softmax over the whole [N, V] logits.
Reference ComputeReference(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                           double temperature) {
  at::Tensor logits = at::linear(hidden, weight);
  if (logits.scalar_type() != at::kDouble) logits = logits.to(at::kFloat);
  Reference r;
  r.logits = logits / temperature;
  const at::Tensor logp = at::log_softmax(r.logits, -1);
  r.logprobs = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1);
  r.entropy = -(logp.exp() * logp).sum(-1);
  return r;
}

double MaxAbsDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(FusedTokenLogProbsTest, MatchesUnchunkedReference) {
  const int64_t N = 50, H = 32, V = 97;
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    const Problem p = MakeProblem(N, H, V, dtype, 3);
    for (double temp : {1.0, 0.7}) {
      at::NoGradGuard no_grad;
      const Reference ref = ComputeReference(p.hidden, p.weight, p.targets, temp);
      const double max_logit = ref.logits.abs().max().item<double>();
      // Logits: a dot product over H; log-probs: the log-sum-exp over V; entropy: one more sum over V.
      const double lp_tol = LogProbTolerance(H + V, max_logit) * Scale(dtype);
      const double ent_tol = LogProbTolerance(H + 2 * V, max_logit) * Scale(dtype);
      // Chunk 1, chunks that do not divide N (7, 16), exactly N, more than N.
      for (int64_t chunk : {1, 7, 16, 50, 1000}) {
        SCOPED_TRACE(::testing::Message() << dtype << " temperature " << temp << " chunk " << chunk);
        FusedLogProbOptions o;
        o.temperature = temp;
        o.chunk_tokens = chunk;
        o.with_entropy = true;
        const FusedLogProbs got = FusedTokenLogProbs(p.hidden, p.weight, p.targets, o);
        ASSERT_EQ(got.logprobs.sizes(), (std::vector<int64_t>{N}));
        ASSERT_EQ(got.entropy.sizes(), (std::vector<int64_t>{N}));
        EXPECT_EQ(got.logprobs.scalar_type(), dtype);
        EXPECT_EQ(got.entropy.scalar_type(), dtype);
        const double lp_err = MaxAbsDiff(got.logprobs, ref.logprobs);
        const double ent_err = MaxAbsDiff(got.entropy, ref.entropy);
        EXPECT_LE(lp_err, lp_tol);
        EXPECT_LE(ent_err, ent_tol);
        testing_numeric::ReportMargin(lp_err, lp_tol);
        testing_numeric::ReportMargin(ent_err, ent_tol);

        o.with_entropy = false;
        const FusedLogProbs no_ent = FusedTokenLogProbs(p.hidden, p.weight, p.targets, o);
        EXPECT_FALSE(no_ent.entropy.defined());
        // The entropy is computed after the log-probs of a chunk, from them: the same bits.
        EXPECT_TRUE(at::equal(no_ent.logprobs, got.logprobs));
      }
      // The comparison is between spread-out distributions, not near-zero values.
      EXPECT_LT(ref.logprobs.min().item<double>(), -5.0);
      EXPECT_GT(ref.entropy.min().item<double>(), 0.1);
    }
  }
}

// bf16 inputs (the GPU's case): the logits are products in bf16, so chunked and unchunked
// products may round a logit to neighbouring bf16 values (8 significant bits: at most 2^-7
// relative apart); outputs are float32, gradients bf16.
TEST(FusedTokenLogProbsTest, BFloat16InputsGiveFloat32Outputs) {
  const int64_t N = 20, H = 16, V = 40;
  Problem p = MakeProblem(N, H, V, at::kBFloat16, 11);
  p.hidden.requires_grad_(true);
  p.weight.requires_grad_(true);
  FusedLogProbOptions o;
  o.chunk_tokens = 6;
  o.temperature = 0.7;
  o.with_entropy = true;
  const FusedLogProbs got = FusedTokenLogProbs(p.hidden, p.weight, p.targets, o);
  EXPECT_EQ(got.logprobs.scalar_type(), at::kFloat);
  EXPECT_EQ(got.entropy.scalar_type(), at::kFloat);
  at::NoGradGuard no_grad;
  const Reference ref = ComputeReference(p.hidden, p.weight, p.targets, o.temperature);
  const double max_logit = ref.logits.abs().max().item<double>();
  const double bf16_tol = (2 * 0x1p-7 + LogProbTolerance(H + 2 * V, 1.0)) * max_logit;
  EXPECT_LE(MaxAbsDiff(got.logprobs, ref.logprobs), bf16_tol);
  EXPECT_LE(MaxAbsDiff(got.entropy, ref.entropy), bf16_tol);
  {
    at::AutoGradMode enable(true);
    const at::Tensor loss = got.logprobs.sum() + got.entropy.sum();
    const std::vector<at::Tensor> g = torch::autograd::grad({loss}, {p.hidden, p.weight});
    EXPECT_EQ(g[0].scalar_type(), at::kBFloat16);
    EXPECT_EQ(g[1].scalar_type(), at::kBFloat16);
    EXPECT_TRUE(at::isfinite(g[0].to(at::kFloat)).all().item<bool>());
    EXPECT_TRUE(at::isfinite(g[1].to(at::kFloat)).all().item<bool>());
  }
}

enum class Loss { kBoth, kLogProbsOnly, kLogProbsOnlyNoEntropyOutput, kEntropyOnly, kPlainSum };

const char* Name(Loss l) {
  switch (l) {
    case Loss::kBoth: return "a.logprobs + b.entropy";
    case Loss::kLogProbsOnly: return "a.logprobs (entropy computed, unused)";
    case Loss::kLogProbsOnlyNoEntropyOutput: return "a.logprobs (no entropy output)";
    case Loss::kEntropyOnly: return "b.entropy (logprobs unused)";
    case Loss::kPlainSum: return "sum(logprobs) + sum(entropy) (expanded gradients)";
  }
  return "?";
}

at::Tensor Objective(Loss l, const at::Tensor& lp, const at::Tensor& ent, const at::Tensor& a, const at::Tensor& b) {
  switch (l) {
    case Loss::kBoth: return (a * lp).sum() + (b * ent).sum();
    case Loss::kLogProbsOnly:
    case Loss::kLogProbsOnlyNoEntropyOutput: return (a * lp).sum();
    case Loss::kEntropyOnly: return (b * ent).sum();
    case Loss::kPlainSum: return lp.sum() + ent.sum();
  }
  return at::Tensor();
}

// Gradients w.r.t. hidden and weight against autograd through the unchunked reference.
TEST(FusedTokenLogProbsTest, GradientsMatchReferenceAutograd) {
  const int64_t N = 37, H = 24, V = 61;
  for (at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    for (double temp : {1.0, 0.7}) {
      for (Loss loss : {Loss::kBoth, Loss::kLogProbsOnly, Loss::kLogProbsOnlyNoEntropyOutput, Loss::kEntropyOnly,
                        Loss::kPlainSum}) {
        SCOPED_TRACE(::testing::Message() << dtype << " temperature " << temp << " loss " << Name(loss));
        Problem p = MakeProblem(N, H, V, dtype, 7);
        const at::Tensor a = at::randn({N}, dtype), b = at::randn({N}, dtype);
        p.hidden.requires_grad_(true);
        p.weight.requires_grad_(true);

        const Reference ref = ComputeReference(p.hidden, p.weight, p.targets, temp);
        const std::vector<at::Tensor> want =
            torch::autograd::grad({Objective(loss, ref.logprobs, ref.entropy, a, b)}, {p.hidden, p.weight});

        FusedLogProbOptions o;
        o.temperature = temp;
        o.chunk_tokens = 8;  // 5 chunks, the last one of 5 rows
        o.with_entropy = loss != Loss::kLogProbsOnlyNoEntropyOutput;
        const FusedLogProbs got = FusedTokenLogProbs(p.hidden, p.weight, p.targets, o);
        ASSERT_TRUE(got.logprobs.requires_grad());
        const at::Tensor ent = o.with_entropy ? got.entropy : at::zeros({N}, dtype);
        const std::vector<at::Tensor> have =
            torch::autograd::grad({Objective(loss, got.logprobs, ent, a, b)}, {p.hidden, p.weight});

        // Forward: logits (H), log-sum-exp (V), entropy (V); backward: the products dz.W (V)
        // and dz^T.hidden (N).
        const double tol = Float32Tolerance(H + 2 * V + std::max(V, N)) * Scale(dtype);
        EXPECT_EQ(have[0].scalar_type(), dtype);
        EXPECT_EQ(have[1].scalar_type(), dtype);
        EXPECT_TRUE(RelErrWithin(have[0], want[0], tol)) << "grad hidden";
        EXPECT_TRUE(RelErrWithin(have[1], want[1], tol)) << "grad weight";
        EXPECT_GT(want[0].norm().item<double>(), 0.1);  // not a comparison of near-zero gradients
      }
    }
  }
}

// Only the LM head trains (frozen trunk): no gradient is computed for hidden.
TEST(FusedTokenLogProbsTest, GradientOfWeightOnly) {
  const int64_t N = 19, H = 8, V = 33;
  Problem p = MakeProblem(N, H, V, at::kFloat, 13);
  p.weight.requires_grad_(true);
  const at::Tensor a = at::randn({N}), b = at::randn({N});
  const Reference ref = ComputeReference(p.hidden, p.weight, p.targets, 0.9);
  const at::Tensor want = torch::autograd::grad({(a * ref.logprobs).sum() + (b * ref.entropy).sum()}, {p.weight})[0];
  FusedLogProbOptions o;
  o.temperature = 0.9;
  o.chunk_tokens = 4;
  o.with_entropy = true;
  const FusedLogProbs got = FusedTokenLogProbs(p.hidden, p.weight, p.targets, o);
  const at::Tensor have = torch::autograd::grad({(a * got.logprobs).sum() + (b * got.entropy).sum()}, {p.weight})[0];
  EXPECT_TRUE(RelErrWithin(have, want, Float32Tolerance(H + 2 * V + std::max(V, N))));
}

TEST(FusedTokenLogProbsTest, NoGradModeGivesSameValuesWithoutGraph) {
  Problem p = MakeProblem(30, 16, 50, at::kFloat, 17);
  p.hidden.requires_grad_(true);
  p.weight.requires_grad_(true);
  FusedLogProbOptions o;
  o.chunk_tokens = 7;
  o.with_entropy = true;
  const FusedLogProbs with_grad = FusedTokenLogProbs(p.hidden, p.weight, p.targets, o);
  FusedLogProbs without;
  {
    at::NoGradGuard no_grad;
    without = FusedTokenLogProbs(p.hidden, p.weight, p.targets, o);
  }
  EXPECT_TRUE(with_grad.logprobs.requires_grad());
  EXPECT_FALSE(without.logprobs.requires_grad());
  EXPECT_FALSE(without.entropy.requires_grad());
  // One code path (the chunked forward) computes both: the same bits.
  EXPECT_TRUE(at::equal(with_grad.logprobs.detach(), without.logprobs));
  EXPECT_TRUE(at::equal(with_grad.entropy.detach(), without.entropy));
}

// ---- Memory ------------------------------------------------------------------------------

// Counts the live bytes of CPU tensors allocated while installed, and their peak: wraps the
// CPU allocator (c10::SetCPUAllocator). Each allocation is forwarded to the allocator it
// replaced; data pointer == context, so LibTorch's raw_allocate interface keeps working.
class CountingCpuAllocator final : public c10::Allocator {
 public:
  static CountingCpuAllocator& Get() {
    static auto* instance = new CountingCpuAllocator();  // never destroyed: tensors may outlive tests
    return *instance;
  }

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
  c10::DataPtr allocate(size_t n) override { return Allocate(n); }
  void copy_data(void* dest, const void* src, size_t count) const override { default_copy_data(dest, src, count); }
#else
  c10::DataPtr allocate(size_t n) const override { return Allocate(n); }
#endif
  c10::DeleterFnPtr raw_deleter() const override { return &Delete; }

  void Install() {
    inner_ = c10::GetCPUAllocator();
    c10::SetCPUAllocator(this, /*priority=*/255);
  }
  void Uninstall() { c10::SetCPUAllocator(inner_, /*priority=*/255); }
  bool installed() const { return c10::GetCPUAllocator() == this; }

  int64_t live() const { return live_.load(); }
  // Forgets the peak so far: the next Peak() is the largest live() from now on.
  void ResetPeak() { peak_.store(live_.load()); }
  int64_t Peak() const { return peak_.load(); }

 private:
  c10::DataPtr Allocate(size_t n) const {
    c10::DataPtr inner = inner_->allocate(n);
    void* data = inner.get();
    if (data == nullptr) return inner;  // zero bytes
    const c10::Device device = inner.device();
    {
      std::lock_guard<std::mutex> lock(mu_);
      blocks_.emplace(data, Block{std::move(inner), n});
    }
    const int64_t now = live_.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t peak = peak_.load();
    while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
    }
    return c10::DataPtr(data, data, &Delete, device);
  }

  static void Delete(void* data) {
    CountingCpuAllocator& self = Get();
    Block block;
    {
      std::lock_guard<std::mutex> lock(self.mu_);
      auto it = self.blocks_.find(data);
      if (it == self.blocks_.end()) return;
      block = std::move(it->second);
      self.blocks_.erase(it);
    }
    self.live_.fetch_sub(static_cast<int64_t>(block.bytes));
  }  // block.data frees the memory through the wrapped allocator

  struct Block {
    c10::DataPtr data;
    size_t bytes = 0;
  };
  c10::Allocator* inner_ = nullptr;
  mutable std::mutex mu_;
  mutable std::unordered_map<void*, Block> blocks_;
  mutable std::atomic<int64_t> live_{0};
  mutable std::atomic<int64_t> peak_{0};
};

class ScopedCountingAllocator {
 public:
  ScopedCountingAllocator() { CountingCpuAllocator::Get().Install(); }
  ~ScopedCountingAllocator() { CountingCpuAllocator::Get().Uninstall(); }
};

struct PeakBytes {
  int64_t forward_no_grad = 0;      // FusedTokenLogProbs under at::NoGradGuard
  int64_t forward_backward = 0;     // with grad: forward, loss, backward to hidden and weight
};

// Peak bytes allocated on top of what was live before (the inputs), for N tokens.
PeakBytes MeasurePeak(int64_t n, int64_t h, int64_t v, int64_t chunk) {
  Problem p = MakeProblem(n, h, v, at::kFloat, 19);
  const at::Tensor a = at::randn({n}), b = at::randn({n});
  FusedLogProbOptions o;
  o.chunk_tokens = chunk;
  o.with_entropy = true;
  CountingCpuAllocator& counter = CountingCpuAllocator::Get();
  PeakBytes peak;
  {
    at::NoGradGuard no_grad;
    const int64_t base = counter.live();
    counter.ResetPeak();
    const FusedLogProbs out = FusedTokenLogProbs(p.hidden, p.weight, p.targets, o);
    peak.forward_no_grad = counter.Peak() - base;
  }
  p.hidden.requires_grad_(true);
  p.weight.requires_grad_(true);
  const int64_t base = counter.live();
  counter.ResetPeak();
  {
    const FusedLogProbs out = FusedTokenLogProbs(p.hidden, p.weight, p.targets, o);
    const at::Tensor loss = (a * out.logprobs).sum() + (b * out.entropy).sum();
    const std::vector<at::Tensor> g = torch::autograd::grad({loss}, {p.hidden, p.weight});
  }
  peak.forward_backward = counter.Peak() - base;
  return peak;
}

// The op never holds [N, V] float32: its peak is a few [chunk, V] buffers whatever N is.
TEST(FusedTokenLogProbsTest, PeakMemoryDoesNotGrowWithTokens) {
  ScopedCountingAllocator scoped;
  CountingCpuAllocator& counter = CountingCpuAllocator::Get();
  ASSERT_TRUE(counter.installed()) << "the counting allocator did not replace the CPU allocator";
  {
    // The counter sees tensor allocations.
    counter.ResetPeak();
    const int64_t base = counter.live();
    { const at::Tensor probe = at::empty({1 << 20}, at::kFloat); }
    EXPECT_EQ(counter.Peak() - base, int64_t{4} << 20);
    EXPECT_EQ(counter.live(), base);
  }
  const int64_t H = 32, V = 4096, chunk = 256;
  const int64_t chunk_bytes = chunk * V * 4;  // one [chunk, V] float32 buffer: 4 MiB
  const PeakBytes small = MeasurePeak(1024, H, V, chunk);
  const PeakBytes large = MeasurePeak(4096, H, V, chunk);
  const int64_t unchunked_bytes = int64_t{4096} * V * 4;  // [N, V] float32: 64 MiB
  std::printf("peak extra bytes, V %lld chunk %lld: N 1024: forward %lld, forward+backward %lld; "
              "N 4096: forward %lld, forward+backward %lld; [4096, V] float32 is %lld\n",
              static_cast<long long>(V), static_cast<long long>(chunk), static_cast<long long>(small.forward_no_grad),
              static_cast<long long>(small.forward_backward), static_cast<long long>(large.forward_no_grad),
              static_cast<long long>(large.forward_backward), static_cast<long long>(unchunked_bytes));
  // At least one [chunk, V] buffer is seen (the measurement measures), and far less than [N, V].
  EXPECT_GE(large.forward_no_grad, chunk_bytes);
  EXPECT_GE(large.forward_backward, chunk_bytes);
  EXPECT_LE(large.forward_no_grad, unchunked_bytes / 4);
  EXPECT_LE(large.forward_backward, unchunked_bytes / 4);
  // 4x the tokens adds only per-token vectors and [N, H] gradients (~0.5 MiB here), well under
  // one more [chunk, V] buffer; an [N, V] tensor would add 48 MiB.
  EXPECT_LE(large.forward_no_grad - small.forward_no_grad, chunk_bytes / 4);
  EXPECT_LE(large.forward_backward - small.forward_backward, chunk_bytes / 4);
}

// ---- Bad input ---------------------------------------------------------------------------

std::string ErrorOf(const at::Tensor& hidden, const at::Tensor& weight, const at::Tensor& targets,
                    const FusedLogProbOptions& o = {}) {
  try {
    FusedTokenLogProbs(hidden, weight, targets, o);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "no error";
}

TEST(FusedTokenLogProbsTest, RejectsBadInput) {
  const at::Tensor h = at::randn({5, 8}), w = at::randn({11, 8});
  const at::Tensor t = at::randint(11, {5}, at::kLong);
  EXPECT_THAT(ErrorOf(h, w, t), HasSubstr("no error"));
  EXPECT_THAT(ErrorOf(h, at::randn({11, 9}), t), HasSubstr("hidden size mismatch"));
  EXPECT_THAT(ErrorOf(h.reshape({40}), w, t), HasSubstr("hidden must be [N, H]"));
  EXPECT_THAT(ErrorOf(h, w.reshape({88}), t), HasSubstr("weight must be [V, H]"));
  EXPECT_THAT(ErrorOf(h, w, t.narrow(0, 0, 4)), HasSubstr("targets must be [N] with N = hidden.size(0) = 5"));
  EXPECT_THAT(ErrorOf(h, w, t.unsqueeze(0)), HasSubstr("targets must be [N]"));
  EXPECT_THAT(ErrorOf(h, w.to(at::kDouble), t), HasSubstr("dtype mismatch"));
  EXPECT_THAT(ErrorOf(h.to(at::kLong), w.to(at::kLong), t), HasSubstr("hidden must be floating point"));
  EXPECT_THAT(ErrorOf(h, w, t.to(at::kInt)), HasSubstr("targets must be int64"));
  at::Tensor too_big = t.clone();
  too_big[3] = 11;
  EXPECT_THAT(ErrorOf(h, w, too_big), HasSubstr("target id out of range"));
  EXPECT_THAT(ErrorOf(h, w, too_big), HasSubstr("[0, 11)"));
  at::Tensor negative = t.clone();
  negative[0] = -1;
  EXPECT_THAT(ErrorOf(h, w, negative), HasSubstr("target id out of range"));
  FusedLogProbOptions o;
  o.temperature = 0;
  EXPECT_THAT(ErrorOf(h, w, t, o), HasSubstr("temperature must be > 0"));
  o = {};
  o.chunk_tokens = 0;
  EXPECT_THAT(ErrorOf(h, w, t, o), HasSubstr("chunk_tokens must be > 0"));
}

}  // namespace
}  // namespace swarr
