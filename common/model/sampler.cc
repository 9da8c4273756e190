#include "common/model/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/strings/str_cat.h"

namespace swarr {

absl::Status ValidateSamplingParams(const SamplingParams& p) {
  if (p.greedy) return absl::OkStatus();
  if (!(p.temperature > 0) || !std::isfinite(p.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("temperature must be > 0, got ", p.temperature));
  }
  if (p.top_k < 0) return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", p.top_k));
  if (!(p.top_p > 0 && p.top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("top_p must be in (0, 1], got ", p.top_p));
  }
  return absl::OkStatus();
}

namespace {

// log-sum-exp of logits / temperature.
double LogSumExp(const float* logits, int64_t vocab, double temperature) {
  double m = -INFINITY;
  for (int64_t i = 0; i < vocab; ++i) m = std::max(m, logits[i] / temperature);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(logits[i] / temperature - m);
  return m + std::log(sum);
}

double Uniform01(SamplerRng* rng) { return static_cast<double>((*rng)() >> 11) * 0x1.0p-53; }

}  // namespace

double TokenLogProb(const float* logits, int64_t vocab, double temperature, int64_t token) {
  return logits[token] / temperature - LogSumExp(logits, vocab, temperature);
}

SampledToken SampleToken(const float* logits, int64_t vocab, const SamplingParams& params, SamplerRng* rng) {
  if (params.greedy) {
    int64_t best = 0;
    for (int64_t i = 1; i < vocab; ++i) {
      if (logits[i] > logits[best]) best = i;
    }
    return {best, static_cast<float>(TokenLogProb(logits, vocab, 1.0, best))};
  }
  const double temp = params.temperature;
  const double lse = LogSumExp(logits, vocab, temp);
  const bool truncate = (params.top_k > 0 && params.top_k < vocab) || params.top_p < 1.0;
  int64_t chosen = vocab - 1;
  if (!truncate) {
    // Inverse CDF over the full distribution, in index order.
    const double u = Uniform01(rng);
    double acc = 0;
    for (int64_t i = 0; i < vocab; ++i) {
      acc += std::exp(logits[i] / temp - lse);
      if (u < acc) {
        chosen = i;
        break;
      }
    }
    // Rounding can leave acc just below u: fall back to the last token with mass.
    if (u >= acc) {
      while (chosen > 0 && std::isinf(logits[chosen])) --chosen;
    }
  } else {
    // Candidates by descending probability (ties by index), cut by top-k then top-p.
    std::vector<int64_t> order(vocab);
    std::iota(order.begin(), order.end(), 0);
    auto by_prob = [logits](int64_t a, int64_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
    int64_t keep = vocab;
    if (params.top_k > 0 && params.top_k < vocab) {
      keep = params.top_k;
      std::partial_sort(order.begin(), order.begin() + keep, order.end(), by_prob);
    } else {
      std::sort(order.begin(), order.end(), by_prob);
    }
    std::vector<double> probs(keep);
    double mass = 0;
    for (int64_t i = 0; i < keep; ++i) {
      probs[i] = std::exp(logits[order[i]] / temp - lse);
      mass += probs[i];
    }
    if (params.top_p < 1.0) {
      // Relative to the mass left after top-k, as HF applies top-p to the top-k output.
      double acc = 0;
      int64_t n = 0;
      while (n < keep) {
        acc += probs[n++];
        if (acc >= params.top_p * mass) break;
      }
      keep = n;
      mass = acc;
    }
    const double u = Uniform01(rng) * mass;
    double acc = 0;
    chosen = order[keep - 1];
    for (int64_t i = 0; i < keep; ++i) {
      acc += probs[i];
      if (u < acc) {
        chosen = order[i];
        break;
      }
    }
  }
  return {chosen, static_cast<float>(logits[chosen] / temp - lse)};
}

}  // namespace swarr
