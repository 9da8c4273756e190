// GPU learner benchmark (issue: GPU learner; docs/gpu.md), run on the GPU machine by
// bench/gpu/learner_bench.sh in the same device run as ../shared/device/anchors.py (`attn
// fa2win`) and bench/gpu/hf_sft_anchor.py:
//   attn  SWARR's training attention (FlashAttention-2 varlen with the window, through
//         FlashVarlenSelfAttention) at B4 H16 T8192 D128 W1024 bf16: fwd and fwd+bwd; the band
//         path's fwd beside it
//   sft   a random Qwen2.5-1.5B-shaped model, all-SWA W=1024, bf16 weights + fp32 master
//         weights and AdamW: SftTrainer steps of 16,384 packed tokens (8 x 2,048), activation
//         checkpointing, chunked log-probs; tokens/s and peak GPU memory
//   rl    the same model: one RlTrainer step (old log-probs + PPO update) on 128 sequences of
//         256 + 1,792 tokens in micro-batches of 16,384 tokens; seconds and peak memory
// usage: gpu_learner_bench [--sections attn,sft,rl] [--json PATH] [--steps 4]
//          [--micro-tokens 16384] [--checkpoint 1] [--chunk 2048]
// Prints one JSON object per measurement (and appends them to --json).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/attention/attention.h"
#include "common/attention/flash_train.h"
#include "common/model/model.h"
#include "common/model/runtime.h"
#include "common/testing/test_models.h"
#include "learner/rl_trainer.h"
#include "learner/sft_trainer.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"

