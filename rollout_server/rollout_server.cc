#include "rollout_server/rollout_server.h"

#include <cstdlib>

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/model/cuda_ipc.h"
#include "common/model/runtime.h"
#include "common/rpc/status.h"
#include "common/util/status_macros.h"
#include "rollout_server/weights_ipc.h"

namespace swarr {
namespace {

constexpr int64_t kDefaultMaxSequences = 64;  // WorkerSettings.max_sequences' default

// host:port as others reach it: the listen host, or this machine's name for a wildcard.
std::string AdvertisedAddress(const std::string& listen, int port) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") {
    char name[256] = {0};
    host = gethostname(name, sizeof(name) - 1) == 0 && name[0] != '\0' ? std::string(name) : "127.0.0.1";
  }
  return absl::StrCat(host, ":", port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RolloutServer>> RolloutServer::Start(const RolloutServerOptions& options) {
  if (options.max_sequences.has_value() && *options.max_sequences < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--max-sequences must be >= 1, got ", *options.max_sequences));
  }
  if (options.max_tokens.has_value() && *options.max_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--max-tokens must be >= 0, got ", *options.max_tokens));
  }
  if (options.progress_timeout_seconds.has_value() && !(*options.progress_timeout_seconds > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--progress-timeout-seconds must be > 0, got ", *options.progress_timeout_seconds));
  }
  if (!(options.drain_seconds >= 0)) {
    return absl::InvalidArgumentError(absl::StrCat("--drain-seconds must be >= 0, got ", options.drain_seconds));
  }
  if (options.listen.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("--listen must be HOST:PORT, got '", options.listen, "'"));
  }
  SWARR_RETURN_IF_ERROR(RolloutEngine::CheckDevice(options.device));
  if (const std::string why = LimitDeviceMemory(options.device, options.memory_gib); !why.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--memory-gib ", options.memory_gib, ": ", why));
  }

  std::unique_ptr<RolloutServer> s(new RolloutServer(options));
  s->exporter_ = MetricsExporter::Start(options.metrics_listen, "rollout");
  s->metrics_ = std::make_unique<RolloutMetrics>(s->exporter_->registry());
  SWARR_ASSIGN_OR_RETURN(auto decoder, CompletionDecoder::Create(""));
  s->default_decoder_ = std::move(decoder);

  EngineOptions eo;
  eo.max_sequences = options.max_sequences.value_or(kDefaultMaxSequences);
  eo.max_tokens = options.max_tokens.value_or(0);
  eo.device = options.device;
  eo.dtype = options.dtype;
  eo.prefill_chunk = options.prefill_chunk;
  eo.load_retry_initial_seconds = options.backoff_initial_seconds;
  eo.load_retry_max_seconds = options.backoff_max_seconds;
  SWARR_ASSIGN_OR_RETURN(s->engine_, RolloutEngine::Create(eo, s->metrics_.get()));
  RolloutServer* self = s.get();
  int64_t hang_after = options.hang_engine_after_steps_for_test;
  double hang_seconds = options.hang_engine_seconds_for_test;
  if (const char* env = std::getenv("SWARR_TEST_ENGINE_HANG"); hang_after == 0 && env != nullptr) {
    // "<name>:<steps>" or "<name>:<steps>:<seconds>".
    const std::vector<std::string> parts = absl::StrSplit(env, ':');
    int64_t steps = 0;
    double secs = 0;
    if (parts.size() >= 2 && parts.size() <= 3 && parts[0] == options.name && absl::SimpleAtoi(parts[1], &steps) &&
        steps > 0 && (parts.size() == 2 || (absl::SimpleAtod(parts[2], &secs) && secs > 0))) {
      hang_after = steps;
      hang_seconds = secs;
    }
  }
  if (hang_after > 0) {
    const int64_t after = hang_after;
    const double for_seconds = hang_seconds;
    std::shared_ptr<std::atomic<bool>> released = s->test_hang_released_;
    s->engine_->SetStepObserverForTest([after, for_seconds, released](int64_t step, const std::vector<std::string>&) {
      if (step != after) return;
      std::cerr << "rollout: test hook: the engine loop hangs after decode step " << step << "\n";
      const absl::Time until = for_seconds > 0 ? absl::Now() + absl::Seconds(for_seconds) : absl::InfiniteFuture();
      while (!released->load() && absl::Now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      std::cerr << "rollout: test hook: the engine loop goes on\n";
    });
  }
  s->engine_->SetFetcher([self](const v1::GetWeightsRequest& req) -> absl::StatusOr<WeightsBlob> {
    std::shared_ptr<v1::Learner::StubInterface> stub;
    RpcLimits limits;
    {
      absl::MutexLock lock(&self->mu_);
      stub = self->learner_;
      limits = self->client_limits_;
    }
    if (stub == nullptr) return absl::UnavailableError("the learner's address is not known yet");
    // A weight transfer is large: give it more than a unary call.
    return FetchWeights(*stub, req, self->options_.security, limits, std::max(120.0, limits.deadline_seconds));
  });
  // A rollout server on a GPU first asks for the learner's device buffer (same host: a
  // device-to-device copy, docs/weight-sync.md); GetWeights stays the fallback.
  if (options.device.rfind("cuda", 0) == 0 && CudaIpcAvailable()) {
    s->engine_->SetDeviceFetcher(
        [self](const v1::GetWeightsRequest& req) -> absl::StatusOr<std::shared_ptr<DecodedWeights>> {
          std::shared_ptr<v1::Learner::StubInterface> stub;
          RpcLimits limits;
          {
            absl::MutexLock lock(&self->mu_);
            stub = self->learner_;
            limits = self->client_limits_;
          }
          if (stub == nullptr) return absl::UnavailableError("the learner's address is not known yet");
          SWARR_ASSIGN_OR_RETURN(DecodedWeights w,
                                 FetchWeightsIpc(*stub, req, self->options_.device, self->options_.security, limits));
          return std::make_shared<DecodedWeights>(std::move(w));
        });
  }

  PusherOptions po;
  po.backoff_initial_seconds = options.backoff_initial_seconds;
  po.backoff_max_seconds = options.backoff_max_seconds;
  s->pusher_ = std::make_unique<Pusher>(
      po, s->metrics_.get(), [self] { return self->Targets(); },
      [self](const std::string& group_id, PushOutcome outcome) {
        if (outcome == PushOutcome::kFinished) {
          self->Finished(group_id);
        } else {
          self->Returned(group_id);
        }
      });

  s->service_ = std::make_unique<RolloutServiceImpl>(s->engine_.get(), s.get(), options.security);
  SWARR_ASSIGN_OR_RETURN(RunningServer rs, StartServer(options.listen, {s->service_.get()}, options.security,
                                                       options.limits.value_or(RpcLimits())));
  s->grpc_server_ = std::move(rs.server);
  s->port_ = rs.port;
  s->advertised_address_ = AdvertisedAddress(options.listen, s->port_);
  if (!options.port_file.empty()) SWARR_RETURN_IF_ERROR(WritePortFile(options.port_file, s->port_));
  if (!options.metrics_port_file.empty() && s->exporter_->port() > 0) {
    SWARR_RETURN_IF_ERROR(WritePortFile(options.metrics_port_file, s->exporter_->port()));
  }
  if (!options.learner_address.empty()) s->SetLearnerAddress(options.learner_address);
  if (options.progress_timeout_seconds.has_value()) {
    absl::MutexLock lock(&s->mu_);
    s->progress_timeout_seconds_ = *options.progress_timeout_seconds;
  }
  s->watchdog_thread_ = std::thread([self] { self->WatchdogLoop(); });
  if (!options.coordinator_address.empty()) {
    SWARR_ASSIGN_OR_RETURN(auto channel, MakeChannel(options.coordinator_address, options.security,
                                                     options.limits.value_or(RpcLimits())));
    s->coordinator_ = v1::Coordinator::NewStub(channel);
    s->session_thread_ = std::thread([self] { self->SessionLoop(); });
  }
  std::cerr << "rollout: serving on " << s->advertised_address_ << " (metrics port " << s->exporter_->port() << ")"
            << (options.coordinator_address.empty() ? ", standalone" : ", coordinator " + options.coordinator_address)
            << "\n";
  return s;
}

RolloutServer::RolloutServer(const RolloutServerOptions& options) : options_(options) {
  client_limits_ = options.limits.value_or(RpcLimits());
}

RolloutServer::~RolloutServer() { Shutdown(); }

std::string RolloutServer::worker_id() const {
  absl::MutexLock lock(&mu_);
  return worker_id_;
}

bool RolloutServer::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

std::shared_ptr<const CompletionDecoder> RolloutServer::DecoderFor(const std::string& stage) const {
  absl::MutexLock lock(&mu_);
  auto it = decoders_.find(stage);
  if (it != decoders_.end()) return it->second;
  return current_decoder_ != nullptr ? current_decoder_ : default_decoder_;
}

PushTargets RolloutServer::Targets() const {
  PushTargets t;
  absl::MutexLock lock(&mu_);
  t.learner = learner_;
  t.coordinator = coordinator_;
  t.worker_id = worker_id_;
  t.security = options_.security;
  t.limits = client_limits_;
  return t;
}

void RolloutServer::SetLearnerAddress(const std::string& address) {
  absl::MutexLock lock(&mu_);
  if (address.empty() || address == learner_address_) return;
  auto channel = MakeChannel(address, options_.security, client_limits_);
  if (!channel.ok()) {
    std::cerr << "rollout: bad learner address '" << address << "': " << channel.status() << "\n";
    return;
  }
  learner_address_ = address;
  learner_ = v1::Learner::NewStub(*channel);
}

void RolloutServer::WatchdogLoop() {
  int64_t last_steps = -1;
  absl::Time last_move = absl::Now();
  bool serving = true;
  while (SleepUnlessStopping(absl::Milliseconds(200))) {
    const EngineStats st = engine_->Stats();
    const absl::Time now = absl::Now();
    if (st.decode_steps != last_steps || st.runnable_sequences == 0) {
      last_steps = st.decode_steps;
      last_move = now;
    }
    double timeout;
    {
      absl::MutexLock lock(&mu_);
      timeout = progress_timeout_seconds_;
    }
    const double stalled = absl::ToDoubleSeconds(now - last_move);
    const bool stuck = stalled > timeout;
    if (stuck != serving) continue;
    serving = !stuck;
    grpc_server_->GetHealthCheckService()->SetServingStatus(serving);
    if (stuck) {
      std::cerr << "rollout: the engine made no decode step for " << stalled << " s with " << st.runnable_sequences
                << " sequences to run (progress timeout " << timeout << " s): health NOT_SERVING\n";
    } else {
      std::cerr << "rollout: the engine makes progress again (decode step " << st.decode_steps
                << "): health SERVING\n";
    }
  }
}

void RolloutServer::ReleaseTestHang() { test_hang_released_->store(true); }

bool RolloutServer::SleepUnlessStopping(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&stopping), d);
  return !stopping_;
}

void RolloutServer::Finished(const std::string& group_id) {
  absl::MutexLock lock(&mu_);
  active_groups_.erase(group_id);
  finished_ids_.push_back(group_id);
}

void RolloutServer::Returned(const std::string& group_id) {
  absl::MutexLock lock(&mu_);
  active_groups_.erase(group_id);
  returned_ids_.push_back(group_id);
}

// ---------------------------------------------------------------------------------------------
// Coordinator session.

absl::Status RolloutServer::RegisterOnce(bool allow_zero_capacity) {
  v1::RegisterWorkerRequest req;
  req.set_role("rollout");
  req.set_address(advertised_address_);
  // Without our own limits we ask for the pipeline's (0); once known, we say what we run.
  const bool own_sequences = options_.max_sequences.has_value() || !allow_zero_capacity;
  req.set_max_sequences(static_cast<int32_t>(own_sequences ? engine_->max_sequences() : 0));
  req.set_max_tokens(options_.max_tokens.has_value() || !allow_zero_capacity ? engine_->max_tokens() : 0);
  req.set_device(options_.device);
  req.set_name(options_.name);
  const EngineStats stats = engine_->Stats();
  if (stats.has_weights) *req.mutable_loaded() = stats.loaded;
  {
    // Groups of an earlier coordinator process count in the new one's in-flight bound.
    absl::MutexLock lock(&mu_);
    for (const std::string& id : active_groups_) req.add_held_group_ids(id);
  }
  v1::RegisterWorkerResponse resp;
  grpc::ClientContext ctx;
  RpcLimits limits;
  {
    absl::MutexLock lock(&mu_);
    limits = client_limits_;
  }
  PrepareContext(&ctx, options_.security, limits, std::min(limits.deadline_seconds, 10.0));
  grpc::Status st = coordinator_->RegisterWorker(&ctx, req, &resp);
  if (!st.ok()) return FromGrpcStatus(st);
  if (resp.worker_id().empty()) return absl::UnavailableError("the coordinator answered without a worker id");
  if (!options_.max_sequences.has_value() || !options_.max_tokens.has_value()) {
    engine_->SetLimits(options_.max_sequences.has_value() || resp.max_sequences() < 1 ? -1 : resp.max_sequences(),
                       options_.max_tokens.has_value() || resp.max_tokens() < 0 ? -1 : resp.max_tokens());
  }
  {
    absl::MutexLock lock(&mu_);
    if (!options_.limits.has_value()) {
      RpcLimits adopted;
      if (resp.max_message_bytes() > 0) adopted.max_message_bytes = resp.max_message_bytes();
      if (resp.deadline_seconds() > 0) adopted.deadline_seconds = resp.deadline_seconds();
      if (resp.keepalive_time_seconds() > 0) adopted.keepalive_time_seconds = resp.keepalive_time_seconds();
      if (resp.keepalive_timeout_seconds() > 0) adopted.keepalive_timeout_seconds = resp.keepalive_timeout_seconds();
      client_limits_ = adopted;
    }
    heartbeat_seconds_ = resp.heartbeat_seconds() > 0 ? resp.heartbeat_seconds() : 1.0;
    if (!options_.progress_timeout_seconds.has_value() && resp.progress_timeout_seconds() > 0) {
      progress_timeout_seconds_ = resp.progress_timeout_seconds();
    }
    worker_id_ = resp.worker_id();
  }
  engine_->SetWorkerId(resp.worker_id());
  if (options_.learner_address.empty()) SetLearnerAddress(resp.learner_address());
  std::cerr << "rollout: registered as " << resp.worker_id() << " (heartbeat " << resp.heartbeat_seconds()
            << " s, learner " << resp.learner_address() << ", max_sequences " << engine_->max_sequences()
            << ", max_tokens " << engine_->max_tokens() << ")\n";
  if (resp.has_pipeline_end()) OnPipelineEnd(resp.pipeline_end());
  return absl::OkStatus();
}

bool RolloutServer::EnsureRegistered(const std::string& stale_id) {
  absl::MutexLock registering(&register_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ || draining_) return false;
    if (worker_id_ != stale_id) return true;  // another thread registered meanwhile
  }
  bool allow_zero = !options_.max_sequences.has_value();
  // After the first registration our capacity is known: say it.
  {
    absl::MutexLock lock(&mu_);
    if (!stale_id.empty()) allow_zero = false;
  }
  double backoff = options_.backoff_initial_seconds;
  for (int attempt = 0;; ++attempt) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || draining_) return false;
    }
    absl::Status st = RegisterOnce(allow_zero);
    if (st.ok()) return true;
    if (st.code() == absl::StatusCode::kInvalidArgument) {
      if (allow_zero) {
        allow_zero = false;  // this coordinator wants a capacity >= 1: send ours
        continue;
      }
      std::cerr << "rollout: the coordinator refused the registration: " << st << "\n";
      {
        absl::MutexLock lock(&mu_);
        exit_status_ = st;
      }
      Drain();
      return false;
    }
    if (attempt == 0 || attempt % 10 == 0) {
      std::cerr << "rollout: cannot register with the coordinator at " << options_.coordinator_address << " (" << st
                << "), retrying\n";
    }
    if (!SleepUnlessStopping(absl::Seconds(backoff))) return false;
    backoff = std::min(options_.backoff_max_seconds, backoff * 2);
  }
}

