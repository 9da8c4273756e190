// config.json of HF models (common/model/config.h): ParseModelConfig, Validate, ToJson round trip.
#include "common/model/config.h"
#include "fuzz/fuzz_target.h"

namespace swarr_fuzz {
std::vector<std::string> FuzzSeeds() {
  return {R"({"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","vocab_size":24,"hidden_size":64,
"intermediate_size":192,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,
"rms_norm_eps":1e-06,"rope_theta":10000.0,"max_position_embeddings":512,"tie_word_embeddings":true,
"eos_token_id":[2,3],"sliding_window":8,"use_sliding_window":true,"max_window_layers":1})",
          R"({"model_type":"llama","vocab_size":100,"hidden_size":32,"intermediate_size":64,"num_hidden_layers":1,
"num_attention_heads":2,"num_key_value_heads":1,"rope_scaling":{"rope_type":"llama3","factor":8.0,
"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}})",
          R"({"model_type":"mistral","sliding_window":null,"layer_windows":[4,0]})"};
}
}  // namespace swarr_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = swarr::ParseModelConfig(std::string(reinterpret_cast<const char*>(data), size));
  if (c.ok() && c->Validate().ok()) {
    // What we write must read back.
    auto again = swarr::ParseModelConfig(c->ToJson());
    if (!again.ok()) __builtin_trap();
  }
  return 0;
}
