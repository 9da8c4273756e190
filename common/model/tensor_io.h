// Bridges safetensors byte views and at::Tensor.
#ifndef SWARR_COMMON_MODEL_TENSOR_IO_H_
#define SWARR_COMMON_MODEL_TENSOR_IO_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/model/safetensors.h"

namespace swarr {

// A CPU tensor holding a copy of `view`'s data in its own dtype.
absl::StatusOr<at::Tensor> TensorFromView(const TensorView& view);

// Reads tensor `name` of the safetensors file at `path` (a copy).
absl::StatusOr<at::Tensor> ReadTensor(const std::string& path, const std::string& name);

// Writes `tensors` (any device; F32/F16/BF16/I64/... dtypes) to a safetensors file,
// atomically. kInvalidArgument names a tensor whose dtype has no safetensors name.
absl::Status WriteTensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                          const std::map<std::string, std::string>& metadata = {});

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_TENSOR_IO_H_
