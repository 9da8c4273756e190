// `swarr demo`: the embedded SWARR experiment (docs/demo.md). It runs the pipeline of
// configs/demo/ through the real services (coordinator, learner, 2 rollout servers on
// loopback): evaluate the committed SA model, convert it to a sliding window by SFT, evaluate,
// adapt it with RL under the window, evaluate — then writes DIR/results.json and DIR/report.md
// (table with 95% intervals, SVG plots, sample solutions before and after RL).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/config/config_loader.h"
#include "common/kv_cache/kv_cache.h"
#include "common/math/prompt_set.h"
#include "common/math/synthetic.h"
#include "common/math/window_task.h"
#include "common/model/config.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/launch.h"
#include "tools/svg_plot.h"

namespace swarr {
namespace {

constexpr char kUsage[] =
    "usage: swarr demo [--quick] [--from-scratch] [--seed S] [--device cpu|cuda] [--run-dir DIR]\n"
    "                  [--rollouts N (2)] [--configs DIR (configs/demo)]\n"
    "  the whole recipe through the services: SA model -> SWA by SFT -> RL, each evaluated;\n"
    "  DIR/results.json, DIR/report.md (default DIR: runs/demo-seed<S>)\n"
    "  --quick         the shortened schedule (demo_quick.yaml, about 2 minutes on 2 cores)\n"
    "  --from-scratch  pretrain the SA model first (sa_pretrain.yaml; hours on a CPU, minutes on a GPU)\n"
    "  --device cuda   the GPU configuration (demo_cuda.yaml) on the GPU machine\n";

// configs/demo of this checkout: --configs, else beside the source tree the binary was built
// from, else under the working directory.
absl::StatusOr<std::string> FindDemoDir(const std::optional<std::string>& flag) {
  std::vector<std::string> candidates;
  if (flag) {
    candidates.push_back(*flag);
  } else {
    candidates = {std::string(SWARR_SOURCE_DIR) + "/configs/demo", "configs/demo"};
  }
  for (const std::string& dir : candidates) {
    if (ReadFile(dir + "/demo.yaml").ok()) return dir;
  }
  return absl::NotFoundError(absl::StrCat("--configs: no demo.yaml in ", absl::StrJoin(candidates, " or ")));
}

std::string Absolute(const std::string& path, const std::string& root) {
  if (path.empty() || path[0] == '/') return path;
  return root + "/" + path;
}

double WilsonHalf(double p, int64_t n, double* lo, double* hi) {
  if (n <= 0) {
    *lo = 0;
    *hi = 1;
    return 0.5;
  }
  const double z = 1.96, nn = static_cast<double>(n);
  const double denom = 1 + z * z / nn;
  const double centre = (p + z * z / (2 * nn)) / denom;
  const double half = z * std::sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / denom;
  *lo = std::max(0.0, centre - half);
  *hi = std::min(1.0, centre + half);
  return half;
}

std::vector<nlohmann::json> JsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  auto text = ReadFile(path);
  if (!text.ok()) return out;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipWhitespace())) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

struct EvalResult {
  std::string stage;
  double accuracy = 0, lo = 0, hi = 0;  // greedy accuracy, Wilson 95% interval
  int64_t n = 0;
  double wf_share = 0;  // share of greedy solutions written window-friendly
  std::vector<nlohmann::json> samples;
  // Sampled answers (eval.sampled), from the stage's metrics.jsonl; absent without them.
  bool has_sampled = false;
  int64_t sampled_n = 0, sampled_k = 0;
  double temperature = 0;
  double sampled_acc = 0, pass1 = 0, pass8 = 0;
  std::pair<double, double> sampled_ci{0, 1}, pass1_ci{0, 1}, pass8_ci{0, 1};
  bool has_pass8 = false;
  double sampled_wf_share = 0;  // share of sampled solutions written window-friendly
};

std::pair<double, double> Interval(const nlohmann::json& m, const std::string& key) {
  if (!m.contains(key) || !m[key].is_array() || m[key].size() != 2) return {0, 1};
  return {m[key][0].get<double>(), m[key][1].get<double>()};
}

