#include "coordinator/internal.h"

#include <algorithm>
#include <iostream>
#include <limits>
#include <random>

#include "absl/strings/str_format.h"

namespace swarr {
namespace coordinator_internal {

void Log(const std::string& message) { std::cerr << "coordinator: " << message << "\n"; }

std::string KindOf(const v1::Stage& stage) {
  switch (stage.kind_case()) {
    case v1::Stage::kTrain:
      return "train";
    case v1::Stage::kRl:
      return "rl";
    case v1::Stage::kEval:
      return "eval";
    default:
      return "";
  }
}

std::string RandomIncarnation() {
  std::random_device rd;
  const uint64_t x = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                     static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  return absl::StrFormat("%08x", static_cast<uint32_t>(x ^ (x >> 32)));
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string ModelDirFor(const v1::PipelineConfig& pipeline, int32_t stage) {
  for (int32_t i = stage; i >= 0; --i) {
    if (!pipeline.stages(i).model().path().empty()) return pipeline.stages(i).model().path();
  }
  return "";
}

std::string EvalRewardKind(const v1::PipelineConfig& pipeline, int32_t stage) {
  for (int32_t i = stage - 1; i >= 0; --i) {
    if (pipeline.stages(i).has_rl()) return pipeline.stages(i).rl().reward().empty() ? "verifier" : pipeline.stages(i).rl().reward();
  }
  for (int32_t i = stage + 1; i < pipeline.stages_size(); ++i) {
    if (pipeline.stages(i).has_rl()) return pipeline.stages(i).rl().reward().empty() ? "verifier" : pipeline.stages(i).rl().reward();
  }
  return "verifier";
}

int32_t ClampInt32(int64_t v) {
  return static_cast<int32_t>(std::clamp<int64_t>(v, 0, std::numeric_limits<int32_t>::max()));
}

}  // namespace coordinator_internal
}  // namespace swarr
