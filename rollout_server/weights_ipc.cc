#include "rollout_server/weights_ipc.h"

#include <algorithm>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/model/cuda_ipc.h"
#include "common/rpc/status.h"
#include "common/rpc/weights_wire.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"

namespace swarr {

absl::StatusOr<DecodedWeights> DecodeIpcWeights(const v1::CudaIpcWeights& meta, const at::Tensor& bytes) {
  const int64_t total = meta.total_bytes();
  if (total <= 0) return absl::InvalidArgumentError("CUDA IPC weights: total_bytes must be > 0");
  const int64_t padded = (total + 3) / 4 * 4;
  if (bytes.scalar_type() != at::kByte || bytes.dim() != 1 || bytes.numel() < padded) {
    return absl::InvalidArgumentError(absl::StrCat("CUDA IPC weights: the copy has ", bytes.numel(), " bytes, need ", padded));
  }
  // The table: known dtypes, sizes that match the shapes, ranges inside, no overlap.
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (const v1::TensorHeader& h : meta.tensors()) {
    SWARR_ASSIGN_OR_RETURN(const int64_t elem, CheckTensorHeader(h));
    if (h.dtype() != "F32" && h.dtype() != "BF16" && h.dtype() != "F16") {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", h.name(), "': dtype ", h.dtype(), " (model weights are F32, BF16 or F16)"));
    }
    if (h.offset() < 0 || h.offset() > total - h.nbytes()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", h.name(), "': bytes [", h.offset(), ", ",
                                                     h.offset() + h.nbytes(), ") outside the ", total, "-byte buffer"));
    }
    if (h.offset() % elem != 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", h.name(), "': offset ", h.offset(), " not aligned"));
    }
    ranges.push_back({h.offset(), h.offset() + h.nbytes()});
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) return absl::InvalidArgumentError("CUDA IPC weights: tensors overlap");
  }
  return CatchTorch("decoding CUDA IPC weights", [&]() -> absl::StatusOr<DecodedWeights> {
    const at::Tensor copy = bytes.narrow(0, 0, padded);
    const uint64_t sum = WordSum(copy);
    if (sum != meta.word_sum()) {
      return absl::DataLossError(absl::StrCat("CUDA IPC weights of version ", meta.version().version(),
                                              ": word sum ", sum, " != the learner's ", meta.word_sum()));
    }
    DecodedWeights out;
    out.version = meta.version();
    out.bytes = total;
    SWARR_ASSIGN_OR_RETURN(out.config, ParseModelConfig(meta.config_json()));
    SWARR_RETURN_IF_ERROR(out.config.Validate());
    for (const v1::TensorHeader& h : meta.tensors()) {
      const at::ScalarType type = h.dtype() == "BF16" ? at::kBFloat16 : h.dtype() == "F16" ? at::kHalf : at::kFloat;
      std::vector<int64_t> shape(h.shape().begin(), h.shape().end());
      out.tensors.push_back({h.name(), copy.narrow(0, h.offset(), h.nbytes()).view(type).view(shape)});
    }
    return out;
  });
}

absl::StatusOr<DecodedWeights> FetchWeightsIpc(v1::Learner::StubInterface& stub, v1::GetWeightsRequest request,
                                               const std::string& device, const RpcSecurity& security,
                                               const RpcLimits& limits) {
  if (!CudaIpcAvailable()) return absl::UnavailableError("CUDA IPC: no CUDA in this build or no GPU visible");
  request.mutable_ipc()->set_host_id(HostId());
  grpc::ClientContext ctx;
  PrepareContext(&ctx, security, limits, limits.deadline_seconds);
  v1::CudaIpcWeights meta;
  if (grpc::Status st = stub.GetWeightsIpc(&ctx, request, &meta); !st.ok()) return FromGrpcStatus(st);
  if (meta.host_id() != HostId()) {
    return absl::FailedPreconditionError(absl::StrCat("CUDA IPC: the learner's host ", meta.host_id(), " is not this one"));
  }
  const int64_t padded = (meta.total_bytes() + 3) / 4 * 4;
  SWARR_ASSIGN_OR_RETURN(at::Tensor copy, CopyFromIpc(meta.handle(), padded, device));
  return DecodeIpcWeights(meta, copy);
}

}  // namespace swarr
