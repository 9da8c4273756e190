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

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_RUNTIME_H_
