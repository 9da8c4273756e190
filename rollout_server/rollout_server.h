// A rollout server (docs/services.md, docs/rollout.md): the engine, the Rollout gRPC service,
// the /metrics endpoint, and the worker side of the coordinator protocol:
//
//   RegisterWorker (retried with backoff until the coordinator answers) -> worker id, lease,
//     learner address, capacity and RPC limits (used unless the options set them);
//   a heartbeat every heartbeat_seconds (loaded version, load, finished / returned groups,
//     tokens); NOT_FOUND -> register again, running groups go on;
//   WatchAssignments: StageInfo (decoder of the stage), PromptGroup (-> engine), and
//     LoadWeightsCommand (-> engine); reconnected with backoff, NOT_FOUND -> register again;
//   finished groups -> Pusher (learner / ReportEval) -> reported finished, or returned.
//
// Pipeline end (PipelineEnd on the stream, or in a heartbeat / registration answer): with
// `exit`, a drain that first aborts what is still generating or pushing (of no use now), so
// Wait() returns OK soon and `swarr rollout` exits 0; without, the server stays up idle: no
// more heartbeats or reconnections, until SIGTERM (then a drain with no last heartbeat).
//
// Drain (SIGTERM in `swarr rollout`, or Drain()): no new groups; unstarted ones are returned
// in the next heartbeat; running ones are finished and pushed for at most drain_seconds, then
// whatever is left is returned; a last heartbeat with `draining`; then everything stops.
//
// Thread-safe. Typical use (tests, `swarr rollout`):
//
//   RolloutServerOptions o; o.coordinator_address = "127.0.0.1:5000";
//   SWARR_ASSIGN_OR_RETURN(auto server, RolloutServer::Start(o));
//   ... server->port() ...
//   server->Drain();   // or from a signal thread
//   server->Wait();    // returns when drained
#ifndef SWARR_ROLLOUT_SERVER_ROLLOUT_SERVER_H_
#define SWARR_ROLLOUT_SERVER_ROLLOUT_SERVER_H_

#include <cstdint>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/client_context.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/metrics/exporter.h"
#include "common/rpc/service_options.h"
#include "proto/swarr/v1/coordinator.grpc.pb.h"
#include "proto/swarr/v1/learner.grpc.pb.h"
#include "rollout_server/engine.h"
#include "rollout_server/metrics.h"
#include "rollout_server/pusher.h"
#include "rollout_server/service.h"

namespace swarr {

struct RolloutServerOptions {
  // The coordinator to register with (host:port). "" = standalone: no registration; work
  // comes only through the Rollout service and weights from `learner_address`.
  std::string coordinator_address;
  // The learner (host:port). "" = the one the coordinator names (required when standalone
  // for weight loads).
  std::string learner_address;
  // Name in the coordinator's logs and status ("" = the address).
  std::string name;
  // gRPC address; port 0 = any free port (see port()). Written to `port_file` if set.
  std::string listen = "127.0.0.1:0";
  std::string port_file;
  // Prometheus endpoint ("" = none); bound port written to `metrics_port_file` if set.
  std::string metrics_listen = "127.0.0.1:0";
  std::string metrics_port_file;
  // Capacity: sequences decoded at once, and tokens (prompt + max_new_tokens per sequence)
  // in flight (0 = no limit). Unset = the coordinator's answer (standalone: 64 and 0).
  std::optional<int64_t> max_sequences;
  std::optional<int64_t> max_tokens;
  // Longest drain before the rest is returned, seconds.
  double drain_seconds = 30;
  // Model placement ("cpu", "cuda", "cuda:1") and compute dtype ("" = the device's default).
  std::string device = "cpu";
  std::string dtype;
  // GiB this server may use on its GPU (weights + KV cache + work space): its caching allocator
  // is capped there (placement.rollout_memory_gib when a GPU is shared). 0 = no cap.
  double memory_gib = 0;
  // Token / TLS for the server and, as a client, towards the coordinator and learner.
  RpcSecurity security;
  // Message size and call deadline. Unset = the coordinator's answer for client calls
  // (the server's own limits are these or the defaults).
  std::optional<RpcLimits> limits;
  // Retries (registration, reconnection, pushes, automatic weight loads): initial delay,
  // doubling up to the max.
  double backoff_initial_seconds = 0.1;
  double backoff_max_seconds = 5.0;
  // Prompt tokens per prefill pass.
  int64_t prefill_chunk = 256;
  // Engine watchdog (docs/reliability.md): gRPC health turns NOT_SERVING when the engine makes
  // no decode step this long while it has sequences to run, and SERVING again when it moves.
  // Unset = the coordinator's workers.progress_timeout_seconds (standalone: 60).
  std::optional<double> progress_timeout_seconds;
  // Test hook: after this many decode steps the engine loop hangs (as a wedged device would)
  // until the server drains or stops. 0 = never; then the environment variable
  // SWARR_TEST_ENGINE_HANG="<name>:<steps>" sets it for the server whose `name` is <name>
  // (multi-process tests; nothing else reads it).
  int64_t hang_engine_after_steps_for_test = 0;
  // ... for this long (0 = until the server drains or stops). SWARR_TEST_ENGINE_HANG may give it
  // as a third field: "<name>:<steps>:<seconds>".
  double hang_engine_seconds_for_test = 0;
};

class RolloutServer : public RolloutBackend {
 public:
  // Binds the gRPC and metrics ports, starts the engine, and (unless standalone) starts
  // registering with the coordinator in the background. kInvalidArgument for bad options,
  // kUnavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<RolloutServer>> Start(const RolloutServerOptions& options);
  ~RolloutServer() override;  // Shutdown()

