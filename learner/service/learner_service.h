// swarr.v1.Learner over gRPC (proto/swarr/v1/learner.proto, docs/services.md): a thin adapter
// that checks the bearer token, converts absl::Status <-> grpc::Status and streams weights,
// around a LearnerEngine (learner_engine.h) that does the work.
//
//   LearnerServiceOptions opts;
//   opts.run_dir = "runs/x";
//   opts.security = *LoadRpcSecurity(token_file, cert, key, ca);
//   LearnerService service(opts);
//   SWARR_RETURN_IF_ERROR(service.Start());      // reads the run dir, binds opts.listen
//   ... service.port() ...
//   service.Shutdown();                          // SIGTERM: checkpoint, stop serving
//
// Thread safety: the RPC handlers run on gRPC's threads; Start / Shutdown from one thread.
#ifndef SWARR_LEARNER_SERVICE_LEARNER_SERVICE_H_
#define SWARR_LEARNER_SERVICE_LEARNER_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "common/rpc/service_options.h"
#include "common/util/fifo_gate.h"
#include "learner/service/learner_engine.h"
#include "proto/swarr/v1/learner.grpc.pb.h"

namespace prometheus {
class Registry;
}

namespace swarr {

struct LearnerServiceOptions {
  std::string run_dir;                  // RUN_DIR. Required.
  std::string listen = "127.0.0.1:0";   // gRPC address; port 0 = any free port
  std::string port_file;                // "" = none; else the bound port is written there
  RpcSecurity security;                 // bearer token / TLS / mTLS (service_options.h)
  RpcLimits limits;                     // largest message (a PushTrajectories call included)
  // The registry the learner's metrics go to (MetricsExporter::shared_registry()); null = a
  // private one.
  std::shared_ptr<prometheus::Registry> metrics_registry;
  std::string incarnation;              // "" = random (tests may fix it)
  // GetWeights streams served at once; more callers wait in arrival order (within their
  // deadline), so that rollout servers asking for a new version together get it one after
  // another at full speed rather than all at once at a fraction (docs/weight-sync.md).
  int64_t max_weight_streams = 2;
  // Called (on a gRPC thread, once) when the coordinator calls Learner.Finish at the end of the
  // pipeline: `swarr learner` then shuts the service down and exits 0 as on SIGTERM. Must not
  // block or call Shutdown() itself. Unset: Finish is only recorded (finish_requested()).
  std::function<void(const v1::FinishRequest&)> on_finish;
};

class LearnerService final : public v1::Learner::Service {
 public:
  explicit LearnerService(LearnerServiceOptions options);
  // Shutdown().
  ~LearnerService() override;

  // Creates the engine (reads RUN_DIR/learner/), starts the gRPC server (with the health
  // service) on options.listen and writes options.port_file. kUnavailable: the address cannot
  // be bound; kInvalidArgument: the run directory or TLS files are unusable.
  absl::Status Start();
  // The bound port (after Start).
  int port() const { return port_; }
  // The engine (after Start): the in-process API the gRPC methods call.
  LearnerEngine& engine() { return *engine_; }

  // Stops accepting calls (in-flight ones get up to `grace_seconds`), then checkpoints the
  // running stage (LearnerEngine::Shutdown). Idempotent.
  absl::Status Shutdown(double grace_seconds = 5);

  grpc::Status PushTrajectories(grpc::ServerContext* context, const v1::PushTrajectoriesRequest* request,
                                v1::PushTrajectoriesResponse* response) override;
  grpc::Status GetWeights(grpc::ServerContext* context, const v1::GetWeightsRequest* request,
                          grpc::ServerWriter<v1::WeightsChunk>* writer) override;
  grpc::Status GetWeightsIpc(grpc::ServerContext* context, const v1::GetWeightsRequest* request,
                            v1::CudaIpcWeights* response) override;
  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetLearnerStatusRequest* request,
                         v1::LearnerStatus* response) override;
  grpc::Status StartStage(grpc::ServerContext* context, const v1::StartStageRequest* request,
                          v1::LearnerStatus* response) override;
  grpc::Status GetGroupStates(grpc::ServerContext* context, const v1::GetGroupStatesRequest* request,
                              v1::GetGroupStatesResponse* response) override;
  grpc::Status Finish(grpc::ServerContext* context, const v1::FinishRequest* request,
                      v1::FinishResponse* response) override;
  // Learner.Finish has been called.
  bool finish_requested() const { return finish_requested_.load(); }

 private:
  const LearnerServiceOptions options_;
  std::unique_ptr<LearnerEngine> engine_;
  std::unique_ptr<FifoGate> weight_streams_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
  std::atomic<bool> finish_requested_{false};
};

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_LEARNER_SERVICE_H_
