// Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) computing what HF transformers
// computes for the same checkpoint, with any layer switched to sliding-window attention.
//
//   x = embed(ids)
//   per layer: x += o_proj(attn(rope(q_proj(rms(x))), rope(k_proj(rms(x))), v_proj(rms(x))))
//              x += down(silu(gate(rms(x))) * up(rms(x)))
//   logits = lm_head(rms(x))        (lm_head = embed when tie_word_embeddings)
//
// Thread safety: const methods may run concurrently; the parameters are shared tensors, so
// whoever trains them (the learner) must not run forward passes at the same time.
#ifndef SWARR_COMMON_MODEL_MODEL_H_
#define SWARR_COMMON_MODEL_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/config.h"

namespace swarr {

class KvCache;

struct ModelOptions {
  ConversionSettings conversion;  // window / per-layer windows / sinks overriding config.json
  std::string device = "cpu";     // "cpu", "cuda", "cuda:1", ...
  // Compute dtype: "float32", "bfloat16", "float16"; "" = float32 on CPU, bfloat16 on CUDA.
  std::string dtype;
  // On CUDA, decode steps use SWARR's ring-decode kernel when it was built
  // (SWARR_WITH_CUDA); false = plain torch ops everywhere.
  bool cuda_decode_kernel = true;
};

// Which attention implementation full-sequence forward passes use.
enum class AttentionImpl { kBand, kReference };

// Options of the training forward pass over packed sequences (Model::PackedHidden).
struct PackedForwardOptions {
  // Recompute each decoder layer in the backward pass instead of keeping its activations
  // (activation checkpointing): only each layer's input [total, hidden] stays alive. The
  // recomputation re-enters the autograd engine (PyTorch's re-entrant scheme): parameter
  // gradients arrive in .grad through backward(), not through torch::autograd::grad(inputs).
  bool checkpoint_layers = false;
  // With checkpoint_layers: only the first this many decoder layers are recomputed (the rest
  // keep their activations: less recomputation where memory allows); 0 = all.
  int64_t checkpoint_layer_count = 0;
  // On CUDA, attention through LibTorch's windowed FlashAttention-2 where it applies
  // (bfloat16/float16, no sinks); false, or where it does not apply: the band path, one
  // sequence at a time.
  bool flash_attention = true;
};

class Model {
 public:
  // Loads DIR/config.json and DIR's safetensors (single or sharded). Every expected tensor
  // must be present with its shape; unexpected tensors are errors too (except RoPE
  // inv_freq buffers and a tied lm_head copy). Errors name the tensor and file.
  static absl::StatusOr<std::unique_ptr<Model>> Load(const std::string& dir, const ModelOptions& options = {});
  // A model of `config` with weights drawn like HF's init (normal, std 0.02; norms = 1).
  static absl::StatusOr<std::unique_ptr<Model>> RandomInit(const ModelConfig& config, uint64_t seed,
                                                           const ModelOptions& options = {});

  // A model of `config` (conversion settings of `options` applied) with the given weights:
  // every expected tensor by its HF name with its shape (any floating dtype, any device;
  // converted to the compute dtype and device). Unexpected tensors are errors, except RoPE
  // inv_freq buffers and a tied lm_head copy. Errors name the tensor.
  static absl::StatusOr<std::unique_ptr<Model>> FromTensors(const ModelConfig& config,
                                                            std::vector<std::pair<std::string, at::Tensor>> tensors,
                                                            const ModelOptions& options = {});

  // Replaces the weights in place (same tensors, new values; e.g. a rollout server taking
  // a new policy version between decode steps): `tensors` must name every parameter with
  // its shape, as FromTensors. All-or-nothing: on an error (kInvalidArgument naming the
  // tensor, or a LibTorch failure) no parameter has changed.
  // Not thread-safe with forward passes: call it from the thread that runs them.
  absl::Status CopyWeightsFrom(const std::vector<std::pair<std::string, at::Tensor>>& tensors);

  const ModelConfig& config() const { return config_; }
  // Bumped whenever the parameter values are replaced (construction, CopyWeightsFrom), so
  // derived copies of the weights (DeviceDecoder's fused projections) know to refresh.
  // In-place training of named_parameters() does not bump it.
  uint64_t weights_version() const { return weights_version_; }
  c10::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }

  // Parameters with their HF names, in checkpoint order. The tensors are the model's own
  // (shared storage): the learner trains them in place.
  const std::vector<std::pair<std::string, at::Tensor>>& named_parameters() const { return params_; }
  int64_t num_parameters() const;

  struct SaveOptions {
    std::string dtype = "float32";               // "float32" | "bfloat16" | "float16"
    int64_t max_shard_bytes = int64_t{5} << 30;  // larger checkpoints are sharded (HF's default)
  };
  // Writes DIR/config.json and the weights (model.safetensors, or shards + index), loadable
  // by HF transformers. Creates DIR if needed; each file is written atomically.
  absl::Status Save(const std::string& dir, const SaveOptions& options) const;
  absl::Status Save(const std::string& dir) const { return Save(dir, SaveOptions()); }

  // OK if every id is in [0, vocab_size); else kInvalidArgument naming the first bad id
  // and where it is ([row, column]).
  absl::Status CheckTokenIds(const at::Tensor& ids) const;

