// Coordinator: eval results (ReportEval) and their aggregation into the eval stage's outputs
// (coordinator.h "Eval results").
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "coordinator/coordinator.h"
#include "coordinator/eval_report.h"
#include "coordinator/eval_stats.h"
#include "coordinator/group_id.h"
#include "coordinator/internal.h"
#include "coordinator/request_checks.h"

namespace swarr {


void Coordinator::MaybeFinishEval(int32_t stage) {
  const v1::Stage& s = options_.pipeline.stages(stage);
  const v1::EvalConfig& e = s.eval();
  std::vector<EvalRow> rows;
  int64_t version = 0;
  EvalLayout layout;
  {
    absl::MutexLock l(&mu_);
    if (state_.stage_index != stage || prepared_stage_ != stage || !prompts_) return;
    layout = MakeEvalLayout(e, eval_problems_);
    int64_t have = 0;
    for (const auto& [group, r] : state_.eval_results) have += group < layout.groups() ? 1 : 0;
    if (have < layout.groups()) return;  // keys are distinct: every group 0 .. groups-1 answered
    for (int64_t p = 0; p < layout.problems; ++p) {
      EvalRow row{p, prompts_->At(p).id, prompts_->At(p).answer, state_.eval_results.at(p)};
      if (p < layout.sampled_problems) {
        row.has_sampled = true;
        row.sampled = state_.eval_results.at(layout.problems + p);
      }
      rows.push_back(std::move(row));
    }
    version = learner_.latest().version();
  }
  const EvalReport report = BuildEvalReport(s.name(), e, layout, rows, version);
  const std::string dir = absl::StrCat(options_.run_dir, "/stages/", s.name());
  absl::Status w = MakeDirs(dir);
  if (w.ok()) w = WriteFileAtomically(dir + "/samples.jsonl", {report.samples_jsonl});
  if (w.ok()) w = WriteFileAtomically(dir + "/metrics.jsonl", {report.metrics_jsonl});
  if (!w.ok()) {
    FailPipeline(stage, std::string(w.message()));
    return;
  }
  {
    absl::MutexLock l(&mu_);
    if (state_.stage_index != stage) return;
    metrics_->eval_accuracy.Add({{"stage", s.name()}}).Set(report.accuracy);
    CompleteStageLocked(stage, 0, report.stage_metrics);
  }
  PersistIfDue(true);
}

absl::Status Coordinator::ReportEval(const v1::ReportEvalRequest& req) {
  SWARR_RETURN_IF_ERROR(CheckReportEvalRequest(req));
  const std::string& id = req.group_id();
  const std::string unknown = absl::StrCat("group_id: unknown group '", id, "'");
  absl::MutexLock l(&mu_);
  if (stopping_) return absl::UnavailableError("the coordinator is shutting down");
  GroupIdParts parts;
  if (!ParseGroupId(id, &parts) || !KnownIncarnationLocked(parts.incarnation)) return absl::InvalidArgumentError(unknown);
  int32_t stage = -1;
  for (int32_t i = 0; i < options_.pipeline.stages_size(); ++i) {
    if (options_.pipeline.stages(i).name() == parts.stage) stage = i;
  }
  if (stage < 0) return absl::InvalidArgumentError(unknown);
  if (!options_.pipeline.stages(stage).has_eval()) {
    return absl::InvalidArgumentError(absl::StrCat("group_id: '", id, "' is not an eval group"));
  }
  if (parts.incarnation == incarnation_ && groups_.count(id) == 0 && !finished_ids_.Contains(id)) {
    return absl::InvalidArgumentError(unknown);
  }
  if (stage < state_.stage_index) return absl::OkStatus();  // a finished eval stage: already counted
  if (stage > state_.stage_index) return absl::InvalidArgumentError(unknown);
  if (prepared_stage_ != stage || !prompts_) return absl::UnavailableError("the eval stage is not ready yet; retry");
  const v1::EvalConfig& e = options_.pipeline.stages(stage).eval();
  const EvalLayout layout = MakeEvalLayout(e, eval_problems_);
  if (parts.n >= layout.groups()) return absl::InvalidArgumentError(unknown);
  const int64_t expected = layout.Samples(parts.n);
  if (req.samples_size() != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("samples: group '", id, "' has ", expected, " samples, got ", req.samples_size()));
  }
  for (int i = 0; i < req.samples_size(); ++i) {
    for (int j = 0; j < req.samples(i).completion_ids_size(); ++j) {
      if (req.samples(i).completion_ids(j) >= prompts_->vocab_size()) {
        return absl::InvalidArgumentError(absl::StrCat("samples[", i, "].completion_ids[", j, "]: token id ",
                                                       req.samples(i).completion_ids(j),
                                                       " outside the vocabulary (", prompts_->vocab_size(), ")"));
      }
    }
  }
  auto wit = workers_.find(req.worker_id());
  Worker* reporter = wit == workers_.end() ? nullptr : &wit->second;
  if (state_.eval_results.count(parts.n) == 0) {
    EvalProblemRecord r;
    r.group_id = id;
    r.worker_id = req.worker_id();
    r.policy_version = req.version().version();
    for (const v1::EvalSample& s : req.samples()) {
      r.samples.push_back({s.completion_text(), s.reward(), s.stopped(), s.completion_ids_size()});
    }
    state_.eval_results[parts.n] = std::move(r);
    MarkDirtyLocked(true);
    // The problem is answered: a copy of it still waiting in the queue is not needed.
    const std::string ours = GroupId(parts.stage, incarnation_, parts.n);
    auto git = groups_.find(ours);
    if (ours != id && git != groups_.end() && git->second.worker.empty()) {
      auto p = std::find(pending_.begin(), pending_.end(), ours);
      if (p != pending_.end()) pending_.erase(p);
      groups_.erase(git);
    }
  }
  FinishGroupLocked(id, reporter);
  return absl::OkStatus();
}

}  // namespace swarr
