#include "common/model/runtime.h"

#include <cstdlib>
#include <thread>

#include <ATen/Parallel.h>
#include <c10/core/Device.h>

#ifdef SWARR_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <cuda_runtime_api.h>
#endif

namespace swarr {

void InitTorchRuntime() {
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return;
  const unsigned n = std::thread::hardware_concurrency();
  if (n > 0) at::set_num_threads(static_cast<int>(n));
}

int CudaDeviceIndex(const std::string& device) {
  try {
    const c10::Device d(device);
    if (!d.is_cuda()) return -1;
    return d.has_index() ? d.index() : 0;
  } catch (const std::exception&) {
    return -1;
  }
}

#ifdef SWARR_WITH_CUDA

DeviceMemory QueryDeviceMemory(const std::string& device) {
  DeviceMemory m;
  const int index = CudaDeviceIndex(device);
  if (index < 0) return m;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || index >= count) return m;
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return m;
  m.available = true;
  m.total_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(index));
  const auto& bytes = stats.allocated_bytes[0];  // StatType::AGGREGATE (its namespace moved in LibTorch 2)
  m.peak_allocated_bytes = bytes.peak;
  m.allocated_bytes = bytes.current;
  return m;
}

void ResetPeakDeviceMemory(const std::string& device) {
  const int index = CudaDeviceIndex(device);
  if (index >= 0) c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(index));
}
int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
  return count;
}

std::string LimitDeviceMemory(const std::string& device, double gib) {
  if (!(gib > 0)) return "";
  const int index = CudaDeviceIndex(device);
  if (index < 0) return "a memory budget applies to a CUDA device, not \"" + device + "\"";
  const DeviceMemory m = QueryDeviceMemory(device);
  if (!m.available) return "no usable GPU " + device;
  const double total_gib = static_cast<double>(m.total_bytes) / (1 << 30);
  if (gib > total_gib) {
    return "a budget of " + std::to_string(gib) + " GiB is more than " + device + "'s " + std::to_string(total_gib) + " GiB";
  }
  c10::cuda::CUDACachingAllocator::setMemoryFraction(gib / total_gib, static_cast<c10::DeviceIndex>(index));
  return "";
}
#else
DeviceMemory QueryDeviceMemory(const std::string&) { return {}; }
void ResetPeakDeviceMemory(const std::string&) {}
int CudaDeviceCount() { return 0; }
std::string LimitDeviceMemory(const std::string& device, double gib) {
  if (!(gib > 0)) return "";
  return "a memory budget needs a CUDA build; \"" + device + "\" has none";
}
#endif

}  // namespace swarr
