// KV cache for batched generation with sliding-window and full-attention layers.
//
// Layout (docs/architecture.md "Ring cache"): the cache holds up to `max_seqs` sequences,
// each in one sequence slot. For a sliding layer with window W and S attention sinks, every
// sequence owns S + W key/value slots: position p < S goes to sink slot p, any other position
// to ring slot S + (p mod W). Keys are stored after RoPE at their absolute position, and each
// slot remembers that position (-1 = empty), so attention masks by position and slot order
// never matters. Full-attention layers keep a growing cache (slot = position) whose
// capacity doubles when a sequence outgrows it.
//
// Not thread-safe: one generator owns one cache.
#ifndef SWARR_COMMON_KV_CACHE_KV_CACHE_H_
#define SWARR_COMMON_KV_CACHE_KV_CACHE_H_

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "absl/status/statusor.h"
#include "common/model/config.h"

namespace swarr {

struct KvCacheOptions {
  int64_t max_seqs = 8;                 // concurrent sequences
  int64_t full_initial_capacity = 256;  // first capacity of full-attention layers, tokens
  at::ScalarType dtype = at::kFloat;
  c10::Device device = c10::Device(c10::kCPU);
};

class KvCache {
 public:
  KvCache(const ModelConfig& config, const KvCacheOptions& options);

  // A free sequence slot (its previous contents invisible), or kResourceExhausted.
  absl::StatusOr<int> Allocate();
  // Frees `seq` for reuse. REQUIRES: `seq` allocated.
  void Release(int seq);
  // Tokens written for `seq` so far = the absolute position of its next token.
  int64_t length(int seq) const { return lengths_[seq]; }
  int64_t max_seqs() const { return options_.max_seqs; }
  int64_t num_free() const;

  // Keys/values of `seqs` for one layer: what Advance() has committed plus `pending` tokens
  // per sequence already written by Write() for this step. Views, not copies, when `seqs`
  // is a run of consecutive slots.
  //   k, v: [B, slots, Hkv, D]   pos: int64 [B, slots] (-1 = empty)
  struct LayerView {
    at::Tensor k, v, pos;
  };
  LayerView Read(int layer, const std::vector<int>& seqs, int64_t pending = 0) const;
  // Stores T new tokens per sequence at positions length(seq) .. length(seq)+T-1.
  //   k, v: [B, T, Hkv, D]. Call for every layer, then Advance(seqs, T) once.
  void Write(int layer, const std::vector<int>& seqs, const at::Tensor& k, const at::Tensor& v);
  void Advance(const std::vector<int>& seqs, int64_t n);

  // Grows every full-attention layer to hold at least `tokens` positions per sequence (ring
  // layers never grow). True if a layer's tensors were reallocated.
  bool ReserveFull(int64_t tokens);
  // The tensors of one layer, all sequence slots: [max_seqs, slots, Hkv, D] and int64
  // [max_seqs, slots]. For kernels that write the cache themselves (DeviceDecoder); they
  // must keep the layout above. Reallocated by growth (ReserveFull, Write).
  const at::Tensor& keys(int layer) const { return k_[layer]; }
  const at::Tensor& values(int layer) const { return v_[layer]; }
  const at::Tensor& positions(int layer) const { return pos_[layer]; }

  // Bytes of key/value slots `seq` holds now: (S + W) slots per sliding layer whatever the
  // length, one slot per token per full layer.
  int64_t BytesForSeq(int seq) const;
  // Bytes of every tensor the cache has allocated (keys, values, positions).
  int64_t AllocatedBytes() const;
  // Sum of BytesForSeq over the sequences in use.
  int64_t BytesInUse() const;

 private:
  void GrowFull(int layer, int64_t needed);

  ModelConfig config_;
  KvCacheOptions options_;
  int64_t slot_bytes_ = 0;  // one K+V slot of one layer
  std::vector<at::Tensor> k_, v_, pos_;  // per layer: [max_seqs, slots, Hkv, D], [max_seqs, slots]
  std::vector<int64_t> lengths_;
  std::vector<bool> in_use_;
};

}  // namespace swarr

#endif  // SWARR_COMMON_KV_CACHE_KV_CACHE_H_
