#include "common/model/runtime.h"

#include <cstdlib>
#include <thread>

#include <ATen/Parallel.h>

namespace swarr {

void InitTorchRuntime() {
  if (std::getenv("OMP_NUM_THREADS") != nullptr) return;
  const unsigned n = std::thread::hardware_concurrency();
  if (n > 0) at::set_num_threads(static_cast<int>(n));
}

}  // namespace swarr