grpc::Status RolloutServer::SendHeartbeat(bool final_beat) {
  v1::HeartbeatRequest req;
  size_t n_finished = 0, n_returned = 0;
  RpcLimits limits;
  {
    absl::MutexLock lock(&mu_);
    if (worker_id_.empty()) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "not registered");
    req.set_worker_id(worker_id_);
    for (const std::string& id : finished_ids_) req.add_finished_group_ids(id);
    for (const std::string& id : returned_ids_) req.add_returned_group_ids(id);
    for (const std::string& id : active_groups_) req.add_held_group_ids(id);
    n_finished = finished_ids_.size();
    n_returned = returned_ids_.size();
    req.set_draining(draining_);
    limits = client_limits_;
  }
  const EngineStats stats = engine_->Stats();
  if (stats.has_weights) *req.mutable_loaded() = stats.loaded;
  req.set_active_sequences(static_cast<int32_t>(stats.active_sequences));
  req.set_queued_sequences(static_cast<int32_t>(stats.queued_sequences));
  req.set_tokens_generated(stats.tokens_generated);
  req.mutable_progress()->set_decode_steps(stats.decode_steps);
  req.mutable_progress()->set_running_sequences(static_cast<int32_t>(std::min<int64_t>(stats.runnable_sequences, INT32_MAX)));
  grpc::ClientContext ctx;
  PrepareContext(&ctx, options_.security, limits, std::min(limits.deadline_seconds, final_beat ? 5.0 : 10.0));
  v1::HeartbeatResponse resp;
  grpc::Status st = coordinator_->Heartbeat(&ctx, req, &resp);
  if (st.ok()) {
    absl::MutexLock lock(&mu_);
    // Only this thread removes ids; others only append.
    finished_ids_.erase(finished_ids_.begin(), finished_ids_.begin() + static_cast<std::ptrdiff_t>(n_finished));
    returned_ids_.erase(returned_ids_.begin(), returned_ids_.begin() + static_cast<std::ptrdiff_t>(n_returned));
  }
  if (st.ok() && resp.has_pipeline_end()) OnPipelineEnd(resp.pipeline_end());
  return st;
}

