// Accuracy of a checkpoint on the demo task (common/math/window_task.h) under a given
// attention window, and the share of window-friendly completions: what the embedded SWARR
// experiment reports for SA, SWA-SFT and SWA-RL.
//
//   demo_eval --config configs/demo/eval.yaml [--model DIR] [--window W] [--sinks S]
//             [--n N] [--temperature T --seed S] [--device cpu|cuda] [--max-batch B]
//             [--out result.json] [--samples completions.jsonl]
//   demo_eval --distances [--task lagsum:...] [--window W] [--layers L]
//
// --config is an `eval` stage (its data: the held-out set, e.g. synthetic_task
// "lagsum:split=eval", synthetic_size problems from data.seed; its model: path and attention
// window; eval: greedy, max_new_tokens). --window 0 = the checkpoint's own attention
// (config.json), W > 0 = every layer slides with W. Greedy unless --temperature is given.
// Prints one JSON object (and writes it to --out): accuracy with its 95% Wilson interval,
// counts per style, window-friendly share, accuracy per style, and the math verifier's
// agreement with the task's checker.
//
// --distances prints the token-distance table of docs/demo-task.md for the task: per step,
// the SA-style far operand's distance (nearest copy and certified), and the largest distance
// of the window-friendly style, against the window and the L-layer receptive field.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "common/config/config_loader.h"
#include "common/math/prompt_set.h"
#include "common/math/verifier.h"
#include "common/math/window_task.h"
#include "common/model/generator.h"
#include "common/model/model.h"
#include "common/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"

