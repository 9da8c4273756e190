// The outputs of a finished eval stage (docs/coordinator.md "Eval"): from every problem's
// results, stages/<stage>/samples.jsonl (one line per problem: its samples, correct or not, who
// generated them with which version), the one line of stages/<stage>/metrics.jsonl (accuracy,
// mean reward, greedy / sampled accuracy and pass@k with 95% intervals, eval_stats.h) and the
// metrics the stage's record and summary.json keep. Pure: no files, no locks, no torch.
#ifndef SWARR_COORDINATOR_EVAL_REPORT_H_
#define SWARR_COORDINATOR_EVAL_REPORT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "coordinator/eval_stats.h"
#include "coordinator/state.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

// One eval problem and what was generated for it.
struct EvalRow {
  int64_t problem = 0;
  std::string id, answer;     // the prompt's id and reference answer
  EvalProblemRecord result;   // group `problem`: the greedy answer (or the samples without greedy)
  bool has_sampled = false;
  EvalProblemRecord sampled;  // group layout.problems + problem: eval.sampled samples
};

struct EvalReport {
  std::string samples_jsonl;  // one JSON line per row, in row order
  std::string metrics_jsonl;  // one JSON line
  double accuracy = 0;        // problems with a correct (reward >= 0.5) answer / problems
  std::map<std::string, double> stage_metrics;
};

// `rows`: every problem of `layout`, in order. `policy_version`: the learner's latest version
// when the stage ended (reported in metrics.jsonl).
EvalReport BuildEvalReport(const std::string& stage_name, const v1::EvalConfig& eval, const EvalLayout& layout,
                           const std::vector<EvalRow>& rows, int64_t policy_version);

}  // namespace swarr

#endif  // SWARR_COORDINATOR_EVAL_REPORT_H_
