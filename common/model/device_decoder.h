// The GPU decode step of the Generator: one token for every running sequence with the
// forward pass, sampling and behaviour log-probs all on the device.
//
// Per step the host writes one small struct-of-arrays of per-row metadata (token, position,
// sampling parameters, seed and draw index) into pinned memory; it goes to the device with
// one asynchronous copy, the step runs (replayed from a CUDA graph captured once per
// batch-size bucket, or eagerly), and only the sampled ids and their log-probs come back,
// asynchronously into pinned memory. Nothing in a step blocks on the device but the final
// wait for those results. Rows are KV-cache rows: a bucket of n rows decodes cache rows
// 0..n-1, rows without a running sequence marked inactive (they write nothing).
//
// The step is the eager model's computation (model.cc) with fused kernels: q/k/v and
// gate/up each one GEMM (fused copies of the weights, refreshed when Model::weights_version()
// changes), RMSNorm fused with the residual add, RoPE fused with the cache append, the
// split-K ring-decode attention kernel, and the sampling kernel (decode_ops.h: top-k / top-p
// by radix select, Gumbel-max draws from Philox keyed by (seed, draw index, token), so a
// request's draws never depend on its batch neighbours).
//
// Built only with SWARR_WITH_CUDA; elsewhere Available() is false and Create() fails.
// Not thread-safe: the Generator's thread drives it.
#ifndef SWARR_COMMON_MODEL_DEVICE_DECODER_H_
#define SWARR_COMMON_MODEL_DEVICE_DECODER_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/sampler.h"

namespace at {
class Tensor;
}

namespace swarr {

class KvCache;
class Model;

struct DeviceDecoderOptions {
  bool cuda_graphs = true;
  // Decode attention through FlashAttention-2 (ring_decode_op.h) where it applies (bf16,
  // no sinks, LibTorch >= 2); else SWARR's split-K kernel.
  bool flash_decode = true;
  // Batch-size buckets graphs are captured for (ascending); a step runs the smallest bucket
  // holding its highest cache row. Empty = 1, 2, 4, 8, 16, 24, 32, 48, 64, then every 32.
  std::vector<int64_t> graph_buckets;
};

struct DecodeRowInput {
  int row = 0;                  // KV-cache row (sequence slot)
  int64_t token = 0;            // token to feed (decode) — unused by Sample()
  const SamplingParams* sampling = nullptr;
  int64_t draw = 0;             // draw index of this request (tokens it sampled so far)
};

struct DeviceDecoderStats {
  int64_t graph_replays = 0;
  int64_t eager_steps = 0;
  int64_t graphs_captured = 0;
  // Device time of the decode steps (from the metadata copy to the results copy, CUDA
  // events): over the wall time of the same steps it is the GPU's busy share.
  double device_ms = 0;
};

class DeviceDecoder {
 public:
  // True when SWARR was built with SWARR_WITH_CUDA.
  static bool Available();
  // For `model` (on a CUDA device, float32 or bfloat16, head_dim even and <= 256) decoding
  // into `cache` (built for this model, on its device). Both must outlive the decoder.
  // kUnimplemented where the model or build is not supported (the caller decodes eagerly).
  static absl::StatusOr<std::unique_ptr<DeviceDecoder>> Create(const Model& model, KvCache* cache,
                                                               const DeviceDecoderOptions& options = {});
  virtual ~DeviceDecoder() = default;

  // One decode step for `rows` (distinct cache rows): feeds each row's token at position
  // cache->length(row), writes its keys/values, and samples the next token. `out` gets one
  // SampledToken per input row, in order. The caller advances the cache afterwards.
  virtual absl::Status Step(const std::vector<DecodeRowInput>& rows, std::vector<SampledToken>* out) = 0;

  // Samples one token per row of `logits` ([rows.size(), vocab], on the device, float32 or
  // the model dtype) with each row's parameters: the first token after a prefill.
  virtual absl::Status Sample(const at::Tensor& logits, const std::vector<DecodeRowInput>& rows,
                              std::vector<SampledToken>* out) = 0;

  virtual DeviceDecoderStats stats() const = 0;
};

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_DEVICE_DECODER_H_
