#include "common/dist/zero_partition.h"

#include <algorithm>
#include <unordered_set>

#include "absl/strings/str_cat.h"

namespace swarr::dist {

absl::StatusOr<ZeroPlan> PlanZero1(const std::vector<ParamSpec>& params, int world_size, int64_t align_numel) {
  if (world_size < 1) return absl::InvalidArgumentError(absl::StrCat("world_size ", world_size, " < 1"));
  if (align_numel < 1) return absl::InvalidArgumentError(absl::StrCat("align_numel ", align_numel, " < 1"));
  if (params.empty()) return absl::InvalidArgumentError("parameter table is empty");
  std::unordered_set<std::string> seen;
  int64_t total = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    if (params[i].numel <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("parameter ", i, " (\"", params[i].name, "\"): numel ", params[i].numel, " is not positive"));
    }
    if (!seen.insert(params[i].name).second) {
      return absl::InvalidArgumentError(absl::StrCat("parameter ", i, ": duplicate name \"", params[i].name, "\""));
    }
    total += params[i].numel;
  }
  ZeroPlan plan;
  plan.world_size = world_size;
  plan.total_numel = total;
  const int64_t per_rank = (total + world_size - 1) / world_size;
  plan.shard_numel = (per_rank + align_numel - 1) / align_numel * align_numel;

  size_t p = 0;         // current parameter
  int64_t p_start = 0;  // its flat offset
  for (int r = 0; r < world_size; ++r) {
    RankShard shard;
    shard.rank = r;
    shard.padded_numel = plan.shard_numel;
    shard.flat_begin = std::min(total, static_cast<int64_t>(r) * plan.shard_numel);
    shard.flat_end = std::min(total, shard.flat_begin + plan.shard_numel);
    // Walk the parameters overlapping [flat_begin, flat_end).
    while (p < params.size() && p_start + params[p].numel <= shard.flat_begin) {
      p_start += params[p].numel;
      ++p;
    }
    size_t q = p;
    int64_t q_start = p_start;
    while (q < params.size() && q_start < shard.flat_end) {
      const int64_t lo = std::max(shard.flat_begin, q_start);
      const int64_t hi = std::min(shard.flat_end, q_start + params[q].numel);
      if (hi > lo) shard.slices.push_back(ParamSlice{static_cast<int>(q), lo - q_start, hi - q_start, lo});
      if (q_start + params[q].numel > shard.flat_end) break;
      q_start += params[q].numel;
      ++q;
    }
    plan.ranks.push_back(std::move(shard));
  }
  return plan;
}

ZeroMemoryEstimate EstimateZeroMemory(int64_t total_numel, int world_size, const ZeroMemoryOptions& o) {
  ZeroMemoryEstimate e;
  e.world_size = world_size;
  const int64_t n = std::max(1, world_size);
  const int64_t shard = (total_numel + n - 1) / n;
  e.weights = total_numel * o.weight_bytes;
  e.grads = (o.zero_stage >= 2 ? shard : total_numel) * o.grad_bytes;
  e.master = shard * o.master_bytes;
  e.moments = shard * o.moment_bytes;
  e.activations = o.activation_bytes;
  e.overhead = o.overhead_bytes;
  return e;
}

DecoderShape Qwen25_1p5B() {
  DecoderShape s;
  s.vocab = 151936;
  s.hidden = 1536;
  s.intermediate = 8960;
  s.layers = 28;
  s.heads = 12;
  s.kv_heads = 2;
  s.head_dim = 128;
  s.qkv_bias = true;
  s.tied_embeddings = true;
  return s;
}

DecoderShape Qwen25_7B() {
  DecoderShape s;
  s.vocab = 152064;
  s.hidden = 3584;
  s.intermediate = 18944;
  s.layers = 28;
  s.heads = 28;
  s.kv_heads = 4;
  s.head_dim = 128;
  s.qkv_bias = true;
  s.tied_embeddings = false;
  return s;
}

std::vector<ParamSpec> DecoderParams(const DecoderShape& s) {
  std::vector<ParamSpec> out;
  const int64_t q = s.heads * s.head_dim, kv = s.kv_heads * s.head_dim;
  out.push_back({"model.embed_tokens.weight", s.vocab * s.hidden});
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    out.push_back({p + "input_layernorm.weight", s.hidden});
    out.push_back({p + "self_attn.q_proj.weight", q * s.hidden});
    if (s.qkv_bias) out.push_back({p + "self_attn.q_proj.bias", q});
    out.push_back({p + "self_attn.k_proj.weight", kv * s.hidden});
    if (s.qkv_bias) out.push_back({p + "self_attn.k_proj.bias", kv});
    out.push_back({p + "self_attn.v_proj.weight", kv * s.hidden});
    if (s.qkv_bias) out.push_back({p + "self_attn.v_proj.bias", kv});
    out.push_back({p + "self_attn.o_proj.weight", s.hidden * q});
    out.push_back({p + "post_attention_layernorm.weight", s.hidden});
    out.push_back({p + "mlp.gate_proj.weight", s.intermediate * s.hidden});
    out.push_back({p + "mlp.up_proj.weight", s.intermediate * s.hidden});
    out.push_back({p + "mlp.down_proj.weight", s.hidden * s.intermediate});
  }
  out.push_back({"model.norm.weight", s.hidden});
  if (!s.tied_embeddings) out.push_back({"lm_head.weight", s.vocab * s.hidden});
  return out;
}

}  // namespace swarr::dist
