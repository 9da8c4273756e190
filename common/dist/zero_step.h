// A host reference of one ZeRO-1 optimizer step (docs/multi-gpu.md, "Data-parallel learner"):
// gradients reduce-scattered into the ranks' ranges of a ZeroPlan (mean over ranks), AdamW on
// each rank's fp32 master range with its own moments (weight decay per parameter, by the plan's
// slices), then the updated ranges all-gathered into the full weights. The GPU learner will do
// the same with NCCL reduce-scatter / all-gather and LibTorch's fused AdamW; this reference and
// its test pin down that the sharded step equals the unsharded one.
#ifndef SWARR_COMMON_DIST_ZERO_STEP_H_
#define SWARR_COMMON_DIST_ZERO_STEP_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/dist/zero_partition.h"

namespace swarr::dist {

struct AdamWConfig {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
};

// AdamW on n elements (decoupled decay when `decay`), step counted from 1.
void AdamWUpdate(const AdamWConfig& c, int64_t step, bool decay, float* master, float* m, float* v,
                 const float* grad, int64_t n);

// One rank's optimizer state: master + moments of its range only.
struct ZeroRankState {
  std::vector<float> master, m, v;  // RankShard::numel() each
};

// Initial states from the full fp32 weights.
std::vector<ZeroRankState> InitZeroStates(const ZeroPlan& plan, const std::vector<float>& weights);

// One step. `grads[r]` is rank r's full flat gradient (its own micro-batches). Reduce-scatter:
// each rank's range gets the mean over ranks, summed in rank order. `decay[p]` says whether
// parameter p is decayed. Returns the all-gathered weights (total_numel). kInvalidArgument on
// size mismatches.
absl::Status ZeroStep(const ZeroPlan& plan, const AdamWConfig& c, int64_t step, const std::vector<bool>& decay,
                      const std::vector<std::vector<float>>& grads, std::vector<ZeroRankState>& states,
                      std::vector<float>* weights);

}  // namespace swarr::dist

#endif  // SWARR_COMMON_DIST_ZERO_STEP_H_
