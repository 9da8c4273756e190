#include "common/model/model.h"

#include <sys/stat.h>

#include <fstream>

#include <ATen/ATen.h>

#include "common/model/generator.h"
#include "common/model/safetensors.h"
#include "common/model/tensor_io.h"
#include "common/testing/numeric.h"
#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using testing_numeric::Float32Tolerance;
using testing_numeric::RelErr;
using testing_numeric::RelErrWithin;

const std::string kFixtures = std::string(SWARR_SHARED_DIR) + "/fixtures/hf/";

std::string TempDir() {
  char tmpl[] = "/tmp/swarr_model_XXXXXX";
  return mkdtemp(tmpl);
}

class HfParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HfParityTest, LogitsMatchTransformers) {
  const std::string dir = kFixtures + GetParam();
  auto model = Model::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  auto ids = ReadTensor(dir + "/expected.safetensors", "input_ids");
  auto want = ReadTensor(dir + "/expected.safetensors", "logits");
  ASSERT_TRUE(ids.ok() && want.ok());
  for (AttentionImpl impl : {AttentionImpl::kBand, AttentionImpl::kReference}) {
    auto got = (*model)->Score(*ids, impl);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->sizes(), want->sizes());
    // Transformers' float32 logits (PyTorch's kernels on another machine): rounding only.
    const double tol = Float32Tolerance(ForwardReductionLength((*model)->config(), ids->size(1)));
    const double err = RelErr(*got, *want);
    EXPECT_LE(err, tol) << GetParam();
    testing_numeric::ReportMargin(err, tol);
  }
}

TEST_P(HfParityTest, GreedyGenerationMatchesTransformers) {
  const std::string dir = kFixtures + GetParam();
  auto model = Model::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  for (int k = 0; k < 3; ++k) {
    const std::string key = "gen" + std::to_string(k);
    auto prompt = ReadTensor(dir + "/expected.safetensors", key + "_prompt");
    auto output = ReadTensor(dir + "/expected.safetensors", key + "_output");
    auto margin = ReadTensor(dir + "/expected.safetensors", key + "_margin");
    ASSERT_TRUE(prompt.ok() && output.ok() && margin.ok());
    GenerationRequest req;
    const int64_t* p = prompt->data_ptr<int64_t>();
    req.prompt.assign(p, p + prompt->numel());
    req.max_new_tokens = 40;
    req.sampling.greedy = true;
    GeneratorOptions opts;
    opts.prefill_chunk = 7;  // prompts of 12 and 23 tokens wrap the 16-slot ring in chunks
    Generator gen(**model, opts);
    auto res = gen.Generate({req});
    ASSERT_TRUE(res.ok()) << res.status();
    const auto& got = (*res)[0].tokens;
    const int64_t* want = output->data_ptr<int64_t>();
    ASSERT_EQ(static_cast<int64_t>(got.size()), output->numel());
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] == want[i]) continue;
      const int64_t step = static_cast<int64_t>(i) - prompt->numel();
      // Only a near-tie in HF's own logits may legitimately pick another token.
      EXPECT_LT(margin->data_ptr<float>()[step], 1e-3) << GetParam() << " " << key << " differs at step " << step;
      break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfParityTest,
                         ::testing::Values("qwen2_swa", "qwen2_full", "qwen2_tied", "llama_full"));

TEST(ModelTest, SwaFixtureDiffersFromFullOnlyAfterWindow) {
  // The same qwen2_swa weights loaded with the window switched off.
  const std::string dir = kFixtures + "qwen2_swa";
  ModelOptions full;
  full.conversion.window = 0;
  auto swa = Model::Load(dir);
  auto sa = Model::Load(dir, full);
  ASSERT_TRUE(swa.ok() && sa.ok());
  auto ids = ReadTensor(dir + "/expected.safetensors", "input_ids");
  at::Tensor a = *(*swa)->Score(*ids), b = *(*sa)->Score(*ids);
  // Band against full attention: other kernels, equal up to rounding before the window.
  const double tol = Float32Tolerance(ForwardReductionLength((*swa)->config(), ids->size(1)));
  EXPECT_TRUE(RelErrWithin(a.narrow(1, 0, 16), b.narrow(1, 0, 16), tol));
  EXPECT_GT(RelErr(a.narrow(1, 16, 1), b.narrow(1, 16, 1)), 10 * tol) << "tolerance " << tol;
}

