#include "learner/service/trajectory_checks.h"

#include <cmath>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace swarr {
namespace {

absl::Status Bad(const v1::Trajectory& t, absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("trajectory ", t.id(), ": ", field, ": ", why));
}

template <typename Ids>
absl::Status CheckIds(const v1::Trajectory& t, const char* field, const Ids& ids, int64_t vocab) {
  if (ids.empty()) return Bad(t, field, "empty");
  for (int j = 0; j < ids.size(); ++j) {
    const int64_t id = ids[j];
    if (id < 0 || (vocab > 0 && id >= vocab)) {
      return Bad(t, absl::StrCat(field, "[", j, "]"),
                 absl::StrCat("token id ", id, " is outside the vocabulary [0, ", vocab, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTrajectory(const v1::Trajectory& t, int index, const TrajectoryLimits& limits) {
  if (t.id().empty()) return absl::InvalidArgumentError(absl::StrCat("trajectory #", index, ": id: empty"));
  if (t.group_size() < 1 || t.group_size() > limits.max_group_size) {
    return Bad(t, "group_size", absl::StrCat("must be in [1, ", limits.max_group_size, "], got ", t.group_size()));
  }
  if (t.group_id().empty()) return Bad(t, "group_id", "empty");
  const std::string prefix = t.group_id() + "/";
  int64_t sample = -1;
  if (t.id().size() <= prefix.size() || t.id().compare(0, prefix.size(), prefix) != 0 ||
      !absl::SimpleAtoi(absl::string_view(t.id()).substr(prefix.size()), &sample) || sample < 0 ||
      sample >= t.group_size() || absl::StrCat(prefix, sample) != t.id()) {
    return Bad(t, "id", absl::StrCat("must be \"<group_id>/<i>\" with 0 <= i < group_size (", t.group_size(),
                                     "); group_id is \"", t.group_id(), "\""));
  }
  if (absl::Status s = CheckIds(t, "prompt_ids", t.prompt_ids(), limits.vocab_size); !s.ok()) return s;
  if (absl::Status s = CheckIds(t, "completion_ids", t.completion_ids(), limits.vocab_size); !s.ok()) return s;
  const int n = t.completion_ids_size();
  if (t.behaviour_logprobs_size() != n) {
    return Bad(t, "behaviour_logprobs",
               absl::StrCat(t.behaviour_logprobs_size(), " log-probs for ", n, " completion tokens"));
  }
  for (int j = 0; j < n; ++j) {
    if (!std::isfinite(t.behaviour_logprobs(j))) {
      return Bad(t, absl::StrCat("behaviour_logprobs[", j, "]"),
                 absl::StrCat("not finite (", t.behaviour_logprobs(j), ")"));
    }
  }
  if (t.token_versions_size() != n) {
    return Bad(t, "token_versions", absl::StrCat(t.token_versions_size(), " versions for ", n, " completion tokens"));
  }
  if (t.policy_version() < 0) return Bad(t, "policy_version", absl::StrCat("negative (", t.policy_version(), ")"));
  if (!std::isfinite(t.reward())) return Bad(t, "reward", absl::StrCat("not finite (", t.reward(), ")"));
  if (limits.max_completion_tokens > 0 && n > limits.max_completion_tokens) {
    return Bad(t, "completion_ids",
               absl::StrCat(n, " tokens, more than the stage's max_new_tokens ", limits.max_completion_tokens));
  }
  const int64_t total = static_cast<int64_t>(t.prompt_ids_size()) + n;
  if (limits.max_total_tokens > 0 && total > limits.max_total_tokens) {
    return Bad(t, "prompt_ids", absl::StrCat("prompt + completion is ", total, " tokens, more than the model's ",
                                             limits.max_total_tokens));
  }
  if (t.learner_incarnation().empty()) return Bad(t, "learner_incarnation", "empty");
  return absl::OkStatus();
}

absl::Status ValidateTokenVersionOrder(const v1::Trajectory& t) {
  if (t.token_versions_size() == 0) return Bad(t, "token_versions", "empty");
  if (t.token_versions(0) != t.policy_version()) {
    return Bad(t, "token_versions[0]",
               absl::StrCat("is ", t.token_versions(0), ", but policy_version (the oldest) is ", t.policy_version()));
  }
  for (int j = 1; j < t.token_versions_size(); ++j) {
    if (t.token_versions(j) < t.token_versions(j - 1)) {
      return Bad(t, absl::StrCat("token_versions[", j, "]"),
                 absl::StrCat("decreases (", t.token_versions(j - 1), " then ", t.token_versions(j), ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace swarr
