// Placement: which device each service of a pipeline uses on one machine (PipelineConfig's
// `placement`, `swarr launch --rollout-devices`). No torch: the caller says which GPUs exist.
//
// Rules (docs/configs.md "placement"):
// - A device is "cpu", "cuda" (= cuda:0) or "cuda:N"; a rollouts entry may be a range
//   "cuda:A..B" (A <= B), and a --rollout-devices list is comma-separated.
// - The learner uses placement.learner for every stage; without it, each stage's model.device.
// - Rollout server i uses the i-th device of the expanded list, cycling when there are more
//   servers than devices; an empty list is "cpu".
// - A GPU may hold several services (the learner and rollouts, or several rollouts) only with
//   a memory budget for each (learner_memory_gib, rollout_memory_gib), and the budgets of one
//   GPU must fit in its memory when that is known.
// Every error names the field and the device ("placement.rollouts[2]: \"cuda:3\", but this
// machine has 2 GPUs (cuda:0..cuda:1)").
#ifndef SWARR_COMMON_CONFIG_PLACEMENT_H_
#define SWARR_COMMON_CONFIG_PLACEMENT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

// A parsed device name: "cpu" or "cuda:index".
struct DeviceName {
  bool cuda = false;
  int index = 0;  // CUDA only
  std::string ToString() const;  // "cpu" or "cuda:N"
  bool operator==(const DeviceName& o) const { return cuda == o.cuda && (!cuda || index == o.index); }
};

// "cpu" | "cuda" | "cuda:N" (N a non-negative decimal). kInvalidArgument otherwise.
absl::StatusOr<DeviceName> ParseDeviceName(absl::string_view text);

// Expands each item ("cpu", "cuda:N", "cuda:A..B"; `split_commas`: items may also be
// comma-separated lists) into device names in order. Errors name `field` and the item index.
absl::StatusOr<std::vector<std::string>> ExpandDeviceList(const std::vector<std::string>& items,
                                                          const std::string& field, bool split_commas = false);

// What the machine has: `gpus` CUDA devices, and (when known, else empty) each one's memory in GiB.
struct GpuInventory {
  int gpus = 0;
  std::vector<double> total_gib;
};

struct ServicePlacement {
  std::string name;       // "learner", "rollout-0", ...
  std::string device;     // canonical: "cpu" or "cuda:N"
  double memory_gib = 0;  // 0 = no limit
};

struct ResolvedPlacement {
  // The learner's devices over the pipeline's stages (one unless stages differ without a
  // placement.learner), and one entry per rollout server.
  std::vector<ServicePlacement> learner;
  std::vector<ServicePlacement> rollouts;
  // One line per GPU in use: "cuda:0: learner (60 GiB), rollout-0 (30 GiB)".
  std::string Describe() const;
};

// Checks that need no hardware: device names and ranges, budgets >= 0, and every stage's
// model.device agreeing with placement.learner (a stage may leave it empty or say "cuda"
// for placement.learner "cuda:N"). Used by ValidatePipeline; errors are "placement.<field>: ...".
absl::Status ValidatePlacement(const v1::PipelineConfig& pipeline);

// The devices and budgets of the learner and `num_rollouts` rollout servers on a machine with
// `inventory`; `rollout_devices` (the --rollout-devices flag, comma list with ranges; "" = the
// config's placement.rollouts) overrides the config. kInvalidArgument for a device the machine
// lacks, a shared GPU without budgets, or budgets that do not fit.
absl::StatusOr<ResolvedPlacement> ResolvePlacement(const v1::PipelineConfig& pipeline, int num_rollouts,
                                                   const GpuInventory& inventory,
                                                   const std::string& rollout_devices = "");

// Stage `index` as the learner runs it: model.device = placement.learner (when set) and
// memory.max_gib at most placement.learner_memory_gib (when set).
// REQUIRES: 0 <= index < pipeline.stages_size().
v1::Stage StageWithPlacement(const v1::PipelineConfig& pipeline, int index);

}  // namespace swarr

#endif  // SWARR_COMMON_CONFIG_PLACEMENT_H_
