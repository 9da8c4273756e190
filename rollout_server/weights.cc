#include "rollout_server/weights.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/model/safetensors.h"
#include "common/model/tensor_io.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"

namespace swarr {

absl::StatusOr<DecodedWeights> DecodeWeights(const WeightsBlob& blob) {
  SWARR_RETURN_IF_ERROR(ValidateWeightsBlob(blob));
  DecodedWeights out;
  out.version = blob.version;
  out.bytes = static_cast<int64_t>(blob.data.size());
  SWARR_ASSIGN_OR_RETURN(out.config, ParseModelConfig(blob.config_json));
  SWARR_RETURN_IF_ERROR(out.config.Validate());
  const auto* base = reinterpret_cast<const uint8_t*>(blob.data.data());
  for (const v1::TensorHeader& h : blob.tensors) {
    TensorView view;
    auto dtype = ParseStDType(h.dtype());
    if (!dtype.ok()) return absl::InvalidArgumentError(absl::StrCat("tensor '", h.name(), "': ", dtype.status().message()));
    view.dtype = *dtype;
    view.shape.assign(h.shape().begin(), h.shape().end());
    view.data = base + h.offset();
    view.nbytes = static_cast<size_t>(h.nbytes());
    auto t = TensorFromView(view);
    if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat("tensor '", h.name(), "': ", t.status().message()));
    out.tensors.push_back({h.name(), *std::move(t)});
  }
  return out;
}

bool SameArchitecture(const ModelConfig& a, const ModelConfig& b) {
  return a.model_type == b.model_type && a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size &&
         a.intermediate_size == b.intermediate_size && a.num_hidden_layers == b.num_hidden_layers &&
         a.num_attention_heads == b.num_attention_heads && a.num_key_value_heads == b.num_key_value_heads &&
         a.head_dim == b.head_dim && a.rms_norm_eps == b.rms_norm_eps && a.rope_theta == b.rope_theta &&
         a.rope_scaling.type == b.rope_scaling.type && a.rope_scaling.factor == b.rope_scaling.factor &&
         a.rope_scaling.low_freq_factor == b.rope_scaling.low_freq_factor &&
         a.rope_scaling.high_freq_factor == b.rope_scaling.high_freq_factor &&
         a.rope_scaling.original_max_position_embeddings == b.rope_scaling.original_max_position_embeddings &&
         a.tie_word_embeddings == b.tie_word_embeddings && a.qkv_bias == b.qkv_bias && a.o_bias == b.o_bias &&
         a.mlp_bias == b.mlp_bias && a.qk_norm == b.qk_norm && a.layer_windows == b.layer_windows &&
         a.attention_sinks == b.attention_sinks;
}

absl::StatusOr<WeightsBlob> EncodeWeights(const v1::WeightVersion& version, const std::string& config_json,
                                          const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
  WeightsBlob blob;
  blob.version = version;
  blob.config_json = config_json;
  SWARR_RETURN_IF_ERROR(CatchTorch("encoding weights", [&]() -> absl::Status {
    for (const auto& [name, t] : tensors) {
      at::Tensor host = t.detach().to(at::kCPU).contiguous();
      std::string dtype;
      switch (host.scalar_type()) {
        case at::kFloat: dtype = "F32"; break;
        case at::kBFloat16: dtype = "BF16"; break;
        case at::kHalf: dtype = "F16"; break;
        default:
          return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': unsupported dtype"));
      }
      v1::TensorHeader h;
      h.set_name(name);
      h.set_dtype(dtype);
      for (int64_t d : host.sizes()) h.add_shape(d);
      h.set_offset(static_cast<int64_t>(blob.data.size()));
      h.set_nbytes(static_cast<int64_t>(host.nbytes()));
      blob.data.append(static_cast<const char*>(host.data_ptr()), host.nbytes());
      blob.tensors.push_back(std::move(h));
    }
    return absl::OkStatus();
  }));
  blob.xxhash64 = Xxh64(blob.data.data(), blob.data.size());
  return blob;
}

}  // namespace swarr
