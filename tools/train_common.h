// Shared pieces of `swarr train`: building a stage's model and data from its config, the
// run directory's metrics log and the progress line.
#ifndef SWARR_TOOLS_TRAIN_COMMON_H_
#define SWARR_TOOLS_TRAIN_COMMON_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "learner/optimizer.h"
#include "learner/sft_trainer.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

// The stage's model: `resume_dir` when resuming, else model.path (an HF checkpoint, or a
// directory with only config.json, which is initialised randomly with `seed`), with the
// stage's attention settings applied.
absl::StatusOr<std::unique_ptr<Model>> LoadStageModel(const v1::ModelSpec& spec, uint64_t seed,
                                                      const std::string& resume_dir);

// SFT examples of a `train` stage, tokenised: synthetic tasks with the character vocabulary,
// prompt_response JSONL and the math data sets through the tokenizer and chat template.
absl::StatusOr<std::vector<SftExample>> BuildSftData(const v1::DataSpec& data, const Model& model,
                                                     const std::string& model_dir);

// AdamW options and LR schedule from the config, with the proto's documented defaults.
AdamWOptions AdamFromConfig(const v1::OptimizerConfig& config);
LrSchedule ScheduleFromConfig(const v1::OptimizerConfig& config, int64_t max_steps);

// DIR/metrics.jsonl: one JSON object per optimizer step. On resume, lines after the
// checkpoint's step are dropped so no step appears twice.
class MetricsLog {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsLog>> Open(const std::string& path, int64_t keep_up_to_step);
  ~MetricsLog();
  void Write(const std::string& json_line);

 private:
  FILE* file_ = nullptr;
};

// A one-line progress display on a terminal (stderr), silent otherwise.
class Progress {
 public:
  explicit Progress(std::string stage);
  void Update(const std::string& text);
  void Done();

 private:
  std::string stage_;
  bool tty_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace swarr

#endif  // SWARR_TOOLS_TRAIN_COMMON_H_