void RolloutServer::SessionLoop() {
  if (!EnsureRegistered("") || idle()) return;
  watch_thread_ = std::thread([this] { WatchLoop(); });
  int failures = 0;
  while (true) {
    double period;
    {
      absl::MutexLock lock(&mu_);
      period = heartbeat_seconds_;
    }
    if (!SleepUnlessStopping(absl::Seconds(period))) return;
    const std::string id = worker_id();
    grpc::Status st = SendHeartbeat(false);
    if (idle()) return;  // the pipeline has ended: no more heartbeats
    if (st.ok()) {
      failures = 0;
      continue;
    }
    if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
      std::cerr << "rollout: the coordinator does not know worker " << id << ": registering again\n";
      if (!EnsureRegistered(id)) {
        if (draining()) continue;  // draining: keep beating with the id we have
        return;
      }
      continue;
    }
    if (failures++ % 20 == 0) std::cerr << "rollout: heartbeat failed: " << st.error_message() << "\n";
  }
}

void RolloutServer::WatchLoop() {
  double backoff = options_.backoff_initial_seconds;
  int failures = 0;
  while (true) {
    grpc::ClientContext ctx;
    if (!options_.security.token.empty()) ctx.AddMetadata("authorization", "Bearer " + options_.security.token);
    v1::WatchAssignmentsRequest req;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_ || draining_ || idle_) return;
      req.set_worker_id(worker_id_);
      watch_call_ = &ctx;
    }
    std::unique_ptr<grpc::ClientReaderInterface<v1::Assignment>> reader = coordinator_->WatchAssignments(&ctx, req);
    v1::Assignment a;
    while (reader->Read(&a)) {
      backoff = options_.backoff_initial_seconds;
      failures = 0;
      OnAssignment(a);
      if (a.has_pipeline_end()) ctx.TryCancel();  // nothing follows it
    }
    grpc::Status st = reader->Finish();
    {
      absl::MutexLock lock(&mu_);
      watch_call_ = nullptr;
      if (stopping_ || draining_ || idle_) return;
    }
    if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
      std::cerr << "rollout: WatchAssignments: worker " << req.worker_id() << " unknown: registering again\n";
      if (!EnsureRegistered(req.worker_id())) return;
      continue;
    }
    if (failures++ % 20 == 0) {
      std::cerr << "rollout: WatchAssignments ended (" << st.error_code() << ": " << st.error_message()
                << "), reconnecting\n";
    }
    if (!SleepUnlessStopping(absl::Seconds(backoff))) return;
    backoff = std::min(options_.backoff_max_seconds, backoff * 2);
  }
}

