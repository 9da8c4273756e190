// Token sampling: greedy, temperature, top-k, top-p, seeded per request. No LibTorch.
//
// Behaviour log-prob definition (the learner scores with the same one): the log-prob of the
// sampled token under softmax(logits / temperature) over the WHOLE vocabulary, i.e. before
// top-k / top-p truncation. Greedy decoding reports it at temperature 1.
#ifndef SWARR_COMMON_MODEL_SAMPLER_H_
#define SWARR_COMMON_MODEL_SAMPLER_H_

#include <cstdint>
#include <random>

#include "absl/status/status.h"

namespace swarr {

struct SamplingParams {
  bool greedy = false;       // argmax (first index on ties); ignores the fields below
  double temperature = 1.0;  // > 0
  int64_t top_k = 0;         // keep the k most likely tokens; 0 = all
  double top_p = 1.0;        // keep the smallest most-likely set with mass >= top_p; (0, 1]
  uint64_t seed = 0;         // per-request random stream
};

// kInvalidArgument naming the field (temperature <= 0, top_k < 0, top_p outside (0, 1]).
absl::Status ValidateSamplingParams(const SamplingParams& params);

struct SampledToken {
  int64_t id = 0;
  float logprob = 0;  // see the definition above
};

// The per-request random stream: a 64-bit Mersenne twister seeded with `seed`.
using SamplerRng = std::mt19937_64;

// Samples one token from `logits` [vocab]. Deterministic for a given rng state.
// REQUIRES: ValidateSamplingParams(params).ok(), vocab > 0, logits finite or -inf.
SampledToken SampleToken(const float* logits, int64_t vocab, const SamplingParams& params, SamplerRng* rng);

// log softmax(logits / temperature)[token] in double precision.
double TokenLogProb(const float* logits, int64_t vocab, double temperature, int64_t token);

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_SAMPLER_H_
