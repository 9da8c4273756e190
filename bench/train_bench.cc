// Training throughput: one forward + backward of next-token cross-entropy (what an SFT or RL
// update costs per sequence) for sliding-window attention (W = 128, band attention) against
// full attention, at sequence lengths 512 .. 4k, on the same small model in the same run.
//
// usage: train_bench [--window W] [--max-len N] [--reps R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "common/model/model.h"
#include "common/model/runtime.h"
#include "tools/args.h"

namespace swarr {
namespace {

ModelConfig BenchConfig(int64_t window) {
  ModelConfig c;
  c.model_type = "qwen2";
  c.vocab_size = 1024;
  c.hidden_size = 256;
  c.intermediate_size = 768;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 32;
  c.qkv_bias = true;
  c.layer_windows.assign(4, window);
  return c;
}

// Median milliseconds of one forward + backward over a [1, T] sequence.
double TimeStep(const Model& model, int64_t T, int reps) {
  at::Tensor ids = at::randint(3, 1024, {1, T}, at::kLong);
  std::vector<double> ms;
  for (int r = 0; r <= reps; ++r) {  // r = 0 warms up
    auto t0 = std::chrono::steady_clock::now();
    at::Tensor logits = model.Logits(ids);
    at::Tensor loss = at::cross_entropy_loss(logits.narrow(1, 0, T - 1).reshape({-1, 1024}),
                                             ids.narrow(1, 1, T - 1).reshape({-1}));
    loss.backward();
    for (auto& [name, p] : model.named_parameters()) p.mutable_grad() = at::Tensor();
    auto t1 = std::chrono::steady_clock::now();
    if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int Main(int argc, char** argv) {
  auto args = Args::Parse(std::vector<std::string>(argv + 1, argv + argc), {"window", "max-len", "reps"}, {});
  if (!args.ok()) {
    std::cerr << "train_bench: " << args.status().message() << "\n";
    return 2;
  }
  InitTorchRuntime();
  const int64_t window = args->Int("window")->value_or(128);
  const int64_t max_len = args->Int("max-len")->value_or(4096);
  const int reps = static_cast<int>(args->Int("reps")->value_or(3));
  auto swa = Model::RandomInit(BenchConfig(window), 7);
  auto full = Model::RandomInit(BenchConfig(0), 7);
  if (!swa.ok() || !full.ok()) return 1;
  for (auto* m : {&swa, &full}) {
    for (auto& [name, p] : (**m)->named_parameters()) p.requires_grad_(true);
  }
  std::printf("Forward + backward of next-token cross-entropy, batch 1, random qwen2-style model %.1fM parameters "
              "(4 layers, hidden 256, 8 heads, 2 KV heads, vocab 1024), float32, CPU, %d threads; median of %d\n\n",
              (*swa)->num_parameters() / 1e6, at::get_num_threads(), reps);
  std::printf("| T | SWA W=%lld ms | SWA tokens/s | full ms | full tokens/s | SWA ms / T (us) | full ms / T (us) |\n",
              static_cast<long long>(window));
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int64_t T = 512; T <= max_len; T *= 2) {
    const double s = TimeStep(**swa, T, reps), f = TimeStep(**full, T, reps);
    std::printf("| %lld | %.0f | %.0f | %.0f | %.0f | %.1f | %.1f |\n", static_cast<long long>(T), s, T * 1000.0 / s, f,
                T * 1000.0 / f, s * 1000.0 / T, f * 1000.0 / T);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace swarr

int main(int argc, char** argv) { return swarr::Main(argc, argv); }
