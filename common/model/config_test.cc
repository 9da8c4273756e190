#include "common/model/config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace swarr {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kFixtures = std::string(SWARR_SHARED_DIR) + "/fixtures/hf/";

// A minimal config of `type` with `extra` fields merged in.
std::string Config(const std::string& type, const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json j = {{"model_type", type},       {"vocab_size", 100},        {"hidden_size", 32},
                      {"intermediate_size", 64},  {"num_hidden_layers", 4},   {"num_attention_heads", 4},
                      {"num_key_value_heads", 2}, {"rms_norm_eps", 1e-5},     {"rope_theta", 500000.0}};
  j.update(extra);
  return j.dump();
}

std::string Error(const std::string& text) {
  auto c = ParseModelConfig(text);
  EXPECT_FALSE(c.ok());
  return c.ok() ? "" : std::string(c.status().message());
}

TEST(ConfigTest, Fixtures) {
  auto swa = LoadModelConfig(kFixtures + "qwen2_swa");
  ASSERT_TRUE(swa.ok()) << swa.status();
  EXPECT_THAT(swa->layer_windows, ElementsAre(16, 16, 16));
  EXPECT_TRUE(swa->qkv_bias);
  EXPECT_FALSE(swa->o_bias);
  EXPECT_EQ(swa->head_dim, 16);
  EXPECT_DOUBLE_EQ(swa->rope_theta, 10000.0);
  EXPECT_THAT(swa->eos_token_ids, ElementsAre(2));
  auto full = LoadModelConfig(kFixtures + "qwen2_full");
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_THAT(full->layer_windows, ElementsAre(0, 0, 0));
  auto llama = LoadModelConfig(kFixtures + "llama_full");
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_FALSE(llama->qkv_bias);
  EXPECT_EQ(llama->num_key_value_heads, 2);
  auto tied = LoadModelConfig(kFixtures + "qwen2_tied");
  ASSERT_TRUE(tied.ok()) << tied.status();
  EXPECT_TRUE(tied->tie_word_embeddings);
}

TEST(ConfigTest, LegacyQwenSlidingLayers) {
  auto c = ParseModelConfig(Config("qwen2", {{"use_sliding_window", true}, {"sliding_window", 8}, {"max_window_layers", 2}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->layer_windows, ElementsAre(0, 0, 8, 8));
  c = ParseModelConfig(Config("qwen2", {{"use_sliding_window", false}, {"sliding_window", 8}, {"max_window_layers", 2}}));
  EXPECT_THAT(c->layer_windows, ElementsAre(0, 0, 0, 0));
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
}

TEST(ConfigTest, MistralAndLayerTypes) {
  auto m = ParseModelConfig(Config("mistral", {{"sliding_window", 4096}, {"head_dim", 16}}));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_THAT(m->layer_windows, ElementsAre(4096, 4096, 4096, 4096));
  m = ParseModelConfig(Config("mistral", {{"sliding_window", nullptr}}));
  EXPECT_THAT(m->layer_windows, ElementsAre(0, 0, 0, 0));
  auto q3 = ParseModelConfig(Config("qwen3", {{"sliding_window", 32}, {"head_dim", 16},
      {"layer_types", {"full_attention", "sliding_attention", "full_attention", "sliding_attention"}}}));
  ASSERT_TRUE(q3.ok()) << q3.status();
  EXPECT_THAT(q3->layer_windows, ElementsAre(0, 32, 0, 32));
  EXPECT_TRUE(q3->qk_norm);
  EXPECT_EQ(q3->head_dim, 16);
  EXPECT_THAT(Error(Config("qwen3", {{"sliding_window", 32}, {"layer_types", {"full_attention", "chunked_attention", "full_attention", "full_attention"}}})),
              HasSubstr("layer_types[1]"));
  EXPECT_THAT(Error(Config("qwen3", {{"layer_types", {"full_attention"}}})), HasSubstr("layer_types"));
}

TEST(ConfigTest, RopeScaling) {
  auto lin = ParseModelConfig(Config("llama", {{"rope_scaling", {{"type", "linear"}, {"factor", 4.0}}}}));
  ASSERT_TRUE(lin.ok()) << lin.status();
  EXPECT_EQ(lin->rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_DOUBLE_EQ(lin->rope_scaling.factor, 4.0);
  auto l3 = ParseModelConfig(Config("llama", {{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0},
      {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}}}}));
  ASSERT_TRUE(l3.ok()) << l3.status();
  EXPECT_EQ(l3->rope_scaling.type, RopeScaling::Type::kLlama3);
  auto v5 = ParseModelConfig(Config("llama", {{"rope_parameters", {{"rope_theta", 1234.0}, {"rope_type", "default"}}}}));
  ASSERT_TRUE(v5.ok());
  EXPECT_DOUBLE_EQ(v5->rope_theta, 1234.0);
  EXPECT_THAT(Error(Config("llama", {{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}}})),
              HasSubstr("unsupported rope type 'yarn'"));
  EXPECT_THAT(Error(Config("llama", {{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8.0}}}})),
              HasSubstr("low_freq_factor"));
  EXPECT_THAT(Error(Config("llama", {{"rope_scaling", {{"rope_type", "linear"}}}})), HasSubstr("factor"));
}

