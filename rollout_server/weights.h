// Weights received from the learner (common/rpc/weights_wire.h) turned into what a Model takes,
// and the test of whether new weights fit the running model in place.
#ifndef SWARR_ROLLOUT_SERVER_WEIGHTS_H_
#define SWARR_ROLLOUT_SERVER_WEIGHTS_H_

#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/model/config.h"
#include "common/rpc/weights_wire.h"

namespace swarr {

// A fetched weight version, decoded: its config and its tensors (CPU, stored dtype).
struct DecodedWeights {
  v1::WeightVersion version;
  ModelConfig config;
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  int64_t bytes = 0;  // size of the transfer's data
};

// Parses the blob's config.json and copies every tensor out of its data.
// kInvalidArgument / kDataLoss naming the config field or tensor.
absl::StatusOr<DecodedWeights> DecodeWeights(const WeightsBlob& blob);

// True if a model of `a` can take weights of `b` in place: same architecture, sizes and
// attention settings (per-layer windows, sinks). Otherwise the engine must be rebuilt.
bool SameArchitecture(const ModelConfig& a, const ModelConfig& b);

// The blob of a set of named tensors (F32/BF16/F16 CPU copies, in order) with its checksum:
// what the learner publishes. For tests and tools.
absl::StatusOr<WeightsBlob> EncodeWeights(const v1::WeightVersion& version, const std::string& config_json,
                                          const std::vector<std::pair<std::string, at::Tensor>>& tensors);

}  // namespace swarr

#endif  // SWARR_ROLLOUT_SERVER_WEIGHTS_H_
