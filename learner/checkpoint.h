// Training checkpoints: HF-compatible weights plus the trainer's state in one directory.
//
//   CHECKPOINTS/step-000000123/
//     config.json, model.safetensors   the model (Model::Save; loadable by transformers)
//     optimizer.safetensors            AdamW moments ("<param>.exp_avg", "<param>.exp_avg_sq")
//     trainer_state.json               step, optimizer step, policy version, data position,
//                                      RNG state, free-form extra fields
//
// A checkpoint is written into a temporary sibling directory and renamed into place, so a
// crash leaves either the previous checkpoints or a complete new one; only the newest
// `keep_last` are kept. Not thread-safe: one trainer writes its own checkpoints directory.
#ifndef SWARR_LEARNER_CHECKPOINT_H_
#define SWARR_LEARNER_CHECKPOINT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "learner/optimizer.h"

namespace swarr {

struct TrainerState {
  int64_t step = 0;            // optimizer steps completed
  int64_t policy_version = 0;  // weight version published to rollout servers
  int64_t data_position = 0;   // records of the training data consumed
  std::string rng_state;       // the trainer's std::mt19937_64, as its operator<< writes it
  std::string extra_json = "{}";  // trainer-specific fields (a JSON object)
};

// Writes a checkpoint for `state.step` under `checkpoints_dir` (created if needed) and
// removes all but the newest `keep_last` (0 = keep all). Returns the checkpoint directory.
absl::StatusOr<std::string> SaveCheckpoint(const std::string& checkpoints_dir, const Model& model,
                                           const AdamW& optimizer, const TrainerState& state, int64_t keep_last);

// The newest complete checkpoint directory, kNotFound if there is none.
absl::StatusOr<std::string> LatestCheckpoint(const std::string& checkpoints_dir);

// Reads trainer_state.json and the optimizer moments of `checkpoint_dir` into `optimizer`
// (whose parameters must be those of the model loaded from the same directory).
// kInvalidArgument names the file and field, or the tensor that does not fit.
absl::StatusOr<TrainerState> LoadTrainerState(const std::string& checkpoint_dir, AdamW* optimizer);

}  // namespace swarr

#endif  // SWARR_LEARNER_CHECKPOINT_H_
