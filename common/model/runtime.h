// Process-wide LibTorch runtime settings and device queries.
#ifndef SWARR_COMMON_MODEL_RUNTIME_H_
#define SWARR_COMMON_MODEL_RUNTIME_H_

#include <cstdint>
#include <string>

namespace swarr {

// Uses every core for intra-op parallelism unless OMP_NUM_THREADS says otherwise.
void InitTorchRuntime();

// GPU memory of a CUDA device as LibTorch's caching allocator sees it. All zero (and
// `available` false) for the CPU, or in a build without CUDA.
struct DeviceMemory {
  bool available = false;
  int64_t total_bytes = 0;           // the device's memory
  int64_t peak_allocated_bytes = 0;  // since the last ResetPeakDeviceMemory
  int64_t allocated_bytes = 0;       // now
};
// `device`: "cuda", "cuda:N" or "cpu" (a ModelOptions::device string).
DeviceMemory QueryDeviceMemory(const std::string& device);
void ResetPeakDeviceMemory(const std::string& device);

// The CUDA device index of `device` ("cuda" = 0, "cuda:N" = N), or -1 for anything else
// (the CPU, or a string that is not a device).
int CudaDeviceIndex(const std::string& device);

// CUDA devices this process can use (0 in a build without CUDA or without a GPU).
int CudaDeviceCount();

// Caps LibTorch's caching allocator on `device` ("cuda" / "cuda:N") at `gib` GiB, so that a
// service sharing a GPU with others fails its own allocations (a clear out-of-memory error of
// that service) instead of starving its neighbours. Returns "" on success, else why not (a
// CPU device, an unknown GPU, or more than the device has). gib <= 0: no cap.
std::string LimitDeviceMemory(const std::string& device, double gib);

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_RUNTIME_H_
