#include "common/model/model.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/attention/attention.h"
#include "common/attention/flash_train.h"
#include "common/attention/ring_decode_op.h"
#include "common/kv_cache/kv_cache.h"
#include "common/model/safetensors.h"
#include "common/model/tensor_io.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"

namespace swarr {
namespace {

absl::StatusOr<at::ScalarType> ParseComputeDType(const std::string& name) {
  if (name == "float32") return at::kFloat;
  if (name == "bfloat16") return at::kBFloat16;
  if (name == "float16") return at::kHalf;
  return absl::InvalidArgumentError(absl::StrCat("unsupported dtype '", name, "' (float32, bfloat16, float16)"));
}

std::string ShapeString(at::IntArrayRef shape) { return absl::StrCat("[", absl::StrJoin(shape, ", "), "]"); }

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor h = x.to(at::kFloat);
  at::Tensor var = h.pow(2).mean({-1}, /*keepdim=*/true);
  h = h * at::rsqrt(var + eps);
  return weight * h.to(x.scalar_type());
}

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({x.narrow(-1, half, half).neg(), x.narrow(-1, 0, half)}, -1);
}

at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return at::linear(x, w, b.defined() ? c10::optional<at::Tensor>(b) : c10::nullopt);
}

// Activation checkpointing (PyTorch's re-entrant scheme): the forward runs `fn` without
// recording a graph and keeps only its input; the backward recomputes fn(input) with grad
// on and back-propagates through it, which accumulates the parameters' gradients into
// their .grad as the plain graph would, and returns the input's gradient.
struct CheckpointFn : torch::CustomClassHolder {
  std::function<at::Tensor(const at::Tensor&)> fn;
};

class Checkpointed : public torch::autograd::Function<Checkpointed> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const c10::intrusive_ptr<CheckpointFn>& fn) {
    ctx->save_for_backward({x});
    ctx->saved_data["fn"] = c10::IValue::make_capsule(fn);
    at::NoGradGuard no_grad;
    return fn->fn(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    auto fn = c10::static_intrusive_pointer_cast<CheckpointFn>(ctx->saved_data["fn"].toCapsule());
    at::Tensor y;
    {
      at::AutoGradMode grad_on(true);
      y = fn->fn(x);
    }
    torch::autograd::backward({y}, {grads[0]});
    return {x.grad(), at::Tensor()};
  }
};

}  // namespace

// Packed sequences' layout, on the host and on the device.
struct Model::Packing {
  std::vector<int64_t> offsets;
  at::Tensor cu_seqlens;  // int32 [n + 1] on the model's device (for FlashAttention)
  int64_t max_len = 0;
  bool flash = true;
};

at::Tensor RopeInverseFrequencies(const ModelConfig& config) {
  const int64_t dim = config.head_dim;
  at::Tensor exponent = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<float>(dim);
  at::Tensor inv_freq = 1.0 / at::pow(at::scalar_tensor(config.rope_theta, at::kFloat), exponent);
  const RopeScaling& rs = config.rope_scaling;
  if (rs.type == RopeScaling::Type::kLinear) {
    inv_freq = inv_freq / rs.factor;
  } else if (rs.type == RopeScaling::Type::kLlama3) {
    const double old_len = static_cast<double>(rs.original_max_position_embeddings);
    const double low_freq_wavelen = old_len / rs.low_freq_factor;
    const double high_freq_wavelen = old_len / rs.high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / inv_freq;
    at::Tensor llama = at::where(wavelen > low_freq_wavelen, inv_freq / rs.factor, inv_freq);
    at::Tensor smooth = (old_len / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * llama / rs.factor + smooth * llama;
    at::Tensor medium = wavelen.ge(high_freq_wavelen).logical_and(wavelen.le(low_freq_wavelen));
    inv_freq = at::where(medium, smoothed, llama);
  }
  return inv_freq;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Model::ExpectedParameters() const {
  const ModelConfig& c = config_;
  const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim;
  const int64_t kv = c.num_key_value_heads * c.head_dim, inter = c.intermediate_size;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    out.push_back({p + "input_layernorm.weight", {h}});
    out.push_back({p + "self_attn.q_proj.weight", {q, h}});
    if (c.qkv_bias) out.push_back({p + "self_attn.q_proj.bias", {q}});
    out.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    if (c.qkv_bias) out.push_back({p + "self_attn.k_proj.bias", {kv}});
    out.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    if (c.qkv_bias) out.push_back({p + "self_attn.v_proj.bias", {kv}});
    out.push_back({p + "self_attn.o_proj.weight", {h, q}});
    if (c.o_bias) out.push_back({p + "self_attn.o_proj.bias", {h}});
    if (c.qk_norm) {
      out.push_back({p + "self_attn.q_norm.weight", {c.head_dim}});
      out.push_back({p + "self_attn.k_norm.weight", {c.head_dim}});
    }
    out.push_back({p + "post_attention_layernorm.weight", {h}});
    out.push_back({p + "mlp.gate_proj.weight", {inter, h}});
    if (c.mlp_bias) out.push_back({p + "mlp.gate_proj.bias", {inter}});
    out.push_back({p + "mlp.up_proj.weight", {inter, h}});
    if (c.mlp_bias) out.push_back({p + "mlp.up_proj.bias", {inter}});
    out.push_back({p + "mlp.down_proj.weight", {h, inter}});
    if (c.mlp_bias) out.push_back({p + "mlp.down_proj.bias", {h}});
  }
  out.push_back({"model.norm.weight", {h}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, h}});
  return out;
}

