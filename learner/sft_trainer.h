// Supervised fine-tuning (the SWARR conversion stage): token-level cross-entropy on response
// tokens only (the prompt is context, not target), micro-batches packed by a padded-token
// budget, gradient accumulation, AdamW (no decay on norms and biases), global-norm clipping,
// warmup + cosine schedule. Attention is whatever the model is configured with: full, or
// sliding through the band attention (O(T·W)).
//
// Data order: epoch e visits the examples in a Fisher-Yates permutation seeded with
// (seed, e); the trainer's data position (examples consumed) fully determines what comes
// next, so a resumed trainer continues exactly.
//
// Not thread-safe; the model must not be used by anyone else while Step() runs.
#ifndef SWARR_LEARNER_SFT_TRAINER_H_
#define SWARR_LEARNER_SFT_TRAINER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/model.h"
#include "learner/checkpoint.h"
#include "learner/logprobs.h"
#include "learner/optimizer.h"

namespace swarr {

struct SftExample {
  std::vector<int64_t> prompt;    // may be empty only if response has >= 2 tokens
  std::vector<int64_t> response;  // the target tokens
};

struct SftOptions {
  // Max tokens per micro-batch: rows x longest row when padded; the sum of the rows' lengths
  // when scoring.packed (sequences end to end, no padding).
  int64_t micro_batch_tokens = 4096;
  int64_t grad_accum_steps = 1;       // micro-batches per optimizer step
  int64_t max_seq_len = 0;            // longer examples are rejected; 0 = no limit
  LrSchedule schedule;
  AdamWOptions adam;
  uint64_t seed = 0;                  // data order
  ScoringOptions scoring;             // packing, log-prob chunking, activation checkpointing
};

struct SftStepMetrics {
  int64_t step = 0;           // optimizer steps completed, this one included
  double loss = 0;            // mean cross-entropy per response token (nats)
  double lr = 0;
  int64_t tokens = 0;         // response tokens in this step
  int64_t padded_tokens = 0;  // rows x longest row, summed over micro-batches (packed: the tokens)
  int64_t examples = 0;
  double grad_norm = 0;       // before clipping
};

class SftTrainer {
 public:
  // `model` must outlive the trainer. kInvalidArgument names the first bad example (index,
  // and what is wrong: empty, an id outside the vocabulary, longer than max_seq_len) or
  // option.
  static absl::StatusOr<std::unique_ptr<SftTrainer>> Create(Model* model, std::vector<SftExample> data,
                                                            const SftOptions& options);

  // One optimizer step. A non-finite loss or gradient skips the update and returns
  // kDataLoss (the data position still advances: the batch is not retried).
  absl::StatusOr<SftStepMetrics> Step();

  // For checkpoints: step and data position (policy version and RNG unused here).
  TrainerState state() const;
  // Continues from a checkpoint written with state(): loads the optimizer moments of
  // `checkpoint_dir` (the model must have been loaded from the same directory).
  absl::Status Restore(const std::string& checkpoint_dir);

  const AdamW& optimizer() const { return *optimizer_; }

 private:
  SftTrainer(Model* model, std::vector<SftExample> data, const SftOptions& options);
  const SftExample& ExampleAt(int64_t position);

  Model* model_;
  std::vector<SftExample> data_;
  SftOptions options_;
  std::unique_ptr<AdamW> optimizer_;
  int64_t step_ = 0;
  int64_t position_ = 0;
  int64_t perm_epoch_ = -1;
  std::vector<int64_t> perm_;
};

}  // namespace swarr

#endif  // SWARR_LEARNER_SFT_TRAINER_H_
