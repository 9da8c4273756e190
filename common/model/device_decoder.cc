#include "common/model/device_decoder.h"

#include "absl/strings/str_cat.h"

#ifdef SWARR_WITH_CUDA
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <map>
#include <string>
#include <utility>

#include "common/attention/attention.h"
#include "common/attention/ring_decode_op.h"
#include "common/kv_cache/kv_cache.h"
#include "common/model/cuda/decode_ops.h"
#include "common/model/model.h"
#include "common/util/torch_status.h"
#endif

namespace swarr {

#ifndef SWARR_WITH_CUDA

bool DeviceDecoder::Available() { return false; }

absl::StatusOr<std::unique_ptr<DeviceDecoder>> DeviceDecoder::Create(const Model&, KvCache*,
                                                                     const DeviceDecoderOptions&) {
  return absl::UnimplementedError("the device decoder needs a build with SWARR_WITH_CUDA");
}

#else  // SWARR_WITH_CUDA

bool DeviceDecoder::Available() { return true; }

namespace {

void CheckCuda(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, what, ": ", cudaGetErrorString(err));
}

// Byte offsets of the metadata arrays inside one buffer (8-byte arrays first).
struct MetaLayout {
  int64_t rows = 0;
  int64_t ids = 0, positions = 0, seeds = 0, counters = 0, temperature = 0, top_p = 0, top_k = 0, greedy = 0,
          active = 0, bytes = 0;
  explicit MetaLayout(int64_t n) : rows(n) {
    int64_t off = 0;
    auto take = [&](int64_t elem) {
      const int64_t at = off;
      off += ((n * elem + 15) / 16) * 16;
      return at;
    };
    ids = take(8);
    positions = take(8);
    seeds = take(8);
    counters = take(8);
    temperature = take(4);
    top_p = take(4);
    top_k = take(4);
    greedy = take(4);
    active = take(4);
    bytes = off;
  }
};

class CudaDeviceDecoder final : public DeviceDecoder {
 public:
  CudaDeviceDecoder(const Model& model, KvCache* cache, const DeviceDecoderOptions& options)
      : model_(model), cache_(cache), options_(options), meta_(cache->max_seqs()) {}

  absl::Status Init() {
    return CatchTorch("device decoder set-up", [&]() -> absl::Status {
      at::NoGradGuard no_grad;
      const ModelConfig& c = model_.config();
      const auto dev = model_.device();
      bf16_ = model_.dtype() == at::kBFloat16;
      max_rows_ = cache_->max_seqs();
      auto u8 = at::TensorOptions().dtype(at::kByte);
      meta_host_ = at::empty({meta_.bytes}, u8.pinned_memory(true));
      meta_host_.zero_();
      meta_dev_ = at::zeros({meta_.bytes}, u8.device(dev));
      result_dev_ = at::zeros({max_rows_ * 12}, u8.device(dev));
      result_host_ = at::empty({max_rows_ * 12}, u8.pinned_memory(true));
      inv_freq_ = RopeInverseFrequencies(c).to(dev, at::kFloat).contiguous();
      std::map<std::string, at::Tensor> p(model_.named_parameters().begin(), model_.named_parameters().end());
      auto get = [&p](const std::string& name) {
        auto it = p.find(name);
        return it == p.end() ? at::Tensor() : it->second;
      };
      embed_ = get("model.embed_tokens.weight");
      final_norm_ = get("model.norm.weight");
      lm_head_ = c.tie_word_embeddings ? embed_ : get("lm_head.weight");
      layers_.clear();
      for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const std::string pre = absl::StrCat("model.layers.", i, ".");
        Layer l;
        l.in_norm = get(pre + "input_layernorm.weight");
        l.post_norm = get(pre + "post_attention_layernorm.weight");
        l.q_w = get(pre + "self_attn.q_proj.weight");
        l.k_w = get(pre + "self_attn.k_proj.weight");
        l.v_w = get(pre + "self_attn.v_proj.weight");
        l.q_b = get(pre + "self_attn.q_proj.bias");
        l.k_b = get(pre + "self_attn.k_proj.bias");
        l.v_b = get(pre + "self_attn.v_proj.bias");
        l.o_w = get(pre + "self_attn.o_proj.weight");
        l.o_b = get(pre + "self_attn.o_proj.bias");
        l.q_norm = get(pre + "self_attn.q_norm.weight");
        l.k_norm = get(pre + "self_attn.k_norm.weight");
        l.gate_w = get(pre + "mlp.gate_proj.weight");
        l.up_w = get(pre + "mlp.up_proj.weight");
        l.gate_b = get(pre + "mlp.gate_proj.bias");
        l.up_b = get(pre + "mlp.up_proj.bias");
        l.down_w = get(pre + "mlp.down_proj.weight");
        l.down_b = get(pre + "mlp.down_proj.bias");
        l.qkv_w = at::cat({l.q_w, l.k_w, l.v_w}, 0).contiguous();
        if (l.q_b.defined()) l.qkv_b = at::cat({l.q_b, l.k_b, l.v_b}, 0).contiguous();
        l.gu_w = at::cat({l.gate_w, l.up_w}, 0).contiguous();
        if (l.gate_b.defined()) l.gu_b = at::cat({l.gate_b, l.up_b}, 0).contiguous();
        layers_.push_back(std::move(l));
      }
      weights_version_ = model_.weights_version();
      if (options_.graph_buckets.empty()) {
        for (int64_t b : {1, 2, 4, 8, 16, 24, 32, 48, 64}) options_.graph_buckets.push_back(b);
        for (int64_t b = 96; b < max_rows_ + 32; b += 32) options_.graph_buckets.push_back(b);
      }
      std::sort(options_.graph_buckets.begin(), options_.graph_buckets.end());
      return absl::OkStatus();
    });
  }

