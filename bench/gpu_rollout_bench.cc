// GPU rollout benchmark (docs/gpu.md): SWARR's Generator on a real-size model, the same
// measurement as HF `generate` in ../shared/device/anchors.py (`hfgen`): batch B of random
// prompts of P tokens, N sampled new tokens each (EOS ignored), tokens/s = B*N / wall time
// of the whole generation (prefill included), after one warm-up generation at the same
// batch size. Also the decode-attention kernel alone over a full window (GB/s of K/V read).
//
// usage: gpu_rollout_bench [--model DIR | --shape qwen2.5-1.5b] [--batches 1,32,128,256]
//          [--prompt 256] [--new 512,2048] [--top-k 50] [--window 1024] [--graphs 1]
//          [--kernel-only 0] [--tag NAME] [--json PATH]
// Prints one JSON object per measurement (and appends them to --json).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/version.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/attention/attention.h"
#include "common/attention/ring_decode_op.h"
#include "common/model/device_decoder.h"
#include "common/model/generator.h"
#include "common/model/model.h"
#include "common/testing/test_models.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"

#ifdef SWARR_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace swarr {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<int64_t> ParseList(const std::string& s) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipEmpty())) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(part, &v)) {
      std::cerr << "bad number in list: " << s << "\n";
      std::exit(2);
    }
    out.push_back(v);
  }
  return out;
}

void Emit(nlohmann::json j, const std::string& json_path) {
  std::cout << j.dump() << std::endl;
  if (!json_path.empty()) {
    std::ofstream f(json_path, std::ios::app);
    f << j.dump() << "\n";
  }
}

#ifdef SWARR_WITH_CUDA
// The decode kernel alone: one query per sequence over a full window of W slots.
void KernelBench(int64_t B, int64_t H, int64_t Hkv, int64_t D, int64_t W, const std::string& json_path) {
  auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  at::Tensor k = at::randn({B, W, Hkv, D}, opts), v = at::randn({B, W, Hkv, D}, opts);
  at::Tensor q = at::randn({B, H, 1, D}, opts);
  at::Tensor q_pos = at::full({B, 1}, 5 * W, at::TensorOptions().device(at::kCUDA).dtype(at::kLong));
  at::Tensor k_pos = (at::arange(W, q_pos.options()) + 4 * W + 1).view({1, W}).expand({B, W}).contiguous();
  AttentionSpec spec{W, 0, 1.0 / std::sqrt(static_cast<double>(D))};
  // What would close the gap to the copy bandwidth (issue 11): the same window read through
  // FlashAttention-2 with a head-major cache ([B, Hkv, W, D], as SDPA is given it) and through
  // at::scaled_dot_product_attention itself (GQA), next to the cache layout SWARR uses.
  at::Tensor kh = k.permute({0, 2, 1, 3}).contiguous(), vh = v.permute({0, 2, 1, 3}).contiguous();
  for (const int impl : {0, 1, 2, 3, 4}) {
  const bool flash = impl > 0;
  if (flash && !FlashDecodeSupported(q, k, spec)) continue;
  int sdpa_backend = -2;
#if TORCH_VERSION_MAJOR >= 2
  if (impl == 4) {
    sdpa_backend = static_cast<int>(at::_fused_sdp_choice(q, kh, vh, c10::nullopt, 0.0, false, spec.scale, true));
  }
#endif
  auto run = [&]() -> at::Tensor {
#if TORCH_VERSION_MAJOR >= 2
    if (impl == 3) {  // head-major cache, viewed as [B, W, Hkv, D]
      auto r = at::_flash_attention_forward(q.reshape({B, 1, H, D}), kh.transpose(1, 2), vh.transpose(1, 2), c10::nullopt,
                                            c10::nullopt, 1, W, 0.0, false, false, spec.scale, c10::nullopt, c10::nullopt,
                                            c10::nullopt, c10::nullopt);
      return std::get<0>(r);
    }
    if (impl == 4) return at::scaled_dot_product_attention(q, kh, vh, c10::nullopt, 0.0, false, spec.scale, true);
#endif
    return flash ? FlashRingDecodeAttention(q, k, v, q_pos, spec, /*all_full=*/impl == 2)
                 : RingDecodeAttention(q, k, v, q_pos, k_pos, spec);
  };
  for (int i = 0; i < 5; ++i) run();
  at::cuda::CUDAEvent a(cudaEventDefault), b(cudaEventDefault);
  std::vector<double> ms;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  for (int i = 0; i < 50; ++i) {
    a.record(stream);
    run();
    b.record(stream);
    b.synchronize();
    ms.push_back(a.elapsed_time(b));
  }
  std::sort(ms.begin(), ms.end());
  const double t = ms[ms.size() / 2] / 1e3;
  const double bytes = 2.0 * B * W * Hkv * D * 2;
  nlohmann::json j;
  j["kind"] = "decode_kernel";
  static const char* kImpl[] = {"swarr_split", "flash2_varlen", "flash2_dense", "flash2_dense_headmajor", "sdpa_headmajor"};
  j["impl"] = kImpl[impl];
  if (impl == 4) j["sdpa_backend"] = sdpa_backend;  // at::_fused_sdp_choice: 1 flash, 2 efficient, 3 cudnn
  j["B"] = B;
  j["H"] = H;
  j["Hkv"] = Hkv;
  j["D"] = D;
  j["W"] = W;
  j["ms"] = t * 1e3;
  j["GBps"] = bytes / t / 1e9;
  Emit(j, json_path);
  }
}
#endif