  int port() const { return port_; }
  int metrics_port() const { return exporter_->port(); }
  // "" until registered.
  std::string worker_id() const override;
  bool draining() const override;

  // Starts draining (idempotent): takes no more groups and, before returning, takes back the
  // unstarted ones (returned in the next heartbeat); the rest drains in the background.
  void Drain();
  // Blocks until the server has stopped (after a drain, or Shutdown()). OK, or the error
  // that stopped it (e.g. the coordinator refused the registration as INVALID_ARGUMENT).
  absl::Status Wait();
  // Stops at once: no drain, nothing returned, no last heartbeat (like a crash, for tests).
  void Shutdown();

  RolloutEngine& engine() { return *engine_; }
  prometheus::Registry& metrics_registry() { return exporter_->registry(); }
  std::shared_ptr<const CompletionDecoder> DecoderFor(const std::string& stage) const override;

 private:
  explicit RolloutServer(const RolloutServerOptions& options);

  // Coordinator session.
  void SessionLoop();  // registers, then heartbeats
  void WatchLoop();
  // Registers (retrying) unless the id has changed since `stale_id` was seen; false if
  // stopping. kInvalidArgument from the coordinator stops the server.
  bool EnsureRegistered(const std::string& stale_id);
  absl::Status RegisterOnce(bool allow_zero_capacity);
  grpc::Status SendHeartbeat(bool final_beat);
  void OnAssignment(const v1::Assignment& a);
  // The coordinator says the pipeline has ended (any thread; once).
  void OnPipelineEnd(const v1::PipelineEnd& end);
  bool idle() const;
  void OnGroupDone(const std::string& group_id, bool eval, absl::Status status, std::vector<SampleResult> results);
  void Finished(const std::string& group_id);
  void Returned(const std::string& group_id);
  PushTargets Targets() const;
  void SetLearnerAddress(const std::string& address);
  // Sleeps unless stopping; false if stopping.
  bool SleepUnlessStopping(absl::Duration d);
  void DrainLoop();
  // Sets the gRPC health from the engine's progress, every 200 ms until stopping.
  void WatchdogLoop();
  void ReleaseTestHang();
  void StopAll();  // idempotent teardown

  const RolloutServerOptions options_;
  std::unique_ptr<MetricsExporter> exporter_;
  std::unique_ptr<RolloutMetrics> metrics_;
  std::unique_ptr<RolloutEngine> engine_;
  std::unique_ptr<Pusher> pusher_;
  std::unique_ptr<RolloutServiceImpl> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  std::string advertised_address_;
  std::shared_ptr<v1::Coordinator::StubInterface> coordinator_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // threads end
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;   // Wait() returns
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  bool pipeline_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool idle_ ABSL_GUARDED_BY(mu_) = false;  // the pipeline ended without `exit`
  absl::Status exit_status_ ABSL_GUARDED_BY(mu_);
  std::string worker_id_ ABSL_GUARDED_BY(mu_);
  double heartbeat_seconds_ ABSL_GUARDED_BY(mu_) = 1.0;
  double progress_timeout_seconds_ ABSL_GUARDED_BY(mu_) = 60;
  std::shared_ptr<std::atomic<bool>> test_hang_released_ = std::make_shared<std::atomic<bool>>(false);
  RpcLimits client_limits_ ABSL_GUARDED_BY(mu_);
  std::string learner_address_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<v1::Learner::StubInterface> learner_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* watch_call_ ABSL_GUARDED_BY(mu_) = nullptr;  // for TryCancel
  // Coordinator groups received and not yet reported (in the engine or the pusher).
  std::set<std::string> active_groups_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> finished_ids_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> returned_ids_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<const CompletionDecoder>> decoders_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const CompletionDecoder> current_decoder_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const CompletionDecoder> default_decoder_;

  absl::Mutex register_mu_;  // one registration at a time
  absl::Mutex teardown_mu_;
  bool torn_down_ ABSL_GUARDED_BY(teardown_mu_) = false;

  std::thread session_thread_;
  std::thread watch_thread_;
  std::thread drain_thread_;
  std::thread watchdog_thread_;
};

}  // namespace swarr

#endif  // SWARR_ROLLOUT_SERVER_ROLLOUT_SERVER_H_
