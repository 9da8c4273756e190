// ZeRO-1 partition of a data-parallel learner's optimizer state (docs/multi-gpu.md, "Learner").
//
// The parameters, in order, form one flat fp32 vector of `total_numel` elements. It is split into
// N contiguous ranges of equal length (the last one padded), one per rank: rank r keeps the fp32
// master copy and the two AdamW moments of its range only. After the gradients are reduced
// (reduce-scatter of the flat gradient into the same ranges), every rank steps its range and the
// updated bf16 weights are all-gathered. A parameter may straddle two (or more) ranks; the slices
// say which part of it each rank owns.
//
// Pure logic: no torch, no NCCL.
#ifndef SWARR_COMMON_DIST_ZERO_PARTITION_H_
#define SWARR_COMMON_DIST_ZERO_PARTITION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarr::dist {

struct ParamSpec {
  std::string name;
  int64_t numel = 0;
};

// A part of one parameter owned by one rank.
struct ParamSlice {
  int param_index = 0;
  int64_t begin = 0;       // element range inside the parameter [begin, end)
  int64_t end = 0;
  int64_t flat_begin = 0;  // where `begin` sits in the flat vector
};

struct RankShard {
  int rank = 0;
  int64_t flat_begin = 0;  // [flat_begin, flat_end) of the real elements it owns
  int64_t flat_end = 0;
  int64_t padded_numel = 0;  // the shard length every rank uses for reduce-scatter / all-gather
  std::vector<ParamSlice> slices;
  int64_t numel() const { return flat_end - flat_begin; }
};

struct ZeroPlan {
  int world_size = 0;
  int64_t total_numel = 0;
  int64_t shard_numel = 0;  // = every rank's padded_numel; shard_numel * world_size >= total
  std::vector<RankShard> ranks;
};

// `align_numel` (>= 1) rounds the shard length up, e.g. to keep each shard 256 B aligned in bf16
// (128). kInvalidArgument for an empty table, a non-positive or duplicate parameter, world_size < 1.
absl::StatusOr<ZeroPlan> PlanZero1(const std::vector<ParamSpec>& params, int world_size, int64_t align_numel = 1);

// ---- Memory per rank ----

// Bytes per parameter of each state; the defaults are mixed precision with AdamW.
struct ZeroMemoryOptions {
  int zero_stage = 1;             // 1: optimizer state sharded; 2: gradients sharded as well
  int weight_bytes = 2;           // bf16 working weights (replicated)
  int grad_bytes = 2;             // bf16 gradients (replicated at stage 1, sharded at stage 2)
  int master_bytes = 4;           // fp32 master copy (sharded)
  int moment_bytes = 8;           // AdamW exp_avg + exp_avg_sq in fp32 (sharded)
  int64_t activation_bytes = 0;   // the micro-batch's activations (token budget; not sharded)
  int64_t overhead_bytes = int64_t{3} << 30;  // CUDA context, allocator slack, NCCL buffers
};

struct ZeroMemoryEstimate {
  int world_size = 0;
  int64_t weights = 0, grads = 0, master = 0, moments = 0, activations = 0, overhead = 0;
  int64_t total() const { return weights + grads + master + moments + activations + overhead; }
  bool FitsIn(int64_t device_bytes) const { return total() <= device_bytes; }
};

// Per-rank bytes for `total_numel` parameters over `world_size` ranks (sharded states use the
// padded shard length).
ZeroMemoryEstimate EstimateZeroMemory(int64_t total_numel, int world_size, const ZeroMemoryOptions& options);

// ---- Decoder shapes (for estimates and tests) ----

// A Llama / Qwen2 decoder's dimensions.
struct DecoderShape {
  int64_t vocab = 0, hidden = 0, intermediate = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  bool qkv_bias = false;     // Qwen2: q/k/v projections have a bias
  bool tied_embeddings = false;
};

DecoderShape Qwen25_1p5B();  // Qwen/Qwen2.5-1.5B(-Instruct): 1,543,714,304 parameters
DecoderShape Qwen25_7B();    // Qwen/Qwen2.5-7B(-Instruct):   7,615,616,512 parameters

// The HF parameter table of such a decoder, in safetensors order of the model's modules.
std::vector<ParamSpec> DecoderParams(const DecoderShape& shape);

}  // namespace swarr::dist

#endif  // SWARR_COMMON_DIST_ZERO_PARTITION_H_
