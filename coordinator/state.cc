#include "coordinator/state.h"

#include <string_view>

#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace swarr {
namespace {

using nlohmann::json;

// Typed reads of one key of a JSON object: kDataLoss naming `path.key` when the key is missing
// or has another type. Missing optional keys keep the default.
class Reader {
 public:
  Reader(const json& object, std::string path) : object_(object), path_(std::move(path)) {}

  template <typename T>
  absl::Status Get(const char* key, T* out, bool required = false) const {
    auto it = object_.find(key);
    if (it == object_.end()) {
      return required ? absl::DataLossError(absl::StrCat(path_, key, ": missing")) : absl::OkStatus();
    }
    if (!Matches<T>(*it)) return absl::DataLossError(absl::StrCat(path_, key, ": wrong type"));
    *out = it->template get<T>();
    return absl::OkStatus();
  }

  const json* Find(const char* key) const {
    auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }
  std::string Path(const std::string& key) const { return absl::StrCat(path_, key); }

 private:
  template <typename T>
  static bool Matches(const json& v) {
    if constexpr (std::is_same_v<T, bool>) return v.is_boolean();
    else if constexpr (std::is_same_v<T, std::string>) return v.is_string();
    else if constexpr (std::is_floating_point_v<T>) return v.is_number();
    else return v.is_number_integer();
  }

  const json& object_;
  std::string path_;
};

absl::StatusOr<StageRecord> StageFromJson(const json& j, const std::string& path) {
  if (!j.is_object()) return absl::DataLossError(absl::StrCat(path, ": expected an object"));
  Reader r(j, path + ".");
  StageRecord s;
  SWARR_RETURN_IF_ERROR(r.Get("name", &s.name, true));
  SWARR_RETURN_IF_ERROR(r.Get("kind", &s.kind));
  SWARR_RETURN_IF_ERROR(r.Get("state", &s.state));
  SWARR_RETURN_IF_ERROR(r.Get("steps", &s.steps));
  SWARR_RETURN_IF_ERROR(r.Get("groups_drawn", &s.groups_drawn));
  if (const json* m = r.Find("metrics")) {
    if (!m->is_object()) return absl::DataLossError(r.Path("metrics") + ": expected an object");
    for (auto it = m->begin(); it != m->end(); ++it) {
      if (!it->is_number()) return absl::DataLossError(absl::StrCat(r.Path("metrics"), ".", it.key(), ": not a number"));
      s.metrics[it.key()] = it->get<double>();
    }
  }
  return s;
}

absl::StatusOr<EvalProblemRecord> ResultFromJson(const json& j, const std::string& path, int64_t* problem) {
  if (!j.is_object()) return absl::DataLossError(absl::StrCat(path, ": expected an object"));
  Reader r(j, path + ".");
  EvalProblemRecord e;
  SWARR_RETURN_IF_ERROR(r.Get("problem", problem, true));
  SWARR_RETURN_IF_ERROR(r.Get("group_id", &e.group_id));
  SWARR_RETURN_IF_ERROR(r.Get("worker_id", &e.worker_id));
  SWARR_RETURN_IF_ERROR(r.Get("policy_version", &e.policy_version));
  const json* samples = r.Find("samples");
  if (samples == nullptr || !samples->is_array()) return absl::DataLossError(r.Path("samples") + ": expected a list");
  for (size_t i = 0; i < samples->size(); ++i) {
    const json& sj = (*samples)[i];
    const std::string sp = absl::StrCat(r.Path("samples"), "[", i, "]");
    if (!sj.is_object()) return absl::DataLossError(sp + ": expected an object");
    Reader sr(sj, sp + ".");
    EvalSampleRecord s;
    SWARR_RETURN_IF_ERROR(sr.Get("text", &s.text));
    SWARR_RETURN_IF_ERROR(sr.Get("reward", &s.reward, true));
    SWARR_RETURN_IF_ERROR(sr.Get("stopped", &s.stopped));
    SWARR_RETURN_IF_ERROR(sr.Get("tokens", &s.tokens));
    e.samples.push_back(std::move(s));
  }
  return e;
}

}  // namespace