void RolloutServer::OnAssignment(const v1::Assignment& a) {
  if (a.has_pipeline_end()) {
    OnPipelineEnd(a.pipeline_end());
    return;
  }
  if (a.has_stage()) {
    const v1::StageInfo& s = a.stage();
    auto decoder = CompletionDecoder::Create(s.tokenizer_json());
    if (!decoder.ok()) {
      std::cerr << "rollout: ERROR: stage '" << s.stage_name() << "': bad tokenizer: " << decoder.status()
                << " (keeping the previous decoder)\n";
      return;
    }
    std::shared_ptr<const CompletionDecoder> d = *std::move(decoder);
    absl::MutexLock lock(&mu_);
    decoders_[s.stage_name()] = d;
    current_decoder_ = d;
    std::cerr << "rollout: stage " << s.stage_index() << " '" << s.stage_name() << "' (" << s.kind() << ")\n";
    return;
  }
  if (a.has_load_weights()) {
    v1::GetWeightsRequest req;
    req.set_version(a.load_weights().version().version());
    req.set_learner_incarnation(a.load_weights().version().learner_incarnation());
    engine_->RequestLoad(req, [this](absl::StatusOr<LoadResult> r) {
      if (r.ok()) return;
      if (r.status().code() == absl::StatusCode::kNotFound ||
          r.status().code() == absl::StatusCode::kFailedPrecondition) {
        // Superseded or from another learner incarnation: the newest is what is wanted.
        v1::GetWeightsRequest latest;
        latest.set_latest(true);
        engine_->RequestLoad(latest, nullptr);
      }
    });
    return;
  }
  if (!a.has_group()) return;
  const v1::PromptGroup& g = a.group();
  const std::string id = g.group_id();
  std::shared_ptr<const CompletionDecoder> decoder;
  {
    absl::MutexLock lock(&mu_);
    if (draining_) {
      returned_ids_.push_back(id);
      return;
    }
    if (active_groups_.count(id) > 0) {
      std::cerr << "rollout: group '" << id << "' received again while in progress: ignored\n";
      return;
    }
    active_groups_.insert(id);
  }
  decoder = DecoderFor(g.stage());
  GroupCallbacks cb;
  const bool eval = g.eval();
  cb.on_done = [this, id, eval](absl::Status status, std::vector<SampleResult> results) {
    OnGroupDone(id, eval, std::move(status), std::move(results));
  };
  absl::StatusOr<uint64_t> h = engine_->Submit(g, GroupSource::kCoordinator, decoder, std::move(cb));
  if (!h.ok()) {
    if (h.status().code() == absl::StatusCode::kInvalidArgument) {
      std::cerr << "rollout: ERROR: rejecting a malformed group: " << h.status()
                << " -- reporting it finished (it would fail anywhere)\n";
      Finished(id);
    } else {
      Returned(id);
    }
  }
}

