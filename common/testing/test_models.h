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

}  // namespace swarr

#endif  // SWARR_COMMON_TESTING_TEST_MODELS_H_
