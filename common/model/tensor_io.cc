#include "common/model/tensor_io.h"

#include <unistd.h>

#include <cstdio>

#include <ATen/ATen.h>

#include "nlohmann/json.hpp"
#include "common/util/file.h"

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"

namespace swarr {
namespace {

struct Pair {
  StDType st;
  at::ScalarType at;
};
constexpr Pair kPairs[] = {
    {StDType::kF64, at::kDouble}, {StDType::kF32, at::kFloat}, {StDType::kF16, at::kHalf},
    {StDType::kBF16, at::kBFloat16}, {StDType::kI64, at::kLong}, {StDType::kI32, at::kInt},
    {StDType::kI16, at::kShort},  {StDType::kI8, at::kChar},   {StDType::kU8, at::kByte},
    {StDType::kBool, at::kBool},
};

}  // namespace

absl::StatusOr<at::Tensor> TensorFromView(const TensorView& view) {
  for (const Pair& p : kPairs) {
    if (p.st != view.dtype) continue;
    return CatchTorch("reading tensor", [&] {
      if (view.nbytes == 0) return at::empty(view.shape, at::TensorOptions().dtype(p.at));
      return at::from_blob(const_cast<uint8_t*>(view.data), view.shape, at::TensorOptions().dtype(p.at)).clone();
    });
  }
  return absl::InvalidArgumentError("unknown dtype");
}

absl::StatusOr<at::Tensor> ReadTensor(const std::string& path, const std::string& name) {
  SWARR_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  SWARR_ASSIGN_OR_RETURN(TensorView view, file->Get(name));
  return TensorFromView(view);
}

absl::Status WriteTensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                          const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> host;
  host.reserve(tensors.size());
  std::vector<NamedTensor> named;
  for (const auto& [name, t] : tensors) {
    const Pair* found = nullptr;
    for (const Pair& p : kPairs) {
      if (p.at == t.scalar_type()) found = &p;
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has dtype ", c10::toString(t.scalar_type()),
                                                     ", which safetensors cannot store"));
    }
    host.push_back(t.detach().to(at::kCPU).contiguous());
    const at::Tensor& h = host.back();
    TensorView view;
    view.dtype = found->st;
    view.shape = h.sizes().vec();
    view.data = static_cast<const uint8_t*>(h.data_ptr());
    view.nbytes = h.nbytes();
    named.push_back({name, view});
  }
  return WriteSafetensors(path, named, metadata);
}

absl::Status WriteCheckpointTensors(const std::string& dir,
                                    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                    int64_t max_shard_bytes) {
  const std::string single = dir + "/model.safetensors";
  const std::string index_path = dir + "/model.safetensors.index.json";
  // Group into shards by size, keeping checkpoint order.
  std::vector<std::vector<std::pair<std::string, at::Tensor>>> shards(1);
  int64_t shard_bytes = 0, total = 0;
  for (const auto& named : tensors) {
    const int64_t bytes = static_cast<int64_t>(named.second.nbytes());
    if (!shards.back().empty() && shard_bytes + bytes > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(named);
    shard_bytes += bytes;
    total += bytes;
  }
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  if (shards.size() == 1) {
    SWARR_RETURN_IF_ERROR(WriteTensors(single, tensors, meta));
    ::unlink(index_path.c_str());
    return absl::OkStatus();
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t i = 0; i < shards.size(); ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
    SWARR_RETURN_IF_ERROR(WriteTensors(dir + "/" + name, shards[i], meta));
    for (const auto& named : shards[i]) weight_map[named.first] = name;
  }
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  SWARR_RETURN_IF_ERROR(WriteFileAtomically(index_path, {index.dump(2)}));
  ::unlink(single.c_str());
  return absl::OkStatus();
}

}  // namespace swarr