absl::Status Model::Assign(std::vector<std::pair<std::string, at::Tensor>> tensors) {
  std::map<std::string, at::Tensor> by_name(tensors.begin(), tensors.end());
  params_.clear();
  for (const auto& [name, shape] : ExpectedParameters()) {
    auto it = by_name.find(name);
    if (it == by_name.end()) return absl::InvalidArgumentError(absl::StrCat("missing tensor '", name, "'"));
    if (it->second.sizes() != at::IntArrayRef(shape)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has shape ", ShapeString(it->second.sizes()),
                                                     ", expected ", ShapeString(shape)));
    }
    params_.push_back({name, it->second.to(device_, dtype_).contiguous()});
  }
  std::map<std::string, at::Tensor> p(params_.begin(), params_.end());
  auto get = [&p](const std::string& name) { auto it = p.find(name); return it == p.end() ? at::Tensor() : it->second; };
  embed_ = get("model.embed_tokens.weight");
  final_norm_ = get("model.norm.weight");
  lm_head_ = config_.tie_word_embeddings ? embed_ : get("lm_head.weight");
  layers_.clear();
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    const std::string pre = absl::StrCat("model.layers.", i, ".");
    Layer l;
    l.in_norm = get(pre + "input_layernorm.weight");
    l.q_w = get(pre + "self_attn.q_proj.weight");
    l.q_b = get(pre + "self_attn.q_proj.bias");
    l.k_w = get(pre + "self_attn.k_proj.weight");
    l.k_b = get(pre + "self_attn.k_proj.bias");
    l.v_w = get(pre + "self_attn.v_proj.weight");
    l.v_b = get(pre + "self_attn.v_proj.bias");
    l.o_w = get(pre + "self_attn.o_proj.weight");
    l.o_b = get(pre + "self_attn.o_proj.bias");
    l.q_norm = get(pre + "self_attn.q_norm.weight");
    l.k_norm = get(pre + "self_attn.k_norm.weight");
    l.post_norm = get(pre + "post_attention_layernorm.weight");
    l.gate_w = get(pre + "mlp.gate_proj.weight");
    l.gate_b = get(pre + "mlp.gate_proj.bias");
    l.up_w = get(pre + "mlp.up_proj.weight");
    l.up_b = get(pre + "mlp.up_proj.bias");
    l.down_w = get(pre + "mlp.down_proj.weight");
    l.down_b = get(pre + "mlp.down_proj.bias");
    layers_.push_back(std::move(l));
  }
  inv_freq_ = RopeInverseFrequencies(config_).to(device_);
  ++weights_version_;
  return absl::OkStatus();
}

