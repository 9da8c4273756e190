#include "rollout_server/service.h"

#include <deque>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/rpc/status.h"
#include "rollout_server/validation.h"

namespace swarr {
namespace {

// How often a waiting handler looks at its client's cancellation.
constexpr absl::Duration kPoll = absl::Milliseconds(50);

// What a Generate call's groups send back from the engine thread. Shared with the engine's
// callbacks, so it outlives a handler that returned early.
struct GenerateState {
  absl::Mutex mu;
  std::deque<v1::Trajectory> ready ABSL_GUARDED_BY(mu);
  int groups_left ABSL_GUARDED_BY(mu) = 0;
  absl::Status error ABSL_GUARDED_BY(mu);
};

struct LoadState {
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::StatusOr<LoadResult> result ABSL_GUARDED_BY(mu) = absl::UnknownError("not done");
};

}  // namespace

RolloutServiceImpl::RolloutServiceImpl(RolloutEngine* engine, RolloutBackend* backend, const RpcSecurity& security)
    : engine_(engine), backend_(backend), security_(security) {}

absl::Status RolloutServiceImpl::CheckGenerate(const v1::GenerateRequest& request) const {
  if (backend_->draining()) return absl::UnavailableError("the rollout server is draining");
  if (request.groups().empty()) return absl::InvalidArgumentError("the request has no groups");
  std::set<std::string> ids;
  double sequences = 0, tokens = 0;  // no overflow, whatever the request says
  for (const v1::PromptGroup& g : request.groups()) {
    absl::Status st = engine_->Validate(g);  // kUnavailable without weights
    if (!st.ok()) return st;
    if (!ids.insert(g.group_id()).second) {
      return absl::InvalidArgumentError(absl::StrCat("group '", g.group_id(), "' appears twice in the request"));
    }
    sequences += g.num_samples();
    tokens += static_cast<double>(TokensPerSample(g)) * g.num_samples();
  }
  const int64_t max_sequences = engine_->max_sequences(), max_tokens = engine_->max_tokens();
  if (sequences > max_sequences) {
    return absl::ResourceExhaustedError(absl::StrCat("the request has ", sequences,
                                                     " sequences; this server decodes at most ", max_sequences,
                                                     " at once"));
  }
  if (max_tokens > 0 && tokens > static_cast<double>(max_tokens)) {
    return absl::ResourceExhaustedError(absl::StrCat("the request holds ", tokens,
                                                     " tokens (prompt + max_new_tokens per sample); this server "
                                                     "holds at most ",
                                                     max_tokens));
  }
  return absl::OkStatus();
}

grpc::Status RolloutServiceImpl::Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                                          grpc::ServerWriter<v1::GenerateResponse>* writer) {
  if (grpc::Status auth = CheckAuth(*context, security_, "Rollout.Generate"); !auth.ok()) return auth;
  if (absl::Status st = CheckGenerate(*request); !st.ok()) return ToGrpcStatus(st);

  auto state = std::make_shared<GenerateState>();
  std::vector<uint64_t> handles;
  auto cancel_all = [&] {
    for (uint64_t h : handles) engine_->Cancel(h);
  };
  {
    absl::MutexLock lock(&state->mu);
    state->groups_left = request->groups_size();
  }
  for (int i = 0; i < request->groups_size(); ++i) {
    const v1::PromptGroup& g = request->groups(i);
    GroupCallbacks cb;
    cb.on_sample = [state](const SampleResult& s) {
      absl::MutexLock lock(&state->mu);
      state->ready.push_back(s.trajectory);
    };
    cb.on_done = [state](absl::Status status, std::vector<SampleResult>) {
      absl::MutexLock lock(&state->mu);
      --state->groups_left;
      if (!status.ok() && state->error.ok()) state->error = status;
    };
    absl::StatusOr<uint64_t> h = engine_->Submit(g, GroupSource::kDirect, backend_->DecoderFor(g.stage()), std::move(cb));
    if (!h.ok()) {
      cancel_all();
      return ToGrpcStatus(h.status());
    }
    handles.push_back(*h);
  }

  while (true) {
    std::deque<v1::Trajectory> batch;
    absl::Status error;
    bool done = false;
    {
      absl::MutexLock lock(&state->mu);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) {
        return !state->ready.empty() || state->groups_left == 0 || !state->error.ok();
      };
      state->mu.AwaitWithTimeout(absl::Condition(&ready), kPoll);
      batch.swap(state->ready);
      error = state->error;
      done = state->groups_left == 0;
    }
    if (context->IsCancelled()) {
      cancel_all();
      return grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled");
    }
    if (!error.ok()) {
      cancel_all();
      return ToGrpcStatus(error);
    }
    for (v1::Trajectory& t : batch) {
      v1::GenerateResponse r;
      *r.mutable_trajectory() = std::move(t);
      if (!writer->Write(r)) {
        cancel_all();
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      }
    }
    if (done && batch.empty()) {
      absl::MutexLock lock(&state->mu);
      if (state->ready.empty()) return grpc::Status::OK;
    }
  }
}

grpc::Status RolloutServiceImpl::LoadWeights(grpc::ServerContext* context, const v1::LoadWeightsRequest* request,
                                             v1::LoadWeightsResponse* response) {
  if (grpc::Status auth = CheckAuth(*context, security_, "Rollout.LoadWeights"); !auth.ok()) return auth;
  if (!request->latest() && request->version().version() < 0) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("version.version must be >= 0, got ", request->version().version()));
  }
  v1::GetWeightsRequest req;
  req.set_latest(request->latest());
  if (!request->latest()) {
    req.set_version(request->version().version());
    req.set_learner_incarnation(request->version().learner_incarnation());
  }
  auto state = std::make_shared<LoadState>();
  engine_->RequestLoad(req, [state](absl::StatusOr<LoadResult> r) {
    absl::MutexLock lock(&state->mu);
    state->result = std::move(r);
    state->done = true;
  });
  absl::MutexLock lock(&state->mu);
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state->mu) { return state->done; };
  while (!state->mu.AwaitWithTimeout(absl::Condition(&done), kPoll)) {
    if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled");
  }
  if (!state->result.ok()) return ToGrpcStatus(state->result.status());
  *response->mutable_loaded() = state->result->loaded;
  response->set_seconds(state->result->seconds);
  response->set_bytes(state->result->bytes);
  return grpc::Status::OK;
}

grpc::Status RolloutServiceImpl::GetStatus(grpc::ServerContext* context, const v1::GetRolloutStatusRequest*,
                                           v1::RolloutStatus* response) {
  if (grpc::Status auth = CheckAuth(*context, security_, "Rollout.GetStatus"); !auth.ok()) return auth;
  const EngineStats s = engine_->Stats();
  response->set_worker_id(backend_->worker_id());
  if (s.has_weights) *response->mutable_loaded() = s.loaded;
  response->set_active_sequences(static_cast<int32_t>(s.active_sequences));
  response->set_queued_sequences(static_cast<int32_t>(s.queued_sequences));
  response->set_kv_cache_bytes(s.kv_cache_bytes);
  response->set_tokens_generated(s.tokens_generated);
  response->set_draining(backend_->draining());
  return grpc::Status::OK;
}

}  // namespace swarr