TEST(ModelTest, SaveLoadRoundTrip) {
  const std::string src = kFixtures + "qwen2_tied";
  ModelOptions opts;
  opts.conversion.layer_windows = {8, 0, 4};
  opts.conversion.attention_sinks = 2;
  auto model = Model::Load(src, opts);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string dir = TempDir();
  ASSERT_TRUE((*model)->Save(dir).ok());
  auto back = Model::Load(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->config().layer_windows, (std::vector<int64_t>{8, 0, 4}));
  EXPECT_EQ((*back)->config().attention_sinks, 2);
  EXPECT_TRUE((*back)->config().tie_word_embeddings);
  auto ids = ReadTensor(src + "/expected.safetensors", "input_ids");
  // float32 weights are written and read bit for bit and both models run the same code:
  // identical logits.
  EXPECT_TRUE(at::equal(*(*model)->Score(*ids), *(*back)->Score(*ids)));
  // bf16 checkpoints load too (and lose precision only at bf16 rounding).
  const std::string dir16 = TempDir();
  Model::SaveOptions bf16;
  bf16.dtype = "bfloat16";
  ASSERT_TRUE((*model)->Save(dir16, bf16).ok());
  auto back16 = Model::Load(dir16);
  ASSERT_TRUE(back16.ok()) << back16.status();
  EXPECT_LT(RelErr(*(*back16)->Score(*ids), *(*model)->Score(*ids)), 0.05);
}

TEST(ModelTest, ShardedSaveLoadRoundTrip) {
  auto model = Model::Load(kFixtures + "llama_full");
  ASSERT_TRUE(model.ok());
  const std::string dir = TempDir();
  ASSERT_TRUE((*model)->Save(dir).ok());  // first a single file ...
  Model::SaveOptions small;
  small.max_shard_bytes = 200000;  // ... then 783 KB of weights in shards of <= 200 KB
  ASSERT_TRUE((*model)->Save(dir, small).ok());
  struct stat st;
  EXPECT_NE(::stat((dir + "/model.safetensors").c_str(), &st), 0) << "stale single file left behind";
  std::ifstream in(dir + "/model.safetensors.index.json");
  auto index = nlohmann::json::parse(in);
  EXPECT_EQ(index["weight_map"]["model.embed_tokens.weight"], "model-00001-of-00005.safetensors");
  EXPECT_EQ(index["weight_map"].size(), (*model)->named_parameters().size());
  auto back = Model::Load(dir);
  ASSERT_TRUE(back.ok()) << back.status();
  auto ids = ReadTensor(kFixtures + "llama_full/expected.safetensors", "input_ids");
  // Bit-for-bit weights, same code: identical logits (as in SaveLoadRoundTrip).
  EXPECT_TRUE(at::equal(*(*model)->Score(*ids), *(*back)->Score(*ids)));
  // And back to a single file: the index goes.
  ASSERT_TRUE((*model)->Save(dir).ok());
  EXPECT_NE(::stat((dir + "/model.safetensors.index.json").c_str(), &st), 0);
  ASSERT_TRUE(Model::Load(dir).ok());
}

// Copies a fixture directory with its model.safetensors replaced by `tensors`.
std::string WithTensors(const std::string& fixture, const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  const std::string dir = TempDir();
  std::ifstream in(kFixtures + fixture + "/config.json");
  std::ofstream(dir + "/config.json") << in.rdbuf();
  EXPECT_TRUE(WriteTensors(dir + "/model.safetensors", tensors).ok());
  return dir;
}

std::vector<std::pair<std::string, at::Tensor>> FixtureTensors(const std::string& fixture) {
  auto file = SafetensorsFile::Open(kFixtures + fixture + "/model.safetensors");
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& name : (*file)->names()) out.push_back({name, *TensorFromView(*(*file)->Get(name))});
  return out;
}

