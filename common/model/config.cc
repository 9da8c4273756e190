#include "common/model/config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace swarr {
namespace {

using json = nlohmann::ordered_json;

absl::Status FieldError(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("config.json: ", field, ": ", what));
}

const json* Find(const json& j, const std::string& key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<int64_t> GetInt(const json& j, const std::string& key, std::optional<int64_t> def = {}) {
  const json* v = Find(j, key);
  if (v == nullptr) {
    if (def.has_value()) return *def;
    return FieldError(key, "required field is missing");
  }
  if (!v->is_number_integer()) return FieldError(key, absl::StrCat("expected integer, got ", v->dump()));
  return v->get<int64_t>();
}

absl::StatusOr<double> GetDouble(const json& j, const std::string& key, std::optional<double> def = {}) {
  const json* v = Find(j, key);
  if (v == nullptr) {
    if (def.has_value()) return *def;
    return FieldError(key, "required field is missing");
  }
  if (!v->is_number()) return FieldError(key, absl::StrCat("expected number, got ", v->dump()));
  return v->get<double>();
}

absl::StatusOr<bool> GetBool(const json& j, const std::string& key, bool def) {
  const json* v = Find(j, key);
  if (v == nullptr) return def;
  if (!v->is_boolean()) return FieldError(key, absl::StrCat("expected true or false, got ", v->dump()));
  return v->get<bool>();
}

absl::StatusOr<std::vector<int64_t>> GetIdList(const json& j, const std::string& key) {
  const json* v = Find(j, key);
  std::vector<int64_t> out;
  if (v == nullptr) return out;
  if (v->is_number_integer()) {
    out.push_back(v->get<int64_t>());
    return out;
  }
  if (!v->is_array()) return FieldError(key, absl::StrCat("expected integer or list, got ", v->dump()));
  for (const json& e : *v) {
    if (!e.is_number_integer()) return FieldError(key, absl::StrCat("expected integers, got ", e.dump()));
    out.push_back(e.get<int64_t>());
  }
  return out;
}

absl::StatusOr<RopeScaling> ParseRope(const json& params, const std::string& field) {
  RopeScaling r;
  std::string type = "default";
  if (const json* t = Find(params, "rope_type")) {
    type = t->is_string() ? t->get<std::string>() : "";
  } else if (const json* t2 = Find(params, "type")) {
    type = t2->is_string() ? t2->get<std::string>() : "";
  }
  if (type == "default") {
    r.type = RopeScaling::Type::kDefault;
  } else if (type == "linear") {
    r.type = RopeScaling::Type::kLinear;
  } else if (type == "llama3") {
    r.type = RopeScaling::Type::kLlama3;
  } else {
    return FieldError(field + ".rope_type",
                      absl::StrCat("unsupported rope type '", type, "' (supported: default, linear, llama3)"));
  }
  if (r.type != RopeScaling::Type::kDefault) {
    auto f = GetDouble(params, "factor");
    if (!f.ok()) return FieldError(field + ".factor", "required for rope type " + type);
    if (*f <= 0) return FieldError(field + ".factor", "must be positive");
    r.factor = *f;
  }
  if (r.type == RopeScaling::Type::kLlama3) {
    SWARR_ASSIGN_OR_RETURN(r.low_freq_factor, GetDouble(params, "low_freq_factor"));
    SWARR_ASSIGN_OR_RETURN(r.high_freq_factor, GetDouble(params, "high_freq_factor"));
    SWARR_ASSIGN_OR_RETURN(r.original_max_position_embeddings,
                           GetInt(params, "original_max_position_embeddings"));
    if (r.high_freq_factor <= r.low_freq_factor) {
      return FieldError(field + ".high_freq_factor", "must exceed low_freq_factor");
    }
  }
  return r;
}

const char* Architecture(const std::string& model_type) {
  if (model_type == "llama") return "LlamaForCausalLM";
  if (model_type == "mistral") return "MistralForCausalLM";
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  return "Qwen3ForCausalLM";
}

}  // namespace

int64_t ModelConfig::MaxWindow() const {
  int64_t w = 0;
  for (int64_t x : layer_windows) w = std::max(w, x);
  return w;
}

