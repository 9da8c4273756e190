// Small random models for tests and benchmarks.
#ifndef SWARR_COMMON_TESTING_TEST_MODELS_H_
#define SWARR_COMMON_TESTING_TEST_MODELS_H_

#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "common/model/model.h"

namespace swarr {

// A tiny qwen2-style config (q/k/v bias) with the given per-layer windows and sinks.
inline ModelConfig TinyConfig(std::vector<int64_t> windows, int64_t sinks = 0, int64_t vocab = 64) {
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = static_cast<int64_t>(windows.size());
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.qkv_bias = true;
  c.layer_windows = std::move(windows);
  c.attention_sinks = sinks;
  c.eos_token_ids = {2};
  return c;
}

// RandomInit, then weights scaled so that logits vary strongly between positions
// (the HF init of std 0.02 gives near-uniform outputs that would hide attention bugs).
inline std::unique_ptr<Model> SharpRandomModel(const ModelConfig& config, uint64_t seed, double scale = 8.0) {
  auto model = Model::RandomInit(config, seed);
  at::NoGradGuard no_grad;
  for (auto& [name, t] : (*model)->named_parameters()) {
    if (name.find("norm") == std::string::npos) t.mul_(scale);
  }
  return std::move(*model);
}

// Qwen2.5-1.5B's shape (random weights in benchmarks), every layer sliding with `window`.
inline ModelConfig Qwen15bShape(int64_t window) {
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = 151936;
  c.hidden_size = 1536;
  c.intermediate_size = 8960;
  c.num_hidden_layers = 28;
  c.num_attention_heads = 12;
  c.num_key_value_heads = 2;
  c.head_dim = 128;
  c.qkv_bias = true;
  c.tie_word_embeddings = true;
  c.rope_theta = 1000000.0;
  c.rms_norm_eps = 1e-6;
  c.max_position_embeddings = 32768;
  c.layer_windows.assign(28, window);
  c.eos_token_ids = {151643};
  return c;
}

// The longest chain of float32 reductions (terms summed along one value's path, added up) in a
// forward pass of `config` over `positions` tokens, for the tolerance rule of
// common/testing/numeric.h. Per layer: RMSNorm (hidden), q/k/v projection (hidden), score
// (head_dim), softmax and the probability-weighted sum (positions each), output projection
// (heads x head_dim), RMSNorm (hidden), MLP gate/up (hidden) and down (intermediate); then the
// final RMSNorm and the LM head (hidden each).
inline int64_t ForwardReductionLength(const ModelConfig& c, int64_t positions) {
  const int64_t per_layer = 4 * c.hidden_size + c.head_dim + 2 * positions +
                            c.num_attention_heads * c.head_dim + c.intermediate_size;
  return c.num_hidden_layers * per_layer + 2 * c.hidden_size;
}

// max |logit| of `model` over `ids` ([N, T]): the scale of log-prob errors (LogProbTolerance).
inline double MaxAbsLogit(const Model& model, const at::Tensor& ids) {
  at::NoGradGuard no_grad;
  return model.Logits(ids).abs().max().item<double>();
}

}  // namespace swarr

#endif  // SWARR_COMMON_TESTING_TEST_MODELS_H_
