// Helpers shared by the coordinator engine's source files (coordinator.cc and coordinator_*.cc,
// one concern each: see coordinator.h). Not an API: nothing outside coordinator/ includes this.
// No torch, no gRPC.
#ifndef SWARR_COORDINATOR_INTERNAL_H_
#define SWARR_COORDINATOR_INTERNAL_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {
namespace coordinator_internal {

using Clock = std::chrono::steady_clock;

// Dead workers kept in the registry for `swarr status` (the oldest go first).
inline constexpr size_t kMaxDeadWorkers = 64;

inline double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
inline double UnixNow() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

// One line on stderr: "coordinator: <message>".
void Log(const std::string& message);

// "train", "rl", "eval" ("" for a stage of no kind).
std::string KindOf(const v1::Stage& stage);

// 8 random hex digits: a coordinator incarnation.
std::string RandomIncarnation();

// The SplitMix64 finalizer: a group's sampling seed from the stage seed and its index.
uint64_t SplitMix64(uint64_t x);

// The model directory of `stage`: its model.path, or the nearest earlier stage's ("" if none).
std::string ModelDirFor(const v1::PipelineConfig& pipeline, int32_t stage);

// EvalConfig has no reward kind: an eval stage scores like the pipeline's nearest rl stage
// (the latest earlier one, else the first later one), else with the verifier.
std::string EvalRewardKind(const v1::PipelineConfig& pipeline, int32_t stage);

// `v` clamped to [0, INT32_MAX].
int32_t ClampInt32(int64_t v);

}  // namespace coordinator_internal
}  // namespace swarr

#endif  // SWARR_COORDINATOR_INTERNAL_H_
