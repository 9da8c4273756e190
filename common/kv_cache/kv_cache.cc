#include "common/kv_cache/kv_cache.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/TensorIndexing.h>

#include "absl/strings/str_cat.h"

namespace swarr {

KvCache::KvCache(const ModelConfig& config, const KvCacheOptions& options)
    : config_(config), options_(options) {
  const int64_t hkv = config.num_key_value_heads, d = config.head_dim;
  slot_bytes_ = 2 * hkv * d * static_cast<int64_t>(c10::elementSize(options.dtype));
  auto opts = at::TensorOptions().dtype(options.dtype).device(options.device);
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    const int64_t w = config.layer_windows[layer];
    const int64_t slots = w > 0 ? config.attention_sinks + w : options.full_initial_capacity;
    k_.push_back(at::zeros({options.max_seqs, slots, hkv, d}, opts));
    v_.push_back(at::zeros({options.max_seqs, slots, hkv, d}, opts));
    pos_.push_back(at::full({options.max_seqs, slots}, -1, opts.dtype(at::kLong)));
  }
  lengths_.assign(options.max_seqs, 0);
  in_use_.assign(options.max_seqs, false);
}

absl::StatusOr<int> KvCache::Allocate() {
  for (int i = 0; i < options_.max_seqs; ++i) {
    if (!in_use_[i]) {
      in_use_[i] = true;
      lengths_[i] = 0;
      return i;
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat("KV cache full: all ", options_.max_seqs, " sequences in use"));
}

void KvCache::Release(int seq) {
  TORCH_CHECK(seq >= 0 && seq < options_.max_seqs && in_use_[seq], "releasing unallocated sequence ", seq);
  for (auto& p : pos_) p.select(0, seq).fill_(-1);
  lengths_[seq] = 0;
  in_use_[seq] = false;
}

int64_t KvCache::num_free() const {
  return std::count(in_use_.begin(), in_use_.end(), false);
}

KvCache::LayerView KvCache::Read(int layer, const std::vector<int>& seqs, int64_t pending) const {
  at::Tensor k = k_[layer], v = v_[layer], pos = pos_[layer];
  if (config_.layer_windows[layer] == 0) {
    int64_t longest = 0;
    for (int s : seqs) longest = std::max(longest, lengths_[s] + pending);
    k = k.narrow(1, 0, longest);
    v = v.narrow(1, 0, longest);
    pos = pos.narrow(1, 0, longest);
  }
  bool consecutive = true;
  for (size_t i = 1; i < seqs.size(); ++i) consecutive = consecutive && seqs[i] == seqs[i - 1] + 1;
  if (consecutive) {
    const int64_t n = static_cast<int64_t>(seqs.size());
    return {k.narrow(0, seqs[0], n), v.narrow(0, seqs[0], n), pos.narrow(0, seqs[0], n)};
  }
  at::Tensor idx = at::tensor(std::vector<int64_t>(seqs.begin(), seqs.end()), at::kLong).to(options_.device);
  return {k.index_select(0, idx), v.index_select(0, idx), pos.index_select(0, idx)};
}

void KvCache::GrowFull(int layer, int64_t needed) {
  const int64_t cap = k_[layer].size(1);
  if (needed <= cap) return;
  const int64_t new_cap = std::max(needed, 2 * cap);
  auto grow = [&](at::Tensor& t, double fill) {
    std::vector<int64_t> shape = t.sizes().vec();
    shape[1] = new_cap;
    at::Tensor bigger = at::full(shape, fill, t.options());
    bigger.narrow(1, 0, cap).copy_(t);
    t = bigger;
  };
  grow(k_[layer], 0);
  grow(v_[layer], 0);
  grow(pos_[layer], -1);
}

void KvCache::Write(int layer, const std::vector<int>& seqs, const at::Tensor& k, const at::Tensor& v) {
  const int64_t T = k.size(1);
  const int64_t w = config_.layer_windows[layer];
  const int64_t sinks = config_.attention_sinks;
  std::vector<int64_t> b_idx, t_idx, seq_idx, slot_idx, positions;
  for (size_t b = 0; b < seqs.size(); ++b) {
    const int seq = seqs[b];
    const int64_t start = lengths_[seq];
    if (w == 0) GrowFull(layer, start + T);
    for (int64_t t = 0; t < T; ++t) {
      const int64_t p = start + t;
      int64_t slot;
      if (w == 0) {
        slot = p;
      } else if (p < sinks) {
        slot = p;
      } else if (t >= T - w) {  // earlier tokens of a long chunk would be overwritten anyway
        slot = sinks + p % w;
      } else {
        continue;
      }
      b_idx.push_back(static_cast<int64_t>(b));
      t_idx.push_back(t);
      seq_idx.push_back(seq);
      slot_idx.push_back(slot);
      positions.push_back(p);
    }
  }
  if (b_idx.empty()) return;
  const auto dev = options_.device;
  at::Tensor bi = at::tensor(b_idx, at::kLong).to(dev), ti = at::tensor(t_idx, at::kLong).to(dev);
  at::Tensor si = at::tensor(seq_idx, at::kLong).to(dev), li = at::tensor(slot_idx, at::kLong).to(dev);
  k_[layer].index_put_({si, li}, k.index({bi, ti}).to(options_.dtype));
  v_[layer].index_put_({si, li}, v.index({bi, ti}).to(options_.dtype));
  pos_[layer].index_put_({si, li}, at::tensor(positions, at::kLong).to(dev));
}

bool KvCache::ReserveFull(int64_t tokens) {
  bool grown = false;
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    if (config_.layer_windows[layer] != 0 || k_[layer].size(1) >= tokens) continue;
    GrowFull(static_cast<int>(layer), tokens);
    grown = true;
  }
  return grown;
}

void KvCache::Advance(const std::vector<int>& seqs, int64_t n) {
  for (int s : seqs) lengths_[s] += n;
}

int64_t KvCache::BytesForSeq(int seq) const {
  int64_t bytes = 0;
  for (int64_t layer = 0; layer < config_.num_hidden_layers; ++layer) {
    const int64_t w = config_.layer_windows[layer];
    bytes += (w > 0 ? config_.attention_sinks + w : lengths_[seq]) * slot_bytes_;
  }
  return bytes;
}

int64_t KvCache::BytesInUse() const {
  int64_t bytes = 0;
  for (int i = 0; i < options_.max_seqs; ++i) {
    if (in_use_[i]) bytes += BytesForSeq(i);
  }
  return bytes;
}

int64_t KvCache::AllocatedBytes() const {
  int64_t bytes = 0;
  for (size_t i = 0; i < k_.size(); ++i) {
    bytes += k_[i].nbytes() + v_[i].nbytes() + pos_[i].nbytes();
  }
  return bytes;
}

}  // namespace swarr