void GenBench(const Model& model, const std::string& tag, int64_t batch, int64_t prompt, int64_t new_tokens,
              int64_t top_k, bool graphs, bool flash, const std::string& json_path) {
  GeneratorOptions go;
  go.max_batch = batch;
  go.cuda_graphs = graphs;
  go.flash_decode = flash;
  go.prefill_chunk = std::max<int64_t>(256, prompt);
  Generator gen(model, go);
  std::mt19937_64 rng(batch * 7919 + new_tokens);
  const int64_t vocab = model.config().vocab_size;
  auto make = [&](int64_t n_new) {
    std::vector<GenerationRequest> reqs(batch);
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t t = 0; t < prompt; ++t) reqs[b].prompt.push_back(3 + static_cast<int64_t>(rng() % (vocab - 4)));
      reqs[b].max_new_tokens = n_new;
      reqs[b].sampling.temperature = 1.0;
      reqs[b].sampling.top_k = top_k;
      reqs[b].sampling.seed = static_cast<uint64_t>(b);
    }
    return reqs;
  };
  // Warm-up at the same batch size (captures the graphs of the buckets it passes).
  auto warm = gen.Generate(make(16));
  if (!warm.ok()) {
    std::cerr << "warm-up: " << warm.status() << "\n";
    std::exit(1);
  }
  const DeviceDecoderStats before = gen.device_decoder() ? gen.device_decoder()->stats() : DeviceDecoderStats{};
  std::vector<GenerationRequest> reqs = make(new_tokens);
  for (auto& r : reqs) {
    if (!gen.Submit(std::move(r)).ok()) std::exit(1);
  }
  const auto t0 = Clock::now();
  double first_step = 0;
  int64_t steps = 0, done = 0;
  while (done < batch) {
    auto fin = gen.Step();
    if (!fin.ok()) {
      std::cerr << "step: " << fin.status() << "\n";
      std::exit(1);
    }
    done += static_cast<int64_t>(fin->size());
    ++steps;
    if (steps == 1) first_step = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  nlohmann::json j;
  j["kind"] = "generate";
  j["model"] = tag;
  j["batch"] = batch;
  j["prompt"] = prompt;
  j["new_tokens"] = new_tokens;
  j["top_k"] = top_k;
  j["cuda_graphs"] = graphs;
  j["flash_decode"] = flash;
  j["device_path"] = gen.device_decoder() != nullptr;
  j["wall_s"] = wall;
  j["tok_s"] = static_cast<double>(batch * new_tokens) / wall;
  j["ms_per_step"] = wall / static_cast<double>(new_tokens) * 1e3;
  j["steps"] = steps;
  j["first_step_s"] = first_step;
  if (gen.device_decoder()) {
    const DeviceDecoderStats after = gen.device_decoder()->stats();
    const double dev_ms = after.device_ms - before.device_ms;
    j["graph_replays"] = after.graph_replays - before.graph_replays;
    j["eager_steps"] = after.eager_steps - before.eager_steps;
    j["decode_device_ms_per_step"] = dev_ms / std::max<int64_t>(1, after.graph_replays + after.eager_steps -
                                                                        before.graph_replays - before.eager_steps);
    j["gpu_busy_pct_decode"] = 100.0 * dev_ms / 1e3 / std::max(1e-9, wall - first_step);
  }
  Emit(j, json_path);
}

int Main(int argc, char** argv) {
  auto args = Args::Parse(std::vector<std::string>(argv + 1, argv + argc),
                          {"model", "shape", "batches", "prompt", "new", "top-k", "window", "graphs", "kernel-only", "tag", "flash",
                           "json"},
                          {});
  if (!args.ok()) {
    std::cerr << args.status() << "\n";
    return 2;
  }
  const std::string json_path = args->Optional("json").value_or("");
  const std::string tag = args->Optional("tag").value_or("model");
  const int64_t prompt = std::stoll(args->Optional("prompt").value_or("256"));
  const int64_t top_k = std::stoll(args->Optional("top-k").value_or("50"));
  const int64_t window = std::stoll(args->Optional("window").value_or("1024"));
  const bool graphs = args->Optional("graphs").value_or("1") != "0";
  const bool flash = args->Optional("flash").value_or("1") != "0";
  const std::vector<int64_t> batches = ParseList(args->Optional("batches").value_or("1,32,128,256"));
  const std::vector<int64_t> news = ParseList(args->Optional("new").value_or("512,2048"));
#ifdef SWARR_WITH_CUDA
  if (args->Optional("kernel-only").value_or("0") != "0") {
    for (int64_t B : {64, 128}) {
      KernelBench(B, 14, 2, 64, 4096, json_path);   // Qwen2-0.5B heads
      KernelBench(B, 28, 4, 128, 4096, json_path);  // Qwen2.5-7B heads
    }
    KernelBench(64, 32, 8, 128, 4096, json_path);   // the anchors' second decode shape
    return 0;
  }
#endif
  ModelOptions mo;
  mo.device = "cuda";
  mo.dtype = "bfloat16";
  std::unique_ptr<Model> model;
  if (auto dir = args->Optional("model")) {
    auto m = Model::Load(*dir, mo);
    if (!m.ok()) {
      std::cerr << m.status() << "\n";
      return 2;
    }
    model = std::move(*m);
  } else {
    auto m = Model::RandomInit(Qwen15bShape(window), 1, mo);
    if (!m.ok()) {
      std::cerr << m.status() << "\n";
      return 2;
    }
    model = std::move(*m);
  }
  std::cerr << tag << ": " << model->num_parameters() << " parameters\n";
  for (int64_t n : news) {
    for (int64_t b : batches) GenBench(*model, tag, b, prompt, n, top_k, graphs, flash, json_path);
  }
  return 0;
}

}  // namespace
}  // namespace swarr

int main(int argc, char** argv) { return swarr::Main(argc, argv); }