namespace {

// Shared set-up of Load and RandomInit: device and dtype from the options.
absl::Status ResolveDevice(const ModelOptions& options, c10::Device* device, at::ScalarType* dtype,
                           bool* decode_kernel) {
  auto dev = CatchTorch("device", [&] { return c10::Device(options.device); });
  if (!dev.ok()) return absl::InvalidArgumentError(absl::StrCat("bad device '", options.device, "'"));
  *device = *dev;
  if (device->is_cuda() && !at::hasCUDA()) {
    return absl::InvalidArgumentError(absl::StrCat("device '", options.device,
                                                   "': this LibTorch has no CUDA support or sees no GPU"));
  }
  std::string dt = options.dtype.empty() ? (device->is_cuda() ? "bfloat16" : "float32") : options.dtype;
  SWARR_ASSIGN_OR_RETURN(*dtype, ParseComputeDType(dt));
  *decode_kernel = options.cuda_decode_kernel && device->is_cuda() && RingDecodeKernelBuilt() &&
                   (*dtype == at::kFloat || *dtype == at::kBFloat16);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> Model::Empty(ModelConfig config, const ModelOptions& options) {
  std::unique_ptr<Model> model(new Model());
  SWARR_RETURN_IF_ERROR(ResolveDevice(options, &model->device_, &model->dtype_, &model->decode_kernel_));
  model->config_ = std::move(config);
  SWARR_RETURN_IF_ERROR(ApplyConversion(options.conversion, &model->config_));
  SWARR_RETURN_IF_ERROR(model->config_.Validate());
  return model;
}

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& dir, const ModelOptions& options) {
  SWARR_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(dir));
  SWARR_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Empty(std::move(config), options));
  SWARR_ASSIGN_OR_RETURN(auto files, CheckpointFiles::Open(dir));

  std::map<std::string, std::vector<int64_t>> expected;
  for (auto& e : model->ExpectedParameters()) expected.insert(e);
  for (const std::string& name : files->names()) {
    if (expected.count(name)) continue;
    const bool ignorable = absl::EndsWith(name, "rotary_emb.inv_freq") ||
                           (name == "lm_head.weight" && model->config_.tie_word_embeddings);
    if (!ignorable) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected tensor '", name, "' in ", files->FileOf(name),
                                                     " for a ", model->config_.model_type, " model"));
    }
  }
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, shape] : expected) {
    if (!files->Contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat("missing tensor '", name, "' in checkpoint ", dir));
    }
    SWARR_ASSIGN_OR_RETURN(TensorView view, files->Get(name));
    if (view.shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' in ", files->FileOf(name), " has shape ",
                                                     ShapeString(view.shape), ", expected ", ShapeString(shape)));
    }
    if (view.dtype != StDType::kF32 && view.dtype != StDType::kF16 && view.dtype != StDType::kBF16 &&
        view.dtype != StDType::kF64) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' in ", files->FileOf(name), " has dtype ",
                                                     StDTypeName(view.dtype), ", expected a floating-point type"));
    }
    SWARR_ASSIGN_OR_RETURN(at::Tensor t, TensorFromView(view));
    tensors.push_back({name, t});
  }
  SWARR_RETURN_IF_ERROR(model->Assign(std::move(tensors)));
  return model;
}

absl::StatusOr<std::unique_ptr<Model>> Model::RandomInit(const ModelConfig& config, uint64_t seed,
                                                         const ModelOptions& options) {
  SWARR_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Empty(config, options));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, shape] : model->ExpectedParameters()) {
    at::Tensor t;
    if (absl::EndsWith(name, "norm.weight")) {
      t = at::ones(shape, at::kFloat);
    } else if (absl::EndsWith(name, ".bias")) {
      t = at::zeros(shape, at::kFloat);
    } else {
      t = at::normal(0.0, 0.02, shape, gen, at::TensorOptions().dtype(at::kFloat));
    }
    tensors.push_back({name, t});
  }
  SWARR_RETURN_IF_ERROR(model->Assign(std::move(tensors)));
  return model;
}

absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> Model::Match(
    const std::vector<std::pair<std::string, at::Tensor>>& tensors) const {
  std::map<std::string, at::Tensor> by_name;
  for (const auto& [name, t] : tensors) {
    if (!by_name.emplace(name, t).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' appears twice"));
    }
  }
  const auto expected = ExpectedParameters();
  std::map<std::string, bool> wanted;
  for (const auto& e : expected) wanted[e.first] = true;
  for (const auto& [name, t] : by_name) {
    if (wanted.count(name)) continue;
    const bool ignorable = absl::EndsWith(name, "rotary_emb.inv_freq") ||
                           (name == "lm_head.weight" && config_.tie_word_embeddings);
    if (!ignorable) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected tensor '", name, "' for a ", config_.model_type,
                                                     " model"));
    }
  }
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.reserve(expected.size());
  for (const auto& [name, shape] : expected) {
    auto it = by_name.find(name);
    if (it == by_name.end() || !it->second.defined()) {
      return absl::InvalidArgumentError(absl::StrCat("missing tensor '", name, "'"));
    }
    const at::Tensor& t = it->second;
    if (t.sizes() != at::IntArrayRef(shape)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has shape ", ShapeString(t.sizes()),
                                                     ", expected ", ShapeString(shape)));
    }
    if (!at::isFloatingType(t.scalar_type())) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has dtype ", c10::toString(t.scalar_type()),
                                                     ", expected a floating-point type"));
    }
    out.push_back({name, t});
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Model>> Model::FromTensors(const ModelConfig& config,
                                                          std::vector<std::pair<std::string, at::Tensor>> tensors,
                                                          const ModelOptions& options) {
  SWARR_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Empty(config, options));
  SWARR_ASSIGN_OR_RETURN(auto matched, model->Match(tensors));
  tensors.clear();
  SWARR_RETURN_IF_ERROR(CatchTorch("building the model", [&] { return model->Assign(std::move(matched)); }));
  return model;
}

