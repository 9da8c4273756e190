// Batched generation over a Model with a ring-buffer KV cache and continuous batching:
// queued requests join the running batch between decode steps, and a finished sequence's
// cache slots are reused at once by the next request.
//
// Not thread-safe: one thread drives a Generator (the rollout server wraps it).
#ifndef SWARR_COMMON_MODEL_GENERATOR_H_
#define SWARR_COMMON_MODEL_GENERATOR_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/sampler.h"

namespace swarr {

class DeviceDecoder;
class KvCache;
class Model;

struct GenerationRequest {
  std::vector<int64_t> prompt;          // non-empty, ids in the vocabulary
  int64_t max_new_tokens = 0;           // >= 0
  SamplingParams sampling;
  std::vector<int64_t> stop_token_ids;  // generation ends after emitting one of these
};

struct GenerationResult {
  std::vector<int64_t> tokens;  // prompt followed by the generated tokens
  std::vector<float> logprobs;  // one per generated token (sampler.h's definition)
  // One per generated token: the tag set by Generator::SetTokenTag() when it was sampled
  // (the rollout server tags tokens with the weight version that produced them).
  std::vector<int64_t> token_tags;
  int64_t prompt_length = 0;
  bool stopped = false;         // true: a stop token ended it; false: max_new_tokens
};

struct GeneratorOptions {
  int64_t max_batch = 8;         // sequences decoded together (cache slots)
  int64_t prefill_chunk = 256;   // prompt tokens per prefill pass (chunks may wrap the ring)
  int64_t full_initial_capacity = 256;  // first capacity of full-attention layer caches
  // On a CUDA model (SWARR_WITH_CUDA builds): decode steps and sampling run on the device
  // (device_decoder.h), captured as CUDA graphs per batch-size bucket. false = the eager
  // path (torch ops, sampling on the host) everywhere.
  bool device_decode = true;
  bool cuda_graphs = true;
  bool flash_decode = true;  // DeviceDecoderOptions::flash_decode
  // Device path: prompts of equal length are prefilled together, at most this many prompt
  // tokens per Step(), so running sequences keep decoding while a long queue is admitted.
  int64_t prefill_tokens_per_step = 16384;
};

class Generator {
 public:
  // `model` must outlive the generator.
  explicit Generator(const Model& model, const GeneratorOptions& options = {});
  ~Generator();

  // Validates and queues a request; returns its id (0, 1, 2, ... in submission order).
  // kInvalidArgument names the problem (empty prompt, token id outside the vocabulary and
  // its index, negative max_new_tokens, bad sampling parameters).
  absl::StatusOr<int64_t> Submit(GenerationRequest request);

  // One engine step: admits queued requests into free slots (prefill + first token), then
  // decodes one token for every running sequence. Returns the requests that finished.
  // On an error (a LibTorch failure, e.g. out of memory) the running sequences are dropped
  // and their slots freed; queued requests stay queued.
  absl::StatusOr<std::vector<std::pair<int64_t, GenerationResult>>> Step();

  // Tokens sampled from now on carry `tag` in GenerationResult::token_tags (0 until set).
  // Call between steps, e.g. after the model's weights were replaced in place.
  void SetTokenTag(int64_t tag) { token_tag_ = tag; }
  int64_t token_tag() const { return token_tag_; }

  // Drops request `id` whether queued or running (its slot is freed at once); false if it
  // is unknown or already finished. Its result is never returned.
  bool Cancel(int64_t id);

  bool idle() const { return queue_.empty() && running_.empty(); }
  // Tokens sampled since the generator was created (prefill's first tokens included).
  int64_t num_generated_tokens() const { return generated_tokens_; }
  int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
  int64_t num_queued() const { return static_cast<int64_t>(queue_.size()); }
  const KvCache& cache() const { return *cache_; }
  // The device decode path, or null when steps run eagerly (CPU, or not built with CUDA).
  const DeviceDecoder* device_decoder() const { return device_.get(); }

  // Test hook: the next Step() fails as a LibTorch error would, after admitting.
  void FailNextStepForTest() { fail_next_step_ = true; }

  // Submits all, steps until done; results in request order.
  // kFailedPrecondition unless idle() (results of earlier requests would have no taker).
  absl::StatusOr<std::vector<GenerationResult>> Generate(std::vector<GenerationRequest> requests);

 private:
  struct Sequence {
    int64_t id = 0;
    int slot = -1;
    GenerationRequest request;
    GenerationResult result;
    SamplerRng rng;
  };
  absl::Status Admit(std::vector<std::pair<int64_t, GenerationResult>>* finished);
  absl::Status Decode(std::vector<std::pair<int64_t, GenerationResult>>* finished);
  // The device path's Admit (batched prefill, first tokens sampled on the device) and Decode.
  absl::Status AdmitOnDevice(std::vector<std::pair<int64_t, GenerationResult>>* finished);
  absl::Status DecodeOnDevice(std::vector<std::pair<int64_t, GenerationResult>>* finished);
  // Samples from `logits` (float32 [vocab], CPU) for `seq`; true if it finished.
  bool SampleInto(Sequence* seq, const float* logits);
  // Appends a sampled token to `seq`; true if it finished.
  bool Append(Sequence* seq, const SampledToken& tok);

  const Model& model_;
  GeneratorOptions options_;
  std::unique_ptr<KvCache> cache_;
  std::unique_ptr<DeviceDecoder> device_;
  std::deque<Sequence> queue_;
  std::vector<Sequence> running_;
  int64_t next_id_ = 0;
  int64_t token_tag_ = 0;
  int64_t generated_tokens_ = 0;
  bool fail_next_step_ = false;
};

}  // namespace swarr

#endif  // SWARR_COMMON_MODEL_GENERATOR_H_
