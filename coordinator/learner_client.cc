#include "coordinator/learner_client.h"

#include <algorithm>

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/str_cat.h"
#include "common/rpc/status.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"

namespace swarr {
absl::StatusOr<std::unique_ptr<LearnerClient>> LearnerClient::Create(const std::string& address,
                                                                     const RpcSecurity& security,
                                                                     const RpcLimits& limits) {
  if (address.empty()) return absl::InvalidArgumentError("--learner: empty address");
  SWARR_ASSIGN_OR_RETURN(auto channel, MakeChannel(address, security, limits));
  std::unique_ptr<LearnerClient> c(new LearnerClient());
  c->security_ = security;
  c->limits_ = limits;
  c->stub_ = v1::Learner::NewStub(channel);
  return c;
}

absl::StatusOr<v1::LearnerStatus> LearnerClient::GetStatus(double deadline_seconds) {
  grpc::ClientContext ctx;
  PrepareContext(&ctx, security_, limits_, deadline_seconds);
  v1::LearnerStatus out;
  grpc::Status s = stub_->GetStatus(&ctx, v1::GetLearnerStatusRequest(), &out);
  if (!s.ok()) return FromGrpcStatus(s);
  return out;
}

absl::StatusOr<v1::LearnerStatus> LearnerClient::StartStage(int32_t stage_index, const v1::PipelineConfig& pipeline,
                                                            double deadline_seconds) {
  grpc::ClientContext ctx;
  PrepareContext(&ctx, security_, limits_, deadline_seconds);
  v1::StartStageRequest req;
  req.set_stage_index(stage_index);
  *req.mutable_pipeline() = pipeline;
  v1::LearnerStatus out;
  grpc::Status s = stub_->StartStage(&ctx, req, &out);
  if (!s.ok()) return FromGrpcStatus(s);
  return out;
}

absl::StatusOr<v1::GetGroupStatesResponse> LearnerClient::GetGroupStates(
    const std::vector<std::pair<std::string, int32_t>>& groups, double deadline_seconds) {
  grpc::ClientContext ctx;
  PrepareContext(&ctx, security_, limits_, deadline_seconds);
  v1::GetGroupStatesRequest req;
  for (const auto& [id, size] : groups) {
    v1::GetGroupStatesRequest::Group* g = req.add_groups();
    g->set_group_id(id);
    g->set_group_size(size);
  }
  v1::GetGroupStatesResponse out;
  grpc::Status s = stub_->GetGroupStates(&ctx, req, &out);
  if (!s.ok()) return FromGrpcStatus(s);
  return out;
}

absl::Status LearnerClient::Finish(const std::string& pipeline, const std::string& reason, double deadline_seconds) {
  grpc::ClientContext ctx;
  PrepareContext(&ctx, security_, limits_, deadline_seconds);
  v1::FinishRequest req;
  req.set_pipeline(pipeline);
  req.set_reason(reason);
  v1::FinishResponse out;
  grpc::Status s = stub_->Finish(&ctx, req, &out);
  if (!s.ok()) return FromGrpcStatus(s);
  return absl::OkStatus();
}

}  // namespace swarr
