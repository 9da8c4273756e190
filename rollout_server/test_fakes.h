// Test doubles of the learner's and coordinator's RPCs, as a rollout server sees them, plus
// helpers (models served as weight versions, polling). Tests only.
#ifndef SWARR_ROLLOUT_SERVER_TEST_FAKES_H_
#define SWARR_ROLLOUT_SERVER_TEST_FAKES_H_

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "common/model/generator.h"
#include "common/model/model.h"
#include "common/testing/numeric.h"
#include "common/testing/test_models.h"
#include "common/rpc/service_options.h"
#include "common/rpc/weights_wire.h"
#include "rollout_server/validation.h"
#include "proto/swarr/v1/coordinator.grpc.pb.h"
#include "proto/swarr/v1/learner.grpc.pb.h"
#include "rollout_server/weights.h"

namespace swarr {
namespace testing_fakes {

// Polls `cond` every 2 ms for at most `seconds`.
inline bool WaitUntil(const std::function<bool()>& cond, double seconds = 15) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return cond();
}

inline v1::WeightVersion Version(int64_t v, const std::string& incarnation = "inc-A") {
  v1::WeightVersion w;
  w.set_version(v);
  w.set_learner_incarnation(incarnation);
  return w;
}

// What a plain Generator gives for the group's samples on `model` (the engine must match it).
inline std::vector<GenerationResult> Reference(const Model& model, const v1::PromptGroup& g) {
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < g.num_samples(); ++i) {
    GenerationRequest r;
    r.prompt.assign(g.prompt_ids().begin(), g.prompt_ids().end());
    r.max_new_tokens = g.max_new_tokens();
    r.sampling = SamplingForSample(g, i);
    r.stop_token_ids.assign(g.sampling().stop_token_ids().begin(), g.sampling().stop_token_ids().end());
    reqs.push_back(r);
  }
  Generator gen(model);
  auto out = gen.Generate(reqs);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<GenerationResult>();
}

// The engine batches samples unlike a plain Generator, so its behaviour log-probs equal
// Reference()'s up to float32 rounding: the rule of docs/testing.md over the longest sample, at
// the scale of the logits divided by the lowest sampling temperature.
inline double BehaviourLogProbTolerance(const Model& model, const std::vector<GenerationResult>& want,
                                        const v1::PromptGroup& g) {
  int64_t longest = 1;
  double max_abs_logit = 0, min_temperature = 1;
  for (size_t i = 0; i < want.size(); ++i) {
    const at::Tensor ids = at::tensor(want[i].tokens, at::kLong).view({1, -1});
    longest = std::max(longest, ids.size(1));
    max_abs_logit = std::max(max_abs_logit, MaxAbsLogit(model, ids));
    const SamplingParams p = SamplingForSample(g, static_cast<int>(i));
    if (!p.greedy) min_temperature = std::min(min_temperature, p.temperature);
  }
  return testing_numeric::LogProbTolerance(ForwardReductionLength(model.config(), longest),
                                           max_abs_logit / min_temperature);
}

inline WeightsBlob BlobOf(const Model& model, const v1::WeightVersion& version) {
  auto blob = EncodeWeights(version, model.config().ToJson(), model.named_parameters());
  if (!blob.ok()) std::abort();
  return *std::move(blob);
}

// The learner's side: publishes weight versions, takes pushes. Push behaviour per call:
// `push_script` (consumed in order) overrides the default of accepting.
class FakeLearner final : public v1::Learner::Service {
 public:
  enum class Push { kAccept, kUnavailable, kAcceptButUnavailable, kFailedPrecondition, kInvalidArgument };

  void Publish(const WeightsBlob& blob) {
    std::lock_guard<std::mutex> l(mu_);
    versions_[blob.version.version()] = blob;
    latest_ = blob.version.version();
  }
  void Script(std::vector<Push> script) {
    std::lock_guard<std::mutex> l(mu_);
    script_.assign(script.begin(), script.end());
  }
  // Per group id prefix: how every push of such a group is answered.
  void RejectGroups(const std::string& prefix, Push how) {
    std::lock_guard<std::mutex> l(mu_);
    reject_[prefix] = how;
  }
  void CorruptNextTransfer() {
    std::lock_guard<std::mutex> l(mu_);
    corrupt_next_ = true;
  }

