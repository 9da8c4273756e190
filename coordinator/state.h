// What the coordinator persists in RUN_DIR/coordinator/state.json (docs/coordinator.md
// "Persistence"): the stage it is in, each stage's state / steps / metrics, the eval results of
// the running eval stage, its dispatch counters and the incarnations that ran the pipeline. A
// restarted coordinator reads it and resumes the stage.
//
// No torch, no gRPC: plain structs and their JSON form. Thread-compatible.
#ifndef SWARR_COORDINATOR_STATE_H_
#define SWARR_COORDINATOR_STATE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarr {

// One completion of an eval group, as the worker reported it.
struct EvalSampleRecord {
  std::string text;    // decoded completion
  double reward = 0;   // 1 correct, 0 not
  bool stopped = false;
  int64_t tokens = 0;  // completion length in tokens
};

// The result of one eval problem (one group).
struct EvalProblemRecord {
  std::string group_id;
  std::string worker_id;
  int64_t policy_version = 0;  // the version the worker reported generating with
  std::vector<EvalSampleRecord> samples;
};

struct StageRecord {
  std::string name;
  std::string kind;               // "train" | "rl" | "eval"
  std::string state = "pending";  // "pending" | "running" | "done" | "failed"
  int64_t steps = 0;              // optimizer steps (from the learner; 0 for eval)
  std::map<std::string, double> metrics;
  // rl: prompts drawn so far from the stage's seeded rng (a restart replays that many draws so
  // the prompt sequence continues instead of starting over).
  int64_t groups_drawn = 0;
};

struct CoordinatorState {
  std::string pipeline;
  // Index of the running stage; == stages.size() once every stage is done.
  int32_t stage_index = 0;
  // The pipeline ended: every stage done (error empty) or a stage failed (error set).
  bool done = false;
  std::string error;
  // Unix time the pipeline first started (wall_seconds of summary.json count from here).
  double started_unix_seconds = 0;
  // Every coordinator incarnation that ran this pipeline, oldest first (group ids carry them).
  std::vector<std::string> incarnations;
  std::vector<StageRecord> stages;
  // Results of the running eval stage so far, by problem index.
  std::map<int64_t, EvalProblemRecord> eval_results;
  int64_t groups_dispatched = 0;
  int64_t groups_finished = 0;
  int64_t groups_reassigned = 0;
  // Crash consistency and restarts (docs/reliability.md), over every coordinator incarnation.
  int64_t groups_redispatched_after_learner_restart = 0;
  int64_t groups_acked_never_trained = 0;
  int64_t groups_unused_at_stage_end = 0;
  int64_t groups_adopted = 0;
  // rl groups of the running stage the learner acknowledged and has not yet reported trained in
  // a checkpointed step (serialized PromptGroups, base64): a restarted coordinator still
  // re-dispatches them if a restarted learner lost them.
  std::vector<std::string> acked_groups;
};

// JSON text of `state` (one object, keys as the field names above).
std::string StateToJson(const CoordinatorState& state);
// The reverse. kDataLoss naming the key for malformed text.
absl::StatusOr<CoordinatorState> StateFromJson(const std::string& text);

// Reads `path`: nullopt when the file does not exist; kDataLoss naming the path when it does
// not parse.
absl::StatusOr<std::optional<CoordinatorState>> LoadState(const std::string& path);
// Writes `path` atomically (creating its directory).
absl::Status SaveState(const std::string& path, const CoordinatorState& state);

}  // namespace swarr

#endif  // SWARR_COORDINATOR_STATE_H_
