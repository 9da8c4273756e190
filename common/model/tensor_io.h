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

// Writes `tensors` as an HF checkpoint's weights in `dir`: one model.safetensors, or, when
// they add up to more than `max_shard_bytes`, shards model-0000K-of-0000N.safetensors of at
// most that size each (a larger single tensor gets a shard of its own) plus
// model.safetensors.index.json. Removes the other layout's files so the directory is never
// ambiguous. Every file is written atomically; the index is written after its shards.
absl::Status WriteCheckpointTensors(const std::string& dir,
                                    const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                                    int64_t max_shard_bytes);

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_TENSOR_IO_H_