std::string StateToJson(const CoordinatorState& state) {
  json j;
  j["pipeline"] = state.pipeline;
  j["stage_index"] = state.stage_index;
  j["done"] = state.done;
  j["error"] = state.error;
  j["started_unix_seconds"] = state.started_unix_seconds;
  j["incarnations"] = state.incarnations;
  j["stages"] = json::array();
  for (const StageRecord& s : state.stages) {
    json m = json::object();
    for (const auto& [k, v] : s.metrics) m[k] = v;
    j["stages"].push_back({{"name", s.name},
                           {"kind", s.kind},
                           {"state", s.state},
                           {"steps", s.steps},
                           {"metrics", m},
                           {"groups_drawn", s.groups_drawn}});
  }
  j["eval_results"] = json::array();
  for (const auto& [problem, e] : state.eval_results) {
    json samples = json::array();
    for (const EvalSampleRecord& s : e.samples) {
      samples.push_back({{"text", s.text}, {"reward", s.reward}, {"stopped", s.stopped}, {"tokens", s.tokens}});
    }
    j["eval_results"].push_back({{"problem", problem},
                                 {"group_id", e.group_id},
                                 {"worker_id", e.worker_id},
                                 {"policy_version", e.policy_version},
                                 {"samples", samples}});
  }
  j["groups_dispatched"] = state.groups_dispatched;
  j["groups_finished"] = state.groups_finished;
  j["groups_reassigned"] = state.groups_reassigned;
  j["groups_redispatched_after_learner_restart"] = state.groups_redispatched_after_learner_restart;
  j["groups_acked_never_trained"] = state.groups_acked_never_trained;
  j["groups_unused_at_stage_end"] = state.groups_unused_at_stage_end;
  j["groups_adopted"] = state.groups_adopted;
  j["acked_groups"] = state.acked_groups;
  // Invalid UTF-8 in a completion text must not make the state unwritable.
  return j.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

absl::StatusOr<CoordinatorState> StateFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::DataLossError("not a JSON object");
  Reader r(j, "");
  CoordinatorState s;
  SWARR_RETURN_IF_ERROR(r.Get("pipeline", &s.pipeline));
  SWARR_RETURN_IF_ERROR(r.Get("stage_index", &s.stage_index, true));
  SWARR_RETURN_IF_ERROR(r.Get("done", &s.done));
  SWARR_RETURN_IF_ERROR(r.Get("error", &s.error));
  SWARR_RETURN_IF_ERROR(r.Get("started_unix_seconds", &s.started_unix_seconds));
  SWARR_RETURN_IF_ERROR(r.Get("groups_dispatched", &s.groups_dispatched));
  SWARR_RETURN_IF_ERROR(r.Get("groups_finished", &s.groups_finished));
  SWARR_RETURN_IF_ERROR(r.Get("groups_reassigned", &s.groups_reassigned));
  SWARR_RETURN_IF_ERROR(
      r.Get("groups_redispatched_after_learner_restart", &s.groups_redispatched_after_learner_restart));
  SWARR_RETURN_IF_ERROR(r.Get("groups_acked_never_trained", &s.groups_acked_never_trained));
  SWARR_RETURN_IF_ERROR(r.Get("groups_unused_at_stage_end", &s.groups_unused_at_stage_end));
  SWARR_RETURN_IF_ERROR(r.Get("groups_adopted", &s.groups_adopted));
  if (const json* acked = r.Find("acked_groups")) {
    if (!acked->is_array()) return absl::DataLossError("acked_groups: expected a list");
    for (const json& v : *acked) {
      if (!v.is_string()) return absl::DataLossError("acked_groups: expected strings");
      s.acked_groups.push_back(v.get<std::string>());
    }
  }
  if (const json* inc = r.Find("incarnations")) {
    if (!inc->is_array()) return absl::DataLossError("incarnations: expected a list");
    for (const json& v : *inc) {
      if (!v.is_string()) return absl::DataLossError("incarnations: expected strings");
      s.incarnations.push_back(v.get<std::string>());
    }
  }
  const json* stages = r.Find("stages");
  if (stages == nullptr || !stages->is_array()) return absl::DataLossError("stages: expected a list");
  for (size_t i = 0; i < stages->size(); ++i) {
    SWARR_ASSIGN_OR_RETURN(StageRecord st, StageFromJson((*stages)[i], absl::StrCat("stages[", i, "]")));
    s.stages.push_back(std::move(st));
  }
  if (const json* results = r.Find("eval_results")) {
    if (!results->is_array()) return absl::DataLossError("eval_results: expected a list");
    for (size_t i = 0; i < results->size(); ++i) {
      int64_t problem = 0;
      SWARR_ASSIGN_OR_RETURN(EvalProblemRecord e,
                             ResultFromJson((*results)[i], absl::StrCat("eval_results[", i, "]"), &problem));
      s.eval_results[problem] = std::move(e);
    }
  }
  if (s.stage_index < 0 || s.stage_index > static_cast<int32_t>(s.stages.size())) {
    return absl::DataLossError(absl::StrCat("stage_index: ", s.stage_index, " outside [0, ", s.stages.size(), "]"));
  }
  return s;
}

absl::StatusOr<std::optional<CoordinatorState>> LoadState(const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status())) return std::optional<CoordinatorState>();
    return text.status();
  }
  auto state = StateFromJson(*text);
  if (!state.ok()) return absl::DataLossError(absl::StrCat(path, ": ", state.status().message()));
  return std::optional<CoordinatorState>(std::move(*state));
}

absl::Status SaveState(const std::string& path, const CoordinatorState& state) {
  const size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash > 0) SWARR_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash)));
  const std::string text = StateToJson(state);
  return WriteFileAtomically(path, {text});
}

}  // namespace swarr
