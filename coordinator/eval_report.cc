#include "coordinator/eval_report.h"

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace swarr {

using nlohmann::json;

EvalReport BuildEvalReport(const std::string& stage_name, const v1::EvalConfig& e, const EvalLayout& layout,
                           const std::vector<EvalRow>& rows, int64_t version) {
  int64_t correct = 0, samples = 0;
  double reward_sum = 0;
  std::string samples_text;
  std::vector<EvalProblemOutcome> outcomes;
  auto sample_json = [](const EvalSampleRecord& smp) {
    return json{{"text", smp.text}, {"reward", smp.reward}, {"stopped", smp.stopped}, {"tokens", smp.tokens}};
  };
  for (const EvalRow& row : rows) {
    bool any = false;
    int64_t right = 0;
    json out_samples = json::array();
    for (const EvalSampleRecord& smp : row.result.samples) {
      any = any || smp.reward >= 0.5;
      right += smp.reward >= 0.5 ? 1 : 0;
      reward_sum += smp.reward;
      ++samples;
      out_samples.push_back(sample_json(smp));
    }
    correct += any ? 1 : 0;
    EvalProblemOutcome o;
    if (layout.greedy) {
      o.has_greedy = true;
      o.greedy_correct = any;
    } else {
      o.n = static_cast<int64_t>(row.result.samples.size());
      o.c = right;
    }
    json line = {{"problem", row.problem},     {"id", row.id},
                 {"answer", row.answer},       {"correct", any},
                 {"samples", out_samples},     {"group_id", row.result.group_id},
                 {"worker_id", row.result.worker_id}, {"policy_version", row.result.policy_version}};
    if (row.has_sampled) {
      json sampled = json::array();
      int64_t c = 0;
      for (const EvalSampleRecord& smp : row.sampled.samples) {
        c += smp.reward >= 0.5 ? 1 : 0;
        sampled.push_back(sample_json(smp));
      }
      o.n = static_cast<int64_t>(row.sampled.samples.size());
      o.c = c;
      line["sampled"] = std::move(sampled);
      line["sampled_correct"] = c;
      line["sampled_group_id"] = row.sampled.group_id;
    }
    outcomes.push_back(o);
    samples_text += line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  const double n = static_cast<double>(rows.size());
  const double accuracy = rows.empty() ? 0.0 : static_cast<double>(correct) / n;
  const double mean_reward = samples == 0 ? 0.0 : reward_sum / static_cast<double>(samples);
  std::vector<int64_t> ks = {1, 8};
  const int64_t drawn = layout.greedy ? layout.sampled : layout.first_samples;
  if (drawn != 1 && drawn != 8) ks.push_back(drawn);
  const EvalSummary sum = SummarizeEval(outcomes, ks);
  json metrics_line = {{"stage", stage_name},
                       {"accuracy", accuracy},
                       {"mean_reward", mean_reward},
                       {"n", rows.size()},
                       {"samples_per_problem", layout.first_samples},
                       {"greedy", e.greedy()},
                       {"policy_version", version}};
  std::map<std::string, double> stage_metrics = {{"accuracy", accuracy}, {"mean_reward", mean_reward}, {"n", n}};
  if (sum.greedy_n > 0) {
    metrics_line["greedy_accuracy"] = sum.greedy_accuracy;
    metrics_line["greedy_ci95"] = {sum.greedy_ci95.first, sum.greedy_ci95.second};
    metrics_line["greedy_n"] = sum.greedy_n;
    stage_metrics["greedy_accuracy"] = sum.greedy_accuracy;
  }
  if (sum.sampled_n > 0) {
    metrics_line["sampled_accuracy"] = sum.sampled_accuracy;
    metrics_line["sampled_ci95"] = {sum.sampled_ci95.first, sum.sampled_ci95.second};
    metrics_line["sampled_n"] = sum.sampled_n;
    metrics_line["sampled_per_problem"] = sum.samples;
    metrics_line["temperature"] = e.has_temperature() ? e.temperature() : 1.0;
    stage_metrics["sampled_accuracy"] = sum.sampled_accuracy;
    for (const EvalSummary::PassAt& pa : sum.pass_at) {
      metrics_line[absl::StrCat("pass_at_", pa.k)] = pa.value;
      metrics_line[absl::StrCat("pass_at_", pa.k, "_ci95")] = {pa.ci95.first, pa.ci95.second};
      stage_metrics[absl::StrCat("pass_at_", pa.k)] = pa.value;
    }
  }
  metrics_line["ci_method"] =
      "greedy: Wilson score; sampled accuracy and pass@k: percentile bootstrap over problems, 2000 resamples";
  EvalReport report;
  report.samples_jsonl = std::move(samples_text);
  report.metrics_jsonl = metrics_line.dump() + "\n";
  report.accuracy = accuracy;
  report.stage_metrics = std::move(stage_metrics);
  return report;
}

}  // namespace swarr