  grpc::Status GetWeights(grpc::ServerContext*, const v1::GetWeightsRequest* req,
                          grpc::ServerWriter<v1::WeightsChunk>* writer) override {
    WeightsBlob blob;
    {
      std::lock_guard<std::mutex> l(mu_);
      ++weight_calls_;
      const int64_t v = req->latest() ? latest_ : req->version();
      auto it = versions_.find(v);
      if (it == versions_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat("version ", v));
      blob = it->second;
      if (corrupt_next_) {
        // Chunk checksums are computed from the damaged bytes; the header's total is the
        // original's, so the receiver must notice.
        corrupt_next_ = false;
        blob.data[blob.data.size() / 2] ^= 0x55;
      }
    }
    absl::Status st = WriteWeightsStream(blob, 4096, writer);
    return st.ok() ? grpc::Status::OK : grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(st.message()));
  }

  grpc::Status PushTrajectories(grpc::ServerContext*, const v1::PushTrajectoriesRequest* req,
                                v1::PushTrajectoriesResponse* resp) override {
    std::lock_guard<std::mutex> l(mu_);
    ++push_calls_;
    Push how = Push::kAccept;
    if (!script_.empty()) {
      how = script_.front();
      script_.pop_front();
    }
    if (req->trajectories_size() > 0) {
      for (const auto& [prefix, h] : reject_) {
        if (req->trajectories(0).group_id().rfind(prefix, 0) == 0) how = h;
      }
    }
    if (how == Push::kUnavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "learner down");
    if (how == Push::kFailedPrecondition) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "old incarnation");
    if (how == Push::kInvalidArgument) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed");
    for (const v1::Trajectory& t : req->trajectories()) {
      v1::TrajectoryAck* a = resp->add_acks();
      a->set_id(t.id());
      if (accepted_.count(t.id())) {
        a->set_result(v1::TrajectoryAck::DUPLICATE);
        ++duplicates_;
      } else {
        a->set_result(v1::TrajectoryAck::ACCEPTED);
        accepted_[t.id()] = t;
        ++accept_counts_[t.id()];
      }
    }
    if (how == Push::kAcceptButUnavailable) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "reply lost");
    return grpc::Status::OK;
  }

  std::map<std::string, v1::Trajectory> accepted() {
    std::lock_guard<std::mutex> l(mu_);
    return accepted_;
  }
  // Every trajectory of `group_id` accepted.
  bool GroupAccepted(const std::string& group_id, int n) {
    std::lock_guard<std::mutex> l(mu_);
    for (int i = 0; i < n; ++i) {
      if (!accepted_.count(absl::StrCat(group_id, "/", i))) return false;
    }
    return true;
  }
  int max_accept_count() {
    std::lock_guard<std::mutex> l(mu_);
    int m = 0;
    for (const auto& [id, n] : accept_counts_) m = std::max(m, n);
    return m;
  }
  int duplicates() {
    std::lock_guard<std::mutex> l(mu_);
    return duplicates_;
  }
  int push_calls() {
    std::lock_guard<std::mutex> l(mu_);
    return push_calls_;
  }
  int weight_calls() {
    std::lock_guard<std::mutex> l(mu_);
    return weight_calls_;
  }

 private:
  std::mutex mu_;
  std::map<int64_t, WeightsBlob> versions_;
  int64_t latest_ = -1;
  std::deque<Push> script_;
  std::map<std::string, Push> reject_;
  bool corrupt_next_ = false;
  std::map<std::string, v1::Trajectory> accepted_;
  std::map<std::string, int> accept_counts_;
  int duplicates_ = 0, push_calls_ = 0, weight_calls_ = 0;
};

// The coordinator's side of a worker: registration, heartbeats, one assignment stream fed by
// Send(), eval reports.
class FakeCoordinator final : public v1::Coordinator::Service {
 public:
  std::string learner_address;
  double heartbeat_seconds = 0.05;
  int32_t max_sequences = 8;
  int64_t max_tokens = 0;
  int unavailable_registrations = 0;  // answer this many RegisterWorker calls with UNAVAILABLE
  // Called for each finished group id when a heartbeat reports it: false = reported too early.
  std::function<bool(const std::string&)> finished_check;
  v1::StageInfo stage;

  FakeCoordinator() {
    stage.set_stage_index(1);
    stage.set_stage_name("rl");
    stage.set_kind("rl");
  }
  ~FakeCoordinator() override { Close(); }

