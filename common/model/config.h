// The model configuration SWARR runs: read from a HF `config.json`, optionally overridden by
// conversion settings (sliding windows, attention sinks). No LibTorch here.
#ifndef SWARR_COMMON_MODEL_CONFIG_H_
#define SWARR_COMMON_MODEL_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace swarr {

// RoPE frequency scaling (HF `rope_parameters` / `rope_scaling`).
struct RopeScaling {
  enum class Type { kDefault, kLinear, kLlama3 };
  Type type = Type::kDefault;
  double factor = 1.0;                            // linear, llama3
  double low_freq_factor = 1.0;                   // llama3
  double high_freq_factor = 4.0;                  // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

// Everything the decoder needs. Field names follow HF.
struct ModelConfig {
  std::string model_type;  // llama | mistral | qwen2 | qwen3
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // GQA; == num_attention_heads for MHA
  int64_t head_dim = 0;             // `head_dim`, else hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2 always; Llama/Mistral/Qwen3 `attention_bias`
  bool o_bias = false;    // Llama/Qwen3 `attention_bias`
  bool mlp_bias = false;  // Llama `mlp_bias`
  bool qk_norm = false;   // Qwen3: RMSNorm over head_dim on q and k before RoPE
  // Per layer: 0 = full attention, W > 0 = sliding window of W keys (q - W < k <= q).
  std::vector<int64_t> layer_windows;
  // The first `attention_sinks` positions stay visible to every sliding layer (0 = none).
  int64_t attention_sinks = 0;
  std::string dtype = "float32";  // `torch_dtype` or `dtype` of the stored weights
  std::vector<int64_t> bos_token_ids;
  std::vector<int64_t> eos_token_ids;
  std::string raw_json;  // the config.json text it was parsed from ("" if built in code)

  bool IsSliding(int64_t layer) const { return layer_windows[layer] > 0; }
  // The largest window of any sliding layer (0 if none slides).
  int64_t MaxWindow() const;
  // kInvalidArgument naming the field if sizes are inconsistent (heads divide, windows, ...).
  absl::Status Validate() const;
  // A HF config.json for this configuration: the original text with the attention fields
  // (layer_types, sliding_window, use_sliding_window, max_window_layers) rewritten to match
  // `layer_windows`, and SWARR's own `swarr_attention_sinks` when sinks are on.
  std::string ToJson() const;
};

// Parses config.json text. Unknown model_type, rope type or activation, a missing or
// mistyped required field: kInvalidArgument naming it (`config.json: num_key_value_heads: ...`).
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text);
// Reads DIR/config.json.
absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir);

// Conversion settings (docs/architecture.md "Conversion (SFT)") that override what
// config.json says.
struct ConversionSettings {
  std::optional<int64_t> window;          // every layer slides with this window (0 = all full)
  std::vector<int64_t> layer_windows;     // or one window per layer (0 = full); wins over `window`
  std::optional<int64_t> attention_sinks; // first S positions always visible
};
// kInvalidArgument if the per-layer list has the wrong length or a value is negative.
absl::Status ApplyConversion(const ConversionSettings& settings, ModelConfig* config);

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_CONFIG_H_
