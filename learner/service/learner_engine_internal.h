// What learner_engine.cc and the stage bodies (learner_engine_train.cc, learner_engine_rl.cc)
// share: the running stage's context and small helpers. Internal to LearnerEngine; no torch.
#ifndef SWARR_LEARNER_SERVICE_LEARNER_ENGINE_INTERNAL_H_
#define SWARR_LEARNER_SERVICE_LEARNER_ENGINE_INTERNAL_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "learner/service/learner_engine.h"
#include "nlohmann/json.hpp"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

// The stage the learner is on, fixed when StartStage sets it up (shared, immutable).
struct LearnerEngine::StageContext {
  int32_t index = -1;
  v1::PipelineConfig pipeline;
  v1::Stage stage;           // model.path replaced by source_dir
  std::string source_dir;    // where the stage's model comes from
  std::string stage_dir;     // RUN_DIR/learner/<name>
  std::string checkpoints_dir;
  std::string final_dir;
  std::string done_path;     // RUN_DIR/learner/<name>/done.json
  std::string metrics_path;  // RUN_DIR/stages/<name>/metrics.jsonl
  int64_t vocab_size = 0;
  int64_t max_positions = 0;
  int64_t max_staleness = 0;  // rl
};

namespace engine_internal {

// The numeric fields of a metrics.jsonl line (non-numbers left out; {} if it does not parse).
std::map<std::string, double> NumericFields(const std::string& json_line);

// The tokenizer files of `from` (if any) next to the final model in `to`, so that a later
// stage (and the coordinator's prompt set) starting from `to` finds them.
absl::Status CopyTokenizerFiles(const std::string& from, const std::string& to);

// j[key] if it is an integer, else `fallback`.
int64_t JsonInt(const nlohmann::json& j, const char* key, int64_t fallback);

}  // namespace engine_internal
}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_LEARNER_ENGINE_INTERNAL_H_
