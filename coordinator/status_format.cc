#include "coordinator/status_format.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace swarr {
namespace {

std::string StateName(v1::WorkerStatus::State s) {
  switch (s) {
    case v1::WorkerStatus::ALIVE:
      return "alive";
    case v1::WorkerStatus::DRAINING:
      return "draining";
    case v1::WorkerStatus::DEAD:
      return "dead";
    case v1::WorkerStatus::UNHEALTHY:
      return "unhealthy";
    default:
      return "?";
  }
}

std::string Version(const v1::WeightVersion& v) {
  if (v.learner_incarnation().empty()) return v.version() == 0 ? "-" : absl::StrCat(v.version());
  return absl::StrCat(v.version(), " (", v.learner_incarnation(), ")");
}

// Columns padded to their widest cell.
std::string Table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    width.resize(std::max(width.size(), row.size()), 0);
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line = "  ";
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string FormatPipelineStatus(const v1::PipelineStatus& s) {
  std::string out = absl::StrCat("pipeline ", s.pipeline(), "  (coordinator ", s.incarnation(), ")",
                                 s.done() ? "  DONE" : "", "\n");
  const int total = s.stages_size();
  if (s.stage_index() < total) {
    absl::StrAppend(&out, "stage    ", s.stage_index(), "/", total, " ", s.stage_name(), " (", s.stage_kind(),
                    ")  step ", s.step(), "\n");
  } else {
    absl::StrAppend(&out, "stage    all ", total, " stages finished\n");
  }
  absl::StrAppend(&out, "learner  version ", Version(s.learner_version()), "\n");
  absl::StrAppend(&out, "groups   dispatched ", s.groups_dispatched(), ", finished ", s.groups_finished(),
                  ", reassigned ", s.groups_reassigned(), "\n");
  if (!s.error().empty()) absl::StrAppend(&out, "error    ", s.error(), "\n");
  if (total > 0) {
    absl::StrAppend(&out, "stages:\n");
    std::vector<std::vector<std::string>> rows;
    for (int i = 0; i < total; ++i) {
      const v1::StageProgress& p = s.stages(i);
      std::map<std::string, double> sorted(p.metrics().begin(), p.metrics().end());
      std::vector<std::string> m;
      for (const auto& [k, v] : sorted) m.push_back(absl::StrFormat("%s=%.4g", k, v));
      rows.push_back({absl::StrCat(i == s.stage_index() ? "*" : " ", i), p.name(), p.kind(), p.state(),
                      absl::StrCat("steps ", p.steps()), absl::StrJoin(m, " ")});
    }
    out += Table(rows);
  }
  absl::StrAppend(&out, "workers (", s.workers_size(), "):\n");
  if (s.workers_size() > 0) {
    std::vector<std::vector<std::string>> rows = {
        {"ID", "NAME", "STATE", "VERSION", "ACTIVE", "TOK/S", "GROUPS", "FINISHED", "LAST HB"}};
    for (const v1::WorkerStatus& w : s.workers()) {
      rows.push_back({w.worker_id(), w.name(), StateName(w.state()), Version(w.loaded()),
                      absl::StrCat(w.active_sequences()), absl::StrFormat("%.1f", w.tokens_per_second()),
                      absl::StrCat(w.assigned_groups()), absl::StrCat(w.finished_groups()),
                      absl::StrFormat("%.1fs", w.seconds_since_heartbeat())});
    }
    out += Table(rows);
  }
  return out;
}

}  // namespace swarr