namespace swarr {
namespace {

using Clock = std::chrono::steady_clock;

void Emit(nlohmann::json j, const std::string& json_path) {
  std::cout << j.dump() << std::endl;
  if (!json_path.empty()) {
    std::ofstream f(json_path, std::ios::app);
    f << j.dump() << "\n";
  }
}

void Sync(const c10::Device& d) {
  if (d.is_cuda()) at::empty({1}, at::TensorOptions().device(d)).cpu();  // waits for the stream
}

// Median wall time of fn() over `iters` runs after `warm` runs, device-synchronised.
template <typename F>
double MedianMs(const c10::Device& d, F fn, int iters = 10, int warm = 3) {
  for (int i = 0; i < warm; ++i) fn();
  Sync(d);
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = Clock::now();
    fn();
    Sync(d);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double PeakGib(const std::string& device) {
  return static_cast<double>(QueryDeviceMemory(device).peak_allocated_bytes) / (1 << 30);
}

void AttnSection(const std::string& json) {
  const c10::Device d("cuda");
  const int64_t B = 4, H = 16, T = 8192, D = 128, W = 1024;
  AttentionSpec spec;
  spec.window = W;
  spec.scale = 1.0 / std::sqrt(static_cast<double>(D));
  const auto opts = at::TensorOptions().device(d).dtype(at::kBFloat16);
  at::Tensor q = at::randn({B * T, H, D}, opts).requires_grad_(true);
  at::Tensor k = at::randn({B * T, H, D}, opts).requires_grad_(true);
  at::Tensor v = at::randn({B * T, H, D}, opts).requires_grad_(true);
  at::Tensor cu = at::arange(0, B * T + 1, T, at::TensorOptions().device(d).dtype(at::kInt));
  at::Tensor go = at::randn({B * T, H, D}, opts);
  const double fwd = MedianMs(d, [&] {
    at::NoGradGuard no_grad;
    FlashVarlenSelfAttention(q, k, v, cu, T, spec);
  });
  const double fwdbwd = MedianMs(d, [&] {
    at::Tensor o = FlashVarlenSelfAttention(q, k, v, cu, T, spec);
    o.backward(go);
  });
  // The band path (the CPU's, and CUDA's before FlashAttention), forward only.
  at::Tensor qb = q.detach().view({B, T, H, D}).transpose(1, 2);
  at::Tensor kb = k.detach().view({B, T, H, D}).transpose(1, 2);
  at::Tensor vb = v.detach().view({B, T, H, D}).transpose(1, 2);
  const double band = MedianMs(d, [&] {
    at::NoGradGuard no_grad;
    BandAttention(qb, kb, vb, spec);
  }, 5, 1);
  // Values: FlashAttention-2 against the band path's float32 result on one sequence.
  at::NoGradGuard no_grad;
  const int64_t Ts = 2048;
  at::Tensor o = FlashVarlenSelfAttention(q.narrow(0, 0, Ts), k.narrow(0, 0, Ts), v.narrow(0, 0, Ts),
                                          at::tensor(std::vector<int32_t>{0, static_cast<int32_t>(Ts)}, at::kInt).to(d),
                                          Ts, spec);
  at::Tensor ref = BandAttention(qb.narrow(2, 0, Ts).narrow(0, 0, 1).to(at::kFloat),
                                 kb.narrow(2, 0, Ts).narrow(0, 0, 1).to(at::kFloat),
                                 vb.narrow(2, 0, Ts).narrow(0, 0, 1).to(at::kFloat), spec);
  const double err = (o.to(at::kFloat) - ref.squeeze(0).transpose(0, 1)).abs().max().item<double>();
  const double flops = 4.0 * B * H * T * W * D;
  Emit({{"section", "attn"},
        {"shape", "B4 H16 T8192 D128 W1024 bf16"},
        {"attn_fwd_ms", fwd},
        {"attn_fwdbwd_ms", fwdbwd},
        {"attn_fwd_TFLOPs", flops / (fwd / 1e3) / 1e12},
        {"band_fwd_ms", band},
        {"max_abs_err_vs_fp32_band", err}},
       json);
}

std::vector<int64_t> RandomIds(std::mt19937_64& rng, int64_t n, int64_t vocab) {
  std::vector<int64_t> ids(n);
  for (auto& x : ids) x = static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab - 1000)) + 100;
  return ids;
}

std::unique_ptr<Model> BigModel() {
  ModelOptions mo;
  mo.device = "cuda";
  mo.dtype = "bfloat16";
  auto model = Model::RandomInit(Qwen15bShape(1024), 7, mo);
  if (!model.ok()) {
    std::cerr << model.status() << "\n";
    std::exit(1);
  }
  for (auto& [name, p] : (*model)->named_parameters()) p.requires_grad_(true);
  return std::move(*model);
}

// --checkpoint: 0 = off, 1 = every layer, N > 1 = the first N layers.
ScoringOptions Scoring(const Args& args, int64_t ck) {
  ScoringOptions s;
  s.packed = true;
  s.chunk_tokens = std::stoll(args.Optional("chunk").value_or("2048"));
  s.checkpoint_layers = ck > 0;
  s.checkpoint_layer_count = ck > 1 ? ck : 0;
  return s;
}

void SftSection(Model* model, const Args& args, int64_t checkpoint, const std::string& json) {
  const std::string dev = "cuda";
  const int64_t micro = std::stoll(args.Optional("micro-tokens").value_or("16384"));
  const int64_t steps = std::stoll(args.Optional("steps").value_or("4"));
  std::mt19937_64 rng(1);
  std::vector<SftExample> data;
  for (int i = 0; i < 8 * (steps + 2); ++i) data.push_back({RandomIds(rng, 64, 151936), RandomIds(rng, 1984, 151936)});
  SftOptions o;
  o.micro_batch_tokens = micro;
  o.max_seq_len = 2048;
  o.schedule.lr = 1e-5;
  o.schedule.kind = "constant";
  o.scoring = Scoring(args, checkpoint);
  auto trainer = SftTrainer::Create(model, data, o);
  if (!trainer.ok()) {
    std::cerr << trainer.status() << "\n";
    std::exit(1);
  }
  ResetPeakDeviceMemory(dev);
  for (int i = 0; i < 2; ++i) {
    auto m = (*trainer)->Step();
    if (!m.ok()) {
      std::cerr << "SFT warm-up: " << m.status() << "\n";
      std::exit(1);
    }
  }
  Sync(model->device());
  int64_t tokens = 0;
  const auto t0 = Clock::now();
  double loss = 0;
  for (int64_t i = 0; i < steps; ++i) {
    auto m = (*trainer)->Step();
    if (!m.ok()) {
      std::cerr << "SFT: " << m.status() << "\n";
      std::exit(1);
    }
    tokens += m->padded_tokens;  // packed: every token of the micro-batch (prompt included)
    loss = m->loss;
  }
  Sync(model->device());
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  Emit({{"section", "sft"},
        {"model", "qwen2.5-1.5b shape, all-SWA W=1024, bf16 + fp32 master, AdamW"},
        {"micro_batch_tokens", micro},
        {"activation_checkpointing", o.scoring.checkpoint_layers},
        {"checkpointed_layers", o.scoring.checkpoint_layers ? (o.scoring.checkpoint_layer_count > 0 ? o.scoring.checkpoint_layer_count : 28) : 0},
        {"logprob_chunk_tokens", o.scoring.chunk_tokens},
        {"steps", steps},
        {"step_seconds", secs / static_cast<double>(steps)},
        {"sft_tokens_per_s", static_cast<double>(tokens) / secs},
        {"peak_gib_sft", PeakGib(dev)},
        {"last_loss", loss}},
       json);
}

void RlSection(Model* model, const Args& args, const std::string& json) {
  const std::string dev = "cuda";
  const int64_t micro = std::stoll(args.Optional("micro-tokens").value_or("16384"));
  RlOptions o;
  o.schedule.lr = 1e-6;
  o.schedule.kind = "constant";
  o.micro_batch_tokens = micro;
  o.scoring = Scoring(args, std::stoll(args.Optional("checkpoint").value_or("1")));
  o.dynamic_sampling = false;
  auto trainer = RlTrainer::Create(model, nullptr, o);
  if (!trainer.ok()) {
    std::cerr << trainer.status() << "\n";
    std::exit(1);
  }
  std::mt19937_64 rng(2);
  auto make_batch = [&](int64_t version) {
    std::vector<Trajectory> batch;
    for (int g = 0; g < 16; ++g) {
      const std::vector<int64_t> prompt = RandomIds(rng, 256, 151936);
      for (int s = 0; s < 8; ++s) {
        Trajectory t;
        t.id = absl::StrCat(version, "-", g, "-", s);
        t.group = absl::StrCat(g);
        t.prompt = prompt;
        t.completion = RandomIds(rng, 1792, 151936);
        t.behaviour_logprobs.assign(1792, -12.0f);
        t.reward = (s + g) % 3 == 0 ? 1.0 : 0.0;
        t.policy_version = version;
        batch.push_back(std::move(t));
      }
    }
    return batch;
  };
  ResetPeakDeviceMemory(dev);
  auto warm = (*trainer)->Step(make_batch(0));
  if (!warm.ok()) {
    std::cerr << "RL warm-up: " << warm.status() << "\n";
    std::exit(1);
  }
  std::vector<Trajectory> batch = make_batch((*trainer)->policy_version());
  Sync(model->device());
  const auto t0 = Clock::now();
  auto m = (*trainer)->Step(std::move(batch));
  Sync(model->device());
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!m.ok()) {
    std::cerr << "RL: " << m.status() << "\n";
    std::exit(1);
  }
  Emit({{"section", "rl"},
        {"sequences", 128},
        {"tokens_per_sequence", 2048},
        {"micro_batch_tokens", micro},
        {"activation_checkpointing", o.scoring.checkpoint_layers},
        {"rl_step_seconds", secs},
        {"rl_tokens_per_s", 128.0 * 2048 / secs},
        {"peak_gib_rl", PeakGib(dev)},
        {"updates", m->updates},
        {"loss", m->loss}},
       json);
}

}  // namespace
}  // namespace swarr

