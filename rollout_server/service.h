// The Rollout gRPC service (proto/swarr/v1/rollout.proto): a thin adapter over RolloutEngine.
// Every handler checks the bearer token first; every request field is validated, and no
// request can crash the server. No torch here.
//
//   Generate     groups -> the engine (sharing the batch with the coordinator's work); each
//                trajectory is streamed back as soon as it is finished. INVALID_ARGUMENT
//                (field and group named), RESOURCE_EXHAUSTED (more sequences, or tokens,
//                than the server holds at once), UNAVAILABLE (no weights yet, draining).
//                A client that goes away cancels its groups.
//   LoadWeights  a version (or the latest) from the learner, now; the learner's errors pass
//                through.
//   GetStatus    worker id, loaded version, load, KV-cache bytes, tokens, draining.
#ifndef SWARR_ROLLOUT_SERVER_SERVICE_H_
#define SWARR_ROLLOUT_SERVER_SERVICE_H_

#include <memory>
#include <string>

#include "common/rpc/service_options.h"
#include "proto/swarr/v1/rollout.grpc.pb.h"
#include "rollout_server/engine.h"

namespace swarr {

// What the service needs from the server around it.
class RolloutBackend {
 public:
  virtual ~RolloutBackend() = default;
  virtual bool draining() const = 0;
  virtual std::string worker_id() const = 0;
  // The completion decoder of a stage (the current stage's, or the synthetic vocabulary's
  // when the stage is unknown).
  virtual std::shared_ptr<const CompletionDecoder> DecoderFor(const std::string& stage) const = 0;
};

// Synchronous handlers (CheckAuth takes a grpc::ServerContext): Generate and LoadWeights
// wait on the engine's callbacks, polling for the client's cancellation.
class RolloutServiceImpl final : public v1::Rollout::Service {
 public:
  // `engine` and `backend` must outlive the service.
  RolloutServiceImpl(RolloutEngine* engine, RolloutBackend* backend, const RpcSecurity& security);

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        grpc::ServerWriter<v1::GenerateResponse>* writer) override;
  grpc::Status LoadWeights(grpc::ServerContext* context, const v1::LoadWeightsRequest* request,
                           v1::LoadWeightsResponse* response) override;
  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetRolloutStatusRequest* request,
                         v1::RolloutStatus* response) override;

 private:
  // OK or the error a Generate request gets before anything runs.
  absl::Status CheckGenerate(const v1::GenerateRequest& request) const;

  RolloutEngine* const engine_;
  RolloutBackend* const backend_;
  const RpcSecurity security_;
};

}  // namespace swarr

#endif  // SWARR_ROLLOUT_SERVER_SERVICE_H_
