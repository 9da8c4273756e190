#include "common/model/cuda_ipc.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/model/runtime.h"

#ifdef SWARR_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace swarr {

std::string HostId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  std::string boot;
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::getline(in, boot);
  return absl::StrCat(host[0] != '\0' ? host : "unknown-host", "/",
                      boot.empty() ? "unknown-boot" : std::string(absl::StripAsciiWhitespace(boot)));
}

uint64_t WordSum(const at::Tensor& bytes) {
  const at::Tensor words = bytes.contiguous().view(at::kInt);
  const int64_t n = words.numel();
  const int64_t chunk = int64_t{64} << 20;  // words per step: a 512 MB int64 temporary at most
  uint64_t sum = 0;
  for (int64_t i = 0; i < n; i += chunk) {
    // int32 words read as unsigned (the low 32 bits of the sign-extended int64); a chunk's sum
    // of at most 2^26 words < 2^58 is exact in int64.
    const at::Tensor u = words.narrow(0, i, std::min(chunk, n - i)).to(at::kLong).bitwise_and(int64_t{0xFFFFFFFF});
    sum += static_cast<uint64_t>(u.sum().item<int64_t>());
  }
  return sum;
}

#ifdef SWARR_WITH_CUDA
namespace {

absl::StatusOr<int> CudaIndex(const std::string& device) {
  const int index = CudaDeviceIndex(device);
  if (index < 0) return absl::InvalidArgumentError(absl::StrCat("\"", device, "\" is not a CUDA device"));
  return index;
}

absl::Status CudaError(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return absl::OkStatus();
  (void)cudaGetLastError();  // clear it
  return absl::UnavailableError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}

// Restores the calling thread's current device on scope exit.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) {
    (void)cudaGetDevice(&previous_);
    ok_ = cudaSetDevice(index) == cudaSuccess;
  }
  ~DeviceGuard() { (void)cudaSetDevice(previous_); }
  bool ok() const { return ok_; }

 private:
  int previous_ = 0;
  bool ok_ = false;
};

std::string Hex(const unsigned char* p, size_t n) {
  std::string out;
  char buf[3];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", p[i]);
    out += buf;
  }
  return out;
}

}  // namespace

bool CudaIpcAvailable() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

absl::StatusOr<std::unique_ptr<IpcBuffer>> IpcBuffer::Allocate(const std::string& device, int64_t nbytes) {
  if (nbytes <= 0) return absl::InvalidArgumentError("an IPC buffer needs a positive size");
  auto index = CudaIndex(device);
  if (!index.ok()) return index.status();
  DeviceGuard guard(*index);
  if (!guard.ok()) return absl::UnavailableError(absl::StrCat("cannot use ", device));
  const int64_t padded = (nbytes + 3) / 4 * 4;
  std::unique_ptr<IpcBuffer> b(new IpcBuffer());
  if (absl::Status st = CudaError(cudaMalloc(&b->ptr_, static_cast<size_t>(padded)), "cudaMalloc"); !st.ok()) return st;
  if (absl::Status st = CudaError(cudaMemset(b->ptr_, 0, static_cast<size_t>(padded)), "cudaMemset"); !st.ok()) return st;
  cudaIpcMemHandle_t handle;
  if (absl::Status st = CudaError(cudaIpcGetMemHandle(&handle, b->ptr_), "cudaIpcGetMemHandle"); !st.ok()) return st;
  b->handle_.assign(reinterpret_cast<const char*>(&handle), sizeof(handle));
  cudaDeviceProp prop;
  if (absl::Status st = CudaError(cudaGetDeviceProperties(&prop, *index), "cudaGetDeviceProperties"); !st.ok()) return st;
  b->gpu_uuid_ = Hex(reinterpret_cast<const unsigned char*>(prop.uuid.bytes), sizeof(prop.uuid.bytes));
  b->bytes_ = at::from_blob(b->ptr_, {padded}, at::TensorOptions().dtype(at::kByte).device(at::kCUDA, *index));
  return b;
}

IpcBuffer::~IpcBuffer() {
  bytes_ = at::Tensor();
  if (ptr_ != nullptr) (void)cudaFree(ptr_);
}

absl::StatusOr<at::Tensor> CopyFromIpc(const std::string& handle, int64_t nbytes, const std::string& device) {
  if (handle.size() != sizeof(cudaIpcMemHandle_t)) {
    return absl::InvalidArgumentError(absl::StrCat("an IPC handle has ", sizeof(cudaIpcMemHandle_t), " bytes, got ",
                                                   handle.size()));
  }
  if (nbytes <= 0 || nbytes % 4 != 0) return absl::InvalidArgumentError("IPC size must be a positive multiple of 4");
  auto index = CudaIndex(device);
  if (!index.ok()) return index.status();
  DeviceGuard guard(*index);
  if (!guard.ok()) return absl::UnavailableError(absl::StrCat("cannot use ", device));
  cudaIpcMemHandle_t h;
  std::copy(handle.begin(), handle.end(), reinterpret_cast<char*>(&h));
  void* mapped = nullptr;
  if (absl::Status st = CudaError(cudaIpcOpenMemHandle(&mapped, h, cudaIpcMemLazyEnablePeerAccess), "cudaIpcOpenMemHandle");
      !st.ok()) {
    return st;
  }
  at::Tensor out;
  absl::Status copied = absl::OkStatus();
  try {
    out = at::empty({nbytes}, at::TensorOptions().dtype(at::kByte).device(at::kCUDA, *index));
    copied = CudaError(cudaMemcpy(out.data_ptr(), mapped, static_cast<size_t>(nbytes), cudaMemcpyDeviceToDevice),
                       "cudaMemcpy from the mapped buffer");
  } catch (const std::exception& e) {
    copied = absl::ResourceExhaustedError(absl::StrCat("allocating the copy: ", e.what()));
  }
  (void)cudaIpcCloseMemHandle(mapped);
  if (!copied.ok()) return copied;
  return out;
}
#else
bool CudaIpcAvailable() { return false; }

absl::StatusOr<std::unique_ptr<IpcBuffer>> IpcBuffer::Allocate(const std::string&, int64_t) {
  return absl::UnavailableError("CUDA IPC needs a CUDA build");
}

IpcBuffer::~IpcBuffer() = default;

absl::StatusOr<at::Tensor> CopyFromIpc(const std::string&, int64_t, const std::string&) {
  return absl::UnavailableError("CUDA IPC needs a CUDA build");
}
#endif

}  // namespace swarr
