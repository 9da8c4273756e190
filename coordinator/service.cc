#include "coordinator/service.h"

#include <chrono>

#include "common/rpc/status.h"
#include "common/util/status_macros.h"

namespace swarr {
grpc::Status CoordinatorService::RegisterWorker(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                                                v1::RegisterWorkerResponse* response) {
  if (grpc::Status s = CheckAuth(*context, security_, "Coordinator.RegisterWorker"); !s.ok()) return s;
  auto r = coordinator_->RegisterWorker(*request);
  if (!r.ok()) return ToGrpcStatus(r.status());
  *response = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status CoordinatorService::Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                                           v1::HeartbeatResponse* response) {
  if (grpc::Status s = CheckAuth(*context, security_, "Coordinator.Heartbeat"); !s.ok()) return s;
  return ToGrpcStatus(coordinator_->Heartbeat(*request, response));
}

grpc::ServerWriteReactor<v1::Assignment>* CoordinatorService::WatchAssignments(
    grpc::CallbackServerContext* context, const v1::WatchAssignmentsRequest* request) {
  if (grpc::Status s = CheckAuth(*context, security_, "Coordinator.WatchAssignments"); !s.ok()) {
    return AssignmentStream::Rejected(s);
  }
  if (request->worker_id().empty()) {
    return AssignmentStream::Rejected(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "worker_id: required"));
  }
  Coordinator* coordinator = coordinator_;
  const std::string worker_id = request->worker_id();
  auto holder = std::make_shared<const AssignmentSink*>(nullptr);
  auto [reactor, stream] = AssignmentStream::Create(
      [coordinator, worker_id, holder](const std::vector<std::string>& unsent) {
        coordinator->StreamBroken(worker_id, *holder, unsent);
      });
  *holder = stream.get();
  absl::Status s = coordinator_->OpenStream(worker_id, stream);
  if (!s.ok()) stream->Close(s);
  return reactor;
}

grpc::Status CoordinatorService::ReportEval(grpc::ServerContext* context, const v1::ReportEvalRequest* request,
                                            v1::ReportEvalResponse*) {
  if (grpc::Status s = CheckAuth(*context, security_, "Coordinator.ReportEval"); !s.ok()) return s;
  return ToGrpcStatus(coordinator_->ReportEval(*request));
}

grpc::Status CoordinatorService::GetStatus(grpc::ServerContext* context, const v1::GetPipelineStatusRequest*,
                                           v1::PipelineStatus* response) {
  if (grpc::Status s = CheckAuth(*context, security_, "Coordinator.GetStatus"); !s.ok()) return s;
  *response = coordinator_->GetStatus();
  return grpc::Status::OK;
}

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(CoordinatorServerOptions options) {
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer());
  s->metrics_ = MetricsExporter::Start(options.metrics_listen, "coordinator");
  if (!options.coordinator.metrics_registry) options.coordinator.metrics_registry = s->metrics_->shared_registry();
  const RpcSecurity security = options.coordinator.security;
  const RpcLimits limits = RpcLimitsFromSettings(options.coordinator.pipeline.rpc());
  SWARR_ASSIGN_OR_RETURN(s->coordinator_, Coordinator::Create(std::move(options.coordinator)));
  s->service_ = std::make_unique<CoordinatorService>(s->coordinator_.get(), security);
  SWARR_ASSIGN_OR_RETURN(RunningServer running, StartServer(options.listen, {s->service_.get()}, security, limits));
  s->server_ = std::move(running.server);
  s->port_ = running.port;
  s->coordinator_->Start();
  return s;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

void CoordinatorServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (coordinator_) coordinator_->Shutdown();
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_->Wait();
  }
}

}  // namespace swarr
