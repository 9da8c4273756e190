// The coordinator's calls to the learner (Learner.GetStatus / StartStage / GetGroupStates / Finish),
// with deadlines and a channel that reconnects quickly after the learner restarts.
#ifndef SWARR_COORDINATOR_LEARNER_CLIENT_H_
#define SWARR_COORDINATOR_LEARNER_CLIENT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/rpc/service_options.h"
#include "proto/swarr/v1/learner.grpc.pb.h"

namespace swarr {

// Thread-safe (gRPC stubs are).
class LearnerClient {
 public:
  // `address` host:port. No connection is made yet.
  static absl::StatusOr<std::unique_ptr<LearnerClient>> Create(const std::string& address,
                                                               const RpcSecurity& security, const RpcLimits& limits);

  // Errors are the learner's, as absl::Status (kUnavailable / kDeadlineExceeded: retry).
  absl::StatusOr<v1::LearnerStatus> GetStatus(double deadline_seconds);
  absl::StatusOr<v1::LearnerStatus> StartStage(int32_t stage_index, const v1::PipelineConfig& pipeline,
                                               double deadline_seconds);
  // Learner.GetGroupStates of (group id, group size) pairs.
  absl::StatusOr<v1::GetGroupStatesResponse> GetGroupStates(const std::vector<std::pair<std::string, int32_t>>& groups,
                                                            double deadline_seconds);
  // Learner.Finish: the pipeline is over, the learner exits (`reason` "" = completed).
  // kUnimplemented from a learner that predates the call.
  absl::Status Finish(const std::string& pipeline, const std::string& reason, double deadline_seconds);

 private:
  LearnerClient() = default;
  RpcSecurity security_;
  RpcLimits limits_;
  std::unique_ptr<v1::Learner::Stub> stub_;
};

}  // namespace swarr

#endif  // SWARR_COORDINATOR_LEARNER_CLIENT_H_