TEST(ModelTest, BadCheckpointsNameTheTensor) {
  auto tensors = FixtureTensors("qwen2_full");
  // Missing.
  auto missing = tensors;
  missing.erase(std::remove_if(missing.begin(), missing.end(),
                               [](auto& p) { return p.first == "model.layers.1.mlp.up_proj.weight"; }),
                missing.end());
  auto m = Model::Load(WithTensors("qwen2_full", missing));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("missing tensor 'model.layers.1.mlp.up_proj.weight'"));
  // Unexpected.
  auto extra = tensors;
  extra.push_back({"model.layers.0.self_attn.extra.weight", at::zeros({2})});
  m = Model::Load(WithTensors("qwen2_full", extra));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("unexpected tensor 'model.layers.0.self_attn.extra.weight'"));
  // Mis-shaped.
  auto shaped = tensors;
  for (auto& [name, t] : shaped) {
    if (name == "model.layers.2.self_attn.k_proj.weight") t = at::zeros({16, 64});
  }
  m = Model::Load(WithTensors("qwen2_full", shaped));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("'model.layers.2.self_attn.k_proj.weight'"));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("expected [32, 64]"));
  // Integer weights.
  auto ints = tensors;
  for (auto& [name, t] : ints) {
    if (name == "model.norm.weight") t = t.to(at::kLong);
  }
  m = Model::Load(WithTensors("qwen2_full", ints));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("'model.norm.weight'"));
  // A checkpoint of another architecture: llama weights under a qwen2 config lack biases.
  m = Model::Load(WithTensors("qwen2_full", FixtureTensors("llama_full")));
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("bias"));
}

TEST(ModelTest, OutOfVocabularyIdsAreErrors) {
  auto model = Model::Load(kFixtures + "llama_full");
  ASSERT_TRUE(model.ok());
  at::Tensor ids = at::tensor({3L, 4L, 512L, 5L}, at::kLong).view({2, 2});
  auto s = (*model)->Score(ids);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("token id 512 at [1, 0]"));
  s = (*model)->Score(at::tensor({-1L}, at::kLong).view({1, 1}));
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("token id -1"));
  Generator gen(**model);
  GenerationRequest req;
  req.prompt = {5, 9000};
  req.max_new_tokens = 3;
  auto id = gen.Submit(req);
  ASSERT_FALSE(id.ok());
  EXPECT_THAT(std::string(id.status().message()), HasSubstr("prompt token 1 has id 9000"));
}

TEST(ModelTest, FromTensorsEqualsLoad) {
  auto loaded = Model::Load(kFixtures + "qwen2_full");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  auto tensors = FixtureTensors("qwen2_full");
  auto built = Model::FromTensors((*loaded)->config(), tensors);
  ASSERT_TRUE(built.ok()) << built.status();
  at::Tensor ids = at::tensor({3L, 9L, 27L, 5L, 11L}, at::kLong).view({1, 5});
  // The same float32 tensors through the same code: identical logits.
  EXPECT_TRUE(at::equal(*(*built)->Score(ids), *(*loaded)->Score(ids)));
  // Errors name the tensor.
  auto shaped = tensors;
  for (auto& [name, t] : shaped) {
    if (name == "model.layers.0.mlp.up_proj.weight") t = at::zeros({3, 3});
  }
  auto bad = Model::FromTensors((*loaded)->config(), shaped);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'model.layers.0.mlp.up_proj.weight' has shape [3, 3]"));
  auto extra = tensors;
  extra.push_back({"model.bogus.weight", at::zeros({1})});
  bad = Model::FromTensors((*loaded)->config(), extra);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("unexpected tensor 'model.bogus.weight'"));
}