absl::Status Model::CopyWeightsFrom(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  SWARR_ASSIGN_OR_RETURN(auto matched, Match(tensors));
  return CatchTorch("copying weights", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    // Convert everything first: a failure here (e.g. out of memory) leaves the model as it was.
    std::vector<at::Tensor> converted;
    converted.reserve(matched.size());
    for (const auto& [name, t] : matched) converted.push_back(t.to(device_, dtype_));
    for (size_t i = 0; i < matched.size(); ++i) params_[i].second.copy_(converted[i]);
    ++weights_version_;
    return absl::OkStatus();
  });
}

int64_t Model::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_) n += t.numel();
  return n;
}

absl::Status Model::Save(const std::string& dir, const SaveOptions& options) const {
  SWARR_ASSIGN_OR_RETURN(at::ScalarType st, ParseComputeDType(options.dtype));
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InvalidArgumentError(absl::StrCat("cannot create directory ", dir, ": ", std::strerror(errno)));
  }
  std::vector<std::pair<std::string, at::Tensor>> converted;
  for (const auto& [name, t] : params_) converted.push_back({name, t.detach().to(at::kCPU, st)});
  SWARR_RETURN_IF_ERROR(WriteCheckpointTensors(dir, converted, options.max_shard_bytes));
  ModelConfig out = config_;
  out.dtype = options.dtype;
  const std::string json = out.ToJson();
  return WriteFileAtomically(dir + "/config.json", {json});
}

absl::Status Model::CheckTokenIds(const at::Tensor& ids) const {
  if (ids.dim() != 2) return absl::InvalidArgumentError(absl::StrCat("token ids must be [B, T], got ", ShapeString(ids.sizes())));
  if (ids.scalar_type() != at::kLong) return absl::InvalidArgumentError("token ids must be int64");
  if (ids.numel() == 0) return absl::InvalidArgumentError("token ids are empty");
  at::Tensor bad = ids.lt(0).logical_or(ids.ge(config_.vocab_size));
  if (bad.any().item<bool>()) {
    at::Tensor where = bad.nonzero().select(0, 0).to(at::kCPU);
    const int64_t r = where[0].item<int64_t>(), c = where[1].item<int64_t>();
    return absl::InvalidArgumentError(absl::StrCat("token id ", ids[r][c].item<int64_t>(), " at [", r, ", ", c,
                                                   "] is outside the vocabulary [0, ", config_.vocab_size, ")"));
  }
  return absl::OkStatus();
}