namespace swarr {
namespace {

using window_task::Style;

std::pair<double, double> Wilson(int64_t k, int64_t n) {
  if (n == 0) return {0, 0};
  const double z = 1.959963984540054, p = static_cast<double>(k) / n, z2n = z * z / n;
  const double center = (p + z2n / 2) / (1 + z2n);
  const double half = z * std::sqrt(p * (1 - p) / n + z2n / (4.0 * n)) / (1 + z2n);
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

absl::Status Distances(const Args& args) {
  const std::string task = args.Optional("task").value_or("lagsum");
  SWARR_ASSIGN_OR_RETURN(window_task::LagSumSpec spec, window_task::ParseLagSumSpec(task));
  SWARR_ASSIGN_OR_RETURN(auto window, args.Int("window"));
  SWARR_ASSIGN_OR_RETURN(auto layers, args.Int("layers"));
  const int w = static_cast<int>(window.value_or(12)), l = static_cast<int>(layers.value_or(2));
  const int receptive = window_task::ReceptiveDistance(w, l);
  // Over many problems: per step, min / max of each distance.
  spec.split = window_task::Split::kAll;
  std::mt19937_64 rng(1);
  struct Range {
    int lo = 1 << 30, hi = 0;
    void Add(int v) { lo = std::min(lo, v), hi = std::max(hi, v); }
    std::string Str() const { return lo == hi ? std::to_string(lo) : absl::StrCat(lo, "-", hi); }
  };
  constexpr int kAnswer = 1000;
  std::map<int, Range> sa_copy, sa_cert, wf_max, sa_max;
  Range sa_len, wf_len;
  for (int i = 0; i < 2000; ++i) {
    const window_task::LagSumProblem p = window_task::DrawLagSumProblem(spec, rng);
    const std::vector<int> cert = window_task::SaCertifiedDistances(p);
    std::map<int, int> wf_step, sa_step, sa_b;
    // The final "A<answer>" as step kAnswer.
    auto key = [&](int step) { return step > p.steps ? kAnswer : step; };
    for (const auto& d : window_task::DependencyDistances(p, Style::kWindowFriendly)) {
      wf_step[key(d.step)] = std::max(wf_step[key(d.step)], d.distance);
    }
    const int start = static_cast<int>(p.prompt.size());
    for (const auto& d : window_task::DependencyDistances(p, Style::kSa)) {
      sa_step[key(d.step)] = std::max(sa_step[key(d.step)], d.distance);
      if (d.step <= p.steps && (d.position - start) % 8 == 4) sa_b[d.step] = d.distance;
    }
    for (const auto& [s, v] : wf_step) {
      wf_max[s].Add(v);
      sa_max[s].Add(sa_step[s]);
      if (s != kAnswer) {
        sa_copy[s].Add(sa_b[s]);
        sa_cert[s].Add(cert[static_cast<size_t>(s - 1)]);
      }
    }
    sa_len.Add(static_cast<int>(window_task::Solution(p, Style::kSa).size()));
    wf_len.Add(static_cast<int>(window_task::Solution(p, Style::kWindowFriendly).size()));
  }
  std::cout << "task " << task << ", window W = " << w << ", layers L = " << l
            << ": one layer sees " << w << " tokens back, L layers " << receptive << "\n\n";
  std::cout << "| step | SA far operand: nearest copy | SA: certified | SA step max | WF step max |\n";
  std::cout << "|---:|---:|---:|---:|---:|\n";
  for (const auto& [s, r] : wf_max) {
    const bool answer = s == kAnswer;
    std::cout << "| " << (answer ? std::string("answer") : std::to_string(s)) << " | "
              << (sa_copy.count(s) ? sa_copy[s].Str() : "-") << " | " << (sa_cert.count(s) ? sa_cert[s].Str() : "-")
              << " | " << sa_max[s].Str() << " | " << r.Str() << " |\n";
  }
  std::cout << "\nsolution length (characters = tokens, without <eos>): SA " << sa_len.Str() << ", window-friendly "
            << wf_len.Str() << "\n";
  return absl::OkStatus();
}

absl::Status Eval(const Args& args) {
  SWARR_ASSIGN_OR_RETURN(std::string config_path, args.Required("config"));
  v1::Stage stage;
  SWARR_RETURN_IF_ERROR(LoadYamlConfig(config_path, &stage));
  SWARR_RETURN_IF_ERROR(ValidateStage(stage));
  if (!stage.has_eval()) return absl::InvalidArgumentError(absl::StrCat(config_path, ": not an eval stage"));
  const std::string model_dir = args.Optional("model").value_or(stage.model().path());
  SWARR_ASSIGN_OR_RETURN(auto window, args.Int("window"));
  SWARR_ASSIGN_OR_RETURN(auto sinks, args.Int("sinks"));
  SWARR_ASSIGN_OR_RETURN(auto n_flag, args.Int("n"));
  SWARR_ASSIGN_OR_RETURN(auto temperature, args.Double("temperature"));
  SWARR_ASSIGN_OR_RETURN(auto seed, args.Int("seed"));
  SWARR_ASSIGN_OR_RETURN(auto max_batch, args.Int("max-batch"));
  SWARR_ASSIGN_OR_RETURN(auto threads, args.Int("threads"));
  if (threads) at::set_num_threads(static_cast<int>(*threads));

  v1::DataSpec data = stage.data();
  if (n_flag) data.set_synthetic_size(*n_flag);
  if (data.format() != "synthetic" || !window_task::IsLagSumTask(data.synthetic_task())) {
    return absl::InvalidArgumentError("data: demo_eval needs format synthetic with a lagsum task");
  }
  SWARR_ASSIGN_OR_RETURN(window_task::LagSumSpec spec, window_task::ParseLagSumSpec(data.synthetic_task()));
  SWARR_ASSIGN_OR_RETURN(auto prompts, PromptSet::Open(data, model_dir));

  ModelOptions opts;
  opts.device = args.Optional("device").value_or(stage.model().device().empty() ? "cpu" : stage.model().device());
  opts.dtype = stage.model().dtype();
  const int64_t w = window ? *window : stage.model().attention().window();
  if (w > 0) opts.conversion.window = w;
  const int64_t s = sinks ? *sinks : stage.model().attention().sinks();
  if (s > 0) opts.conversion.attention_sinks = s;
  SWARR_ASSIGN_OR_RETURN(auto model, Model::Load(model_dir, opts));

  const v1::EvalConfig& ec = stage.eval();
  int64_t n = prompts->size();
  if (ec.num_problems() > 0 && !n_flag) n = std::min(n, ec.num_problems());
  std::vector<GenerationRequest> requests;
  for (int64_t i = 0; i < n; ++i) {
    GenerationRequest r;
    r.prompt = prompts->At(i).ids;
    r.max_new_tokens = ec.max_new_tokens();
    r.stop_token_ids = prompts->stop_token_ids();
    if (temperature) {
      r.sampling.temperature = *temperature;
      r.sampling.seed = static_cast<uint64_t>(seed.value_or(0)) * 1000003 + static_cast<uint64_t>(i);
    } else {
      r.sampling.greedy = true;
    }
    requests.push_back(std::move(r));
  }
  GeneratorOptions gopts;
  gopts.max_batch = max_batch.value_or(128);
  Generator gen(*model, gopts);
  const auto t0 = std::chrono::steady_clock::now();
  SWARR_ASSIGN_OR_RETURN(auto results, gen.Generate(std::move(requests)));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  std::map<std::string, int64_t> styles, style_correct;
  int64_t correct = 0, agree = 0, tokens = 0;
  std::unique_ptr<std::ofstream> samples;
  if (auto path = args.Optional("samples")) samples = std::make_unique<std::ofstream>(*path);
  for (int64_t i = 0; i < n; ++i) {
    const GenerationResult& r = results[static_cast<size_t>(i)];
    std::vector<int64_t> completion(r.tokens.begin() + r.prompt_length, r.tokens.end());
    tokens += static_cast<int64_t>(completion.size());
    const std::string text = prompts->Decode(completion);
    const std::string& answer = prompts->At(i).answer;
    const bool ok = window_task::CheckAnswer(text, answer);
    const std::string style = window_task::StyleName(window_task::ClassifyStyle(text, spec.lag));
    correct += ok;
    agree += ok == Verify(text, answer).correct;
    ++styles[style];
    style_correct[style] += ok;
    if (samples) {
      *samples << nlohmann::json({{"prompt", prompts->Decode(prompts->At(i).ids)},
                                  {"completion", text},
                                  {"answer", answer},
                                  {"correct", ok},
                                  {"style", style}})
                      .dump()
               << "\n";
    }
  }
  const auto [lo, hi] = Wilson(correct, n);
  nlohmann::json out = {{"model", model_dir},
                        {"window", w},
                        {"sinks", s},
                        {"task", data.synthetic_task()},
                        {"n", n},
                        {"greedy", !temperature.has_value()},
                        {"correct", correct},
                        {"accuracy", n > 0 ? static_cast<double>(correct) / n : 0.0},
                        {"accuracy_ci95", {lo, hi}},
                        {"window_friendly_share",
                         n > 0 ? static_cast<double>(styles["window_friendly"]) / n : 0.0},
                        {"styles", styles},
                        {"correct_by_style", style_correct},
                        {"verifier_agreement", n > 0 ? static_cast<double>(agree) / n : 0.0},
                        {"completion_tokens", tokens},
                        {"seconds", secs}};
  if (temperature) out["temperature"] = *temperature;
  std::cout << out.dump() << std::endl;
  if (auto path = args.Optional("out")) std::ofstream(*path) << out.dump(1) << "\n";
  return absl::OkStatus();
}

absl::Status Main(const std::vector<std::string>& argv) {
  SWARR_ASSIGN_OR_RETURN(Args args, Args::Parse(argv,
                                                {"config", "model", "window", "sinks", "n", "temperature", "seed",
                                                 "device", "max-batch", "out", "samples", "task", "layers", "threads"},
                                                {"distances"}));
  if (args.Has("distances")) return Distances(args);
  return Eval(args);
}

}  // namespace
}  // namespace swarr

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  absl::Status st = swarr::Main(args);
  return st.ok() ? 0 : swarr::FailWithStatus(st);
}
