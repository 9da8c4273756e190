// The same-host half of weight loading (docs/weight-sync.md): Learner.GetWeightsIpc, then a
// device-to-device copy of the learner's exported buffer. Anything that stops it (no CUDA,
// another host, an old learner without the method, a failed map) is an error the engine
// answers by fetching over GetWeights instead.
#ifndef SWARR_ROLLOUT_SERVER_WEIGHTS_IPC_H_
#define SWARR_ROLLOUT_SERVER_WEIGHTS_IPC_H_

#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "common/rpc/service_options.h"
#include "proto/swarr/v1/learner.grpc.pb.h"
#include "rollout_server/weights.h"

namespace swarr {

// Checks `meta` against `bytes` (uint8, the copy of the buffer, at least total_bytes long, on
// any device): the tensor table within total_bytes, without overlaps, each entry's size
// matching its shape and dtype; the word sum of the padded copy. Returns the version with its
// config and tensors as views of `bytes` (no copy). kDataLoss for a checksum mismatch,
// kInvalidArgument naming the tensor or config field otherwise.
absl::StatusOr<DecodedWeights> DecodeIpcWeights(const v1::CudaIpcWeights& meta, const at::Tensor& bytes);

// Learner.GetWeightsIpc for `request` (with this host's id added), then CopyFromIpc onto
// `device` and DecodeIpcWeights. The call's own error is returned as is (FAILED_PRECONDITION:
// another host or no buffer; UNIMPLEMENTED: a learner without the method).
absl::StatusOr<DecodedWeights> FetchWeightsIpc(v1::Learner::StubInterface& stub, v1::GetWeightsRequest request,
                                               const std::string& device, const RpcSecurity& security,
                                               const RpcLimits& limits);

}  // namespace swarr

#endif  // SWARR_ROLLOUT_SERVER_WEIGHTS_IPC_H_