absl::StatusOr<EvalResult> ReadEval(const std::string& run_dir, const std::string& stage, int lag) {
  EvalResult r;
  r.stage = stage;
  const auto metrics = JsonLines(run_dir + "/stages/" + stage + "/metrics.jsonl");
  if (metrics.empty()) return absl::InternalError(absl::StrCat("no metrics for eval stage ", stage));
  const nlohmann::json& m = metrics.back();
  r.accuracy = m.value("greedy_accuracy", m.value("accuracy", 0.0));
  r.n = m.value("greedy_n", m.value("n", int64_t{0}));
  WilsonHalf(r.accuracy, r.n, &r.lo, &r.hi);
  if (m.contains("sampled_accuracy")) {
    r.has_sampled = true;
    r.sampled_n = m.value("sampled_n", int64_t{0});
    r.sampled_k = m.value("sampled_per_problem", int64_t{0});
    r.temperature = m.value("temperature", 1.0);
    r.sampled_acc = m.value("sampled_accuracy", 0.0);
    r.sampled_ci = Interval(m, "sampled_ci95");
    r.pass1 = m.value("pass_at_1", 0.0);
    r.pass1_ci = Interval(m, "pass_at_1_ci95");
    r.has_pass8 = m.contains("pass_at_8");
    r.pass8 = m.value("pass_at_8", 0.0);
    r.pass8_ci = Interval(m, "pass_at_8_ci95");
  }
  r.samples = JsonLines(run_dir + "/stages/" + stage + "/samples.jsonl");
  int64_t wf = 0, total = 0, swf = 0, stotal = 0;
  for (const auto& s : r.samples) {
    for (const auto& sample : s["samples"]) {
      wf += window_task::IsWindowFriendly(sample.value("text", ""), lag);
      ++total;
    }
    if (s.contains("sampled")) {
      for (const auto& sample : s["sampled"]) {
        swf += window_task::IsWindowFriendly(sample.value("text", ""), lag);
        ++stotal;
      }
    }
  }
  r.wf_share = total > 0 ? static_cast<double>(wf) / static_cast<double>(total) : 0;
  r.sampled_wf_share = stotal > 0 ? static_cast<double>(swf) / static_cast<double>(stotal) : 0;
  return r;
}

// Bytes of KV cache one sequence of `length` tokens holds under `config` (the real cache's
// accounting: W slots per sliding layer, one per token per full layer).
int64_t KvBytes(const ModelConfig& config, int64_t length) {
  KvCacheOptions opts;
  opts.max_seqs = 1;
  KvCache cache(config, opts);
  auto seq = cache.Allocate();
  if (!seq.ok()) return 0;
  cache.Advance({*seq}, length);
  return cache.BytesForSeq(*seq);
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  return WriteFileAtomically(path, {text});
}