  // Teacher-forced logits of whole sequences at positions 0..T-1 (no padding).
  //   ids: int64 [B, T]  ->  logits [B, T, V] in the compute dtype. Differentiable.
  // REQUIRES: CheckTokenIds(ids).ok().
  at::Tensor Logits(const at::Tensor& ids, AttentionImpl impl = AttentionImpl::kBand) const;
  // Final-normed hidden states [B, T, hidden] of whole sequences (Logits before lm_head).
  at::Tensor Hidden(const at::Tensor& ids, AttentionImpl impl = AttentionImpl::kBand) const;
  // Final-normed hidden states of sequences packed end to end, for training and scoring:
  // sequence i is ids[offsets[i], offsets[i+1]) at positions 0..len-1, attending only to
  // itself (no padding, no cross-sequence attention). Multiply by lm_head() for logits.
  //   ids: int64 [total] on any device; offsets: n + 1 ascending values, offsets[0] = 0,
  //   offsets[n] = total, no empty sequence  ->  [total, hidden] in the compute dtype.
  // Differentiable. Same values as Logits on each sequence alone (up to rounding).
  // REQUIRES: CheckTokenIds(ids).ok(); bad offsets throw c10::Error.
  at::Tensor PackedHidden(const at::Tensor& ids, const std::vector<int64_t>& offsets,
                          const PackedForwardOptions& options = {}) const;
  // The output projection [vocab, hidden] (the embedding when tied).
  const at::Tensor& lm_head() const { return lm_head_; }
  // Checked, no-grad Logits returned as float32 on the CPU; bad ids and torch errors
  // become a Status.
  absl::StatusOr<at::Tensor> Score(const at::Tensor& ids, AttentionImpl impl = AttentionImpl::kBand) const;

  // Runs T new tokens for each sequence of `seqs` through the cache: positions continue
  // at cache->length(seq); keys/values are written and the cache advanced.
  //   ids: int64 [B, T] on any device  ->  logits of the last token [B, V], float32.
  // REQUIRES: ids valid; cache built for this model's config.
  at::Tensor ForwardCached(const at::Tensor& ids, const std::vector<int>& seqs, KvCache* cache) const;

 private:
  struct Layer {
    at::Tensor in_norm, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, q_norm, k_norm;
    at::Tensor post_norm, gate_w, up_w, down_w, gate_b, up_b, down_b;
  };
  Model() = default;
  // A model of `config` with options.conversion applied and validated, on its device and in
  // its dtype, without parameters yet (Load, RandomInit and FromTensors fill them).
  static absl::StatusOr<std::unique_ptr<Model>> Empty(ModelConfig config, const ModelOptions& options);
  // `tensors` as the parameter list in checkpoint order, converted to the compute dtype and
  // device; kInvalidArgument for a missing, unexpected, misshapen or non-float tensor.
  absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> Match(
      const std::vector<std::pair<std::string, at::Tensor>>& tensors) const;
  // Fills params_/layers_ from `tensors` (name -> tensor, any dtype), checking names/shapes.
  absl::Status Assign(std::vector<std::pair<std::string, at::Tensor>> tensors);
  // Expected parameter names and shapes, in checkpoint order.
  std::vector<std::pair<std::string, std::vector<int64_t>>> ExpectedParameters() const;
  // Absolute positions [B, T] and their RoPE tables [B, 1, T, D] for one forward pass.
  struct Packing;
  struct Rope {
    at::Tensor positions, cos, sin;
    const Packing* packing = nullptr;  // set for PackedHidden: B = 1, sequences end to end
  };
  // [B, T, hidden] -> [B, T, hidden] through one layer's attention.
  at::Tensor Attention(int layer, const at::Tensor& x, const Rope& rope, AttentionImpl impl, KvCache* cache,
                       const std::vector<int>* seqs) const;
  // The decoder stack. `packing`: sequences end to end (PackedHidden). The first `checkpointed`
  // layers are recomputed in the backward pass (activation checkpointing; only with grad on).
  at::Tensor Body(const at::Tensor& ids, const at::Tensor& positions, AttentionImpl impl, KvCache* cache,
                  const std::vector<int>* seqs, std::shared_ptr<const Packing> packing = nullptr,
                  int64_t checkpointed = 0) const;
  Rope MakeRope(const at::Tensor& positions) const;
  // One decoder layer: x + attention, then + MLP.
  at::Tensor DecoderLayer(int layer, const at::Tensor& x, const Rope& rope, AttentionImpl impl, KvCache* cache,
                          const std::vector<int>* seqs) const;

  ModelConfig config_;
  c10::Device device_ = c10::Device(c10::kCPU);
  at::ScalarType dtype_ = at::kFloat;
  bool decode_kernel_ = false;  // use RingDecodeAttention for decode steps
  uint64_t weights_version_ = 0;
  at::Tensor inv_freq_;  // [head_dim / 2] float32, on device
  std::vector<std::pair<std::string, at::Tensor>> params_;
  at::Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
};

// RoPE inverse frequencies [head_dim / 2] (float32) with the config's scaling, computed as
// HF computes them.
at::Tensor RopeInverseFrequencies(const ModelConfig& config);

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_MODEL_H_
