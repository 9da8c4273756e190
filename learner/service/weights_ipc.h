// A published version as a CUDA IPC buffer (Learner.GetWeightsIpc, docs/weight-sync.md): the
// same tensors, layout and dtype as its WeightsBlob, in a device buffer of its own on the
// learner's GPU that a rollout server on the same host maps and copies device to device.
#ifndef SWARR_LEARNER_SERVICE_WEIGHTS_IPC_H_
#define SWARR_LEARNER_SERVICE_WEIGHTS_IPC_H_

#include <memory>

#include "absl/status/statusor.h"
#include "common/model/cuda_ipc.h"
#include "common/model/model.h"
#include "common/rpc/weights_wire.h"
#include "proto/swarr/v1/learner.pb.h"

namespace swarr {

struct IpcWeights {
  v1::CudaIpcWeights meta;  // what GetWeightsIpc answers
  std::unique_ptr<IpcBuffer> buffer;
};

// `model`'s parameters laid out as `blob` (SerializeModelWeights of the same model: names,
// shapes, dtype and offsets are taken from its table) in a new IpcBuffer on the model's GPU,
// with the word sum. kFailedPrecondition for a model not on a GPU; kUnavailable where CUDA IPC
// does not work; kInvalidArgument if the table does not match the model.
absl::StatusOr<std::shared_ptr<const IpcWeights>> ExportWeightsIpc(const Model& model, const WeightsBlob& blob);

// The checks GetWeightsIpc makes of a caller before answering with `weights`: the same host.
// kFailedPrecondition naming both hosts otherwise.
absl::Status CheckIpcCaller(const v1::GetWeightsRequest& request, const v1::CudaIpcWeights& weights);

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_WEIGHTS_IPC_H_
