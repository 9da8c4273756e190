#include "learner/sft_trainer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"
#include "common/util/torch_status.h"
#include "learner/logprobs.h"

namespace swarr {

SftTrainer::SftTrainer(Model* model, std::vector<SftExample> data, const SftOptions& options)
    : model_(model), data_(std::move(data)), options_(options) {
  optimizer_ = std::make_unique<AdamW>(model->named_parameters(), options.adam);
}

absl::StatusOr<std::unique_ptr<SftTrainer>> SftTrainer::Create(Model* model, std::vector<SftExample> data,
                                                               const SftOptions& options) {
  if (data.empty()) return absl::InvalidArgumentError("SFT data set is empty");
  if (options.micro_batch_tokens <= 0) return absl::InvalidArgumentError("micro_batch_tokens must be > 0");
  if (options.grad_accum_steps <= 0) return absl::InvalidArgumentError("grad_accum_steps must be > 0");
  if (options.max_seq_len < 0) return absl::InvalidArgumentError("max_seq_len must be >= 0");
  SWARR_RETURN_IF_ERROR(ValidateLrSchedule(options.schedule));
  const int64_t vocab = model->config().vocab_size;
  for (size_t i = 0; i < data.size(); ++i) {
    const SftExample& e = data[i];
    const int64_t len = static_cast<int64_t>(e.prompt.size() + e.response.size());
    if (e.response.empty() || len < 2) {
      return absl::InvalidArgumentError(absl::StrCat("SFT example ", i, ": needs a response and at least 2 tokens"));
    }
    if (options.max_seq_len > 0 && len > options.max_seq_len) {
      return absl::InvalidArgumentError(
          absl::StrCat("SFT example ", i, ": ", len, " tokens, longer than max_seq_len ", options.max_seq_len));
    }
    if (len > options.micro_batch_tokens) {
      return absl::InvalidArgumentError(absl::StrCat("SFT example ", i, ": ", len,
                                                     " tokens do not fit micro_batch_tokens ",
                                                     options.micro_batch_tokens));
    }
    for (const auto* part : {&e.prompt, &e.response}) {
      for (size_t j = 0; j < part->size(); ++j) {
        const int64_t id = (*part)[j];
        if (id < 0 || id >= vocab) {
          return absl::InvalidArgumentError(absl::StrCat("SFT example ", i, ": ",
                                                         part == &e.prompt ? "prompt" : "response", " token ", j,
                                                         " has id ", id, ", outside the vocabulary [0, ", vocab, ")"));
        }
      }
    }
  }
  return std::unique_ptr<SftTrainer>(new SftTrainer(model, std::move(data), options));
}

const SftExample& SftTrainer::ExampleAt(int64_t position) {
  const int64_t n = static_cast<int64_t>(data_.size());
  const int64_t epoch = position / n;
  if (epoch != perm_epoch_) {
    perm_.resize(n);
    std::iota(perm_.begin(), perm_.end(), 0);
    std::mt19937_64 rng(options_.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch));
    for (int64_t i = n; i > 1; --i) {
      const uint64_t limit = UINT64_MAX - UINT64_MAX % static_cast<uint64_t>(i);
      uint64_t x;
      do {
        x = rng();
      } while (x >= limit);
      std::swap(perm_[i - 1], perm_[x % i]);
    }
    perm_epoch_ = epoch;
  }
  return data_[perm_[position % n]];
}

absl::StatusOr<SftStepMetrics> SftTrainer::Step() {
  // Form the micro-batches first: the loss is a mean over every response token of the step.
  std::vector<std::vector<const SftExample*>> micro(options_.grad_accum_steps);
  int64_t tokens = 0, padded = 0, examples = 0;
  for (auto& mb : micro) {
    int64_t longest = 0, filled = 0;
    while (true) {
      const SftExample& e = ExampleAt(position_);
      const int64_t len = static_cast<int64_t>(e.prompt.size() + e.response.size());
      const int64_t rows = static_cast<int64_t>(mb.size()) + 1;
      const int64_t cost = options_.scoring.packed ? filled + len : rows * std::max(longest, len);
      if (!mb.empty() && cost > options_.micro_batch_tokens) break;
      mb.push_back(&e);
      longest = std::max(longest, len);
      filled += len;
      tokens += static_cast<int64_t>(e.response.size());
      ++position_;
      ++examples;
    }
    padded += options_.scoring.packed ? filled : static_cast<int64_t>(mb.size()) * longest;
  }
  const double lr = ScheduledLr(options_.schedule, step_);
  double loss_sum = 0;
  absl::Status st = CatchTorch("SFT step", [&]() -> absl::Status {
    for (const auto& mb : micro) {
      std::vector<std::vector<int64_t>> prompts, responses;
      for (const SftExample* e : mb) {
        // An empty prompt: the first response token is context, the rest are targets.
        if (e->prompt.empty()) {
          prompts.push_back({e->response[0]});
          responses.push_back(std::vector<int64_t>(e->response.begin() + 1, e->response.end()));
        } else {
          prompts.push_back(e->prompt);
          responses.push_back(e->response);
        }
      }
      SWARR_ASSIGN_OR_RETURN(SequenceBatch batch, PackSequences(prompts, responses, model_->config().vocab_size));
      TokenLogProbs lp = ScoreSequences(*model_, batch, 1.0, /*with_entropy=*/false, options_.scoring);
      at::Tensor mask = batch.mask.to(lp.logprobs.device(), lp.logprobs.scalar_type());
      at::Tensor nll = -(lp.logprobs * mask).sum();
      (nll / static_cast<double>(tokens)).backward();
      loss_sum += nll.item<double>();
    }
    return absl::OkStatus();
  });
  if (!st.ok()) {
    optimizer_->ZeroGrad();
    return st;
  }
  const double loss = loss_sum / static_cast<double>(tokens);
  if (!std::isfinite(loss)) {
    optimizer_->ZeroGrad();
    return absl::DataLossError(absl::StrCat("non-finite SFT loss at step ", step_ + 1, ": update skipped"));
  }
  SWARR_ASSIGN_OR_RETURN(double grad_norm, optimizer_->Step(lr));
  ++step_;
  SftStepMetrics m;
  m.step = step_;
  m.loss = loss;
  m.lr = lr;
  m.tokens = tokens;
  m.padded_tokens = padded;
  m.examples = examples;
  m.grad_norm = grad_norm;
  return m;
}

TrainerState SftTrainer::state() const {
  TrainerState s;
  s.step = step_;
  s.data_position = position_;
  return s;
}

absl::Status SftTrainer::Restore(const std::string& checkpoint_dir) {
  SWARR_ASSIGN_OR_RETURN(TrainerState s, LoadTrainerState(checkpoint_dir, optimizer_.get()));
  step_ = s.step;
  position_ = s.data_position;
  return absl::OkStatus();
}

}  // namespace swarr