TEST(ConfigTest, TokensAndDtype) {
  auto c = ParseModelConfig(Config("llama", {{"bos_token_id", 1}, {"eos_token_id", {2, 7}}, {"torch_dtype", "bfloat16"}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->bos_token_ids, ElementsAre(1));
  EXPECT_THAT(c->eos_token_ids, ElementsAre(2, 7));
  EXPECT_EQ(c->dtype, "bfloat16");
  c = ParseModelConfig(Config("llama", {{"dtype", "float16"}}));
  EXPECT_EQ(c->dtype, "float16");
  EXPECT_THAT(Error(Config("llama", {{"dtype", "int8"}})), HasSubstr("dtype"));
  EXPECT_THAT(Error(Config("llama", {{"eos_token_id", "two"}})), HasSubstr("eos_token_id"));
}

TEST(ConfigTest, BadConfigsNameTheField) {
  EXPECT_THAT(Error("{not json"), HasSubstr("not valid JSON"));
  EXPECT_THAT(Error(Config("gpt2")), HasSubstr("unsupported model_type 'gpt2'"));
  EXPECT_THAT(Error(Config("llama", {{"hidden_act", "gelu"}})), HasSubstr("hidden_act"));
  EXPECT_THAT(Error(Config("llama", {{"num_key_value_heads", 3}})), HasSubstr("num_key_value_heads"));
  EXPECT_THAT(Error(Config("llama", {{"hidden_size", "32"}})), HasSubstr("hidden_size: expected integer"));
  nlohmann::json j = nlohmann::json::parse(Config("llama"));
  j.erase("vocab_size");
  EXPECT_THAT(Error(j.dump()), HasSubstr("vocab_size: required field is missing"));
  EXPECT_THAT(Error(Config("llama", {{"sliding_window", -3}})), HasSubstr("sliding_window"));
}

TEST(ConfigTest, ConversionOverrides) {
  auto c = ParseModelConfig(Config("qwen2"));
  ASSERT_TRUE(c.ok());
  ConversionSettings all;
  all.window = 8;
  all.attention_sinks = 4;
  ASSERT_TRUE(ApplyConversion(all, &*c).ok());
  EXPECT_THAT(c->layer_windows, ElementsAre(8, 8, 8, 8));
  EXPECT_EQ(c->attention_sinks, 4);
  ConversionSettings per_layer;
  per_layer.layer_windows = {0, 8, 0, 16};
  ASSERT_TRUE(ApplyConversion(per_layer, &*c).ok());
  EXPECT_THAT(c->layer_windows, ElementsAre(0, 8, 0, 16));
  per_layer.layer_windows = {8, 8};
  auto st = ApplyConversion(per_layer, &*c);
  EXPECT_THAT(std::string(st.message()), HasSubstr("2 entries"));
  ConversionSettings negative;
  negative.window = -1;
  EXPECT_FALSE(ApplyConversion(negative, &*c).ok());
}

TEST(ConfigTest, ToJsonRoundTripsAttentionLayout) {
  auto c = ParseModelConfig(Config("qwen2", {{"bos_token_id", 1}, {"eos_token_id", 2}}));
  ASSERT_TRUE(c.ok());
  c->layer_windows = {0, 0, 8, 8};
  auto back = ParseModelConfig(c->ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(back->layer_windows, ElementsAre(0, 0, 8, 8));
  nlohmann::json j = nlohmann::json::parse(c->ToJson());
  EXPECT_EQ(j["max_window_layers"], 2);  // what older transformers read
  EXPECT_EQ(j["use_sliding_window"], true);
  EXPECT_EQ(j["architectures"][0], "Qwen2ForCausalLM");
  // Mixed windows and sinks survive through SWARR's own fields.
  c->layer_windows = {4, 0, 8, 8};
  c->attention_sinks = 2;
  back = ParseModelConfig(c->ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_THAT(back->layer_windows, ElementsAre(4, 0, 8, 8));
  EXPECT_EQ(back->attention_sinks, 2);
  EXPECT_THAT(back->eos_token_ids, ElementsAre(2));
}

}  // namespace
}  // namespace swarr
