// swarr.v1.Coordinator over gRPC: CoordinatorService adapts the RPCs onto a Coordinator engine
// (token check first, proto in, proto / grpc::Status out; WatchAssignments is a callback
// stream), and CoordinatorServer runs engine + service + server + /metrics together.
//
// In-process use (tests, `swarr coordinator`):
//
//   CoordinatorServerOptions opts;
//   opts.coordinator.pipeline = pipeline;          // ValidatePipeline'd, name set
//   opts.coordinator.run_dir = dir;
//   opts.coordinator.learner_address = "127.0.0.1:5555";
//   SWARR_ASSIGN_OR_RETURN(auto server, CoordinatorServer::Start(opts));   // loop running
//   ... server->port() ...
//   server->WaitForDone(absl::Seconds(60));        // true once summary.json is written
//   server->Shutdown();                            // or just destroy it
#ifndef SWARR_COORDINATOR_SERVICE_H_
#define SWARR_COORDINATOR_SERVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics/exporter.h"
#include "common/rpc/service_options.h"
#include "coordinator/coordinator.h"
#include "proto/swarr/v1/coordinator.grpc.pb.h"

namespace swarr {

// Thread-safe. `coordinator` is not owned and must outlive the gRPC server.
class CoordinatorService final
    : public v1::Coordinator::WithCallbackMethod_WatchAssignments<v1::Coordinator::Service> {
 public:
  CoordinatorService(Coordinator* coordinator, RpcSecurity security)
      : coordinator_(coordinator), security_(std::move(security)) {}

  grpc::Status RegisterWorker(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                              v1::RegisterWorkerResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::ServerWriteReactor<v1::Assignment>* WatchAssignments(grpc::CallbackServerContext* context,
                                                            const v1::WatchAssignmentsRequest* request) override;
  grpc::Status ReportEval(grpc::ServerContext* context, const v1::ReportEvalRequest* request,
                          v1::ReportEvalResponse* response) override;
  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetPipelineStatusRequest* request,
                         v1::PipelineStatus* response) override;

 private:
  Coordinator* const coordinator_;
  const RpcSecurity security_;
};

struct CoordinatorServerOptions {
  CoordinatorOptions coordinator;
  // gRPC address (port 0 = any free one).
  std::string listen = "127.0.0.1:0";
  // Prometheus endpoint ("" = none).
  std::string metrics_listen;
};

class CoordinatorServer {
 public:
  // Creates the coordinator (resuming RUN_DIR's state), binds, and starts the pipeline loop.
  // Errors: Coordinator::Create's, kUnavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(CoordinatorServerOptions options);
  // Shutdown().
  ~CoordinatorServer();

  int port() const { return port_; }
  // 0 when not serving /metrics.
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  Coordinator& coordinator() { return *coordinator_; }
  // See Coordinator::WaitForDone.
  bool WaitForDone(absl::Duration timeout) { return coordinator_->WaitForDone(timeout); }
  // Stops the loop, persists, closes the streams, stops the server. Idempotent.
  void Shutdown();

 private:
  CoordinatorServer() = default;
  std::unique_ptr<MetricsExporter> metrics_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<CoordinatorService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
};

}  // namespace swarr

#endif  // SWARR_COORDINATOR_SERVICE_H_