// What the demo found, as results.json, report.md and plots/.
absl::Status WriteReport(const std::string& run_dir, const v1::PipelineConfig& pipeline, const std::string& sa_model,
                         uint64_t seed, double wall_seconds, nlohmann::json* results_out) {
  std::vector<std::string> evals;
  std::string rl_stage;
  int64_t window = 0;
  const v1::Stage* eval_stage = nullptr;
  for (const v1::Stage& s : pipeline.stages()) {
    if (s.has_eval()) {
      evals.push_back(s.name());
      eval_stage = &s;
    }
    if (s.has_rl()) {
      rl_stage = s.name();
      window = s.model().attention().window();
    }
  }
  if (evals.size() != 3 || rl_stage.empty() || eval_stage == nullptr) {
    return absl::InvalidArgumentError("the demo pipeline needs three eval stages and an rl stage");
  }
  SWARR_ASSIGN_OR_RETURN(window_task::LagSumSpec spec,
                         window_task::ParseLagSumSpec(eval_stage->data().synthetic_task()));
  SWARR_ASSIGN_OR_RETURN(EvalResult sa, ReadEval(run_dir, evals[0], spec.lag));
  SWARR_ASSIGN_OR_RETURN(EvalResult sft, ReadEval(run_dir, evals[1], spec.lag));
  SWARR_ASSIGN_OR_RETURN(EvalResult rl, ReadEval(run_dir, evals[2], spec.lag));

  // KV memory per sequence: the SA model and the same model with the window.
  SWARR_ASSIGN_OR_RETURN(ModelConfig sa_config, LoadModelConfig(sa_model));
  ModelConfig swa_config = sa_config;
  ConversionSettings conv;
  conv.window = window;
  SWARR_RETURN_IF_ERROR(ApplyConversion(conv, &swa_config));
  const int64_t eval_len = 16 + eval_stage->eval().max_new_tokens();  // prompt (<= 16) + completion
  const int64_t kv_sa = KvBytes(sa_config, eval_len), kv_swa = KvBytes(swa_config, eval_len);

  // RL curves: reward per step; window-friendly share of the trained trajectories per step.
  const auto rl_lines = JsonLines(run_dir + "/stages/" + rl_stage + "/metrics.jsonl");
  // metrics.jsonl and trajectories.jsonl count optimizer steps (epochs x minibatches per RL
  // step); the plots count RL steps (batches): line i of metrics.jsonl is RL step i + 1.
  PlotSeries reward{"mean reward of sampled solutions (RL prompts)", {}, false, false};
  std::map<int64_t, int64_t> rl_step_of;  // optimizer step -> RL step
  for (const auto& l : rl_lines) {
    const int64_t rl_step = static_cast<int64_t>(reward.points.size()) + 1;
    rl_step_of[l.value("step", int64_t{0})] = rl_step;
    reward.points.push_back({static_cast<double>(rl_step), l.value("reward_mean", 0.0)});
  }
  const double last_step = rl_lines.empty() ? 1 : static_cast<double>(rl_lines.size());
  std::map<int64_t, std::pair<int64_t, int64_t>> wf_by_step;  // RL step -> (window-friendly, all)
  int64_t rl_samples = 0;  // trajectories of the RL steps that updated (trajectories.jsonl)
  for (const auto& t : JsonLines(run_dir + "/stages/" + rl_stage + "/trajectories.jsonl")) {
    ++rl_samples;
    std::vector<int64_t> ids = t.value("completion_ids", std::vector<int64_t>());
    auto it = rl_step_of.find(t.value("step", int64_t{0}));
    auto& [wf, all] = wf_by_step[it == rl_step_of.end() ? 0 : it->second];
    wf += window_task::IsWindowFriendly(CharVocab::Decode(ids), spec.lag);
    ++all;
  }
  PlotSeries wf_series{"window-friendly share of RL trajectories", {}, false, false};
  for (const auto& [step, c] : wf_by_step) {
    wf_series.points.push_back({static_cast<double>(step), static_cast<double>(c.first) / static_cast<double>(c.second)});
  }
  PlotSeries greedy{"greedy accuracy, held-out set (SWA-SFT at 0, SWA-RL at the end)",
                    {{0, sft.accuracy}, {last_step, rl.accuracy}}, true, false, /*line=*/false};
  PlotSeries sa_line{"SA model, greedy accuracy", {{0, sa.accuracy}, {last_step, sa.accuracy}}, false, true};

  SWARR_RETURN_IF_ERROR(MakeDirs(run_dir + "/plots"));
  LinePlot p1;
  p1.title = "RL under the window: reward and accuracy";
  p1.x_label = "RL step";
  p1.y_label = "accuracy / reward";
  p1.series = {reward, greedy, sa_line};
  p1.x_lo = 0;
  p1.x_hi = last_step;
  p1.y_lo = 0;
  p1.y_hi = 1;
  SWARR_RETURN_IF_ERROR(WriteText(run_dir + "/plots/rl_reward_accuracy.svg", RenderSvg(p1)));
  LinePlot p2;
  p2.title = "Share of window-friendly solutions during RL";
  p2.x_label = "RL step";
  p2.y_label = "share";
  wf_series.markers = wf_series.points.size() < 30;
  p2.series = {wf_series,
               PlotSeries{"greedy, held-out set", {{0, sft.wf_share}, {last_step, rl.wf_share}}, true, false, false}};
  p2.x_lo = 0;
  p2.x_hi = last_step;
  p2.y_lo = 0;
  p2.y_hi = 1;
  SWARR_RETURN_IF_ERROR(WriteText(run_dir + "/plots/window_friendly_share.svg", RenderSvg(p2)));
  LinePlot p3;
  p3.title = absl::StrCat("KV cache per sequence (", sa_config.num_hidden_layers, " layers, W = ", window, ")");
  p3.x_label = "sequence length (tokens)";
  p3.y_label = "bytes";
  p3.log_x = true;
  p3.log_y = true;
  PlotSeries kv_sa_s{"SA (full attention)", {}, true, false}, kv_swa_s{absl::StrCat("SWA, window ", window), {}, true, false};
  for (int64_t len = 16; len <= 16384; len *= 2) {
    kv_sa_s.points.push_back({static_cast<double>(len), static_cast<double>(KvBytes(sa_config, len))});
    kv_swa_s.points.push_back({static_cast<double>(len), static_cast<double>(KvBytes(swa_config, len))});
  }
  p3.series = {kv_sa_s, kv_swa_s};
  SWARR_RETURN_IF_ERROR(WriteText(run_dir + "/plots/kv_memory.svg", RenderSvg(p3)));

  double clip_mean = 0, clip_max = 0;
  for (const auto& l : rl_lines) {
    clip_mean += l.value("clip_frac", 0.0) / static_cast<double>(rl_lines.size());
    clip_max = std::max(clip_max, l.value("clip_frac", 0.0));
  }
  nlohmann::json results = {{"sa_acc", sa.accuracy},
                            {"swa_sft_acc", sft.accuracy},
                            {"swa_rl_acc", rl.accuracy},
                            {"sa_acc_ci95", {sa.lo, sa.hi}},
                            {"swa_sft_acc_ci95", {sft.lo, sft.hi}},
                            {"swa_rl_acc_ci95", {rl.lo, rl.hi}},
                            {"window", window},
                            {"seed", seed},
                            {"eval_n", rl.n},
                            {"window_friendly_share_before_rl", sft.wf_share},
                            {"window_friendly_share_after_rl", rl.wf_share},
                            {"kv_bytes_per_seq_sa", kv_sa},
                            {"kv_bytes_per_seq_swa", kv_swa},
                            {"kv_length", eval_len},
                            {"rl_steps", static_cast<int64_t>(rl_lines.size())},
                            {"rl_optimizer_steps", rl_lines.empty() ? int64_t{0} : rl_lines.back().value("step", int64_t{0})},
                            {"rl_samples", rl_samples},
                            {"rl_clip_frac_mean", clip_mean},
                            {"rl_clip_frac_max", clip_max},
                            {"wall_seconds", wall_seconds}};
  // Sampled accuracy and pass@k per model (eval.sampled), null where a stage drew no samples.
  auto ci_json = [](const std::pair<double, double>& ci) { return nlohmann::json::array({ci.first, ci.second}); };
  for (const auto& [prefix, e] : {std::pair<const char*, const EvalResult*>{"sa", &sa}, {"swa_sft", &sft}, {"swa_rl", &rl}}) {
    const std::string p = prefix;
    if (!e->has_sampled) {
      for (const char* k : {"_sampled_acc", "_pass_at_1", "_pass_at_8"}) results[p + k] = nullptr;
      continue;
    }
    results[p + "_sampled_acc"] = e->sampled_acc;
    results[p + "_sampled_acc_ci95"] = ci_json(e->sampled_ci);
    results[p + "_pass_at_1"] = e->pass1;
    results[p + "_pass_at_1_ci95"] = ci_json(e->pass1_ci);
    results[p + "_pass_at_8"] = e->has_pass8 ? nlohmann::json(e->pass8) : nlohmann::json(nullptr);
    if (e->has_pass8) results[p + "_pass_at_8_ci95"] = ci_json(e->pass8_ci);
    results[p + "_sampled_window_friendly_share"] = e->sampled_wf_share;
  }
  if (rl.has_sampled) {
    results["eval_sampled_n"] = rl.sampled_n;
    results["eval_samples_per_problem"] = rl.sampled_k;
    results["eval_temperature"] = rl.temperature;
  }
  results["ci_method"] =
      "greedy: Wilson score 95%; sampled accuracy and pass@k (unbiased estimator): percentile bootstrap over "
      "problems, 2000 resamples, 95%";
  const double gap = sa.accuracy - sft.accuracy;
  results["criterion_met"] = gap >= 0.20 && (rl.accuracy - sft.accuracy) >= 0.5 * gap;
  SWARR_RETURN_IF_ERROR(WriteText(run_dir + "/results.json", results.dump(2) + "\n"));

  // report.md
  std::string md = absl::StrCat("# SWARR demo — seed ", seed, "\n\n",
                                "The committed SA model (full attention) was converted to a ", window,
                                "-token sliding window by SFT on SA-style solutions, then adapted with RL on its "
                                "own trajectories under the window. Every stage ran through the services "
                                "(coordinator, learner, rollout servers) on this machine in ",
                                absl::StrFormat("%.0f", wall_seconds), " s.\n\n");
  absl::StrAppend(&md, "| model | greedy accuracy | 95% interval | window-friendly solutions | KV bytes / sequence (", eval_len,
                  " tokens) |\n|---|---|---|---|---|\n");
  auto row = [&](const char* name, const EvalResult& e, int64_t kv) {
    absl::StrAppendFormat(&md, "| %s | %.3f | [%.3f, %.3f] | %.2f | %d |\n", name, e.accuracy, e.lo, e.hi, e.wf_share, kv);
  };
  row("SA (full attention)", sa, kv_sa);
  row(absl::StrCat("SWA after SFT (W = ", window, ")").c_str(), sft, kv_swa);
  row(absl::StrCat("SWA after RL (W = ", window, ")").c_str(), rl, kv_swa);
  if (rl.has_sampled) {
    absl::StrAppendFormat(&md,
                          "\n### Sampled answers: %d samples per problem at temperature %.2f (the RL temperature), "
                          "first %d problems\n\n| model | sampled accuracy (= pass@1) [95%%] | pass@8 [95%%] | "
                          "window-friendly samples |\n|---|---|---|---|\n",
                          rl.sampled_k, rl.temperature, rl.sampled_n);
    auto srow = [&](const std::string& name, const EvalResult& e) {
      if (!e.has_sampled) {
        absl::StrAppend(&md, "| ", name, " | — | — | — |\n");
        return;
      }
      absl::StrAppendFormat(&md, "| %s | %.3f [%.3f, %.3f] | %s | %.2f |\n", name, e.sampled_acc, e.sampled_ci.first,
                            e.sampled_ci.second,
                            e.has_pass8 ? absl::StrFormat("%.3f [%.3f, %.3f]", e.pass8, e.pass8_ci.first, e.pass8_ci.second)
                                        : std::string("—"),
                            e.sampled_wf_share);
    };
    srow("SA (full attention)", sa);
    srow(absl::StrCat("SWA after SFT (W = ", window, ")"), sft);
    srow(absl::StrCat("SWA after RL (W = ", window, ")"), rl);
    absl::StrAppend(&md,
                    "\nGreedy intervals: Wilson score. Sampled accuracy and pass@k (unbiased estimator, "
                    "1 − C(n−c, k)/C(n, k) per problem): percentile bootstrap over problems (2000 resamples), "
                    "since a problem's samples are not independent.\n");
  }
  absl::StrAppendFormat(&md,
                        "\n%d held-out problems (never in training data). SA − SWA-SFT = %.1f points; RL "
                        "recovered %.1f of them (%.0f%% of the gap). The demo's criterion (gap ≥ 20 points, "
                        "at least half recovered): **%s**.\n\n",
                        rl.n, 100 * gap, 100 * (rl.accuracy - sft.accuracy),
                        gap > 0 ? 100 * (rl.accuracy - sft.accuracy) / gap : 0.0,
                        results["criterion_met"].get<bool>() ? "met" : "not met");
  absl::StrAppendFormat(&md,
                        "RL: %d steps that updated the policy (%d sampled solutions in their batches; a "
                        "batch whose groups were all uniform updates nothing) and %d optimizer steps (PPO "
                        "epochs x minibatches); share of clipped tokens per step: mean %.4f, largest %.4f.\n\n",
                        static_cast<int64_t>(rl_lines.size()), rl_samples, results["rl_optimizer_steps"].get<int64_t>(),
                        clip_mean, clip_max);
  absl::StrAppend(&md, "![reward and accuracy over RL steps](plots/rl_reward_accuracy.svg)\n\n",
                  "![share of window-friendly solutions over RL steps](plots/window_friendly_share.svg)\n\n",
                  "![KV memory per sequence against length](plots/kv_memory.svg)\n\n");
  // Sample solutions of the same problems before and after RL.
  absl::StrAppend(&md, "## Sample solutions (held-out problems, greedy)\n\n",
                  "SA-style steps `c:a+b=s` read an operand written 5 steps earlier — beyond the window; "
                  "window-friendly steps `c:<5 digits>=s` restate what the next step needs.\n\n");
  auto prompts = PromptSet::Open(eval_stage->data(), sa_model);
  std::map<int64_t, const nlohmann::json*> after;
  for (const auto& s : rl.samples) after[s.value("problem", int64_t{-1})] = &s;
  int shown = 0;
  for (const auto& s : sft.samples) {
    if (shown == 4) break;
    const int64_t problem = s.value("problem", int64_t{-1});
    auto it = after.find(problem);
    if (it == after.end() || s["samples"].empty() || (*it->second)["samples"].empty()) continue;
    std::string prompt = "?";
    if (prompts.ok() && problem >= 0 && problem < (*prompts)->size()) {
      prompt = (*prompts)->Decode((*prompts)->At(problem).ids);
    }
    auto show = [&](const nlohmann::json& sample, bool correct) {
      const std::string text = sample.value("text", "");
      return absl::StrCat("`", text, "` — ", window_task::StyleName(window_task::ClassifyStyle(text, spec.lag)), ", ",
                          correct ? "correct" : "wrong");
    };
    absl::StrAppend(&md, "- problem `", prompt, "` (answer ", s.value("answer", ""), ")\n",
                    "  - before RL: ", show(s["samples"][0], s.value("correct", false)), "\n",
                    "  - after RL:  ", show((*it->second)["samples"][0], it->second->value("correct", false)), "\n");
    ++shown;
  }
  absl::StrAppend(&md, "\nFiles: `results.json`, every stage's `stages/<name>/metrics.jsonl` and eval ",
                  "`samples.jsonl`, the services' logs in `logs/`, `summary.json`.\n");
  SWARR_RETURN_IF_ERROR(WriteText(run_dir + "/report.md", md));
  *results_out = results;
  return absl::OkStatus();
}

