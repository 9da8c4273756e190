// Band attention against the plain O(T^2) reference: forward + backward time and peak
// memory growth for sequence lengths 1k..16k at a fixed window (default W = 256).
// Each measurement runs in a fresh child process (this binary re-executed with --one) so
// its peak resident memory is its own.
//
// usage: attention_bench [--window W] [--max-len N] [--ref-max-len N]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/autograd.h>

#include "common/attention/attention.h"
#include "common/model/runtime.h"
#include "tools/args.h"

namespace swarr {
namespace {

long MaxRssKb() {
  rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// One forward + backward; prints "<ms> <peak growth KiB>".
int One(const std::string& impl, int64_t T, int64_t window) {
  const int64_t B = 1, H = 8, Hkv = 2, D = 32;
  at::manual_seed(0);
  at::Tensor q = at::randn({B, H, T, D}).requires_grad_();
  at::Tensor k = at::randn({B, Hkv, T, D}).requires_grad_();
  at::Tensor v = at::randn({B, Hkv, T, D}).requires_grad_();
  AttentionSpec spec{window, 0, 1.0 / std::sqrt(static_cast<double>(D))};
  const long before = MaxRssKb();
  auto t0 = std::chrono::steady_clock::now();
  at::Tensor out = impl == "band" ? BandAttention(q, k, v, spec) : ReferenceSelfAttention(q, k, v, spec);
  torch::autograd::grad({out.sum()}, {q, k, v});
  auto t1 = std::chrono::steady_clock::now();
  std::printf("%.1f %ld\n", std::chrono::duration<double, std::milli>(t1 - t0).count(), MaxRssKb() - before);
  return 0;
}

std::string Measure(const char* self, const std::string& impl, int64_t T, int64_t window) {
  std::string cmd = std::string(self) + " --one " + impl + " --len " + std::to_string(T) + " --window " +
                    std::to_string(window);
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return "error";
  double ms = 0;
  long kb = 0;
  const int n = std::fscanf(p, "%lf %ld", &ms, &kb);
  pclose(p);
  if (n != 2) return "error | error";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.0f | %.0f", ms, kb / 1024.0);
  return buf;
}

int Main(int argc, char** argv) {
  auto args = Args::Parse(std::vector<std::string>(argv + 1, argv + argc),
                          {"one", "len", "window", "max-len", "ref-max-len"}, {});
  if (!args.ok()) {
    std::cerr << "attention_bench: " << args.status().message() << "\n";
    return 2;
  }
  InitTorchRuntime();
  const int64_t window = args->Int("window")->value_or(256);
  if (auto impl = args->Optional("one")) return One(*impl, args->Int("len")->value_or(1024), window);
  const int64_t max_len = args->Int("max-len")->value_or(16384);
  const int64_t ref_max = args->Int("ref-max-len")->value_or(8192);
  std::printf("Attention forward+backward, B=1, 8 query heads, 2 KV heads, head_dim 32, float32, CPU, "
              "%d threads; window %lld\n\n", at::get_num_threads(), static_cast<long long>(window));
  std::printf("| T | band ms | band peak MiB | reference ms | reference peak MiB |\n|---:|---:|---:|---:|---:|\n");
  for (int64_t T = 1024; T <= max_len; T *= 2) {
    std::string band = Measure(argv[0], "band", T, window);
    std::string ref = T <= ref_max ? Measure(argv[0], "reference", T, window) : "(skipped) | (skipped)";
    std::printf("| %lld | %s | %s |\n", static_cast<long long>(T), band.c_str(), ref.c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace swarr

int main(int argc, char** argv) { return swarr::Main(argc, argv); }