  void Send(const v1::Assignment& a) {
    std::lock_guard<std::mutex> l(mu_);
    outbox_.push_back(a);
  }
  void SendGroup(const v1::PromptGroup& g) {
    v1::Assignment a;
    *a.mutable_group() = g;
    Send(a);
  }
  // Unknown worker ids from now on (a restarted coordinator).
  void ForgetWorkers() {
    std::lock_guard<std::mutex> l(mu_);
    known_.clear();
  }
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
  }

  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest* req,
                              v1::RegisterWorkerResponse* resp) override {
    std::lock_guard<std::mutex> l(mu_);
    registrations_.push_back(*req);
    if (unavailable_registrations > 0) {
      --unavailable_registrations;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "starting");
    }
    if (req->role() != "rollout") return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "role");
    const std::string id = absl::StrCat("w", ++next_id_);
    known_.insert(id);
    resp->set_worker_id(id);
    resp->set_heartbeat_seconds(heartbeat_seconds);
    resp->set_lease_seconds(heartbeat_seconds * 5);
    resp->set_learner_address(learner_address);
    resp->set_max_sequences(max_sequences);
    resp->set_max_tokens(max_tokens);
    resp->set_max_message_bytes(64 << 20);
    resp->set_deadline_seconds(10);
    return grpc::Status::OK;
  }

  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req, v1::HeartbeatResponse*) override {
    std::function<bool(const std::string&)> check;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!known_.count(req->worker_id())) return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown worker");
      heartbeats_.push_back(*req);
      check = finished_check;
    }
    for (const std::string& id : req->finished_group_ids()) {
      const bool ok = !check || check(id);
      std::lock_guard<std::mutex> l(mu_);
      finished_.push_back(id);
      if (!ok) early_finished_.push_back(id);
    }
    std::lock_guard<std::mutex> l(mu_);
    for (const std::string& id : req->returned_group_ids()) returned_.push_back(id);
    return grpc::Status::OK;
  }

  grpc::Status WatchAssignments(grpc::ServerContext* ctx, const v1::WatchAssignmentsRequest* req,
                                grpc::ServerWriter<v1::Assignment>* writer) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!known_.count(req->worker_id())) return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown worker");
      ++streams_;
    }
    v1::Assignment first;
    *first.mutable_stage() = stage;
    writer->Write(first);
    while (!ctx->IsCancelled()) {
      std::deque<v1::Assignment> out;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (closed_) return grpc::Status::OK;
        out.swap(outbox_);
      }
      for (const auto& a : out) writer->Write(a);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return grpc::Status::OK;
  }

  grpc::Status ReportEval(grpc::ServerContext*, const v1::ReportEvalRequest* req, v1::ReportEvalResponse*) override {
    std::lock_guard<std::mutex> l(mu_);
    evals_.push_back(*req);
    return grpc::Status::OK;
  }

  std::vector<v1::RegisterWorkerRequest> registrations() {
    std::lock_guard<std::mutex> l(mu_);
    return registrations_;
  }
  std::vector<v1::HeartbeatRequest> heartbeats() {
    std::lock_guard<std::mutex> l(mu_);
    return heartbeats_;
  }
  std::set<std::string> finished() {
    std::lock_guard<std::mutex> l(mu_);
    return {finished_.begin(), finished_.end()};
  }
  int finished_reports(const std::string& id) {
    std::lock_guard<std::mutex> l(mu_);
    return static_cast<int>(std::count(finished_.begin(), finished_.end(), id));
  }
  std::set<std::string> returned() {
    std::lock_guard<std::mutex> l(mu_);
    return {returned_.begin(), returned_.end()};
  }
  std::vector<std::string> early_finished() {
    std::lock_guard<std::mutex> l(mu_);
    return early_finished_;
  }
  std::vector<v1::ReportEvalRequest> evals() {
    std::lock_guard<std::mutex> l(mu_);
    return evals_;
  }
  int streams() {
    std::lock_guard<std::mutex> l(mu_);
    return streams_;
  }

 private:
  std::mutex mu_;
  bool closed_ = false;
  int next_id_ = 0;
  int streams_ = 0;
  std::set<std::string> known_;
  std::deque<v1::Assignment> outbox_;
  std::vector<v1::RegisterWorkerRequest> registrations_;
  std::vector<v1::HeartbeatRequest> heartbeats_;
  std::vector<std::string> finished_, returned_, early_finished_;
  std::vector<v1::ReportEvalRequest> evals_;
};

// A gRPC server on 127.0.0.1:0 for a fake.
struct FakeServer {
  RunningServer running;
  std::string address;
  static FakeServer Start(grpc::Service* service, const RpcSecurity& security = {}) {
    FakeServer s;
    auto r = StartServer("127.0.0.1:0", {service}, security, RpcLimits());
    if (!r.ok()) std::abort();
    s.running = *std::move(r);
    s.address = absl::StrCat("127.0.0.1:", s.running.port);
    return s;
  }
  void Stop() {
    if (running.server) running.server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
};

}  // namespace testing_fakes
}  // namespace swarr

#endif  // SWARR_ROLLOUT_SERVER_TEST_FAKES_H_