TEST(ModelTest, CopyWeightsFromReplacesWeightsInPlaceOrNotAtAll) {
  ModelConfig config = TinyConfig({3, 0});
  auto a = Model::RandomInit(config, 1);
  auto b = Model::RandomInit(config, 2);
  ASSERT_TRUE(a.ok() && b.ok());
  at::Tensor ids = at::tensor({3L, 9L, 27L, 5L, 11L, 7L}, at::kLong).view({1, 6});
  const at::Tensor before = *(*a)->Score(ids);
  const at::Tensor want = *(*b)->Score(ids);
  // Two different random models (a precondition, not a tolerance): far apart.
  ASSERT_GT(RelErr(before, want), 0.1);
  // The tensors the model had keep their storage (a generator holding them sees the change).
  const void* embed_storage = (*a)->named_parameters()[0].second.data_ptr();

  // Bad sets change nothing.
  std::vector<std::pair<std::string, at::Tensor>> source;
  for (const auto& [name, t] : (*b)->named_parameters()) source.push_back({name, t.to(at::kBFloat16)});
  auto missing = source;
  missing.erase(std::remove_if(missing.begin(), missing.end(), [](auto& p) { return p.first == "model.norm.weight"; }),
                missing.end());
  absl::Status st = (*a)->CopyWeightsFrom(missing);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("missing tensor 'model.norm.weight'"));
  auto shaped = source;
  shaped[3].second = at::zeros({2, 2});
  st = (*a)->CopyWeightsFrom(shaped);
  EXPECT_THAT(std::string(st.message()), HasSubstr("'" + shaped[3].first + "' has shape [2, 2]"));
  auto ints = source;
  ints[1].second = ints[1].second.to(at::kLong);
  EXPECT_FALSE((*a)->CopyWeightsFrom(ints).ok());
  // Untouched weights, same code: bit-identical.
  EXPECT_TRUE(at::equal(*(*a)->Score(ids), before));

  // A good set (bf16 here: converted to the model's dtype) takes effect.
  ASSERT_TRUE((*a)->CopyWeightsFrom(source).ok());
  EXPECT_EQ((*a)->named_parameters()[0].second.data_ptr(), embed_storage);
  std::vector<std::pair<std::string, at::Tensor>> exact;
  for (const auto& [name, t] : (*b)->named_parameters()) exact.push_back({name, t.clone()});
  ASSERT_TRUE((*a)->CopyWeightsFrom(exact).ok());
  // b's float32 weights copied exactly, same code: b's logits bit for bit.
  EXPECT_TRUE(at::equal(*(*a)->Score(ids), want));
}

TEST(ModelTest, RopeScalingFrequencies) {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 500000.0;
  at::Tensor base = RopeInverseFrequencies(c);
  c.rope_scaling.type = RopeScaling::Type::kLinear;
  c.rope_scaling.factor = 4;
  // Division by a power of two is exact in binary floating point, and both sides compute the
  // base frequencies with the same code: bit-identical.
  EXPECT_TRUE(at::equal(RopeInverseFrequencies(c), base / 4));
  // Llama 3: high frequencies unchanged, low frequencies divided by factor, smooth between.
  c.rope_scaling.type = RopeScaling::Type::kLlama3;
  c.rope_scaling.factor = 8;
  c.rope_scaling.low_freq_factor = 1;
  c.rope_scaling.high_freq_factor = 4;
  c.rope_scaling.original_max_position_embeddings = 8192;
  at::Tensor l3 = RopeInverseFrequencies(c);
  // Unchanged, or divided by 8 (exact): bit-identical.
  EXPECT_EQ(l3[0].item<float>(), base[0].item<float>());
  EXPECT_EQ(l3[31].item<float>(), base[31].item<float>() / 8);
  for (int i = 0; i < 32; ++i) {
    const float wavelen = 2 * M_PI / base[i].item<float>();
    if (wavelen >= 2048 && wavelen <= 8192) {
      EXPECT_LE(l3[i].item<float>(), base[i].item<float>());
      EXPECT_GE(l3[i].item<float>(), base[i].item<float>() / 8);
    }
  }
}

}  // namespace
}  // namespace swarr

