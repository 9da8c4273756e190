#include "rollout_server/validation.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/math/prompt_set.h"

namespace swarr {

absl::Status ValidatePromptGroup(const v1::PromptGroup& g, int64_t vocab_size, int64_t max_tokens) {
  const std::string name = absl::StrCat("group '", g.group_id(), "': ");
  auto bad = [&](const std::string& what) { return absl::InvalidArgumentError(name + what); };
  if (g.group_id().empty()) return absl::InvalidArgumentError("a group has an empty group_id");
  if (g.prompt_ids().empty()) return bad("prompt_ids is empty");
  if (g.num_samples() < 1) return bad(absl::StrCat("num_samples must be >= 1, got ", g.num_samples()));
  if (g.max_new_tokens() < 1) return bad(absl::StrCat("max_new_tokens must be >= 1, got ", g.max_new_tokens()));
  const v1::SamplingParams& s = g.sampling();
  if (!std::isfinite(s.temperature()) || s.temperature() < 0) {
    return bad(absl::StrCat("sampling.temperature must be > 0 (0 = 1.0), got ", s.temperature()));
  }
  if (!std::isfinite(s.top_p()) || s.top_p() < 0 || s.top_p() > 1) {
    return bad(absl::StrCat("sampling.top_p must be in (0, 1] (0 = 1.0), got ", s.top_p()));
  }
  if (s.top_k() < 0) return bad(absl::StrCat("sampling.top_k must be >= 0, got ", s.top_k()));
  if (absl::Status r = ValidateRewardKind(g.reward()); !r.ok()) return bad(absl::StrCat("reward: ", r.message()));
  if (vocab_size > 0) {
    for (int i = 0; i < g.prompt_ids_size(); ++i) {
      const int64_t id = g.prompt_ids(i);
      if (id < 0 || id >= vocab_size) {
        return bad(absl::StrCat("prompt_ids[", i, "] = ", id, " is outside the vocabulary [0, ", vocab_size, ")"));
      }
    }
    for (int i = 0; i < s.stop_token_ids_size(); ++i) {
      const int64_t id = s.stop_token_ids(i);
      if (id < 0 || id >= vocab_size) {
        return bad(absl::StrCat("sampling.stop_token_ids[", i, "] = ", id, " is outside the vocabulary [0, ",
                                vocab_size, ")"));
      }
    }
  }
  if (max_tokens > 0 && TokensPerSample(g) > max_tokens) {
    return bad(absl::StrCat("too many tokens: prompt (", g.prompt_ids_size(), ") + max_new_tokens (",
                            g.max_new_tokens(), ") exceeds the server's max_tokens ", max_tokens));
  }
  return absl::OkStatus();
}

SamplingParams SamplingForSample(const v1::PromptGroup& group, int index) {
  const v1::SamplingParams& s = group.sampling();
  SamplingParams p;
  p.greedy = s.greedy();
  p.temperature = s.temperature() > 0 ? s.temperature() : 1.0;
  p.top_p = s.top_p() > 0 ? s.top_p() : 1.0;
  p.top_k = s.top_k();
  p.seed = group.seed() + static_cast<uint64_t>(index);
  return p;
}

int64_t TokensPerSample(const v1::PromptGroup& group) {
  return static_cast<int64_t>(group.prompt_ids_size()) + group.max_new_tokens();
}

}  // namespace swarr
