// Generation benchmark: tokens/s and KV-cache bytes per sequence at generated lengths
// 256, 1k, 4k, 16k for sliding-window attention (ring cache, W = 256) against full
// attention (growing cache), on the same random ~10M-parameter model in the same run.
//
// usage: generation_bench [--max-len N] [--window W] [--batch B] [--device cpu|cuda] [--dtype D]
// Prints a Markdown table (docs/benchmarks.md keeps a copy with the machine it ran on).
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "common/kv_cache/kv_cache.h"
#include "common/model/generator.h"
#include "common/model/model.h"
#include "common/model/runtime.h"
#include "tools/args.h"

namespace swarr {
namespace {

ModelConfig BenchConfig(int64_t window) {
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = 8192;
  c.hidden_size = 256;
  c.intermediate_size = 768;
  c.num_hidden_layers = 8;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 32;
  c.qkv_bias = true;
  c.layer_windows.assign(8, window);
  return c;
}

struct Row {
  double ms_per_step = 0;   // mean over the 64 steps before the mark
  int64_t kv_bytes = 0;     // KV bytes held per sequence at the mark
  int64_t allocated = 0;    // bytes the cache has allocated
};

std::map<int64_t, Row> Run(int64_t window, int64_t batch, const std::vector<int64_t>& marks,
                           const ModelOptions& options, int64_t* params) {
  auto model = Model::RandomInit(BenchConfig(window), 1234, options);
  if (!model.ok()) {
    std::cerr << model.status() << "\n";
    std::exit(1);
  }
  *params = (*model)->num_parameters();
  GeneratorOptions gopts;
  gopts.max_batch = batch;
  Generator gen(**model, gopts);
  const int64_t prompt_len = 16;
  for (int64_t b = 0; b < batch; ++b) {
    GenerationRequest req;
    for (int64_t i = 0; i < prompt_len; ++i) req.prompt.push_back(3 + (i * 31 + b) % 8000);
    req.max_new_tokens = marks.back() - prompt_len + 2;  // still running at the last mark
    req.sampling.temperature = 1.0;
    req.sampling.seed = b;
    (void)gen.Submit(req);
  }
  std::map<int64_t, Row> rows;
  std::vector<double> step_ms;
  size_t next = 0;
  while (next < marks.size() && !gen.idle()) {
    auto t0 = std::chrono::steady_clock::now();
    auto finished = gen.Step();
    auto t1 = std::chrono::steady_clock::now();
    if (!finished.ok()) {
      std::cerr << finished.status() << "\n";
      std::exit(1);
    }
    step_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    // Tokens in the cache of the first sequence (slot 0) after this step.
    if (gen.cache().length(0) + 1 >= marks[next]) {
      Row r;
      const size_t n = std::min<size_t>(64, step_ms.size() - 1);  // skip the prefill step
      for (size_t i = step_ms.size() - n; i < step_ms.size(); ++i) r.ms_per_step += step_ms[i] / n;
      r.kv_bytes = gen.cache().BytesInUse() / batch;
      r.allocated = gen.cache().AllocatedBytes();
      rows[marks[next++]] = r;
      std::fprintf(stderr, "\r  %s: %lld tokens", window ? "SWA " : "full", static_cast<long long>(marks[next - 1]));
    }
  }
  std::fprintf(stderr, "\n");
  return rows;
}

// float32 matmul speed of this LibTorch: reveals a missing OpenBLAS (reference BLAS is ~30x slower).
double MatmulGflops() {
  at::Tensor a = at::randn({1024, 1024});
  at::mm(a, a);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) at::mm(a, a);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 5;
  return 2.0 * 1024 * 1024 * 1024 / s / 1e9;
}

std::string Bytes(int64_t b) {
  char buf[32];
  if (b >= (1 << 20)) {
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / 1048576.0);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  }
  return buf;
}

int Main(int argc, char** argv) {
  auto args = Args::Parse(std::vector<std::string>(argv + 1, argv + argc),
                          {"max-len", "window", "batch", "device", "dtype"}, {});
  if (!args.ok()) {
    std::cerr << "generation_bench: " << args.status().message() << "\n";
    return 2;
  }
  InitTorchRuntime();
  const int64_t max_len = args->Int("max-len")->value_or(16384);
  const int64_t window = args->Int("window")->value_or(256);
  const int64_t batch = args->Int("batch")->value_or(1);
  ModelOptions options;
  options.device = args->Optional("device").value_or("cpu");
  options.dtype = args->Optional("dtype").value_or("");
  std::vector<int64_t> marks;
  for (int64_t m : {256, 1024, 4096, 16384}) {
    if (m <= max_len) marks.push_back(m);
  }
  int64_t params = 0;
  std::fprintf(stderr, "generation_bench: batch %lld, device %s, %d threads\n", static_cast<long long>(batch),
               options.device.c_str(), at::get_num_threads());
  auto swa = Run(window, batch, marks, options, &params);
  auto full = Run(0, batch, marks, options, &params);
  std::printf("Random qwen2-style model, %.1fM parameters (8 layers, hidden 256, 8 heads, 2 KV heads), "
              "batch %lld, %s, LibTorch %s, %d threads, 1024^2 float32 matmul %.0f GFLOP/s\n\n",
              params / 1e6, static_cast<long long>(batch), options.device.c_str(), TORCH_VERSION,
              at::get_num_threads(), MatmulGflops());
  std::printf("| generated length | SWA W=%lld tokens/s | full tokens/s | SWA ms/step | full ms/step | "
              "SWA KV bytes/seq | full KV bytes/seq | SWA cache allocated | full cache allocated |\n",
              static_cast<long long>(window));
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int64_t m : marks) {
    const Row& s = swa[m];
    const Row& f = full[m];
    std::printf("| %lld | %.0f | %.0f | %.2f | %.2f | %s | %s | %s | %s |\n", static_cast<long long>(m),
                batch * 1000.0 / s.ms_per_step, batch * 1000.0 / f.ms_per_step, s.ms_per_step, f.ms_per_step,
                Bytes(s.kv_bytes).c_str(), Bytes(f.kv_bytes).c_str(), Bytes(s.allocated).c_str(),
                Bytes(f.allocated).c_str());
  }
  return 0;
}

}  // namespace
}  // namespace swarr

int main(int argc, char** argv) { return swarr::Main(argc, argv); }
