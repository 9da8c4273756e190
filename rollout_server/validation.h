// Checks of the requests a rollout server takes (prompt groups from the coordinator or the
// Generate RPC) and their translation into the generator's terms. No torch.
#ifndef SWARR_ROLLOUT_SERVER_VALIDATION_H_
#define SWARR_ROLLOUT_SERVER_VALIDATION_H_

#include <cstdint>

#include "absl/status/status.h"
#include "common/model/sampler.h"
#include "proto/swarr/v1/rollout_types.pb.h"

namespace swarr {

// kInvalidArgument naming the group and the field: empty group_id or prompt, num_samples or
// max_new_tokens < 1, bad sampling parameters (temperature < 0, top_p outside [0, 1], top_k
// < 0, non-finite values), an unknown reward kind. With `vocab_size` > 0 also every prompt
// and stop token id ("group 'g': prompt_ids[3] = 99 is outside the vocabulary [0, 64)").
// With `max_tokens` > 0, one sequence (prompt + max_new_tokens) must fit in it.
absl::Status ValidatePromptGroup(const v1::PromptGroup& group, int64_t vocab_size, int64_t max_tokens);

// The group's sampling parameters for sample `index` (seed = group.seed + index;
// temperature 0 = 1.0, top_p 0 = 1.0).
SamplingParams SamplingForSample(const v1::PromptGroup& group, int index);

// Tokens one sample of the group holds in flight: prompt + max_new_tokens.
int64_t TokensPerSample(const v1::PromptGroup& group);

}  // namespace swarr

#endif  // SWARR_ROLLOUT_SERVER_VALIDATION_H_