absl::Status ModelConfig::Validate() const {
  auto positive = [](const char* name, int64_t v) -> absl::Status {
    if (v <= 0) return FieldError(name, absl::StrCat("must be positive, got ", v));
    return absl::OkStatus();
  };
  SWARR_RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  SWARR_RETURN_IF_ERROR(positive("hidden_size", hidden_size));
  SWARR_RETURN_IF_ERROR(positive("intermediate_size", intermediate_size));
  SWARR_RETURN_IF_ERROR(positive("num_hidden_layers", num_hidden_layers));
  SWARR_RETURN_IF_ERROR(positive("num_attention_heads", num_attention_heads));
  SWARR_RETURN_IF_ERROR(positive("num_key_value_heads", num_key_value_heads));
  SWARR_RETURN_IF_ERROR(positive("head_dim", head_dim));
  if (num_attention_heads % num_key_value_heads != 0) {
    return FieldError("num_key_value_heads", absl::StrCat(num_key_value_heads, " does not divide num_attention_heads ",
                                                          num_attention_heads));
  }
  if (head_dim % 2 != 0) return FieldError("head_dim", "must be even for RoPE");
  if (rms_norm_eps <= 0) return FieldError("rms_norm_eps", "must be positive");
  if (rope_theta <= 0) return FieldError("rope_theta", "must be positive");
  if (static_cast<int64_t>(layer_windows.size()) != num_hidden_layers) {
    return FieldError("layer_types", absl::StrCat("has ", layer_windows.size(), " entries for ",
                                                  num_hidden_layers, " layers"));
  }
  for (size_t i = 0; i < layer_windows.size(); ++i) {
    if (layer_windows[i] < 0) return FieldError(absl::StrCat("window of layer ", i), "must be >= 0");
  }
  if (attention_sinks < 0) return FieldError("attention_sinks", "must be >= 0");
  for (int64_t id : eos_token_ids) {
    if (id < 0 || id >= vocab_size) return FieldError("eos_token_id", absl::StrCat(id, " is outside the vocabulary"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("config.json: not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("config.json: not a JSON object");
  ModelConfig c;
  c.raw_json = json_text;
  const json* mt = Find(j, "model_type");
  if (mt == nullptr || !mt->is_string()) return FieldError("model_type", "required string is missing");
  c.model_type = mt->get<std::string>();
  if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2" &&
      c.model_type != "qwen3") {
    return FieldError("model_type", absl::StrCat("unsupported model_type '", c.model_type,
                                                 "' (supported: llama, mistral, qwen2, qwen3)"));
  }
  if (const json* act = Find(j, "hidden_act")) {
    if (!act->is_string() || act->get<std::string>() != "silu") {
      return FieldError("hidden_act", absl::StrCat("unsupported activation ", act->dump(), " (supported: silu)"));
    }
  }
  SWARR_ASSIGN_OR_RETURN(c.vocab_size, GetInt(j, "vocab_size"));
  SWARR_ASSIGN_OR_RETURN(c.hidden_size, GetInt(j, "hidden_size"));
  SWARR_ASSIGN_OR_RETURN(c.intermediate_size, GetInt(j, "intermediate_size"));
  SWARR_ASSIGN_OR_RETURN(c.num_hidden_layers, GetInt(j, "num_hidden_layers"));
  // Per-layer settings are allocated from this count: a corrupt value (found by
  // fuzz/fuzz_model_config.cc: 42949672942) must be an error, not an allocation failure.
  constexpr int64_t kMaxLayers = 4096;
  if (c.num_hidden_layers > kMaxLayers) {
    return FieldError("num_hidden_layers", absl::StrCat("at most ", kMaxLayers, ", got ", c.num_hidden_layers));
  }
  SWARR_ASSIGN_OR_RETURN(c.num_attention_heads, GetInt(j, "num_attention_heads"));
  SWARR_ASSIGN_OR_RETURN(c.num_key_value_heads, GetInt(j, "num_key_value_heads", c.num_attention_heads));
  if (c.num_attention_heads <= 0) return FieldError("num_attention_heads", "must be positive");
  SWARR_ASSIGN_OR_RETURN(c.head_dim, GetInt(j, "head_dim", c.hidden_size / c.num_attention_heads));
  SWARR_ASSIGN_OR_RETURN(c.rms_norm_eps, GetDouble(j, "rms_norm_eps", 1e-6));
  SWARR_ASSIGN_OR_RETURN(c.max_position_embeddings, GetInt(j, "max_position_embeddings", 0));
  SWARR_ASSIGN_OR_RETURN(c.tie_word_embeddings, GetBool(j, "tie_word_embeddings", false));

  // RoPE: transformers 5 writes rope_parameters {rope_theta, rope_type, ...}; older configs
  // a top-level rope_theta and an optional rope_scaling object.
  if (const json* rp = Find(j, "rope_parameters")) {
    if (!rp->is_object()) return FieldError("rope_parameters", "expected object");
    SWARR_ASSIGN_OR_RETURN(c.rope_theta, GetDouble(*rp, "rope_theta", 10000.0));
    SWARR_ASSIGN_OR_RETURN(c.rope_scaling, ParseRope(*rp, "rope_parameters"));
  } else {
    SWARR_ASSIGN_OR_RETURN(c.rope_theta, GetDouble(j, "rope_theta", 10000.0));
    if (const json* rs = Find(j, "rope_scaling")) {
      if (!rs->is_object()) return FieldError("rope_scaling", "expected object");
      SWARR_ASSIGN_OR_RETURN(c.rope_scaling, ParseRope(*rs, "rope_scaling"));
    }
  }

  SWARR_ASSIGN_OR_RETURN(bool attention_bias, GetBool(j, "attention_bias", false));
  if (c.model_type == "qwen2") {
    c.qkv_bias = true;
    c.o_bias = false;
  } else {
    c.qkv_bias = attention_bias;
    c.o_bias = attention_bias;
  }
  SWARR_ASSIGN_OR_RETURN(c.mlp_bias, GetBool(j, "mlp_bias", false));
  c.qk_norm = c.model_type == "qwen3";

  // Sliding window: layer_types, else use_sliding_window + max_window_layers (Qwen),
  // else sliding_window on every layer (Mistral).
  SWARR_ASSIGN_OR_RETURN(int64_t window, GetInt(j, "sliding_window", 0));
  if (window < 0) return FieldError("sliding_window", "must be >= 0");
  c.layer_windows.assign(c.num_hidden_layers > 0 ? c.num_hidden_layers : 0, 0);
  if (const json* own = Find(j, "swarr_layer_windows")) {
    if (!own->is_array() || own->size() != c.layer_windows.size()) {
      return FieldError("swarr_layer_windows", "expected one integer per layer");
    }
    for (size_t i = 0; i < own->size(); ++i) {
      if (!(*own)[i].is_number_integer()) return FieldError(absl::StrCat("swarr_layer_windows[", i, "]"), "expected integer");
      c.layer_windows[i] = (*own)[i].get<int64_t>();
    }
  } else if (const json* lt = Find(j, "layer_types")) {
    if (!lt->is_array()) return FieldError("layer_types", "expected a list");
    if (lt->size() != c.layer_windows.size()) {
      return FieldError("layer_types", absl::StrCat("has ", lt->size(), " entries for ", c.num_hidden_layers, " layers"));
    }
    for (size_t i = 0; i < lt->size(); ++i) {
      const std::string field = absl::StrCat("layer_types[", i, "]");
      if (!(*lt)[i].is_string()) return FieldError(field, "expected string");
      const std::string t = (*lt)[i].get<std::string>();
      if (t == "sliding_attention") {
        if (window <= 0) return FieldError(field, "sliding_attention needs a positive sliding_window");
        c.layer_windows[i] = window;
      } else if (t != "full_attention") {
        return FieldError(field, absl::StrCat("unsupported layer type '", t, "'"));
      }
    }
  } else if (c.model_type == "qwen2" || c.model_type == "qwen3") {
    SWARR_ASSIGN_OR_RETURN(bool use_sliding, GetBool(j, "use_sliding_window", false));
    SWARR_ASSIGN_OR_RETURN(int64_t max_window_layers, GetInt(j, "max_window_layers", c.num_hidden_layers));
    if (use_sliding && window > 0) {
      for (int64_t i = std::max<int64_t>(0, max_window_layers); i < c.num_hidden_layers; ++i) c.layer_windows[i] = window;
    }
  } else if (c.model_type == "mistral") {
    for (auto& w : c.layer_windows) w = window;
  }
  SWARR_ASSIGN_OR_RETURN(c.attention_sinks, GetInt(j, "swarr_attention_sinks", 0));

  if (const json* dt = Find(j, "dtype")) {
    if (dt->is_string()) c.dtype = dt->get<std::string>();
  } else if (const json* tdt = Find(j, "torch_dtype")) {
    if (tdt->is_string()) c.dtype = tdt->get<std::string>();
  }
  if (c.dtype != "float32" && c.dtype != "float16" && c.dtype != "bfloat16") {
    return FieldError("dtype", absl::StrCat("unsupported dtype '", c.dtype, "' (float32, float16, bfloat16)"));
  }
  SWARR_ASSIGN_OR_RETURN(c.bos_token_ids, GetIdList(j, "bos_token_id"));
  SWARR_ASSIGN_OR_RETURN(c.eos_token_ids, GetIdList(j, "eos_token_id"));
  SWARR_RETURN_IF_ERROR(c.Validate());
  return c;
}

absl::StatusOr<ModelConfig> LoadModelConfig(const std::string& dir) {
  SWARR_ASSIGN_OR_RETURN(std::string text, ReadFile(dir + "/config.json"));
  auto config = ParseModelConfig(text);
  if (!config.ok()) {
    return absl::Status(config.status().code(), absl::StrCat(dir, "/", config.status().message()));
  }
  return config;
}

std::string ModelConfig::ToJson() const {
  json j = json::object();
  if (!raw_json.empty()) {
    j = json::parse(raw_json, nullptr, false);
    if (!j.is_object()) j = json::object();
  }
  j["architectures"] = {Architecture(model_type)};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = rms_norm_eps;
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (!j.contains("max_position_embeddings") || max_position_embeddings > 0) {
    j["max_position_embeddings"] = max_position_embeddings > 0 ? max_position_embeddings : 32768;
  }
  if (model_type != "qwen2") j["attention_bias"] = qkv_bias;
  if (model_type == "llama") j["mlp_bias"] = mlp_bias;
  if (!j.contains("rope_parameters") && !j.contains("rope_theta")) {
    j["rope_parameters"] = {{"rope_theta", rope_theta}, {"rope_type", "default"}};
  }
  if (!j.contains("dtype") && !j.contains("torch_dtype")) j["dtype"] = dtype;
  auto ids = [](const std::vector<int64_t>& v) -> json {
    if (v.empty()) return nullptr;
    if (v.size() == 1) return v[0];
    return v;
  };
  if (!bos_token_ids.empty()) j["bos_token_id"] = ids(bos_token_ids);
  if (!eos_token_ids.empty()) j["eos_token_id"] = ids(eos_token_ids);

  // Attention layout.
  const int64_t max_window = MaxWindow();
  json types = json::array();
  bool mixed_windows = false;
  for (int64_t w : layer_windows) {
    types.push_back(w > 0 ? "sliding_attention" : "full_attention");
    if (w > 0 && w != max_window) mixed_windows = true;
  }
  j["layer_types"] = types;
  j["sliding_window"] = max_window > 0 ? json(max_window) : json(nullptr);
  if (model_type == "qwen2" || model_type == "qwen3") {
    j["use_sliding_window"] = max_window > 0;
    int64_t first_sliding = num_hidden_layers;
    for (int64_t i = num_hidden_layers - 1; i >= 0 && layer_windows[i] > 0; --i) first_sliding = i;
    j["max_window_layers"] = first_sliding;
  }
  j.erase("swarr_layer_windows");
  if (mixed_windows) j["swarr_layer_windows"] = layer_windows;
  j.erase("swarr_attention_sinks");
  if (attention_sinks > 0) j["swarr_attention_sinks"] = attention_sinks;
  return j.dump(2);
}

absl::Status ApplyConversion(const ConversionSettings& s, ModelConfig* config) {
  if (!s.layer_windows.empty()) {
    if (static_cast<int64_t>(s.layer_windows.size()) != config->num_hidden_layers) {
      return absl::InvalidArgumentError(absl::StrCat("per-layer windows list has ", s.layer_windows.size(),
                                                     " entries, the model has ", config->num_hidden_layers,
                                                     " layers"));
    }
    for (size_t i = 0; i < s.layer_windows.size(); ++i) {
      if (s.layer_windows[i] < 0) {
        return absl::InvalidArgumentError(absl::StrCat("window of layer ", i, " is negative"));
      }
    }
    config->layer_windows = s.layer_windows;
  } else if (s.window.has_value()) {
    if (*s.window < 0) return absl::InvalidArgumentError(absl::StrCat("window ", *s.window, " is negative"));
    for (auto& w : config->layer_windows) w = *s.window;
  }
  if (s.attention_sinks.has_value()) {
    if (*s.attention_sinks < 0) {
      return absl::InvalidArgumentError(absl::StrCat("attention sinks ", *s.attention_sinks, " is negative"));
    }
    config->attention_sinks = *s.attention_sinks;
  }
  return absl::OkStatus();
}

}  // namespace swarr
