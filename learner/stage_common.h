// What every runner of a `train` / `rl` stage shares (the `swarr train` command and the learner
// service): the stage's model and SFT data built from its config, the optimizer / schedule / RL
// options with the schema's documented defaults, and the stage's metrics log.
//
// No torch headers beyond <ATen/core/Tensor.h> (through common/model/model.h).
#ifndef SWARR_LEARNER_STAGE_COMMON_H_
#define SWARR_LEARNER_STAGE_COMMON_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "learner/optimizer.h"
#include "learner/rl_trainer.h"
#include "learner/sft_trainer.h"
#include "nlohmann/json.hpp"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

// The stage's model: `resume_dir` when resuming, else spec.path (an HF checkpoint, or a
// directory with only config.json, which is initialised randomly with `seed`), with the
// stage's attention settings (spec.attention) applied either way.
absl::StatusOr<std::unique_ptr<Model>> LoadStageModel(const v1::ModelSpec& spec, uint64_t seed,
                                                      const std::string& resume_dir);

// SFT examples of a `train` stage, tokenised: synthetic tasks with the character vocabulary,
// prompt_response JSONL and the math data sets through the tokenizer and chat template.
// `model_dir` is where the model came from (its tokenizer.json unless data.tokenizer is set).
absl::StatusOr<std::vector<SftExample>> BuildSftData(const v1::DataSpec& data, const Model& model,
                                                     const std::string& model_dir);

// AdamW options and LR schedule from the config, with the proto's documented defaults.
AdamWOptions AdamFromConfig(const v1::OptimizerConfig& config);
LrSchedule ScheduleFromConfig(const v1::OptimizerConfig& config, int64_t max_steps);

// RlTrainer options of an `rl` stage (clips, aggregation, KL, temperature, epochs x minibatches,
// dynamic sampling, staleness, schedule over max_steps x epochs x minibatches optimizer steps).
// REQUIRES: stage.has_rl().
RlOptions RlOptionsFromStage(const v1::Stage& stage);

// The learner's memory settings of a train / rl stage (stage.memory): packing ("auto" = on
// for a CUDA model), log-prob chunk, activation checkpointing.
ScoringOptions ScoringFromStage(const v1::Stage& stage);

// Estimated peak GPU memory of a training step (bytes), by part: weights, gradients, fp32
// master copies and AdamW moments, a frozen reference, activations of one micro-batch of
// `micro_tokens` tokens (every layer's, or with checkpointing each layer's input plus one
// layer's), and the log-prob chunk's [chunk, vocab] float32 buffers.
struct MemoryEstimate {
  int64_t weights = 0, gradients = 0, optimizer = 0, reference = 0, activations = 0, logprobs = 0;
  int64_t total() const { return weights + gradients + optimizer + reference + activations + logprobs; }
  std::string ToString() const;  // "41.2 GiB (weights 2.9, gradients 2.9, ...)"
};
MemoryEstimate EstimateTrainingMemory(const ModelConfig& config, int64_t num_parameters, at::ScalarType dtype,
                                      int64_t micro_tokens, const ScoringOptions& scoring, bool with_reference);
// For a stage on a CUDA device: kFailedPrecondition naming the estimate and the limit
// (stage.memory.max_gib, else the device's memory) when the estimate exceeds it; OK on the
// CPU. Called before the first step so that a config that cannot fit fails at once.
absl::Status CheckStageFitsMemory(const v1::Stage& stage, const Model& model, int64_t micro_tokens);
// Tokens an RL update holds at once, for CheckStageFitsMemory: memory.micro_batch_tokens, else a
// whole minibatch of completions (prompt tokens not counted: a lower bound).
int64_t RlMicroBatchTokens(const v1::Stage& stage);
// JSON fields for a step's metrics.jsonl line: {"peak_gpu_gib": ...} since the last call
// (then resets the peak); empty for a CPU model.
nlohmann::json PeakMemoryFields(const Model& model);
// The metrics.jsonl line of one RL step, as the learner service and `swarr train` both write
// it: the step's metrics (RlAlgorithmMetricFields included), `policy_version`, `seconds` since
// the stage started, and PeakMemoryFields(policy) (which resets the peak).
std::string RlStepMetricsLine(const RlStepMetrics& m, int64_t policy_version, double seconds, const Model& policy);

// Optimizer steps RlTrainer takes per Step (epochs x minibatches; >= 1): the stop rule's
// max_steps counts Steps, the trainer's step counter optimizer steps.
int64_t RlUpdatesPerStep(const v1::RlConfig& config);

// PATH (a stage's metrics.jsonl): one JSON object per optimizer step, appended and flushed
// line by line. On resume, lines after the checkpoint's step are dropped so no step appears
// twice. Not thread-safe.
class MetricsLog {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsLog>> Open(const std::string& path, int64_t keep_up_to_step);
  ~MetricsLog();
  void Write(const std::string& json_line);

 private:
  MetricsLog() = default;
  FILE* file_ = nullptr;
};

}  // namespace swarr

#endif  // SWARR_LEARNER_STAGE_COMMON_H_
