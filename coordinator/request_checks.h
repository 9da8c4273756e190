// What the coordinator's RPCs check of a request before they look at any pipeline state: sizes
// of the text fields, non-negative counts, finite rewards. kInvalidArgument naming the field
// (and the index of a repeated one); the first problem found, in field order. Checks that need
// the pipeline (an unknown worker or group, a sample count, the vocabulary) are the engine's
// (coordinator.h). No torch, no gRPC; thread-compatible.
#ifndef SWARR_COORDINATOR_REQUEST_CHECKS_H_
#define SWARR_COORDINATOR_REQUEST_CHECKS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "proto/swarr/v1/coordinator.pb.h"

namespace swarr {

inline constexpr size_t kMaxTextField = 256;  // address, name, device, worker id, incarnation
inline constexpr size_t kMaxGroupId = 512;

// `value` is at most `max` bytes.
absl::Status CheckLength(const char* field, const std::string& value, size_t max);
// Every id is non-empty and at most kMaxGroupId bytes.
absl::Status CheckGroupIds(const char* field, const google::protobuf::RepeatedPtrField<std::string>& ids);

// role "rollout"; max_sequences, max_tokens, loaded.version >= 0; text fields and held ids.
absl::Status CheckRegisterWorkerRequest(const v1::RegisterWorkerRequest& request);
// worker_id given; counts and loaded.version >= 0; the three id lists; progress >= 0.
absl::Status CheckHeartbeatRequest(const v1::HeartbeatRequest& request);
// worker_id and group_id given and not too long; version >= 0; finite rewards, token ids >= 0.
absl::Status CheckReportEvalRequest(const v1::ReportEvalRequest& request);

}  // namespace swarr

#endif  // SWARR_COORDINATOR_REQUEST_CHECKS_H_
