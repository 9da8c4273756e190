#include "learner/service/learner_service.h"

#include <algorithm>
#include <chrono>
#include <exception>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "common/rpc/status.h"
#include "common/util/status_macros.h"

namespace swarr {
namespace {

// Nothing thrown by the engine (a bug, or LibTorch outside a CatchTorch) may take the server
// down: it becomes INTERNAL.
template <typename Fn>
grpc::Status Guard(const char* method, Fn&& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return grpc::Status(grpc::StatusCode::INTERNAL, absl::StrCat(method, ": ", e.what()));
  } catch (...) {
    return grpc::Status(grpc::StatusCode::INTERNAL, absl::StrCat(method, ": unknown exception"));
  }
}

}  // namespace

LearnerService::LearnerService(LearnerServiceOptions options)
    : options_(std::move(options)), weight_streams_(std::make_unique<FifoGate>(options_.max_weight_streams)) {}

LearnerService::~LearnerService() { (void)Shutdown(); }

absl::Status LearnerService::Start() {
  if (engine_ != nullptr) return absl::FailedPreconditionError("LearnerService::Start called twice");
  LearnerEngineOptions eo;
  eo.run_dir = options_.run_dir;
  eo.incarnation = options_.incarnation;
  eo.registry = options_.metrics_registry;
  SWARR_ASSIGN_OR_RETURN(engine_, LearnerEngine::Create(eo));
  SWARR_ASSIGN_OR_RETURN(RunningServer running,
                         StartServer(options_.listen, {this}, options_.security, options_.limits));
  server_ = std::move(running.server);
  port_ = running.port;
  if (!options_.port_file.empty()) SWARR_RETURN_IF_ERROR(WritePortFile(options_.port_file, port_));
  return absl::OkStatus();
}

absl::Status LearnerService::Shutdown(double grace_seconds) {
  if (shut_down_) return absl::OkStatus();
  shut_down_ = true;
  if (server_ != nullptr) {
    server_->Shutdown(std::chrono::system_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(grace_seconds * 1000)));
  }
  absl::Status st = engine_ != nullptr ? engine_->Shutdown() : absl::OkStatus();
  if (server_ != nullptr) server_->Wait();
  return st;
}

grpc::Status LearnerService::PushTrajectories(grpc::ServerContext* context, const v1::PushTrajectoriesRequest* request,
                                              v1::PushTrajectoriesResponse* response) {
  if (grpc::Status auth = CheckAuth(*context, options_.security, "Learner.PushTrajectories"); !auth.ok()) return auth;
  return Guard("PushTrajectories", [&] {
    absl::StatusOr<v1::PushTrajectoriesResponse> r = engine_->PushTrajectories(*request);
    if (!r.ok()) return ToGrpcStatus(r.status());
    *response = std::move(*r);
    return grpc::Status::OK;
  });
}

grpc::Status LearnerService::GetWeights(grpc::ServerContext* context, const v1::GetWeightsRequest* request,
                                        grpc::ServerWriter<v1::WeightsChunk>* writer) {
  if (grpc::Status auth = CheckAuth(*context, options_.security, "Learner.GetWeights"); !auth.ok()) return auth;
  return Guard("GetWeights", [&] {
    absl::StatusOr<std::shared_ptr<const WeightsBlob>> blob = engine_->GetWeights(*request);
    if (!blob.ok()) return ToGrpcStatus(blob.status());
    // Wait for a place among the streams being served (first come, first served), at most
    // until the caller's deadline (and 10 minutes).
    const auto left = std::min<std::chrono::system_clock::duration>(context->deadline() - std::chrono::system_clock::now(),
                                                                    std::chrono::minutes(10));
    FifoGateHold place(weight_streams_.get(), std::chrono::steady_clock::now() + left);
    if (!place.entered()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("the learner is already serving ", options_.max_weight_streams,
                                       " weight streams and the call's deadline passed while waiting; retry"));
    }
    absl::Status st = WriteWeightsStream(**blob, engine_->weight_chunk_bytes(), writer);
    if (!st.ok()) return ToGrpcStatus(st);
    engine_->CountWeightsServed(static_cast<int64_t>((*blob)->data.size()));
    return grpc::Status::OK;
  });
}

grpc::Status LearnerService::GetWeightsIpc(grpc::ServerContext* context, const v1::GetWeightsRequest* request,
                                           v1::CudaIpcWeights* response) {
  if (grpc::Status auth = CheckAuth(*context, options_.security, "Learner.GetWeightsIpc"); !auth.ok()) return auth;
  return Guard("GetWeightsIpc", [&] {
    absl::StatusOr<v1::CudaIpcWeights> r = engine_->GetWeightsIpc(*request);
    if (!r.ok()) return ToGrpcStatus(r.status());
    *response = std::move(*r);
    return grpc::Status::OK;
  });
}

grpc::Status LearnerService::GetStatus(grpc::ServerContext* context, const v1::GetLearnerStatusRequest* request,
                                       v1::LearnerStatus* response) {
  (void)request;
  if (grpc::Status auth = CheckAuth(*context, options_.security, "Learner.GetStatus"); !auth.ok()) return auth;
  return Guard("GetStatus", [&] {
    *response = engine_->GetStatus();
    return grpc::Status::OK;
  });
}

grpc::Status LearnerService::StartStage(grpc::ServerContext* context, const v1::StartStageRequest* request,
                                        v1::LearnerStatus* response) {
  if (grpc::Status auth = CheckAuth(*context, options_.security, "Learner.StartStage"); !auth.ok()) return auth;
  return Guard("StartStage", [&] {
    absl::StatusOr<v1::LearnerStatus> r = engine_->StartStage(request->stage_index(), request->pipeline());
    if (!r.ok()) return ToGrpcStatus(r.status());
    *response = std::move(*r);
    return grpc::Status::OK;
  });
}

grpc::Status LearnerService::GetGroupStates(grpc::ServerContext* context, const v1::GetGroupStatesRequest* request,
                                            v1::GetGroupStatesResponse* response) {
  if (grpc::Status auth = CheckAuth(*context, options_.security, "Learner.GetGroupStates"); !auth.ok()) return auth;
  return Guard("GetGroupStates", [&] {
    absl::StatusOr<v1::GetGroupStatesResponse> r = engine_->GetGroupStates(*request);
    if (!r.ok()) return ToGrpcStatus(r.status());
    *response = std::move(*r);
    return grpc::Status::OK;
  });
}

grpc::Status LearnerService::Finish(grpc::ServerContext* context, const v1::FinishRequest* request,
                                    v1::FinishResponse* response) {
  (void)response;
  if (grpc::Status auth = CheckAuth(*context, options_.security, "Learner.Finish"); !auth.ok()) return auth;
  if (request->pipeline().size() > 256 || request->reason().size() > 4096) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "pipeline / reason: longer than 256 / 4096 bytes");
  }
  if (finish_requested_.exchange(true)) return grpc::Status::OK;  // idempotent
  std::cerr << "swarr learner: pipeline '" << request->pipeline() << "' "
            << (request->reason().empty() ? "completed" : "failed: " + request->reason())
            << "; the coordinator asks the learner to finish\n";
  if (options_.on_finish) options_.on_finish(*request);
  return grpc::Status::OK;
}

}  // namespace swarr
