// Process-wide LibTorch settings for SWARR binaries.
#ifndef SWARR_COMMON_MODEL_RUNTIME_H_
#define SWARR_COMMON_MODEL_RUNTIME_H_

namespace swarr {

// Uses every core for LibTorch's intra-op parallelism unless OMP_NUM_THREADS is set
// (Debian's LibTorch otherwise starts with one thread). Call once at the start of main().
void InitTorchRuntime();

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_RUNTIME_H_
