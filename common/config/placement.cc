#include "common/config/placement.h"

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace swarr {
namespace {

std::string Quote(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

bool ParseIndex(absl::string_view text, int* out) {
  if (text.empty() || text.size() > 4) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return absl::SimpleAtoi(text, out);
}

std::string GpuRange(int gpus) {
  if (gpus <= 0) return "no usable GPU (a build without CUDA, or none visible)";
  return absl::StrCat(gpus, gpus == 1 ? " GPU (cuda:0)" : absl::StrCat(" GPUs (cuda:0..cuda:", gpus - 1, ")"));
}

// The learner's device of each stage: placement.learner, else the stage's model.device.
std::vector<std::string> LearnerDevices(const v1::PipelineConfig& pipeline) {
  std::vector<std::string> out;
  for (int i = 0; i < pipeline.stages_size(); ++i) {
    const std::string d = !pipeline.placement().learner().empty() ? pipeline.placement().learner()
                                                                   : pipeline.stages(i).model().device();
    out.push_back(d.empty() ? "cpu" : d);
  }
  return out;
}

}  // namespace

std::string DeviceName::ToString() const { return cuda ? absl::StrCat("cuda:", index) : "cpu"; }

absl::StatusOr<DeviceName> ParseDeviceName(absl::string_view text) {
  DeviceName d;
  if (text == "cpu") return d;
  d.cuda = true;
  if (text == "cuda") return d;
  if (absl::ConsumePrefix(&text, "cuda:") && ParseIndex(text, &d.index)) return d;
  return absl::InvalidArgumentError("must be \"cpu\", \"cuda\" or \"cuda:N\"");
}

absl::StatusOr<std::vector<std::string>> ExpandDeviceList(const std::vector<std::string>& items,
                                                          const std::string& field, bool split_commas) {
  std::vector<std::string> parts;
  for (const std::string& item : items) {
    if (!split_commas) {
      parts.push_back(item);
      continue;
    }
    for (absl::string_view p : absl::StrSplit(item, ',')) parts.emplace_back(absl::StripAsciiWhitespace(p));
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string where = absl::StrCat(field, "[", i, "]: ", Quote(parts[i]));
    absl::string_view text = parts[i];
    const size_t dots = text.find("..");
    if (dots == absl::string_view::npos) {
      auto d = ParseDeviceName(text);
      if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", d.status().message()));
      out.push_back(d->ToString());
      continue;
    }
    absl::string_view lo = text.substr(0, dots), hi = text.substr(dots + 2);
    int a = 0, b = 0;
    if (!absl::ConsumePrefix(&lo, "cuda:") || !ParseIndex(lo, &a) || !ParseIndex(hi, &b)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": a range is \"cuda:A..B\""));
    }
    if (a > b) return absl::InvalidArgumentError(absl::StrCat(where, ": the range is empty (", a, " > ", b, ")"));
    for (int k = a; k <= b; ++k) out.push_back(absl::StrCat("cuda:", k));
  }
  return out;
}

std::string ResolvedPlacement::Describe() const {
  std::map<std::string, std::vector<std::string>> by_device;
  auto add = [&](const ServicePlacement& s) {
    std::string who = s.name;
    if (s.memory_gib > 0) absl::StrAppend(&who, absl::StrFormat(" (%.4g GiB)", s.memory_gib));
    auto& v = by_device[s.device];
    if (std::find(v.begin(), v.end(), who) == v.end()) v.push_back(who);
  };
  for (const auto& s : learner) add(s);
  for (const auto& s : rollouts) add(s);
  std::string out;
  for (const auto& [device, who] : by_device) absl::StrAppend(&out, out.empty() ? "" : "; ", device, ": ", absl::StrJoin(who, ", "));
  return out;
}

absl::Status ValidatePlacement(const v1::PipelineConfig& pipeline) {
  const v1::Placement& p = pipeline.placement();
  std::vector<std::string> problems;
  DeviceName learner;
  if (!p.learner().empty()) {
    auto d = ParseDeviceName(p.learner());
    if (!d.ok()) {
      problems.push_back(absl::StrCat("placement.learner: ", Quote(p.learner()), ": ", d.status().message()));
    } else {
      learner = *d;
      for (int i = 0; i < pipeline.stages_size(); ++i) {
        const std::string& sd = pipeline.stages(i).model().device();
        if (sd.empty()) continue;
        auto s = ParseDeviceName(sd);
        if (!s.ok()) continue;  // ValidateStage reports it
        const bool agrees = *s == learner || (sd == "cuda" && learner.cuda);
        if (!agrees) {
          problems.push_back(absl::StrCat("stages[", i, "].model.device: ", Quote(sd), " conflicts with placement.learner ",
                                          Quote(p.learner()), " (leave it empty: the placement decides)"));
        }
      }
    }
  }
  auto rollouts = ExpandDeviceList({p.rollouts().begin(), p.rollouts().end()}, "placement.rollouts");
  if (!rollouts.ok()) problems.push_back(std::string(rollouts.status().message()));
  if (!(p.learner_memory_gib() >= 0)) {
    problems.push_back(absl::StrCat("placement.learner_memory_gib: must be >= 0, got ", p.learner_memory_gib()));
  }
  if (!(p.rollout_memory_gib() >= 0)) {
    problems.push_back(absl::StrCat("placement.rollout_memory_gib: must be >= 0, got ", p.rollout_memory_gib()));
  }
  if (problems.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(problems, "; "));
}