at::Tensor Model::Attention(int layer, const at::Tensor& x, const Rope& rope, AttentionImpl impl, KvCache* cache,
                            const std::vector<int>* seqs) const {
  const at::Tensor& positions = rope.positions;
  const Layer& l = layers_[layer];
  const int64_t B = x.size(0), T = x.size(1), H = config_.num_attention_heads;
  const int64_t Hkv = config_.num_key_value_heads, D = config_.head_dim;
  at::Tensor q = Linear(x, l.q_w, l.q_b).view({B, T, H, D});
  at::Tensor k = Linear(x, l.k_w, l.k_b).view({B, T, Hkv, D});
  at::Tensor v = Linear(x, l.v_w, l.v_b).view({B, T, Hkv, D});
  if (config_.qk_norm) {
    q = RmsNorm(q, l.q_norm, config_.rms_norm_eps);
    k = RmsNorm(k, l.k_norm, config_.rms_norm_eps);
  }
  q = q.transpose(1, 2);
  k = k.transpose(1, 2);
  v = v.transpose(1, 2);
  q = q * rope.cos + RotateHalf(q) * rope.sin;
  k = k * rope.cos + RotateHalf(k) * rope.sin;

  AttentionSpec spec;
  spec.window = config_.layer_windows[layer];
  spec.sinks = spec.window > 0 ? config_.attention_sinks : 0;
  spec.scale = 1.0 / std::sqrt(static_cast<double>(D));
  at::Tensor out;
  if (cache != nullptr) {
    if (T == 1) {
      // Decode: store first, then attend over the cache itself. A ring slot overwritten
      // here held position p - W, which the query at p cannot see anyway.
      cache->Write(layer, *seqs, k.transpose(1, 2), v.transpose(1, 2));
      KvCache::LayerView kv = cache->Read(layer, *seqs, /*pending=*/1);
      if (decode_kernel_ && config_.head_dim <= 256) {
        out = RingDecodeAttention(q, kv.k, kv.v, positions, kv.pos, spec);
      } else {
        out = MaskedAttention(q, kv.k.transpose(1, 2), kv.v.transpose(1, 2), positions, kv.pos, spec);
      }
    } else {
      // Prefill chunk: earlier queries of the chunk may need ring slots that its later
      // tokens overwrite, so attend over (cache before the chunk) + chunk, then store.
      KvCache::LayerView old = cache->Read(layer, *seqs);
      at::Tensor keys = at::cat({old.k.transpose(1, 2), k}, 2);
      at::Tensor values = at::cat({old.v.transpose(1, 2), v}, 2);
      at::Tensor key_pos = at::cat({old.pos, positions}, 1);
      out = MaskedAttention(q, keys, values, positions, key_pos, spec);
      cache->Write(layer, *seqs, k.transpose(1, 2), v.transpose(1, 2));
    }
  } else if (rope.packing != nullptr) {
    const Packing& pk = *rope.packing;
    at::Tensor qp = q.transpose(1, 2).squeeze(0);  // [total, H, D]
    if (pk.flash && FlashTrainAttentionSupports(qp, spec)) {
      out = FlashVarlenSelfAttention(qp, k.transpose(1, 2).squeeze(0), v.transpose(1, 2).squeeze(0), pk.cu_seqlens,
                                     pk.max_len, spec)
                .unsqueeze(0)
                .transpose(1, 2);  // [1, H, total, D]
    } else {
      std::vector<at::Tensor> parts;
      parts.reserve(pk.offsets.size() - 1);
      for (size_t i = 0; i + 1 < pk.offsets.size(); ++i) {
        const int64_t start = pk.offsets[i], len = pk.offsets[i + 1] - pk.offsets[i];
        parts.push_back(BandAttention(q.narrow(2, start, len), k.narrow(2, start, len), v.narrow(2, start, len), spec));
      }
      out = parts.size() == 1 ? parts[0] : at::cat(parts, 2);
    }
  } else if (impl == AttentionImpl::kBand) {
    out = BandAttention(q, k, v, spec);
  } else {
    out = ReferenceSelfAttention(q, k, v, spec);
  }
  out = out.transpose(1, 2).reshape({B, T, H * D});
  return Linear(out, l.o_w, l.o_b);
}

Model::Rope Model::MakeRope(const at::Tensor& positions) const {
  // RoPE at absolute positions, computed like HF (float32 angles, then cast), once for
  // all layers.
  Rope rope;
  rope.positions = positions;
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq_;  // [B, T, D/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  rope.cos = emb.cos().to(dtype_).unsqueeze(1);  // [B, 1, T, D]
  rope.sin = emb.sin().to(dtype_).unsqueeze(1);
  return rope;
}

at::Tensor Model::DecoderLayer(int layer, const at::Tensor& x_in, const Rope& rope, AttentionImpl impl,
                               KvCache* cache, const std::vector<int>* seqs) const {
  const Layer& l = layers_[layer];
  at::Tensor x = x_in + Attention(layer, RmsNorm(x_in, l.in_norm, config_.rms_norm_eps), rope, impl, cache, seqs);
  at::Tensor h = RmsNorm(x, l.post_norm, config_.rms_norm_eps);
  at::Tensor mlp = at::silu(Linear(h, l.gate_w, l.gate_b)) * Linear(h, l.up_w, l.up_b);
  return x + Linear(mlp, l.down_w, l.down_b);
}

