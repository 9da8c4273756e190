#include "learner/service/weights_blob.h"

#include <cstring>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/util/torch_status.h"

namespace swarr {
namespace {

struct WireDtype {
  at::ScalarType type;
  const char* wire;    // safetensors name
  const char* config;  // config.json torch_dtype
};

absl::StatusOr<WireDtype> ResolveDtype(const std::string& dtype, at::ScalarType model_dtype) {
  std::string name = dtype;
  if (name.empty()) {
    name = model_dtype == at::kBFloat16 ? "bfloat16" : model_dtype == at::kHalf ? "float16" : "float32";
  }
  if (name == "float32") return WireDtype{at::kFloat, "F32", "float32"};
  if (name == "bfloat16") return WireDtype{at::kBFloat16, "BF16", "bfloat16"};
  if (name == "float16") return WireDtype{at::kHalf, "F16", "float16"};
  return absl::InvalidArgumentError(
      absl::StrCat("weights dtype must be float32, bfloat16 or float16, got \"", dtype, "\""));
}

}  // namespace

absl::StatusOr<WeightsBlob> SerializeModelWeights(const Model& model, const v1::WeightVersion& version,
                                                  const std::string& dtype) {
  absl::StatusOr<WireDtype> wd = ResolveDtype(dtype, model.dtype());
  if (!wd.ok()) return wd.status();
  return CatchTorch("serializing weights", [&]() -> absl::StatusOr<WeightsBlob> {
    WeightsBlob blob;
    blob.version = version;
    ModelConfig config = model.config();
    config.dtype = wd->config;
    blob.config_json = config.ToJson();
    const int64_t elem = at::elementSize(wd->type);
    int64_t total = 0;
    for (const auto& [name, t] : model.named_parameters()) {
      v1::TensorHeader h;
      h.set_name(name);
      h.set_dtype(wd->wire);
      for (int64_t d : t.sizes()) h.add_shape(d);
      h.set_offset(total);
      h.set_nbytes(t.numel() * elem);
      total += h.nbytes();
      blob.tensors.push_back(std::move(h));
    }
    blob.data.resize(static_cast<size_t>(total));
    size_t i = 0;
    for (const auto& [name, t] : model.named_parameters()) {
      const v1::TensorHeader& h = blob.tensors[i++];
      at::Tensor c = t.detach().to(at::kCPU, wd->type).contiguous();
      std::memcpy(&blob.data[static_cast<size_t>(h.offset())], c.data_ptr(), static_cast<size_t>(h.nbytes()));
    }
    blob.xxhash64 = Xxh64(blob.data.data(), blob.data.size());
    return blob;
  });
}

}  // namespace swarr