absl::StatusOr<ResolvedPlacement> ResolvePlacement(const v1::PipelineConfig& pipeline, int num_rollouts,
                                                   const GpuInventory& inventory, const std::string& rollout_devices) {
  if (absl::Status st = ValidatePlacement(pipeline); !st.ok()) return st;
  const v1::Placement& p = pipeline.placement();
  ResolvedPlacement out;
  auto check_present = [&](const std::string& field, const std::string& device) -> absl::Status {
    auto d = ParseDeviceName(device);
    if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat(field, ": ", Quote(device), ": ", d.status().message()));
    if (d->cuda && d->index >= inventory.gpus) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", Quote(device), ", but this machine has ", GpuRange(inventory.gpus)));
    }
    return absl::OkStatus();
  };

  // The learner: one entry per distinct device over the stages.
  const std::vector<std::string> learner_devices = LearnerDevices(pipeline);
  for (size_t i = 0; i < learner_devices.size(); ++i) {
    const std::string field = p.learner().empty() ? absl::StrCat("stages[", i, "].model.device") : "placement.learner";
    if (absl::Status st = check_present(field, learner_devices[i]); !st.ok()) return st;
    const std::string canonical = ParseDeviceName(learner_devices[i])->ToString();
    bool seen = false;
    for (const auto& s : out.learner) seen = seen || s.device == canonical;
    if (!seen) out.learner.push_back({"learner", canonical, canonical == "cpu" ? 0.0 : p.learner_memory_gib()});
  }

  // The rollouts: the flag's list, else the config's, else cpu; cycled.
  std::vector<std::string> list;
  std::string field = "placement.rollouts";
  if (!rollout_devices.empty()) {
    field = "--rollout-devices";
    auto l = ExpandDeviceList({rollout_devices}, field, /*split_commas=*/true);
    if (!l.ok()) return l.status();
    list = *l;
  } else {
    auto l = ExpandDeviceList({p.rollouts().begin(), p.rollouts().end()}, field);
    if (!l.ok()) return l.status();
    list = *l;
  }
  if (list.empty()) list.push_back("cpu");
  for (size_t i = 0; i < list.size(); ++i) {
    if (absl::Status st = check_present(absl::StrCat(field, "[", i, "]"), list[i]); !st.ok()) return st;
  }
  for (int i = 0; i < num_rollouts; ++i) {
    const std::string& d = list[static_cast<size_t>(i) % list.size()];
    out.rollouts.push_back({absl::StrCat("rollout-", i), d, d == "cpu" ? 0.0 : p.rollout_memory_gib()});
  }

  // Shared GPUs: a budget for every service on them, and the budgets within the GPU.
  std::map<int, std::vector<const ServicePlacement*>> by_gpu;
  for (const auto& s : out.learner) {
    if (s.device != "cpu") by_gpu[ParseDeviceName(s.device)->index].push_back(&s);
  }
  for (const auto& s : out.rollouts) {
    if (s.device != "cpu") by_gpu[ParseDeviceName(s.device)->index].push_back(&s);
  }
  for (const auto& [gpu, services] : by_gpu) {
    std::vector<std::string> names;
    double sum = 0;
    bool has_learner = false, missing = false;
    for (const ServicePlacement* s : services) {
      names.push_back(s->name);
      sum += s->memory_gib;
      has_learner = has_learner || s->name == "learner";
      missing = missing || s->memory_gib <= 0;
    }
    if (services.size() > 1 && missing) {
      return absl::InvalidArgumentError(absl::StrCat(
          "placement: cuda:", gpu, " holds ", absl::StrJoin(names, ", "), ": a shared GPU needs a memory budget for each (set ",
          has_learner ? "placement.learner_memory_gib and " : "", "placement.rollout_memory_gib)"));
    }
    if (static_cast<size_t>(gpu) < inventory.total_gib.size() && inventory.total_gib[gpu] > 0 &&
        sum > inventory.total_gib[gpu]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "placement: the budgets on cuda:%d (%s) add up to %.4g GiB, more than its %.4g GiB", gpu,
          absl::StrJoin(names, ", "), sum, inventory.total_gib[gpu]));
    }
  }
  return out;
}

v1::Stage StageWithPlacement(const v1::PipelineConfig& pipeline, int index) {
  v1::Stage stage = pipeline.stages(index);
  const v1::Placement& p = pipeline.placement();
  if (!p.learner().empty()) stage.mutable_model()->set_device(p.learner());
  if (p.learner_memory_gib() > 0) {
    const double own = stage.memory().max_gib();
    stage.mutable_memory()->set_max_gib(own > 0 ? std::min(own, p.learner_memory_gib()) : p.learner_memory_gib());
  }
  return stage;
}

}  // namespace swarr