at::Tensor Model::Body(const at::Tensor& ids, const at::Tensor& positions, AttentionImpl impl, KvCache* cache,
                       const std::vector<int>* seqs, std::shared_ptr<const Packing> packing,
                       int64_t checkpointed) const {
  at::Tensor x = at::embedding(embed_, ids);
  Rope rope = MakeRope(positions);
  rope.packing = packing.get();
  if (!at::GradMode::is_enabled()) checkpointed = 0;
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    const int layer = static_cast<int>(i);
    if (i >= checkpointed) {
      x = DecoderLayer(layer, x, rope, impl, cache, seqs);
      continue;
    }
    // Recomputed in the backward pass: the closure keeps the packing alive until then.
    auto fn = c10::make_intrusive<CheckpointFn>();
    fn->fn = [this, layer, rope, impl, packing](const at::Tensor& in) {
      return DecoderLayer(layer, in, rope, impl, nullptr, nullptr);
    };
    x = Checkpointed::apply(x, fn);
  }
  return RmsNorm(x, final_norm_, config_.rms_norm_eps);
}

at::Tensor Model::PackedHidden(const at::Tensor& ids, const std::vector<int64_t>& offsets,
                               const PackedForwardOptions& options) const {
  TORCH_CHECK(ids.dim() == 1 && ids.size(0) > 0, "PackedHidden: ids must be [total] with total > 0, got ",
              ids.sizes());
  TORCH_CHECK(offsets.size() >= 2 && offsets.front() == 0 && offsets.back() == ids.size(0),
              "PackedHidden: offsets must run from 0 to ", ids.size(0));
  // Shared with the checkpointed layers' closures, which run again in the backward pass.
  auto pk = std::make_shared<Packing>();
  pk->offsets = offsets;
  pk->flash = options.flash_attention;
  std::vector<int64_t> pos;
  pos.reserve(static_cast<size_t>(ids.size(0)));
  std::vector<int32_t> cu;
  cu.reserve(offsets.size());
  for (size_t i = 0; i + 1 < offsets.size(); ++i) {
    const int64_t len = offsets[i + 1] - offsets[i];
    TORCH_CHECK(len > 0, "PackedHidden: sequence ", i, " is empty");
    TORCH_CHECK(offsets[i + 1] <= INT32_MAX, "PackedHidden: more than 2^31 - 1 tokens");
    pk->max_len = std::max(pk->max_len, len);
    for (int64_t t = 0; t < len; ++t) pos.push_back(t);
    cu.push_back(static_cast<int32_t>(offsets[i]));
  }
  cu.push_back(static_cast<int32_t>(offsets.back()));
  pk->cu_seqlens = at::tensor(cu, at::kInt).to(device_);
  at::Tensor dev_ids = ids.to(device_).unsqueeze(0);
  at::Tensor positions = at::tensor(pos, at::kLong).to(device_).unsqueeze(0);
  const int64_t checkpointed = !options.checkpoint_layers ? 0
                               : options.checkpoint_layer_count > 0 ? options.checkpoint_layer_count
                                                                    : config_.num_hidden_layers;
  return Body(dev_ids, positions, AttentionImpl::kBand, nullptr, nullptr, std::move(pk), checkpointed).squeeze(0);
}

at::Tensor Model::Hidden(const at::Tensor& ids, AttentionImpl impl) const {
  at::Tensor dev_ids = ids.to(device_);
  const int64_t B = ids.size(0), T = ids.size(1);
  at::Tensor positions = at::arange(T, dev_ids.options()).unsqueeze(0).expand({B, T});
  return Body(dev_ids, positions, impl, nullptr, nullptr);
}

at::Tensor Model::Logits(const at::Tensor& ids, AttentionImpl impl) const {
  return at::linear(Hidden(ids, impl), lm_head_);
}

absl::StatusOr<at::Tensor> Model::Score(const at::Tensor& ids, AttentionImpl impl) const {
  SWARR_RETURN_IF_ERROR(CheckTokenIds(ids));
  return CatchTorch("scoring", [&] {
    at::NoGradGuard no_grad;
    return Logits(ids, impl).to(at::kCPU, at::kFloat);
  });
}

at::Tensor Model::ForwardCached(const at::Tensor& ids, const std::vector<int>& seqs, KvCache* cache) const {
  const int64_t B = ids.size(0), T = ids.size(1);
  std::vector<int64_t> pos;
  pos.reserve(B * T);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < T; ++t) pos.push_back(cache->length(seqs[b]) + t);
  }
  at::Tensor positions = at::tensor(pos, at::kLong).view({B, T}).to(device_);
  at::Tensor hidden = Body(ids.to(device_), positions, AttentionImpl::kBand, cache, &seqs);
  cache->Advance(seqs, T);
  return at::linear(hidden.select(1, T - 1), lm_head_).to(at::kFloat);
}

}  // namespace swarr