// The terminal's lines for sampled accuracy and pass@8 ("" without sampled answers).
std::string SampledLines(const nlohmann::json& results) {
  if (!results.contains("eval_samples_per_problem")) return "";
  std::string out = absl::StrFormat("%d samples per problem at temperature %.2f, first %d problems:\n",
                                    results["eval_samples_per_problem"].get<int64_t>(),
                                    results["eval_temperature"].get<double>(), results["eval_sampled_n"].get<int64_t>());
  absl::StrAppendFormat(&out, "%-28s %9s  %-14s %9s  %s\n", "model", "sampled", "95% interval", "pass@8", "95% interval");
  for (const auto& [prefix, name] : {std::pair<const char*, const char*>{"sa", "SA (full attention)"},
                                     {"swa_sft", "SWA after SFT"}, {"swa_rl", "SWA after RL"}}) {
    const std::string p = prefix;
    if (!results[p + "_sampled_acc"].is_number()) continue;
    const auto& ci = results[p + "_sampled_acc_ci95"];
    std::string pass8 = "-", pass8_ci;
    if (results[p + "_pass_at_8"].is_number()) {
      pass8 = absl::StrFormat("%.3f", results[p + "_pass_at_8"].get<double>());
      pass8_ci = absl::StrFormat("[%.2f, %.2f]", results[p + "_pass_at_8_ci95"][0].get<double>(),
                                 results[p + "_pass_at_8_ci95"][1].get<double>());
    }
    absl::StrAppendFormat(&out, "%-28s %9.3f  %-14s %9s  %s\n", name, results[p + "_sampled_acc"].get<double>(),
                          absl::StrFormat("[%.2f, %.2f]", ci[0].get<double>(), ci[1].get<double>()), pass8, pass8_ci);
  }
  return out;
}

}  // namespace

