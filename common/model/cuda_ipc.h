// Same-host weight handoff through CUDA IPC (issue 13, docs/weight-sync.md): a process exports
// a device buffer of its own; another process on the same host maps it by handle and copies it
// device to device. Without CUDA (a CPU build, no GPU) every call answers kUnavailable, so
// callers fall back to the network path.
#ifndef SWARR_COMMON_MODEL_CUDA_IPC_H_
#define SWARR_COMMON_MODEL_CUDA_IPC_H_

#include <cstdint>
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"

namespace swarr {

// "<hostname>/<boot id>": equal for two processes exactly when they run on the same booted
// host (so an IPC handle of one can be opened by the other). Never empty.
std::string HostId();

// True if this build can export and map device buffers (CUDA) and a GPU is visible.
bool CudaIpcAvailable();

// A device allocation of its own (cudaMalloc, not the caching allocator: an IPC handle covers
// a whole allocation from its first byte) that other processes on the host can map.
class IpcBuffer {
 public:
  // `nbytes` (> 0) rounded up to a multiple of 4, zero-filled, on `device` ("cuda" / "cuda:N").
  static absl::StatusOr<std::unique_ptr<IpcBuffer>> Allocate(const std::string& device, int64_t nbytes);
  ~IpcBuffer();  // frees the allocation
  IpcBuffer(const IpcBuffer&) = delete;
  IpcBuffer& operator=(const IpcBuffer&) = delete;

  // A uint8 tensor over the whole (padded) allocation.
  const at::Tensor& bytes() const { return bytes_; }
  // The cudaIpcMemHandle_t bytes (64) and the GPU's UUID (hex).
  const std::string& handle() const { return handle_; }
  const std::string& gpu_uuid() const { return gpu_uuid_; }

 private:
  IpcBuffer() = default;
  void* ptr_ = nullptr;
  at::Tensor bytes_;
  std::string handle_, gpu_uuid_;
};

// The sum modulo 2^64 of the little-endian 32-bit words of `bytes` (uint8, numel a multiple
// of 4, on any device), computed where the tensor lives, in chunks (no full-size temporary).
uint64_t WordSum(const at::Tensor& bytes);

// Maps the buffer of `handle` (exported by another process of this host), copies its first
// `nbytes` (a multiple of 4) into a new uint8 tensor on `device`, and unmaps it. kUnavailable
// when that cannot work here (no CUDA, a handle of another host or one already freed).
absl::StatusOr<at::Tensor> CopyFromIpc(const std::string& handle, int64_t nbytes, const std::string& device);

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_CUDA_IPC_H_