int main(int argc, char** argv) {
  using namespace swarr;
  auto args = Args::Parse(std::vector<std::string>(argv + 1, argv + argc),
                          {"sections", "json", "steps", "micro-tokens", "checkpoint", "sft-checkpoint", "chunk"}, {});
  if (!args.ok()) {
    std::cerr << args.status() << "\n";
    return 2;
  }
  if (!at::hasCUDA()) {
    std::cerr << "gpu_learner_bench: no CUDA device\n";
    return 1;
  }
  const std::string json = args->Optional("json").value_or("");
  const std::string sections = args->Optional("sections").value_or("attn,sft,rl");
  std::unique_ptr<Model> model;
  for (absl::string_view s : absl::StrSplit(sections, ',')) {
    if (s == "attn") {
      if (!FlashTrainAttentionBuilt()) {
        std::cerr << "gpu_learner_bench: this build has no FlashAttention training path\n";
        return 1;
      }
      AttnSection(json);
    } else if (s == "sft" || s == "rl") {
      if (!model) model = BigModel();
      if (s == "rl") {
        RlSection(model.get(), *args, json);
        continue;
      }
      // One SFT measurement per checkpointing setting (--sft-checkpoint 1,14,0); one that runs
      // out of memory is reported as such.
      const std::vector<int64_t> settings =
          args->Has("sft-checkpoint") ? args->IntList("sft-checkpoint").value_or(std::vector<int64_t>{1})
                                      : std::vector<int64_t>{1};
      for (int64_t ck : settings) {
        try {
          SftSection(model.get(), *args, ck, json);
        } catch (const c10::Error& e) {
          const std::string what = e.what_without_backtrace();
          Emit({{"section", "sft"}, {"checkpoint", ck}, {"error", what.substr(0, 300)}}, json);
        }
      }
    }
  }
  return 0;
}