namespace swarr {
namespace {

// Sequences of different lengths packed end to end give each sequence's own hidden states:
// per-sequence positions, no attention across sequences, windows and sinks applied per
// sequence (sliding layer with W = 5 < the lengths, a sink layer, a full layer).
TEST(PackedForwardTest, PackedHiddenEqualsEachSequenceAlone) {
  for (int64_t sinks : {0, 2}) {
    const ModelConfig c = TinyConfig({5, 0, 5}, sinks);
    auto model = SharpRandomModel(c, 11, 2.0);
    at::manual_seed(3);
    const std::vector<int64_t> lengths = {9, 3, 14, 1, 7};
    std::vector<int64_t> offsets{0};
    std::vector<at::Tensor> seqs;
    for (int64_t len : lengths) {
      seqs.push_back(at::randint(3, c.vocab_size, {len}, at::kLong));
      offsets.push_back(offsets.back() + len);
    }
    at::NoGradGuard no_grad;
    const at::Tensor packed = model->PackedHidden(at::cat(seqs), offsets);
    ASSERT_EQ(packed.sizes(), (std::vector<int64_t>{offsets.back(), c.hidden_size}));
    for (size_t i = 0; i < seqs.size(); ++i) {
      const at::Tensor alone = model->Hidden(seqs[i].unsqueeze(0)).squeeze(0);
      // The same operations on the same rows; only the batching of the products differs.
      EXPECT_TRUE(RelErrWithin(packed.narrow(0, offsets[i], lengths[i]), alone,
                               Float32Tolerance(ForwardReductionLength(c, lengths[i]))))
          << "sinks " << sinks << ", sequence " << i;
    }
    // A sequence attending to its neighbour would change: the second sequence alone differs
    // from the same tokens read as a continuation of the first.
    const at::Tensor joined = model->Hidden(at::cat({seqs[0], seqs[1]}).unsqueeze(0)).squeeze(0);
    EXPECT_GT(RelErr(joined.narrow(0, lengths[0], lengths[1]), packed.narrow(0, offsets[1], lengths[1])), 1e-3);
  }
}

TEST(PackedForwardTest, BadOffsetsAreErrors) {
  auto model = SharpRandomModel(TinyConfig({4}), 1);
  const at::Tensor ids = at::full({6}, 5, at::kLong);
  EXPECT_THROW(model->PackedHidden(ids, {0, 3, 5}), c10::Error);     // does not end at 6
  EXPECT_THROW(model->PackedHidden(ids, {0, 3, 3, 6}), c10::Error);  // an empty sequence
  EXPECT_THROW(model->PackedHidden(ids, {0}), c10::Error);
}

// Activation checkpointing recomputes each layer in the backward pass: the same values and
// the same parameter gradients as keeping the activations.
TEST(PackedForwardTest, CheckpointedLayersGiveTheSameGradients) {
  const ModelConfig c = TinyConfig({4, 0});
  auto model = SharpRandomModel(c, 5, 2.0);
  at::manual_seed(9);
  const at::Tensor ids = at::randint(3, c.vocab_size, {17}, at::kLong);
  const std::vector<int64_t> offsets = {0, 6, 17};
  const at::Tensor probe = at::randn({17, c.hidden_size});
  std::vector<std::vector<at::Tensor>> grads(2);
  std::vector<at::Tensor> values(2);
  for (int pass = 0; pass < 2; ++pass) {
    PackedForwardOptions o;
    o.checkpoint_layers = pass == 1;
    for (auto& [name, p] : model->named_parameters()) {
      p.requires_grad_(true);
      if (p.grad().defined()) p.mutable_grad().zero_();
    }
    values[pass] = model->PackedHidden(ids, offsets, o);
    (values[pass] * probe).sum().backward();
    for (auto& [name, p] : model->named_parameters()) {
      grads[pass].push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());  // lm_head: not used
    }
  }
  const int64_t k = 2 * ForwardReductionLength(c, 17);  // forward + backward
  EXPECT_TRUE(RelErrWithin(values[1], values[0], Float32Tolerance(k)));
  const auto& names = model->named_parameters();
  for (size_t i = 0; i < grads[0].size(); ++i) {
    ASSERT_EQ(grads[1][i].defined(), grads[0][i].defined()) << names[i].first;
    if (!grads[0][i].defined()) continue;
    EXPECT_GT(grads[0][i].abs().max().item<double>(), 0) << names[i].first;
    EXPECT_TRUE(RelErrWithin(grads[1][i], grads[0][i], Float32Tolerance(k))) << names[i].first;
  }
}

}  // namespace
}  // namespace swarr