int RunDemo(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv, {"seed", "device", "run-dir", "rollouts", "configs"}, {"quick", "from-scratch", "help"});
  if (!args.ok()) return FailWithStatus(args.status());
  if (args->Has("help")) {
    std::cout << kUsage;
    return 0;
  }
  auto seed_flag = args->Int("seed");
  if (!seed_flag.ok()) return FailWithStatus(seed_flag.status());
  const int64_t seed = seed_flag->value_or(0);
  if (seed < 0) return FailWithStatus(absl::InvalidArgumentError("--seed must be >= 0"));
  const std::string device = args->Optional("device").value_or("cpu");
  if (device != "cpu" && device != "cuda") {
    return FailWithStatus(absl::InvalidArgumentError(absl::StrCat("--device must be cpu or cuda, got ", device)));
  }
  auto rollouts = args->Int("rollouts");
  if (!rollouts.ok()) return FailWithStatus(rollouts.status());
  auto demo_dir = FindDemoDir(args->Optional("configs"));
  if (!demo_dir.ok()) return FailWithStatus(demo_dir.status());
  const std::string root = *demo_dir + "/../..";
  const bool quick = args->Has("quick"), from_scratch = args->Has("from-scratch");
  std::string run_dir = args->Optional("run-dir").value_or(absl::StrCat("runs/demo-seed", seed, quick ? "-quick" : ""));
  if (run_dir[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) run_dir = absl::StrCat(cwd, "/", run_dir);
  }

  std::string file = quick ? "demo_quick.yaml" : "demo.yaml";
  if (device == "cuda" && ReadFile(*demo_dir + "/demo_cuda.yaml").ok()) file = quick ? file : "demo_cuda.yaml";
  v1::PipelineConfig pipeline;
  if (absl::Status s = LoadYamlConfig(*demo_dir + "/" + file, &pipeline); !s.ok()) return FailWithStatus(s);
  if (from_scratch) {
    v1::Stage pretrain;
    if (absl::Status s = LoadYamlConfig(*demo_dir + "/sa_pretrain.yaml", &pretrain); !s.ok()) return FailWithStatus(s);
    pretrain.set_name("sa_pretrain");
    // The SA evaluation and everything after start from the freshly pretrained model.
    pipeline.mutable_stages(0)->mutable_model()->clear_path();
    pipeline.mutable_stages()->Add(std::move(pretrain));
    std::rotate(pipeline.mutable_stages()->rbegin(), pipeline.mutable_stages()->rbegin() + 1,
                pipeline.mutable_stages()->rend());
  }
  std::string sa_model;
  for (v1::Stage& s : *pipeline.mutable_stages()) {
    if (s.has_train() || s.has_rl()) {
      if (!(from_scratch && s.name() == "sa_pretrain")) {
        s.set_seed(static_cast<uint64_t>(seed));
        s.mutable_data()->set_seed(static_cast<uint64_t>(seed));
      }
    }
    s.mutable_model()->set_device(device);
    if (!s.model().path().empty()) {
      s.mutable_model()->set_path(Absolute(s.model().path(), root));
      if (sa_model.empty()) sa_model = s.model().path();
    }
    if (!s.data().path().empty()) s.mutable_data()->set_path(Absolute(s.data().path(), root));
    if (!s.data().tokenizer().empty()) s.mutable_data()->set_tokenizer(Absolute(s.data().tokenizer(), root));
  }
  if (absl::Status s = ValidatePipeline(pipeline); !s.ok()) return FailWithStatus(s);
  if (absl::Status s = MakeDirs(run_dir); !s.ok()) return FailWithStatus(s);
  // YAML is a superset of JSON: the resolved pipeline, readable by `swarr launch` as is.
  std::string json;
  google::protobuf::util::JsonPrintOptions jopts;
  jopts.preserve_proto_field_names = true;
  jopts.add_whitespace = true;
  (void)google::protobuf::util::MessageToJsonString(pipeline, &json, jopts);
  const std::string config_path = run_dir + "/pipeline.yaml";
  if (absl::Status s = WriteText(config_path, json); !s.ok()) return FailWithStatus(s);

  std::cerr << "swarr demo: " << (quick ? "quick " : "") << "seed " << seed << " on " << device << "; "
            << pipeline.stages_size() << " stages (" << file << (from_scratch ? " + pretraining" : "")
            << "); run directory " << run_dir << "\n";
  LaunchOptions opts;
  opts.config_path = config_path;
  opts.run_dir = run_dir;
  opts.rollouts = static_cast<int>(rollouts->value_or(2));
  opts.echo_logs = false;
  if (device == "cuda") opts.rollout_devices = "cuda";
  const auto start = std::chrono::steady_clock::now();
  const int rc = LaunchPipeline(opts);
  if (rc != 0) {
    std::cerr << "swarr demo: the pipeline did not finish (status " << rc << "); logs in " << run_dir << "/logs\n";
    return rc;
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  nlohmann::json results;
  if (absl::Status s = WriteReport(run_dir, pipeline, sa_model.empty() ? run_dir + "/learner/sa_pretrain/final" : sa_model,
                                   static_cast<uint64_t>(seed), wall, &results);
      !s.ok()) {
    std::cerr << "swarr demo: report: " << s << "\n";
    return 1;
  }
  auto ci = [&](const char* key) {
    return absl::StrFormat("[%.2f, %.2f]", results[key][0].get<double>(), results[key][1].get<double>());
  };
  std::cout << "\n"
            << absl::StrFormat("%-28s %9s  %-14s %s\n", "model", "accuracy", "95% interval", "window-friendly")
            << absl::StrFormat("%-28s %9.3f  %-14s %s\n", "SA (full attention)", results["sa_acc"].get<double>(),
                               ci("sa_acc_ci95"), "")
            << absl::StrFormat("%-28s %9.3f  %-14s %.2f\n",
                               absl::StrCat("SWA after SFT (W=", results["window"].get<int64_t>(), ")"),
                               results["swa_sft_acc"].get<double>(), ci("swa_sft_acc_ci95"),
                               results["window_friendly_share_before_rl"].get<double>())
            << absl::StrFormat("%-28s %9.3f  %-14s %.2f\n",
                               absl::StrCat("SWA after RL (W=", results["window"].get<int64_t>(), ")"),
                               results["swa_rl_acc"].get<double>(), ci("swa_rl_acc_ci95"),
                               results["window_friendly_share_after_rl"].get<double>())
            << SampledLines(results)
            << absl::StrFormat("KV cache per sequence at %d tokens: SA %d bytes, SWA %d bytes\n",
                               results["kv_length"].get<int64_t>(), results["kv_bytes_per_seq_sa"].get<int64_t>(),
                               results["kv_bytes_per_seq_swa"].get<int64_t>())
            << absl::StrFormat("wall time %.0f s; report: %s/report.md\n", wall, run_dir);
  return 0;
}

}  // namespace swarr
