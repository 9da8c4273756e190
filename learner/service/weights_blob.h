// A model's weights as a WeightsBlob (common/rpc/weights_wire.h): what Learner.GetWeights
// streams to rollout servers for one published version.
#ifndef SWARR_LEARNER_SERVICE_WEIGHTS_BLOB_H_
#define SWARR_LEARNER_SERVICE_WEIGHTS_BLOB_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "common/rpc/weights_wire.h"

namespace swarr {

// Every parameter of `model` (Model::named_parameters(), HF names, checkpoint order) copied to
// the CPU and concatenated, with its tensor table, XXH64 and config.json text: the model's
// config with its attention settings (windows, sinks) as Model::Save writes it, `torch_dtype`
// = the dtype sent.
//   dtype: "float32" | "bfloat16" | "float16" (wire "F32" / "BF16" / "F16"); "" = the model's
//   own compute dtype.
// kInvalidArgument for another dtype; LibTorch failures kInternal. Must not run while the
// model is being trained (it reads the parameters).
absl::StatusOr<WeightsBlob> SerializeModelWeights(const Model& model, const v1::WeightVersion& version,
                                                  const std::string& dtype = "");

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_WEIGHTS_BLOB_H_