void RolloutServer::OnGroupDone(const std::string& group_id, bool eval, absl::Status status,
                                std::vector<SampleResult> results) {
  if (status.ok()) {
    pusher_->Enqueue(PushJob{group_id, eval, std::move(results)});
    return;
  }
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    std::cerr << "rollout: ERROR: group '" << group_id << "' cannot be generated: " << status
              << " -- reporting it finished (it would fail anywhere)\n";
    Finished(group_id);
    return;
  }
  if (status.code() != absl::StatusCode::kCancelled) {
    std::cerr << "rollout: group '" << group_id << "' not finished (" << status << "): handing it back\n";
  }
  Returned(group_id);
}

// ---------------------------------------------------------------------------------------------
// Pipeline end, drain and stop.

bool RolloutServer::idle() const {
  absl::MutexLock lock(&mu_);
  return idle_;
}

void RolloutServer::OnPipelineEnd(const v1::PipelineEnd& end) {
  {
    absl::MutexLock lock(&mu_);
    if (pipeline_ended_) return;
    pipeline_ended_ = true;
    idle_ = !end.exit();
  }
  const std::string what = absl::StrCat("the pipeline '", end.pipeline(), "' ",
                                        end.error().empty() ? "has ended" : absl::StrCat("failed: ", end.error()));
  if (!end.exit()) {
    std::cerr << "rollout: " << what << "; idle until stopped (SIGTERM)\n";
    return;
  }
  std::cerr << "rollout: " << what << "; exiting\n";
  Drain();
  // What is still generating or waiting to be pushed has no use any more.
  engine_->AbortAll(absl::AbortedError("the pipeline has ended"));
  pusher_->Abort();
}

