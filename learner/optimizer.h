// AdamW with decoupled weight decay, global gradient-norm clipping and the learning-rate
// schedule, over a model's named parameters. Parameters stored in bfloat16/float16 (mixed
// precision on GPUs) get float32 master weights here: gradients are applied to the master
// copy and the parameter receives its rounded value, so updates smaller than the low
// precision's resolution are not lost. Written on plain ATen ops so that its state is
// a set of named tensors that checkpoints store exactly (resume is bit-exact on CPU).
//
// Not thread-safe: the learner's training thread owns it.
#ifndef SWARR_LEARNER_OPTIMIZER_H_
#define SWARR_LEARNER_OPTIMIZER_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarr {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled; never applied to norms and biases
  double grad_clip = 1.0;     // max global L2 norm of the gradients; 0 = no clipping
  // CUDA parameters with LibTorch >= 2: the same update through LibTorch's multi-tensor fused
  // AdamW kernel (equal up to float32 rounding). CPU parameters always take the plain loop.
  bool fused_cuda = true;
};

// Learning rate at an optimizer step: linear warmup from 0 over `warmup_steps`, then
// "constant", "linear" (to min_lr_ratio * lr at total_steps) or "cosine" (likewise).
struct LrSchedule {
  double lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;  // 0 = constant after warmup whatever the kind
  std::string kind = "cosine";
  double min_lr_ratio = 0.0;
};
// kInvalidArgument names the field (lr <= 0, unknown kind, ratio outside [0, 1], ...).
absl::Status ValidateLrSchedule(const LrSchedule& schedule);
// REQUIRES: ValidateLrSchedule(schedule).ok(). `step` counts from 0.
double ScheduledLr(const LrSchedule& schedule, int64_t step);

// Parameters that get no weight decay: 1-D tensors (norm weights, biases).
bool IsNoDecayParameter(const std::string& name, const at::Tensor& param);

class AdamW {
 public:
  // `params` are the model's own tensors (Model::named_parameters()); requires_grad is set
  // on them here.
  AdamW(std::vector<std::pair<std::string, at::Tensor>> params, const AdamWOptions& options);

  // Clips the gradients to options.grad_clip (global norm), applies one update with `lr`
  // and zeroes the gradients. Returns the global gradient norm before clipping.
  // A non-finite gradient norm skips the update (parameters and moments untouched, step not
  // counted, gradients zeroed) and returns kDataLoss so the caller logs and counts it.
  absl::StatusOr<double> Step(double lr);
  void ZeroGrad();
  int64_t step() const { return step_; }

  // Moments as named tensors ("<param>.exp_avg", "<param>.exp_avg_sq", and "<param>.master"
  // for low-precision parameters), for checkpoints.
  std::vector<std::pair<std::string, at::Tensor>> StateTensors() const;
  // Restores what StateTensors() gave (masters are copied into their parameters too).
  // kInvalidArgument names a missing or mis-shaped moment (e.g. a checkpoint of another
  // architecture).
  absl::Status LoadState(const std::map<std::string, at::Tensor>& state, int64_t step);

 private:
  struct Param {
    std::string name;
    at::Tensor value, exp_avg, exp_avg_sq;
    at::Tensor master;  // float32 copy of a low-precision parameter; undefined for float32/64
    bool decay = true;
  };
  std::vector<Param> params_;
  AdamWOptions options_;
  int64_t step_ = 0;
  // The multi-tensor CUDA path of Step (see AdamWOptions::fused_cuda); false if not taken.
  bool FusedCudaStep(double lr, double* norm_out);
};

}  // namespace swarr

#endif  // SWARR_LEARNER_OPTIMIZER_H_
