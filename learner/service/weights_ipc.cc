#include "learner/service/weights_ipc.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/util/torch_status.h"

namespace swarr {

absl::StatusOr<std::shared_ptr<const IpcWeights>> ExportWeightsIpc(const Model& model, const WeightsBlob& blob) {
  if (!model.device().is_cuda()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the learner's model is on ", model.device().str(), ", not a GPU: use GetWeights"));
  }
  if (blob.data.empty()) return absl::InvalidArgumentError("the version has no tensor data");
  auto buffer = IpcBuffer::Allocate(model.device().str(), static_cast<int64_t>(blob.data.size()));
  if (!buffer.ok()) return buffer.status();
  return CatchTorch("exporting weights for CUDA IPC", [&]() -> absl::StatusOr<std::shared_ptr<const IpcWeights>> {
    auto out = std::make_shared<IpcWeights>();
    const at::Tensor& bytes = (*buffer)->bytes();
    size_t i = 0;
    for (const auto& [name, t] : model.named_parameters()) {
      if (i >= blob.tensors.size() || blob.tensors[i].name() != name) {
        return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "' is not entry ", i, " of the tensor table"));
      }
      const v1::TensorHeader& h = blob.tensors[i++];
      const at::ScalarType type = h.dtype() == "BF16" ? at::kBFloat16 : h.dtype() == "F16" ? at::kHalf : at::kFloat;
      const at::Tensor src = t.detach().to(type).contiguous().view({-1}).view(at::kByte);
      if (src.numel() != h.nbytes()) {
        return absl::InvalidArgumentError(absl::StrCat("parameter '", name, "': ", src.numel(), " bytes, the table says ",
                                                       h.nbytes()));
      }
      bytes.narrow(0, h.offset(), h.nbytes()).copy_(src);
    }
    if (i != blob.tensors.size()) return absl::InvalidArgumentError("the tensor table has more entries than the model");
    v1::CudaIpcWeights& m = out->meta;
    *m.mutable_version() = blob.version;
    m.set_config_json(blob.config_json);
    for (const v1::TensorHeader& h : blob.tensors) *m.add_tensors() = h;
    m.set_total_bytes(static_cast<int64_t>(blob.data.size()));
    m.set_host_id(HostId());
    m.set_gpu_uuid((*buffer)->gpu_uuid());
    m.set_handle((*buffer)->handle());
    m.set_word_sum(WordSum(bytes));
    out->buffer = std::move(*buffer);
    return std::shared_ptr<const IpcWeights>(std::move(out));
  });
}

absl::Status CheckIpcCaller(const v1::GetWeightsRequest& request, const v1::CudaIpcWeights& weights) {
  if (request.ipc().host_id().empty()) {
    return absl::FailedPreconditionError("GetWeightsIpc needs ipc.host_id (the caller's host): use GetWeights");
  }
  if (request.ipc().host_id() != weights.host_id()) {
    return absl::FailedPreconditionError(absl::StrCat("the caller's host ", request.ipc().host_id(),
                                                      " is not the learner's (", weights.host_id(),
                                                      "): CUDA IPC works on one host only; use GetWeights"));
  }
  return absl::OkStatus();
}

}  // namespace swarr