  absl::Status Step(const std::vector<DecodeRowInput>& rows, std::vector<SampledToken>* out) override {
    return CatchTorch("device decode step", [&]() -> absl::Status {
      at::NoGradGuard no_grad;
      c10::cuda::CUDAGuard guard(model_.device());
      out->clear();
      if (rows.empty()) return absl::OkStatus();
      int64_t highest = 0, longest = 0, shortest = INT64_MAX;
      for (const DecodeRowInput& r : rows) {
        highest = std::max<int64_t>(highest, r.row);
        longest = std::max(longest, cache_->length(r.row));
        shortest = std::min(shortest, cache_->length(r.row));
      }
      // Ring layers whose every running row already fills its ring (the dense flash path).
      const ModelConfig& c = model_.config();
      full_rings_.assign(c.num_hidden_layers, false);
      for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const int64_t w = c.layer_windows[i];
        full_rings_[i] = w > 0 && c.attention_sinks == 0 && shortest + 1 >= w;
      }
      if (cache_->ReserveFull(longest + 1)) DropGraphs();  // full layers moved
      RefreshWeights();
      const int64_t n = BucketFor(highest + 1);
      // Rows of the bucket without a running sequence see nothing either way; any running
      // row with an unfilled ring keeps the varlen path.
      const GraphKey key{n, full_rings_};
      FillMeta(rows, n, /*decode=*/true);
      const auto stream = c10::cuda::getCurrentCUDAStream();
      start_.record(stream);
      meta_dev_.copy_(meta_host_, /*non_blocking=*/true);
      auto it = graphs_.find(key);
      if (it != graphs_.end() && it->second.ptrs != CachePointers()) {
        DropGraphs();  // the cache was reallocated (a prefill grew a full layer)
        it = graphs_.end();
      }
      if (it != graphs_.end()) {
        it->second.graph->replay();
        ++stats_.graph_replays;
      } else {
        // Eager: this is the step (its results are used); then capture it for next time.
        Body(n);
        ++stats_.eager_steps;
        if (options_.cuda_graphs && n <= max_rows_ && IsBucket(n)) Capture(key);
      }
      result_host_.copy_(result_dev_, /*non_blocking=*/true);
      done_.record(stream);
      done_.synchronize();
      stats_.device_ms += start_.elapsed_time(done_);
      ReadResults(rows, out);
      return absl::OkStatus();
    });
  }

  absl::Status Sample(const at::Tensor& logits, const std::vector<DecodeRowInput>& rows,
                      std::vector<SampledToken>* out) override {
    return CatchTorch("device sampling", [&]() -> absl::Status {
      at::NoGradGuard no_grad;
      c10::cuda::CUDAGuard guard(model_.device());
      out->clear();
      const int64_t n = static_cast<int64_t>(rows.size());
      if (n == 0) return absl::OkStatus();
      TORCH_CHECK(n <= max_rows_, "device sampling: ", n, " rows, at most ", max_rows_);
      TORCH_CHECK(logits.dim() == 2 && logits.size(0) == n && logits.size(1) == model_.config().vocab_size,
                  "device sampling: logits ", logits.sizes(), " for ", n, " rows");
      at::Tensor x = logits.to(model_.device());
      if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kBFloat16) x = x.to(at::kFloat);
      x = x.contiguous();
      // Row i of the logits is meta row i here.
      std::vector<DecodeRowInput> by_index = rows;
      for (int64_t i = 0; i < n; ++i) by_index[i].row = static_cast<int>(i);
      FillMeta(by_index, n, /*decode=*/false);
      const auto stream = c10::cuda::getCurrentCUDAStream();
      meta_dev_.copy_(meta_host_, /*non_blocking=*/true);
      RunSample(x, n, stream.stream());
      result_host_.copy_(result_dev_, /*non_blocking=*/true);
      done_.record(stream);
      done_.synchronize();
      ReadResults(by_index, out);
      return absl::OkStatus();
    });
  }

  DeviceDecoderStats stats() const override { return stats_; }

 private:
  struct Layer {
    at::Tensor in_norm, post_norm, q_w, k_w, v_w, q_b, k_b, v_b, o_w, o_b, q_norm, k_norm;
    at::Tensor gate_w, up_w, gate_b, up_b, down_w, down_b;
    at::Tensor qkv_w, qkv_b, gu_w, gu_b;  // fused copies
  };
  // Bucket size and which ring layers take the dense flash path.
  using GraphKey = std::pair<int64_t, std::vector<bool>>;
  struct Graph {
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    std::vector<void*> ptrs;  // cache tensors it was captured with
  };

  template <typename T>
  T* HostArray(int64_t offset) {
    return reinterpret_cast<T*>(meta_host_.data_ptr<uint8_t>() + offset);
  }
  template <typename T>
  const T* DevArray(int64_t offset) const {
    return reinterpret_cast<const T*>(static_cast<const uint8_t*>(meta_dev_.data_ptr()) + offset);
  }
  DecodeRowMeta DeviceMeta() const {
    DecodeRowMeta m;
    m.ids = DevArray<int64_t>(meta_.ids);
    m.positions = DevArray<int64_t>(meta_.positions);
    m.active = DevArray<int32_t>(meta_.active);
    m.seeds = DevArray<uint64_t>(meta_.seeds);
    m.counters = DevArray<int64_t>(meta_.counters);
    m.temperature = DevArray<float>(meta_.temperature);
    m.top_k = DevArray<int32_t>(meta_.top_k);
    m.top_p = DevArray<float>(meta_.top_p);
    m.greedy = DevArray<int32_t>(meta_.greedy);
    return m;
  }

  // Rows [0, n) of the metadata: the given rows active, the rest inactive (position -1).
  void FillMeta(const std::vector<DecodeRowInput>& rows, int64_t n, bool decode) {
    int32_t* active = HostArray<int32_t>(meta_.active);
    int64_t* positions = HostArray<int64_t>(meta_.positions);
    int64_t* ids = HostArray<int64_t>(meta_.ids);
    for (int64_t i = 0; i < n; ++i) {
      active[i] = 0;
      positions[i] = -1;
      ids[i] = 0;
    }
    for (const DecodeRowInput& r : rows) {
      const SamplingParams& s = *r.sampling;
      active[r.row] = 1;
      positions[r.row] = decode ? cache_->length(r.row) : 0;
      ids[r.row] = r.token;
      HostArray<uint64_t>(meta_.seeds)[r.row] = s.seed;
      HostArray<int64_t>(meta_.counters)[r.row] = r.draw;
      HostArray<float>(meta_.temperature)[r.row] = s.greedy ? 1.f : static_cast<float>(s.temperature);
      HostArray<float>(meta_.top_p)[r.row] = s.greedy ? 1.f : static_cast<float>(s.top_p);
      HostArray<int32_t>(meta_.top_k)[r.row] =
          s.greedy ? 0 : static_cast<int32_t>(std::min<int64_t>(s.top_k, model_.config().vocab_size));
      HostArray<int32_t>(meta_.greedy)[r.row] = s.greedy ? 1 : 0;
    }
  }

  void ReadResults(const std::vector<DecodeRowInput>& rows, std::vector<SampledToken>* out) const {
    const int64_t* tokens = reinterpret_cast<const int64_t*>(result_host_.data_ptr<uint8_t>());
    const float* logprobs = reinterpret_cast<const float*>(result_host_.data_ptr<uint8_t>() + max_rows_ * 8);
    out->reserve(rows.size());
    for (const DecodeRowInput& r : rows) out->push_back({tokens[r.row], logprobs[r.row]});
  }

  int64_t BucketFor(int64_t rows) const {
    for (int64_t b : options_.graph_buckets) {
      if (b >= rows) return std::min(b, max_rows_);
    }
    return max_rows_;
  }
  bool IsBucket(int64_t n) const {
    for (int64_t b : options_.graph_buckets) {
      if (std::min(b, max_rows_) == n) return true;
    }
    return false;
  }

  std::vector<void*> CachePointers() const {
    std::vector<void*> out;
    for (int64_t i = 0; i < model_.config().num_hidden_layers; ++i) {
      out.push_back(cache_->keys(static_cast<int>(i)).data_ptr());
      out.push_back(cache_->values(static_cast<int>(i)).data_ptr());
      out.push_back(cache_->positions(static_cast<int>(i)).data_ptr());
    }
    return out;
  }

  // Fused weight copies follow the model's weights (in place: captured graphs stay valid).
  void RefreshWeights() {
    if (model_.weights_version() == weights_version_) return;
    for (Layer& l : layers_) {
      l.qkv_w.copy_(at::cat({l.q_w, l.k_w, l.v_w}, 0));
      if (l.qkv_b.defined()) l.qkv_b.copy_(at::cat({l.q_b, l.k_b, l.v_b}, 0));
      l.gu_w.copy_(at::cat({l.gate_w, l.up_w}, 0));
      if (l.gu_b.defined()) l.gu_b.copy_(at::cat({l.gate_b, l.up_b}, 0));
    }
    weights_version_ = model_.weights_version();
  }

  static at::Tensor Linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
    return at::linear(x, w, b.defined() ? c10::optional<at::Tensor>(b) : c10::nullopt);
  }

  void RmsNorm(const at::Tensor& x, const at::Tensor* delta, const at::Tensor& weight, const at::Tensor& out,
               cudaStream_t stream) const {
    RmsNormParams p;
    p.x = x.data_ptr();
    p.delta = delta ? delta->data_ptr() : nullptr;
    p.weight = weight.data_ptr();
    p.out = out.data_ptr();
    p.rows = static_cast<int>(x.size(0));
    p.n = static_cast<int>(x.size(1));
    p.eps = static_cast<float>(model_.config().rms_norm_eps);
    p.bf16 = bf16_;
    CheckCuda(LaunchRmsNorm(p, stream), "rmsnorm kernel");
  }

  void RunSample(const at::Tensor& logits, int64_t n, cudaStream_t stream) {
    SampleParams p;
    p.logits = logits.data_ptr();
    p.stride = logits.stride(0);
    p.rows = static_cast<int>(n);
    p.vocab = logits.size(1);
    p.bf16 = logits.scalar_type() == at::kBFloat16;
    p.meta = DeviceMeta();
    p.tokens = reinterpret_cast<int64_t*>(result_dev_.data_ptr<uint8_t>());
    p.logprobs = reinterpret_cast<float*>(result_dev_.data_ptr<uint8_t>() + max_rows_ * 8);
    CheckCuda(LaunchSample(p, stream), "sampling kernel");
  }

  // The decode step over cache rows [0, n): everything on the current stream, no host sync.
  void Body(int64_t n) {
    const ModelConfig& c = model_.config();
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
    const int64_t H = c.num_attention_heads, Hkv = c.num_key_value_heads, D = c.head_dim;
    const auto opts = embed_.options();
    at::Tensor ids = meta_dev_.narrow(0, meta_.ids, n * 8).view(at::kLong);
    at::Tensor positions = meta_dev_.narrow(0, meta_.positions, n * 8).view(at::kLong).view({n, 1});
    at::Tensor x = at::embedding(embed_, ids).contiguous();  // [n, hidden]
    at::Tensor h = at::empty_like(x);
    at::Tensor q = at::empty({n, H, D}, opts);
    RmsNorm(x, nullptr, layers_[0].in_norm, h, stream);
    const DecodeRowMeta meta = DeviceMeta();
    std::map<int64_t, FlashDecodeMeta> flash_meta;  // by slot count: built once per step
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      const Layer& l = layers_[i];
      const int layer = static_cast<int>(i);
      at::Tensor qkv = Linear(h, l.qkv_w, l.qkv_b);  // [n, (H + 2 Hkv) D]
      const at::Tensor& kc = cache_->keys(layer);
      const at::Tensor& vc = cache_->values(layer);
      const at::Tensor& pc = cache_->positions(layer);
      RopeAppendParams rp;
      rp.qkv = qkv.data_ptr();
      rp.qkv_stride = qkv.stride(0);
      rp.q_out = q.data_ptr();
      rp.k_cache = kc.data_ptr();
      rp.v_cache = vc.data_ptr();
      rp.cache_stride_row = kc.stride(0);
      rp.cache_stride_slot = kc.stride(1);
      rp.pos_cache = pc.data_ptr<int64_t>();
      rp.pos_stride_row = pc.stride(0);
      rp.inv_freq = inv_freq_.data_ptr<float>();
      rp.q_norm = l.q_norm.defined() ? l.q_norm.data_ptr() : nullptr;
      rp.k_norm = l.k_norm.defined() ? l.k_norm.data_ptr() : nullptr;
      rp.norm_eps = static_cast<float>(c.rms_norm_eps);
      rp.rows = static_cast<int>(n);
      rp.H = static_cast<int>(H);
      rp.Hkv = static_cast<int>(Hkv);
      rp.D = static_cast<int>(D);
      rp.window = c.layer_windows[i];
      rp.sinks = rp.window > 0 ? c.attention_sinks : 0;
      rp.slots = kc.size(1);
      rp.meta = meta;
      rp.bf16 = bf16_;
      CheckCuda(LaunchRopeAppend(rp, stream), "rope/append kernel");
      AttentionSpec spec;
      spec.window = c.layer_windows[i];
      spec.sinks = spec.window > 0 ? c.attention_sinks : 0;
      spec.scale = 1.0 / std::sqrt(static_cast<double>(D));
      at::Tensor q4 = q.view({n, H, 1, D});
      at::Tensor kn = kc.narrow(0, 0, n), vn = vc.narrow(0, 0, n);
      // The cache keeps the flash path's invariant: a row's visible slots are its first
      // min(position + 1, slots) (ring of exactly W slots without sinks, or slot = position).
      const bool ring_exact = spec.window == 0 || (spec.sinks == 0 && kc.size(1) == spec.window);
      at::Tensor attn;
      if (options_.flash_decode && ring_exact && FlashDecodeSupported(q4, kn, spec)) {
        const FlashDecodeMeta* fm = nullptr;
        if (!full_rings_[i]) {
          auto it = flash_meta.find(kn.size(1));
          if (it == flash_meta.end()) it = flash_meta.emplace(kn.size(1), MakeFlashDecodeMeta(positions, kn.size(1))).first;
          fm = &it->second;
        }
        attn = FlashRingDecodeAttention(q4, kn, vn, positions, spec, full_rings_[i], fm);
      } else {
        attn = RingDecodeAttention(q4, kn, vn, positions, pc.narrow(0, 0, n), spec);
      }
      at::Tensor o = Linear(attn.view({n, H * D}), l.o_w, l.o_b);
      RmsNorm(x, &o, l.post_norm, h, stream);
      at::Tensor gu = Linear(h, l.gu_w, l.gu_b);  // [n, 2I]
      const int64_t inter = gu.size(1) / 2;
      at::Tensor act = at::empty({n, inter}, opts);
      CheckCuda(LaunchSiluMul(gu.data_ptr(), act.data_ptr(), static_cast<int>(n), static_cast<int>(inter), bf16_, stream),
                "silu kernel");
      at::Tensor down = Linear(act, l.down_w, l.down_b);
      const at::Tensor& next = i + 1 < c.num_hidden_layers ? layers_[i + 1].in_norm : final_norm_;
      RmsNorm(x, &down, next, h, stream);
    }
    at::Tensor logits = at::linear(h, lm_head_);  // [n, V], model dtype (as eager: linear, then float)
    RunSample(logits, n, stream);
  }

  // Graphs go together with their memory pool (a pool outliving its graphs cannot be
  // captured into again).
  void DropGraphs() {
    graphs_.clear();
    pool_set_ = false;
  }

  void Capture(const GraphKey& key) {
    const int64_t n = key.first;
    Graph g;
    g.graph = std::make_unique<at::cuda::CUDAGraph>();
    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
    {
      c10::cuda::CUDAStreamGuard sg(side);
      if (pool_set_) {
        g.graph->capture_begin(pool_);
      } else {
        g.graph->capture_begin();
      }
      Body(n);
      g.graph->capture_end();
    }
    if (!pool_set_) {
      pool_ = g.graph->pool();
      pool_set_ = true;
    }
    g.ptrs = CachePointers();
    graphs_[key] = std::move(g);
    ++stats_.graphs_captured;
  }

  const Model& model_;
  KvCache* cache_;
  DeviceDecoderOptions options_;
  MetaLayout meta_;
  bool bf16_ = false;
  int64_t max_rows_ = 0;
  at::Tensor meta_host_, meta_dev_, result_dev_, result_host_, inv_freq_;
  at::Tensor embed_, final_norm_, lm_head_;
  std::vector<Layer> layers_;
  uint64_t weights_version_ = 0;
  std::map<GraphKey, Graph> graphs_;
  std::vector<bool> full_rings_;  // per layer, this step
  decltype(std::declval<at::cuda::CUDAGraph&>().pool()) pool_{0, 0};
  bool pool_set_ = false;
  at::cuda::CUDAEvent start_{cudaEventDefault}, done_{cudaEventDefault};
  DeviceDecoderStats stats_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceDecoder>> DeviceDecoder::Create(const Model& model, KvCache* cache,
                                                                     const DeviceDecoderOptions& options) {
  const ModelConfig& c = model.config();
  if (!model.device().is_cuda()) return absl::UnimplementedError("the device decoder runs on CUDA devices only");
  if (model.dtype() != at::kFloat && model.dtype() != at::kBFloat16) {
    return absl::UnimplementedError("the device decoder supports float32 and bfloat16 models");
  }
  if (c.head_dim > 256 || c.head_dim % 2 != 0) {
    return absl::UnimplementedError(absl::StrCat("the device decoder needs an even head_dim <= 256, got ", c.head_dim));
  }
  auto d = std::make_unique<CudaDeviceDecoder>(model, cache, options);
  absl::Status st = d->Init();
  if (!st.ok()) return st;
  return std::unique_ptr<DeviceDecoder>(std::move(d));
}

#endif  // SWARR_WITH_CUDA

}  // namespace swarr