void RolloutServer::Drain() {
  {
    absl::MutexLock lock(&mu_);
    if (draining_ || stopping_) return;
    draining_ = true;
    if (watch_call_ != nullptr) watch_call_->TryCancel();
  }
  ReleaseTestHang();
  std::cerr << "rollout: draining (at most " << options_.drain_seconds << " s)\n";
  // Groups not started go back at once (the next heartbeat says so); from here on no group
  // starts that had not.
  for (const v1::PromptGroup& g : engine_->TakeUnstarted(GroupSource::kCoordinator)) Returned(g.group_id());
  engine_->FailUnstarted(GroupSource::kDirect, absl::UnavailableError("the rollout server is draining"));
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  drain_thread_ = std::thread([this] { DrainLoop(); });
}

void RolloutServer::DrainLoop() {
  const absl::Time deadline = absl::Now() + absl::Seconds(options_.drain_seconds);
  auto drained = [this]() {
    absl::MutexLock lock(&mu_);
    return active_groups_.empty();
  };
  while (absl::Now() < deadline && !(drained() && engine_->NumGroups(GroupSource::kDirect) == 0)) {
    if (!SleepUnlessStopping(absl::Milliseconds(20))) break;
  }
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
  }
  if (!stopping && !(drained() && engine_->NumGroups(GroupSource::kDirect) == 0)) {
    std::cerr << "rollout: drain deadline: handing back what is not finished\n";
    engine_->AbortAll(absl::AbortedError("the rollout server's drain deadline passed"));
    pusher_->Abort();
    const absl::Time limit = absl::Now() + absl::Seconds(10);
    while (!drained() && absl::Now() < limit) {
      if (!SleepUnlessStopping(absl::Milliseconds(20))) break;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    stopping = stopping_;
    stopping_ = true;
    if (watch_call_ != nullptr) watch_call_->TryCancel();
  }
  if (session_thread_.joinable()) session_thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
  if (!stopping && coordinator_ != nullptr && !idle()) {
    grpc::Status st = SendHeartbeat(/*final_beat=*/true);
    if (!st.ok()) std::cerr << "rollout: last heartbeat failed: " << st.error_message() << "\n";
  }
  StopAll();
  std::cerr << "rollout: drained and stopped\n";
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

void RolloutServer::StopAll() {
  absl::MutexLock teardown(&teardown_mu_);
  if (torn_down_) return;
  torn_down_ = true;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watch_call_ != nullptr) watch_call_->TryCancel();
  }
  if (session_thread_.joinable()) session_thread_.join();
  if (watch_thread_.joinable()) watch_thread_.join();
  if (watchdog_thread_.joinable()) watchdog_thread_.join();
  ReleaseTestHang();
  // Calls in flight are cancelled; their groups end through the engine, still running.
  if (grpc_server_ != nullptr) grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (pusher_ != nullptr) pusher_->Stop();
  if (engine_ != nullptr) engine_->Stop();
  if (grpc_server_ != nullptr) grpc_server_->Wait();
}

void RolloutServer::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (watch_call_ != nullptr) watch_call_->TryCancel();
  }
  if (drain_thread_.joinable() && drain_thread_.get_id() != std::this_thread::get_id()) drain_thread_.join();
  StopAll();
  absl::MutexLock lock(&mu_);
  stopped_ = true;
}

absl::Status RolloutServer::Wait() {
  absl::MutexLock lock(&mu_);
  auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopped_; };
  mu_.Await(absl::Condition(&stopped));
  return exit_status_;
}

}  // namespace swarr
