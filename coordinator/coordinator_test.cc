// The coordinator in-process over real gRPC on loopback, against a fake learner and fake
// rollout workers (test doubles below): registration, leases, dispatch by capacity within the
// in-flight bound, stage transitions, eval aggregation, restart, auth and bad requests.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>


#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/config/config_loader.h"
#include "common/rpc/service_options.h"
#include "common/util/file.h"
#include "coordinator/service.h"
#include "coordinator/state.h"
#include "coordinator/status_format.h"
#include "gmock/gmock.h"
#include "common/testing/http_get.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/swarr/v1/coordinator.grpc.pb.h"
#include "proto/swarr/v1/learner.grpc.pb.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using Seconds = std::chrono::duration<double>;

constexpr double kWait = 10;  // seconds any awaited event may take

std::string TempDir() {
  char tmpl[] = "/tmp/swarr_coord_XXXXXX";
  return mkdtemp(tmpl);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Polls `pred` every 10 ms until it holds or `seconds` pass.
bool WaitUntil(const std::function<bool()>& pred, double seconds = kWait) {
  const auto end = std::chrono::steady_clock::now() + Seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

v1::PipelineConfig Pipeline(const std::string& yaml) {
  v1::PipelineConfig p;
  absl::Status s = ParseYamlConfig(yaml, &p);
  EXPECT_TRUE(s.ok()) << s;
  s = ValidatePipeline(p);
  EXPECT_TRUE(s.ok()) << s;
  return p;
}

const std::string kModel = std::string(SWARR_SOURCE_DIR) + "/configs/models/tiny";
const std::string kWorkers = "workers: {heartbeat_seconds: 0.1, lease_seconds: 0.6, max_sequences: 8}\n";

std::string RlStage(const std::string& name, int prompts_per_step, int staleness, bool with_model = true) {
  return absl::StrCat("  - name: ", name, "\n    seed: 7\n    rl: {prompts_per_step: ", prompts_per_step,
                      ", samples_per_prompt: 2, max_new_tokens: 4, reward: exact, max_staleness: ", staleness,
                      ", temperature: 0.7}\n", with_model ? absl::StrCat("    model: {path: ", kModel, "}\n") : "",
                      "    data: {format: synthetic, synthetic_task: sum_digits, seed: 3}\n",
                      "    optimizer: {lr: 0.001}\n    stop: {max_steps: 5}\n");
}

std::string TrainStage(const std::string& name) {
  return absl::StrCat("  - name: ", name, "\n    train: {}\n    model: {path: ", kModel, "}\n",
                      "    data: {format: synthetic, synthetic_task: sum_digits}\n",
                      "    optimizer: {lr: 0.001}\n    stop: {max_steps: 5}\n");
}

std::string EvalStage(const std::string& name, int problems, int samples, bool with_model = true) {
  return absl::StrCat("  - name: ", name, "\n    eval: {samples_per_problem: ", samples, ", max_new_tokens: 4",
                      samples == 1 ? ", greedy: true" : "", "}\n",
                      with_model ? absl::StrCat("    model: {path: ", kModel, "}\n") : "",
                      "    data: {format: synthetic, synthetic_task: sum_digits, synthetic_size: ", problems, "}\n");
}

// ---------------------------------------------------------------------------------------------
// A learner whose status the test sets. StartStage(i) puts it on stage i: RUNNING for train /
// rl, DONE with a new version for eval (as the real learner publishes the eval model).

class FakeLearner final : public v1::Learner::Service {
 public:
  explicit FakeLearner(RpcSecurity security = {}) : security_(std::move(security)) {
    status_.set_incarnation("L1");
    status_.set_stage_index(-1);
    status_.set_state(v1::LearnerStatus::IDLE);
    status_.mutable_latest()->set_learner_incarnation("L1");
  }
  ~FakeLearner() override { Release(); }

  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::GetLearnerStatusRequest*, v1::LearnerStatus* out) override {
    if (grpc::Status s = CheckAuth(*ctx, security_, "Learner.GetStatus"); !s.ok()) return s;
    std::unique_lock<std::mutex> l(mu_);
    ++polls_;
    cv_.notify_all();
    if (!available_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "learner down");
    *out = status_;
    if (hold_next_) {
      hold_next_ = false;
      held_ = true;
      cv_.notify_all();
      cv_.wait(l, [&] { return !held_; });
    }
    return grpc::Status::OK;
  }

  grpc::Status StartStage(grpc::ServerContext* ctx, const v1::StartStageRequest* req, v1::LearnerStatus* out) override {
    if (grpc::Status s = CheckAuth(*ctx, security_, "Learner.StartStage"); !s.ok()) return s;
    std::lock_guard<std::mutex> l(mu_);
    if (!available_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "learner down");
    starts_.push_back(req->stage_index());
    if (status_.stage_index() != req->stage_index() || status_.state() == v1::LearnerStatus::IDLE) {
      status_.set_stage_index(req->stage_index());
      status_.set_step(0);
      const bool eval = req->pipeline().stages(req->stage_index()).has_eval();
      status_.set_state(eval ? v1::LearnerStatus::DONE : v1::LearnerStatus::RUNNING);
      status_.mutable_latest()->set_version(status_.latest().version() + 1);
    }
    *out = status_;
    return grpc::Status::OK;
  }

  // GetGroupStates answers UNIMPLEMENTED (as an older learner) until a state is set; then that
  // state for every group, and the ids asked are recorded.
  grpc::Status GetGroupStates(grpc::ServerContext* ctx, const v1::GetGroupStatesRequest* req,
                              v1::GetGroupStatesResponse* out) override {
    if (grpc::Status s = CheckAuth(*ctx, security_, "Learner.GetGroupStates"); !s.ok()) return s;
    std::lock_guard<std::mutex> l(mu_);
    if (group_state_ < 0) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no GetGroupStates");
    for (const auto& g : req->groups()) {
      asked_.insert(g.group_id());
      out->add_states(static_cast<v1::GetGroupStatesResponse::State>(group_state_));
    }
    out->set_learner_incarnation(status_.incarnation());
    return grpc::Status::OK;
  }
  grpc::Status Finish(grpc::ServerContext* ctx, const v1::FinishRequest* req, v1::FinishResponse*) override {
    if (grpc::Status s = CheckAuth(*ctx, security_, "Learner.Finish"); !s.ok()) return s;
    std::lock_guard<std::mutex> l(mu_);
    finishes_.push_back(*req);
    return grpc::Status::OK;
  }
  std::vector<v1::FinishRequest> finishes() {
    std::lock_guard<std::mutex> l(mu_);
    return finishes_;
  }
  void SetGroupState(int state) {
    std::lock_guard<std::mutex> l(mu_);
    group_state_ = state;
  }
  std::set<std::string> asked() {
    std::lock_guard<std::mutex> l(mu_);
    return asked_;
  }

  void Update(const std::function<void(v1::LearnerStatus*)>& f) {
    std::lock_guard<std::mutex> l(mu_);
    f(&status_);
  }
  void SetAvailable(bool a) {
    std::lock_guard<std::mutex> l(mu_);
    available_ = a;
  }
  std::vector<int> starts() {
    std::lock_guard<std::mutex> l(mu_);
    return starts_;
  }
  int64_t polls() {
    std::lock_guard<std::mutex> l(mu_);
    return polls_;
  }
  // Waits until `n` more GetStatus calls have begun (each one after the coordinator handled the
  // previous one).
  bool WaitPolls(int64_t n) {
    std::unique_lock<std::mutex> l(mu_);
    const int64_t target = polls_ + n;
    return cv_.wait_for(l, Seconds(kWait), [&] { return polls_ >= target; });
  }
  // The next GetStatus answers with the status as it is when the call arrives, but only after
  // Release(): the coordinator reads a status older than what happens meanwhile.
  void HoldNextStatus() {
    std::lock_guard<std::mutex> l(mu_);
    hold_next_ = true;
  }
  bool WaitHeld() {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, Seconds(kWait), [&] { return held_; });
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu_);
    held_ = false;
    hold_next_ = false;
    cv_.notify_all();
  }

 private:
  const RpcSecurity security_;
  std::mutex mu_;
  std::condition_variable cv_;
  v1::LearnerStatus status_;
  std::vector<int> starts_;
  bool available_ = true;
  int64_t polls_ = 0;
  bool hold_next_ = false, held_ = false;
  int group_state_ = -1;
  std::set<std::string> asked_;
  std::vector<v1::FinishRequest> finishes_;
};

struct LearnerServer {
  explicit LearnerServer(const RpcSecurity& security = {}) : learner(security) {
    auto s = StartServer("127.0.0.1:0", {&learner}, security, RpcLimits());
    EXPECT_TRUE(s.ok()) << s.status();
    server = std::move(s->server);
    address = absl::StrCat("127.0.0.1:", s->port);
  }
  ~LearnerServer() {
    learner.Release();
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
  FakeLearner learner;
  std::unique_ptr<grpc::Server> server;
  std::string address;
};

// ---------------------------------------------------------------------------------------------
// A rollout worker: registers, watches its assignments on a reader thread, heartbeats.

class FakeWorker {
 public:
  FakeWorker(const std::string& address, int32_t max_sequences, int64_t max_tokens = 0, const std::string& token = "")
      : max_sequences_(max_sequences), max_tokens_(max_tokens) {
    security_.token = token;
    channel_ = *MakeChannel(address, security_, RpcLimits());
    stub_ = v1::Coordinator::NewStub(channel_);
  }
  ~FakeWorker() {
    StopHeartbeats();
    CloseStream();
  }

  grpc::Status Register(const std::string& name) {
    v1::RegisterWorkerRequest req;
    req.set_role("rollout");
    req.set_name(name);
    req.set_address("127.0.0.1:1");
    req.set_max_sequences(max_sequences_);
    req.set_max_tokens(max_tokens_);
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& id : held_) req.add_held_group_ids(id);
    }
    grpc::ClientContext ctx;
    PrepareContext(&ctx, security_, RpcLimits(), 5);
    grpc::Status s = stub_->RegisterWorker(&ctx, req, &registration_);
    if (s.ok()) id_ = registration_.worker_id();
    return s;
  }
  // Register + stream + heartbeats.
  void Join(const std::string& name) {
    ASSERT_TRUE(Register(name).ok());
    OpenStream();
    StartHeartbeats();
  }

  void OpenStream() {
    CloseStream();
    ctx_ = std::make_unique<grpc::ClientContext>();
    PrepareContext(ctx_.get(), security_, RpcLimits(), 600);
    reader_thread_ = std::thread([this] {
      v1::WatchAssignmentsRequest req;
      req.set_worker_id(id_);
      auto reader = stub_->WatchAssignments(ctx_.get(), req);
      v1::Assignment a;
      while (reader->Read(&a)) {
        std::lock_guard<std::mutex> l(mu_);
        received_.push_back(a);
      }
      grpc::Status s = reader->Finish();
      std::lock_guard<std::mutex> l(mu_);
      stream_status_ = s;
      stream_ended_ = true;
    });
  }
  void CloseStream() {
    if (ctx_) ctx_->TryCancel();
    if (reader_thread_.joinable()) reader_thread_.join();
    ctx_.reset();
  }

  grpc::Status Heartbeat(const std::vector<std::string>& finished = {}, const std::vector<std::string>& returned = {},
                         v1::HeartbeatResponse* response = nullptr) {
    v1::HeartbeatRequest req;
    req.set_worker_id(id_);
    {
      std::lock_guard<std::mutex> l(mu_);
      *req.mutable_loaded() = loaded_;
      req.set_tokens_generated(tokens_);
      if (report_progress_) {
        req.mutable_progress()->set_decode_steps(decode_steps_);
        req.mutable_progress()->set_running_sequences(running_);
      }
      for (const auto& id : held_) req.add_held_group_ids(id);
    }
    for (const auto& id : finished) req.add_finished_group_ids(id);
    for (const auto& id : returned) req.add_returned_group_ids(id);
    grpc::ClientContext ctx;
    PrepareContext(&ctx, security_, RpcLimits(), 5);
    v1::HeartbeatResponse resp;
    return stub_->Heartbeat(&ctx, req, response != nullptr ? response : &resp);
  }
  void StartHeartbeats() {
    beating_ = true;
    beat_thread_ = std::thread([this] {
      while (beating_) {
        Heartbeat();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
  }
  void StopHeartbeats() {
    beating_ = false;
    if (beat_thread_.joinable()) beat_thread_.join();
  }
  // Engine progress in every heartbeat from now on.
  void SetProgress(int64_t decode_steps, int32_t running) {
    std::lock_guard<std::mutex> l(mu_);
    report_progress_ = true;
    decode_steps_ = decode_steps;
    running_ = running;
  }
  // Groups it holds (registration and heartbeats).
  void SetHeld(const std::vector<std::string>& held) {
    std::lock_guard<std::mutex> l(mu_);
    held_ = held;
  }
  void SetLoaded(int64_t version, const std::string& incarnation) {
    std::lock_guard<std::mutex> l(mu_);
    loaded_.set_version(version);
    loaded_.set_learner_incarnation(incarnation);
    tokens_ += 100;
  }

  grpc::Status ReportEval(const std::string& group_id, const std::vector<double>& rewards, const std::string& worker = "") {
    v1::ReportEvalRequest req;
    req.set_worker_id(worker.empty() ? id_ : worker);
    req.set_group_id(group_id);
    req.mutable_version()->set_version(1);
    for (double r : rewards) {
      v1::EvalSample* s = req.add_samples();
      s->set_completion_text(r > 0 ? "right" : "wrong");
      s->add_completion_ids(5);
      s->set_reward(r);
      s->set_stopped(true);
    }
    grpc::ClientContext ctx;
    PrepareContext(&ctx, security_, RpcLimits(), 5);
    v1::ReportEvalResponse resp;
    return stub_->ReportEval(&ctx, req, &resp);
  }

  std::vector<v1::Assignment> received() {
    std::lock_guard<std::mutex> l(mu_);
    return received_;
  }
  std::vector<v1::PromptGroup> groups() {
    std::vector<v1::PromptGroup> out;
    for (const auto& a : received()) {
      if (a.has_group()) out.push_back(a.group());
    }
    return out;
  }
  std::vector<std::string> group_ids() {
    std::vector<std::string> out;
    for (const auto& g : groups()) out.push_back(g.group_id());
    return out;
  }
  std::vector<v1::WeightVersion> loads() {
    std::vector<v1::WeightVersion> out;
    for (const auto& a : received()) {
      if (a.has_load_weights()) out.push_back(a.load_weights().version());
    }
    return out;
  }
  bool stream_ended() {
    std::lock_guard<std::mutex> l(mu_);
    return stream_ended_;
  }
  grpc::Status stream_status() {
    std::lock_guard<std::mutex> l(mu_);
    return stream_status_;
  }
  const std::string& id() const { return id_; }
  void SetIdForTest(const std::string& id) { id_ = id; }
  const v1::RegisterWorkerResponse& registration() const { return registration_; }
  v1::Coordinator::Stub* stub() { return stub_.get(); }

 private:
  const int32_t max_sequences_;
  const int64_t max_tokens_;
  RpcSecurity security_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Coordinator::Stub> stub_;
  v1::RegisterWorkerResponse registration_;
  std::string id_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::thread reader_thread_, beat_thread_;
  std::atomic<bool> beating_{false};
  std::mutex mu_;
  std::vector<v1::Assignment> received_;
  v1::WeightVersion loaded_;
  int64_t tokens_ = 0;
  bool report_progress_ = false;
  int64_t decode_steps_ = 0;
  int32_t running_ = 0;
  std::vector<std::string> held_;
  bool stream_ended_ = false;
  grpc::Status stream_status_;
};

std::unique_ptr<CoordinatorServer> StartCoordinator(const v1::PipelineConfig& pipeline, const std::string& run_dir,
                                                    const std::string& learner, const std::string& token = "",
                                                    const std::string& metrics_listen = "",
                                                    CoordinatorOptions::AtEnd at_end = CoordinatorOptions::AtEnd::kExit) {
  CoordinatorServerOptions opts;
  opts.coordinator.at_end = at_end;
  opts.metrics_listen = metrics_listen;
  opts.coordinator.pipeline = pipeline;
  if (opts.coordinator.pipeline.name().empty()) opts.coordinator.pipeline.set_name("test");
  opts.coordinator.run_dir = run_dir;
  opts.coordinator.learner_address = learner;
  opts.coordinator.security.token = token;
  opts.coordinator.final_status_timeout_seconds = 2;
  auto s = CoordinatorServer::Start(opts);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

std::string Address(const CoordinatorServer& s) { return absl::StrCat("127.0.0.1:", s.port()); }

// GET /metrics: the body.
std::string Scrape(int port) { return testing_http::GetBody(port, "/metrics"); }

// The value of the series `series` (name and labels exactly as exported), NaN if absent.
double Metric(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nan("");
}

int CountGroups(std::vector<FakeWorker*> workers) {
  int n = 0;
  for (FakeWorker* w : workers) n += static_cast<int>(w->groups().size());
  return n;
}

// ---------------------------------------------------------------------------------------------

TEST(CoordinatorTest, LeaseExpiryReassignsGroupsToAnotherWorker) {
  LearnerServer learner;
  const auto pipeline =
      Pipeline(kWorkers + "rpc: {keepalive_time_seconds: 3}\nstages:\n" + RlStage("rl", 4, 0));
  const std::string dir = TempDir();
  auto coord = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(coord, nullptr);

  FakeWorker a(Address(*coord), 8);
  a.Join("a");
  EXPECT_EQ(a.registration().heartbeat_seconds(), 0.1);
  EXPECT_EQ(a.registration().lease_seconds(), 0.6);
  EXPECT_EQ(a.registration().learner_address(), learner.address);
  EXPECT_EQ(a.registration().max_sequences(), 8);
  EXPECT_EQ(a.registration().max_message_bytes(), int64_t{64} << 20);
  // The pipeline's keepalive, the default filled in (the worker's channels adopt both).
  EXPECT_EQ(a.registration().keepalive_time_seconds(), 3);
  EXPECT_EQ(a.registration().keepalive_timeout_seconds(), 5);
  // prompts_per_step 4, staleness 0: exactly 4 groups in flight.
  ASSERT_TRUE(WaitUntil([&] { return a.groups().size() == 4; }));
  const auto received = a.received();
  ASSERT_TRUE(received.front().has_stage());
  EXPECT_EQ(received.front().stage().stage_name(), "rl");
  EXPECT_EQ(received.front().stage().kind(), "rl");
  const v1::PromptGroup g0 = a.groups().front();
  EXPECT_EQ(g0.group_id(), absl::StrCat("rl/", coord->coordinator().incarnation(), "-000000"));
  EXPECT_EQ(g0.num_samples(), 2);
  EXPECT_EQ(g0.max_new_tokens(), 4);
  EXPECT_EQ(g0.reward(), "exact");
  EXPECT_DOUBLE_EQ(g0.sampling().temperature(), 0.7);
  EXPECT_EQ(g0.sampling().stop_token_ids_size(), 1);
  EXPECT_FALSE(g0.eval());
  EXPECT_EQ(g0.prompt_ids_size(), 6);  // "Q:a+b="

  FakeWorker b(Address(*coord), 8);
  b.Join("b");
  ASSERT_TRUE(WaitUntil([&] { return !b.received().empty(); }));
  EXPECT_TRUE(b.received().front().has_stage());
  ASSERT_TRUE(learner.learner.WaitPolls(3));
  EXPECT_EQ(b.groups().size(), 0u) << "the in-flight bound is full";

  // a goes silent: after its lease its groups go to b, same ids.
  a.StopHeartbeats();
  ASSERT_TRUE(WaitUntil([&] { return b.groups().size() == 4; }));
  EXPECT_EQ(b.group_ids(), a.group_ids());
  EXPECT_EQ(CountGroups({&a, &b}), 8);
  const v1::PipelineStatus st = coord->coordinator().GetStatus();
  EXPECT_EQ(st.groups_reassigned(), 4);
  EXPECT_EQ(st.groups_dispatched(), 4);
  ASSERT_EQ(st.workers_size(), 2);
  EXPECT_EQ(st.workers(0).state(), v1::WorkerStatus::DEAD);
  EXPECT_EQ(st.workers(1).state(), v1::WorkerStatus::ALIVE);
  EXPECT_EQ(st.workers(1).assigned_groups(), 4);
  // Its stream was closed and its heartbeats are refused: it registers again.
  ASSERT_TRUE(WaitUntil([&] { return a.stream_ended(); }));
  EXPECT_EQ(a.stream_status().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(a.Heartbeat().error_code(), grpc::StatusCode::NOT_FOUND);

  // b finishes the groups; a group a "finished" before it died counts once.
  ASSERT_TRUE(b.Heartbeat({b.group_ids()[0], b.group_ids()[1]}).ok());
  ASSERT_TRUE(b.Heartbeat({b.group_ids()[1]}).ok());
  EXPECT_EQ(coord->coordinator().GetStatus().groups_finished(), 2);
  EXPECT_THAT(FormatPipelineStatus(coord->coordinator().GetStatus()), HasSubstr("dead"));
}

v1::WorkerStatus::State WorkerState(const Coordinator& c, const std::string& id) {
  const v1::PipelineStatus st = c.GetStatus();
  for (const auto& w : st.workers()) {
    if (w.worker_id() == id) return w.state();
  }
  return v1::WorkerStatus::STATE_UNSPECIFIED;
}

// Progress-based liveness (docs/reliability.md): heartbeats keep coming, but the engine's decode
// steps stop while sequences are running: after workers.progress_timeout_seconds the worker is
// UNHEALTHY, its groups go to another worker, and it gets work again once its engine moves.
TEST(CoordinatorTest, WorkerWhoseEngineMakesNoProgressLosesItsGroupsUntilItMovesAgain) {
  LearnerServer learner;
  const auto pipeline = Pipeline(
      "workers: {heartbeat_seconds: 0.1, lease_seconds: 0.6, max_sequences: 8, progress_timeout_seconds: 0.5}\n"
      "stages:\n" +
      RlStage("rl", 4, 0));
  const std::string dir = TempDir();
  auto coord = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(coord, nullptr);
  FakeWorker a(Address(*coord), 8);
  a.SetProgress(0, 8);
  a.Join("a");
  EXPECT_EQ(a.registration().progress_timeout_seconds(), 0.5);
  ASSERT_TRUE(WaitUntil([&] { return a.groups().size() == 4; }));
  FakeWorker b(Address(*coord), 8);
  b.SetProgress(0, 0);
  b.Join("b");
  // a's engine moves for 1.5 s (three timeouts): it keeps its groups.
  for (int i = 1; i <= 15; ++i) {
    a.SetProgress(i, 8);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(b.groups().size(), 0u);
  EXPECT_EQ(WorkerState(coord->coordinator(), a.id()), v1::WorkerStatus::ALIVE);
  // Now it stalls (heartbeats go on, the steps stay at 15): its groups go to b, same ids.
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitUntil([&] { return b.groups().size() == 4; })) << "the stalled worker kept its groups";
  const double took = Seconds(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(took, 0.4);
  EXPECT_LT(took, 3.0);
  EXPECT_EQ(b.group_ids(), a.group_ids());
  EXPECT_EQ(WorkerState(coord->coordinator(), a.id()), v1::WorkerStatus::UNHEALTHY);
  EXPECT_THAT(FormatPipelineStatus(coord->coordinator().GetStatus()), HasSubstr("unhealthy"));
  EXPECT_EQ(coord->coordinator().GetStatus().groups_reassigned(), 4);
  EXPECT_TRUE(a.Heartbeat().ok()) << "an unhealthy worker is still registered";
  // Waiting for weights (nothing running) is not a stall: b keeps its groups with steps frozen.
  b.SetProgress(0, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_EQ(WorkerState(coord->coordinator(), b.id()), v1::WorkerStatus::ALIVE);
  // a's engine moves again: healthy, and it takes work again (b returns its groups, which are
  // spread over both by free capacity).
  a.SetProgress(16, 0);
  ASSERT_TRUE(WaitUntil([&] { return WorkerState(coord->coordinator(), a.id()) == v1::WorkerStatus::ALIVE; }));
  ASSERT_TRUE(b.Heartbeat({}, b.group_ids()).ok());
  ASSERT_TRUE(WaitUntil([&] { return CountGroups({&a, &b}) == 12; }))
      << FormatPipelineStatus(coord->coordinator().GetStatus());
  EXPECT_GE(a.groups().size(), 5u);
  // A bad progress report is refused, naming the field.
  v1::HeartbeatRequest bad;
  bad.set_worker_id(a.id());
  bad.mutable_progress()->set_decode_steps(-1);
  grpc::ClientContext ctx;
  PrepareContext(&ctx, RpcSecurity(), RpcLimits(), 5);
  v1::HeartbeatResponse resp;
  const grpc::Status s = a.stub()->Heartbeat(&ctx, bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("progress.decode_steps"));
}

// Per-group deadlines: a worker that heartbeats (and reports no progress at all, like an older
// rollout) but never finishes a group loses it after workers.group_timeout_seconds.
TEST(CoordinatorTest, GroupNotFinishedWithinItsDeadlineIsRequeued) {
  LearnerServer learner;
  const auto pipeline = Pipeline(
      "workers: {heartbeat_seconds: 0.1, lease_seconds: 0.6, max_sequences: 8, group_timeout_seconds: 1}\n"
      "stages:\n" +
      RlStage("rl", 2, 0));
  const std::string dir = TempDir();
  auto coord = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(coord, nullptr);
  FakeWorker a(Address(*coord), 4);
  a.Join("a");
  ASSERT_TRUE(WaitUntil([&] { return a.groups().size() == 2; }));
  const auto t0 = std::chrono::steady_clock::now();
  FakeWorker b(Address(*coord), 4);
  b.Join("b");
  ASSERT_TRUE(WaitUntil([&] { return b.groups().size() == 2; })) << "a late group stayed with its worker";
  EXPECT_GE(Seconds(std::chrono::steady_clock::now() - t0).count(), 0.5);
  EXPECT_THAT(b.group_ids(), ::testing::UnorderedElementsAreArray(a.group_ids()));
  EXPECT_EQ(WorkerState(coord->coordinator(), a.id()), v1::WorkerStatus::ALIVE);
  EXPECT_EQ(coord->coordinator().GetStatus().groups_reassigned(), 2);
  // a finishes a copy after all: counted once, and b's copy is then a duplicate.
  ASSERT_TRUE(a.Heartbeat({a.group_ids()[0]}).ok());
  ASSERT_TRUE(b.Heartbeat({a.group_ids()[0]}).ok());
  EXPECT_EQ(coord->coordinator().GetStatus().groups_finished(), 1);
}

TEST(CoordinatorTest, LivenessSettingsAreValidated) {
  const std::string stages = "stages:\n" + RlStage("rl", 2, 0);
  for (const auto& [workers, field] : std::vector<std::pair<std::string, std::string>>{
           {"workers: {progress_timeout_seconds: -1}\n", "workers.progress_timeout_seconds: must be >= 0"},
           {"workers: {heartbeat_seconds: 2, progress_timeout_seconds: 1}\n",
            "workers.progress_timeout_seconds: must be longer than heartbeat_seconds"},
           {"workers: {group_timeout_seconds: -3}\n", "workers.group_timeout_seconds: must be >= 0"}}) {
    v1::PipelineConfig p;
    ASSERT_TRUE(ParseYamlConfig(workers + stages, &p).ok());
    EXPECT_THAT(std::string(ValidatePipeline(p).message()), HasSubstr(field)) << workers;
  }
}

// After a coordinator restart, the groups the old process handed out are still running on the
// workers that re-register: they count against the in-flight bound (before, the new process
// sent a full bound more, and the learner dropped the surplus as stale).
TEST(CoordinatorTest, RestartedCoordinatorCountsTheOldProcessGroupsInFlight) {
  LearnerServer learner;
  const auto pipeline = Pipeline(kWorkers + "stages:\n" + RlStage("rl", 4, 0));
  const std::string dir = TempDir();
  std::vector<std::string> old_ids;
  {
    auto coord = StartCoordinator(pipeline, dir, learner.address);
    ASSERT_NE(coord, nullptr);
    FakeWorker a(Address(*coord), 8);
    a.Join("a");
    ASSERT_TRUE(WaitUntil([&] { return a.groups().size() == 4; }));
    old_ids = a.group_ids();
    coord->Shutdown();
  }
  auto coord = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(coord, nullptr);
  FakeWorker a(Address(*coord), 8);
  a.SetHeld(old_ids);
  a.SetProgress(0, 8);
  a.Join("a");
  ASSERT_TRUE(learner.learner.WaitPolls(5));
  EXPECT_EQ(a.groups().size(), 0u) << "the old process's 4 groups are still in flight";
  EXPECT_EQ(coord->coordinator().GetStatus().groups_adopted(), 4);
  // Two of them finish and wait in the learner's buffer: still nothing new.
  learner.learner.Update([](v1::LearnerStatus* s) { s->set_buffered_groups(2); });
  a.SetHeld({old_ids[2], old_ids[3]});
  ASSERT_TRUE(a.Heartbeat({old_ids[0], old_ids[1]}).ok());
  ASSERT_TRUE(learner.learner.WaitPolls(5));
  EXPECT_EQ(a.groups().size(), 0u);
  // The learner trains on them: two new groups, and no more.
  learner.learner.Update([](v1::LearnerStatus* s) {
    s->set_buffered_groups(0);
    s->set_step(1);
  });
  ASSERT_TRUE(WaitUntil([&] { return a.groups().size() == 2; }));
  ASSERT_TRUE(learner.learner.WaitPolls(5));
  EXPECT_EQ(a.groups().size(), 2u);
  // A worker that stops holding an adopted group (lost it) frees its place.
  a.SetHeld({old_ids[3]});
  ASSERT_TRUE(WaitUntil([&] { return a.groups().size() == 3; }));
  ASSERT_TRUE(learner.learner.WaitPolls(5));
  EXPECT_EQ(a.groups().size(), 3u);
}

// Crash consistency across restarts (docs/reliability.md): rl groups reported finished stay
// with the coordinator (and in state.json) until the learner reports them trained in a
// checkpointed step. A learner that no longer knows them (restarted, its buffer and uncheckpointed
// steps lost) gets them generated again, same ids, even by a restarted coordinator.
TEST(CoordinatorTest, AcknowledgedGroupsALearnerLostAreDispatchedAgainEvenAfterACoordinatorRestart) {
  LearnerServer learner;
  learner.learner.SetGroupState(v1::GetGroupStatesResponse::BUFFERED);
  const auto pipeline = Pipeline(kWorkers + "stages:\n" + RlStage("rl", 4, 0));
  const std::string dir = TempDir();
  std::vector<std::string> first;
  {
    auto coord = StartCoordinator(pipeline, dir, learner.address);
    ASSERT_NE(coord, nullptr);
    FakeWorker w(Address(*coord), 8);
    w.Join("w");
    ASSERT_TRUE(WaitUntil([&] { return w.groups().size() == 4; }));
    first = w.group_ids();
    // Two finish (the learner holds them in its buffer), one of them reported twice.
    learner.learner.Update([](v1::LearnerStatus* s) { s->set_buffered_groups(2); });
    ASSERT_TRUE(w.Heartbeat({first[0], first[1]}).ok());
    ASSERT_TRUE(w.Heartbeat({first[1]}).ok());
    EXPECT_EQ(coord->coordinator().GetStatus().groups_finished(), 2);
    ASSERT_TRUE(WaitUntil([&] { return learner.learner.asked().count(first[1]) > 0; }));
    ASSERT_TRUE(learner.learner.WaitPolls(3));
    EXPECT_EQ(w.groups().size(), 4u);
    coord->Shutdown();
  }
  // The learner restarted meanwhile: it knows none of them, and its buffer is empty.
  learner.learner.SetGroupState(v1::GetGroupStatesResponse::UNKNOWN);
  learner.learner.Update([](v1::LearnerStatus* s) { s->set_buffered_groups(0); });
  auto coord = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(coord, nullptr);
  FakeWorker w(Address(*coord), 8);
  w.Join("w2");
  ASSERT_TRUE(WaitUntil([&] { return w.groups().size() >= 2; }));
  const std::vector<std::string> again = w.group_ids();
  EXPECT_EQ(std::set<std::string>(again.begin(), again.begin() + 2), std::set<std::string>({first[0], first[1]}));
  ASSERT_TRUE(WaitUntil([&] { return coord->coordinator().GetStatus().groups_redispatched_after_learner_restart() == 2; }));
  // Generated again and trained durably now: counted once, the stage ends with nothing lost.
  learner.learner.SetGroupState(v1::GetGroupStatesResponse::DURABLE);
  ASSERT_TRUE(w.Heartbeat({first[0], first[1]}).ok());
  learner.learner.Update([](v1::LearnerStatus* s) {
    s->set_step(5);
    s->set_state(v1::LearnerStatus::DONE);
  });
  ASSERT_TRUE(coord->WaitForDone(absl::Seconds(kWait)));
  const auto summary = nlohmann::json::parse(Slurp(dir + "/summary.json"));
  EXPECT_EQ(summary["groups_acked_never_trained"], 0);
  EXPECT_EQ(summary["groups_redispatched_after_learner_restart"], 2);
}

// Issue 16, "the last second": groups acknowledged less than persist_interval_seconds before a
// coordinator SIGKILL must still be in its state.json. The state file as it is the moment the
// heartbeat is answered is what a SIGKILL then would leave: a coordinator restarted from a copy
// of it re-dispatches the groups a restarted learner does not know.
TEST(CoordinatorTest, GroupsAcknowledgedJustBeforeACoordinatorKillAreInItsStateFile) {
  LearnerServer learner;
  learner.learner.SetGroupState(v1::GetGroupStatesResponse::BUFFERED);
  const auto pipeline = Pipeline(kWorkers + "name: test\nstages:\n" + RlStage("rl", 4, 0));
  const std::string dir = TempDir(), killed = TempDir();
  CoordinatorServerOptions opts;
  opts.coordinator.pipeline = pipeline;
  opts.coordinator.run_dir = dir;
  opts.coordinator.learner_address = learner.address;
  opts.coordinator.persist_interval_seconds = 3600;  // nothing but this guarantee writes the file
  auto started = CoordinatorServer::Start(opts);
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<CoordinatorServer> coord = std::move(*started);
  FakeWorker w(Address(*coord), 8);
  ASSERT_TRUE(w.Register("w").ok());
  w.OpenStream();
  ASSERT_TRUE(WaitUntil([&] { return w.groups().size() == 4; }));
  const std::vector<std::string> first = w.group_ids();
  ASSERT_TRUE(w.Heartbeat({first[0], first[1]}).ok());
  // "SIGKILL" now: the run directory as it is (state.json, written at start, and the journal of
  // groups acknowledged since).
  ASSERT_TRUE(MakeDirs(killed + "/coordinator").ok());
  for (const char* file : {"state.json", "acked.journal"}) {
    std::ofstream(killed + "/coordinator/" + file) << Slurp(dir + "/coordinator/" + file);
  }
  const std::string journal = Slurp(dir + "/coordinator/acked.journal");
  EXPECT_EQ(std::count(journal.begin(), journal.end(), '\n'), 2) << journal;
  coord->Shutdown();
  // Shutdown writes state.json with both groups: the journal starts again.
  EXPECT_EQ(nlohmann::json::parse(Slurp(dir + "/coordinator/state.json"))["acked_groups"].size(), 2u);
  EXPECT_EQ(Slurp(dir + "/coordinator/acked.journal"), "");

  // The learner restarted too and knows neither group: the new coordinator generates them again.
  learner.learner.SetGroupState(v1::GetGroupStatesResponse::UNKNOWN);
  auto again = StartCoordinator(pipeline, killed, learner.address);
  ASSERT_NE(again, nullptr);
  FakeWorker w2(Address(*again), 8);
  w2.Join("w2");
  ASSERT_TRUE(WaitUntil([&] { return again->coordinator().GetStatus().groups_redispatched_after_learner_restart() == 2; }));
  ASSERT_TRUE(WaitUntil([&] { return w2.groups().size() >= 2; }));
  const std::vector<std::string> ids = w2.group_ids();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.begin() + 2), std::set<std::string>({first[0], first[1]}));
}

TEST(CoordinatorTest, DispatchRespectsCapacityAndTheInFlightBound) {
  LearnerServer learner;
  learner.learner.SetAvailable(false);  // nothing is dispatched before every worker is there
  // prompts_per_step 3, max_staleness 1: at most 6 groups in flight. A group: 2 samples of
  // (6 prompt + 4 new) tokens = 20 tokens.
  const auto pipeline = Pipeline(kWorkers + "stages:\n" + RlStage("rl", 3, 1));
  const std::string dir = TempDir();
  auto coord = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(coord, nullptr);
  FakeWorker w1(Address(*coord), 4);      // 2 groups by sequences
  FakeWorker w2(Address(*coord), 6, 30);  // 3 by sequences but 1 by tokens
  w1.Join("w1");
  w2.Join("w2");
  ASSERT_TRUE(WaitUntil([&] { return w1.received().size() == 1 && w2.received().size() == 1; }));
  learner.learner.SetAvailable(true);

  ASSERT_TRUE(WaitUntil([&] { return CountGroups({&w1, &w2}) == 3; }));
  ASSERT_TRUE(learner.learner.WaitPolls(3));
  EXPECT_EQ(w1.groups().size(), 2u);
  EXPECT_EQ(w2.groups().size(), 1u);
  // Most free capacity first: the first group went to w2 (6 free sequences against 4).
  EXPECT_THAT(w2.group_ids()[0], HasSubstr("-000000"));

  // A big worker takes up to the bound and no more.
  FakeWorker w3(Address(*coord), 64);
  w3.Join("w3");
  ASSERT_TRUE(WaitUntil([&] { return w3.groups().size() == 3; }));
  ASSERT_TRUE(learner.learner.WaitPolls(3));
  EXPECT_EQ(CountGroups({&w1, &w2, &w3}), 6);

  // w3 finishes its 3 groups while a learner poll is under way: the status that poll returns
  // predates them, so they must still count as in flight.
  learner.learner.HoldNextStatus();
  ASSERT_TRUE(learner.learner.WaitHeld());
  learner.learner.Update([](v1::LearnerStatus* s) { s->set_buffered_groups(3); });
  ASSERT_TRUE(w3.Heartbeat(w3.group_ids()).ok());
  learner.learner.Release();
  ASSERT_TRUE(learner.learner.WaitPolls(3));
  EXPECT_EQ(CountGroups({&w1, &w2, &w3}), 6) << "over-dispatched on a stale learner status";

  // The learner trains on them: 3 more groups go out.
  learner.learner.Update([](v1::LearnerStatus* s) {
    s->set_buffered_groups(0);
    s->set_step(1);
  });
  ASSERT_TRUE(WaitUntil([&] { return CountGroups({&w1, &w2, &w3}) == 9; }));
  ASSERT_TRUE(learner.learner.WaitPolls(3));
  EXPECT_EQ(CountGroups({&w1, &w2, &w3}), 9);
  EXPECT_EQ(w3.groups().size(), 6u);
  const v1::PipelineStatus st = coord->coordinator().GetStatus();
  EXPECT_EQ(st.groups_dispatched(), 9);
  EXPECT_EQ(st.groups_finished(), 3);
  EXPECT_EQ(st.step(), 1);

  // Returned groups (a draining worker) go to others at once.
  const std::vector<std::string> w1_ids = w1.group_ids();
  ASSERT_TRUE(w1.Heartbeat({}, w1_ids).ok());
  ASSERT_TRUE(WaitUntil([&] { return w3.groups().size() == 8; }));
  const std::vector<std::string> w3_ids = w3.group_ids();
  EXPECT_EQ(std::vector<std::string>(w3_ids.end() - 2, w3_ids.end()), w1_ids);
}

TEST(CoordinatorTest, StagesFollowTheLearnerAndTheSummaryIsWritten) {
  LearnerServer learner;
  const auto pipeline = Pipeline(kWorkers + "name: demo\nstages:\n" + TrainStage("pre") + RlStage("rl", 2, 0, false));
  const std::string dir = TempDir();
  auto coord = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(coord, nullptr);
  FakeWorker w(Address(*coord), 16);
  w.Join("w");
  ASSERT_TRUE(WaitUntil([&] { return learner.learner.starts().size() == 1; }));
  EXPECT_EQ(learner.learner.starts()[0], 0);
  ASSERT_TRUE(WaitUntil([&] { return !w.received().empty(); }));
  ASSERT_TRUE(learner.learner.WaitPolls(3));
  EXPECT_EQ(w.groups().size(), 0u) << "train stages have no groups";
  ASSERT_TRUE(w.received().front().has_stage());
  EXPECT_EQ(w.received().front().stage().kind(), "train");

  learner.learner.Update([](v1::LearnerStatus* s) {
    s->set_state(v1::LearnerStatus::DONE);
    s->set_step(7);
    (*s->mutable_metrics())["loss"] = 0.5;
  });
  // Stage 1: the learner is asked to start it, the worker hears of it, groups go out.
  ASSERT_TRUE(WaitUntil([&] { return w.groups().size() == 2; }));
  EXPECT_EQ(learner.learner.starts(), (std::vector<int>{0, 1}));
  std::vector<v1::StageInfo> infos;
  for (const auto& a : w.received()) {
    if (a.has_stage()) infos.push_back(a.stage());
  }
  ASSERT_EQ(infos.size(), 2u);
  EXPECT_EQ(infos[1].stage_index(), 1);
  EXPECT_EQ(infos[1].kind(), "rl");
  EXPECT_EQ(w.groups()[0].min_policy_version(), 2);

  // The learner restarts (IDLE): it is asked for stage 1 again.
  learner.learner.Update([](v1::LearnerStatus* s) {
    s->set_state(v1::LearnerStatus::IDLE);
    s->set_stage_index(-1);
    s->set_incarnation("L2");
  });
  ASSERT_TRUE(WaitUntil([&] { return learner.learner.starts().size() == 3; }));
  EXPECT_EQ(learner.learner.starts()[2], 1);

  learner.learner.Update([](v1::LearnerStatus* s) {
    s->set_state(v1::LearnerStatus::DONE);
    s->set_step(3);
    (*s->mutable_metrics())["reward_mean"] = 0.75;
    s->set_trajectories_trained(24);
    s->set_trajectories_dropped_stale(2);
    s->set_trajectories_duplicate(1);
    s->set_trajectory_ids_trained_twice(0);
  });
  ASSERT_TRUE(coord->WaitForDone(absl::Seconds(kWait)));
  EXPECT_TRUE(coord->coordinator().result().ok()) << coord->coordinator().result();
  const auto summary = nlohmann::json::parse(Slurp(dir + "/summary.json"));
  std::vector<std::string> keys;
  for (auto it = summary.begin(); it != summary.end(); ++it) keys.push_back(it.key());
  EXPECT_THAT(keys, ::testing::UnorderedElementsAre("pipeline", "stages", "trajectories_trained",
                                                    "trajectories_dropped_stale", "trajectories_duplicate",
                                                    "trajectory_ids_trained_twice", "groups_dispatched",
                                                    "groups_reassigned", "wall_seconds", "groups_acked_never_trained",
                                                    "groups_redispatched_after_learner_restart",
                                                    "groups_unused_at_stage_end",
                                                    "groups_adopted_after_coordinator_restart"));
  EXPECT_EQ(summary["groups_acked_never_trained"], 0);
  EXPECT_EQ(summary["pipeline"], "demo");
  ASSERT_EQ(summary["stages"].size(), 2u);
  EXPECT_EQ(summary["stages"][0]["name"], "pre");
  EXPECT_EQ(summary["stages"][0]["kind"], "train");
  EXPECT_EQ(summary["stages"][0]["steps"], 7);
  EXPECT_EQ(summary["stages"][0]["state"], "done");
  EXPECT_EQ(summary["stages"][0]["metrics"]["loss"], 0.5);
  EXPECT_EQ(summary["stages"][1]["steps"], 3);
  EXPECT_EQ(summary["stages"][1]["metrics"]["reward_mean"], 0.75);
  EXPECT_EQ(summary["trajectories_trained"], 24);
  EXPECT_EQ(summary["trajectories_dropped_stale"], 2);
  EXPECT_EQ(summary["trajectories_duplicate"], 1);
  EXPECT_EQ(summary["groups_dispatched"], coord->coordinator().GetStatus().groups_dispatched());
  EXPECT_GE(summary["groups_dispatched"].get<int>(), 2);
  EXPECT_EQ(summary["groups_reassigned"], 0);
  // A duration of this short run (not a timestamp, not left at 0).
  EXPECT_GT(summary["wall_seconds"].get<double>(), 0.0);
  EXPECT_LT(summary["wall_seconds"].get<double>(), 600.0);
  const v1::PipelineStatus st = coord->coordinator().GetStatus();
  EXPECT_TRUE(st.done());
  EXPECT_EQ(st.stage_index(), 2);
}

// swarr_coordinator_groups{state}: what waits for a free rollout server (the autoscaling
// metric, deploy/k8s/hpa/) and what is on one.
TEST(CoordinatorTest, QueuedAndAssignedGroupsAreExported) {
  LearnerServer learner;
  const auto pipeline = Pipeline(kWorkers + "stages:\n" + EvalStage("ev", 3, 1));
  const std::string dir = TempDir();
  auto coord = StartCoordinator(pipeline, dir, learner.address, "", "127.0.0.1:0");
  ASSERT_NE(coord, nullptr);
  ASSERT_GT(coord->metrics_port(), 0);
  // No worker yet: all 3 eval groups wait.
  ASSERT_TRUE(WaitUntil([&] { return Metric(Scrape(coord->metrics_port()), "swarr_coordinator_groups{state=\"queued\"}") == 3; }))
      << Scrape(coord->metrics_port());
  EXPECT_EQ(Metric(Scrape(coord->metrics_port()), "swarr_coordinator_groups{state=\"assigned\"}"), 0);
  // A worker with room for one group takes one; two still wait.
  FakeWorker w(Address(*coord), 1);
  w.Join("w");
  ASSERT_TRUE(WaitUntil([&] {
    const std::string t = Scrape(coord->metrics_port());
    return Metric(t, "swarr_coordinator_groups{state=\"queued\"}") == 2 &&
           Metric(t, "swarr_coordinator_groups{state=\"assigned\"}") == 1;
  })) << Scrape(coord->metrics_port());
}

// The end of the pipeline reaches the learner (Learner.Finish) and every worker: on its stream,
// in heartbeat answers, and in the registration answer of one that joins late (issue 15).
TEST(CoordinatorTest, PipelineEndIsToldToTheLearnerAndEveryWorker) {
  for (const auto at_end : {CoordinatorOptions::AtEnd::kExit, CoordinatorOptions::AtEnd::kIdle}) {
    const bool exit = at_end == CoordinatorOptions::AtEnd::kExit;
    SCOPED_TRACE(exit ? "at_end exit" : "at_end idle");
    LearnerServer learner;
    const auto pipeline = Pipeline(kWorkers + "name: ending\nstages:\n" + TrainStage("pre"));
    const std::string dir = TempDir();
    auto coord = StartCoordinator(pipeline, dir, learner.address, "", "", at_end);
    ASSERT_NE(coord, nullptr);
    FakeWorker w(Address(*coord), 16);
    w.Join("w");
    ASSERT_TRUE(WaitUntil([&] { return learner.learner.starts().size() == 1; }));
    EXPECT_TRUE(learner.learner.finishes().empty());
    v1::HeartbeatResponse before;
    ASSERT_TRUE(w.Heartbeat({}, {}, &before).ok());
    EXPECT_FALSE(before.has_pipeline_end()) << "the pipeline is still running";
    learner.learner.Update([](v1::LearnerStatus* s) { s->set_state(v1::LearnerStatus::DONE); });
    ASSERT_TRUE(coord->WaitForDone(absl::Seconds(kWait)));
    // The learner was asked to finish before WaitForDone returned (kExit only).
    ASSERT_EQ(learner.learner.finishes().size(), exit ? 1u : 0u);
    if (exit) {
      EXPECT_EQ(learner.learner.finishes()[0].pipeline(), "ending");
      EXPECT_EQ(learner.learner.finishes()[0].reason(), "");
    }
    ASSERT_TRUE(WaitUntil([&] { return !w.received().empty() && w.received().back().has_pipeline_end(); }));
    EXPECT_EQ(w.received().back().pipeline_end().exit(), exit);
    EXPECT_EQ(w.received().back().pipeline_end().pipeline(), "ending");
    v1::HeartbeatResponse after;
    ASSERT_TRUE(w.Heartbeat({}, {}, &after).ok());
    ASSERT_TRUE(after.has_pipeline_end());
    EXPECT_EQ(after.pipeline_end().exit(), exit);
    FakeWorker late(Address(*coord), 16);
    ASSERT_TRUE(late.Register("late").ok());
    ASSERT_TRUE(late.registration().has_pipeline_end());
    EXPECT_EQ(late.registration().pipeline_end().exit(), exit);
    // Every worker has heard it: the coordinator may exit.
    EXPECT_TRUE(coord->coordinator().WaitForWorkersReleased());
  }
}

// With --at-end exit the learner is gone after the end: a coordinator restarted then (killed
// while waiting for the workers to hear of the end) keeps the summary written with the learner's
// final counts instead of rewriting it without them.
TEST(CoordinatorTest, ACoordinatorRestartedAfterTheEndKeepsTheSummaryWhenTheLearnerIsGone) {
  LearnerServer learner;
  const auto pipeline = Pipeline(kWorkers + "stages:\n" + TrainStage("pre"));
  const std::string dir = TempDir();
  {
    auto coord = StartCoordinator(pipeline, dir, learner.address);
    ASSERT_NE(coord, nullptr);
    ASSERT_TRUE(WaitUntil([&] { return learner.learner.starts().size() == 1; }));
    learner.learner.Update([](v1::LearnerStatus* s) {
      s->set_state(v1::LearnerStatus::DONE);
      s->set_trajectories_trained(24);
    });
    ASSERT_TRUE(coord->WaitForDone(absl::Seconds(kWait)));
  }
  EXPECT_EQ(nlohmann::json::parse(Slurp(dir + "/summary.json"))["trajectories_trained"], 24);
  learner.learner.SetAvailable(false);  // it finished and exited
  auto again = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(again, nullptr);
  ASSERT_TRUE(again->WaitForDone(absl::Seconds(kWait)));
  EXPECT_TRUE(again->coordinator().result().ok());
  EXPECT_EQ(nlohmann::json::parse(Slurp(dir + "/summary.json"))["trajectories_trained"], 24);
}

TEST(CoordinatorTest, FailedStageEndsThePipelineWithAnError) {
  LearnerServer learner;
  const auto pipeline = Pipeline(kWorkers + "stages:\n" + TrainStage("pre") + EvalStage("ev", 3, 1, false));
  const std::string dir = TempDir();
  auto coord = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(coord, nullptr);
  ASSERT_TRUE(WaitUntil([&] { return learner.learner.starts().size() == 1; }));
  learner.learner.Update([](v1::LearnerStatus* s) {
    s->set_state(v1::LearnerStatus::FAILED);
    s->set_error("loss is NaN");
  });
  ASSERT_TRUE(coord->WaitForDone(absl::Seconds(kWait)));
  EXPECT_THAT(std::string(coord->coordinator().result().message()), HasSubstr("loss is NaN"));
  const auto summary = nlohmann::json::parse(Slurp(dir + "/summary.json"));
  EXPECT_EQ(summary["stages"][0]["state"], "failed");
  EXPECT_EQ(summary["stages"][1]["state"], "pending");
  EXPECT_THAT(summary["error"].get<std::string>(), HasSubstr("stage 'pre' failed: the learner reports: loss is NaN"));
  EXPECT_THAT(coord->coordinator().GetStatus().error(), HasSubstr("loss is NaN"));
}

TEST(CoordinatorTest, EvalResultsAreAggregatedIdempotently) {
  LearnerServer learner;
  const auto pipeline = Pipeline(kWorkers + "stages:\n" + EvalStage("ev", 5, 2));
  const std::string dir = TempDir();
  auto coord = StartCoordinator(pipeline, dir, learner.address, "", "127.0.0.1:0");
  ASSERT_NE(coord, nullptr);
  ASSERT_GT(coord->metrics_port(), 0);
  FakeWorker w(Address(*coord), 64);
  w.Join("w");
  ASSERT_TRUE(WaitUntil([&] { return w.groups().size() == 5; }));
  const auto groups = w.groups();
  for (const auto& g : groups) {
    EXPECT_TRUE(g.eval());
    EXPECT_EQ(g.num_samples(), 2);
    EXPECT_EQ(g.min_policy_version(), 1);  // the version the learner published for the eval
    EXPECT_FALSE(g.sampling().greedy());
    EXPECT_EQ(g.reward(), "verifier");
  }
  EXPECT_EQ(w.received().front().stage().kind(), "eval");

  // Bad reports are refused, naming the field.
  grpc::Status s = w.ReportEval("ev/ffffffff-000001", {1, 0});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("group_id"));
  s = w.ReportEval(groups[0].group_id(), {1});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("samples"));
  s = w.ReportEval(groups[0].group_id(), {1, std::nan("")});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("samples[1].reward"));

  // "Finished" without a result does not answer a problem: the group is generated again.
  ASSERT_TRUE(w.Heartbeat({groups[4].group_id()}).ok());
  ASSERT_TRUE(WaitUntil([&] { return w.groups().size() == 6; }));
  EXPECT_EQ(w.groups()[5].group_id(), groups[4].group_id());

  // Problems 0, 2, 4 have one correct sample of two; 1, 3 none. The second report of problem 0
  // changes nothing.
  ASSERT_TRUE(w.ReportEval(groups[0].group_id(), {1, 0}).ok());
  ASSERT_TRUE(w.ReportEval(groups[0].group_id(), {0, 0}).ok());
  ASSERT_TRUE(w.ReportEval(groups[1].group_id(), {0, 0}).ok());
  ASSERT_TRUE(w.ReportEval(groups[2].group_id(), {0, 1}).ok());
  ASSERT_TRUE(w.ReportEval(groups[3].group_id(), {0, 0}).ok());
  ASSERT_TRUE(w.ReportEval(groups[4].group_id(), {1, 1}).ok());
  ASSERT_TRUE(coord->WaitForDone(absl::Seconds(kWait)));
  ASSERT_TRUE(coord->coordinator().result().ok()) << coord->coordinator().result();
  const std::string metrics = Slurp(dir + "/stages/ev/metrics.jsonl");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 1);
  const auto m = nlohmann::json::parse(metrics);
  EXPECT_DOUBLE_EQ(m["accuracy"].get<double>(), 3.0 / 5);
  EXPECT_DOUBLE_EQ(m["mean_reward"].get<double>(), 4.0 / 10);
  EXPECT_EQ(m["n"], 5);
  std::istringstream samples(Slurp(dir + "/stages/ev/samples.jsonl"));
  std::string line;
  std::vector<bool> correct;
  while (std::getline(samples, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["samples"].size(), 2u);
    correct.push_back(j["correct"].get<bool>());
  }
  EXPECT_EQ(correct, (std::vector<bool>{true, false, true, false, true}));
  const auto summary = nlohmann::json::parse(Slurp(dir + "/summary.json"));
  EXPECT_DOUBLE_EQ(summary["stages"][0]["metrics"]["accuracy"].get<double>(), 0.6);
  // Late duplicates of a finished stage are still acknowledged.
  EXPECT_TRUE(w.ReportEval(groups[3].group_id(), {1, 1}).ok());

  // The coordinator's metrics (docs/services.md "Metrics").
  const std::string text = Scrape(coord->metrics_port());
  EXPECT_DOUBLE_EQ(Metric(text, "swarr_coordinator_eval_accuracy{stage=\"ev\"}"), 0.6) << text;
  EXPECT_EQ(Metric(text, "swarr_coordinator_workers{state=\"alive\"}"), 1) << text;
  EXPECT_EQ(Metric(text, "swarr_coordinator_workers{state=\"dead\"}"), 0) << text;
  EXPECT_EQ(Metric(text, "swarr_coordinator_workers{state=\"draining\"}"), 0) << text;
  EXPECT_EQ(Metric(text, "swarr_coordinator_groups_dispatched_total"), 5) << text;
  EXPECT_EQ(Metric(text, "swarr_coordinator_groups_finished_total"), 5) << text;
  EXPECT_EQ(Metric(text, "swarr_coordinator_groups_reassigned_total"), 0) << text;
  EXPECT_EQ(Metric(text, "swarr_coordinator_stage_index"), 1) << text;
  EXPECT_FALSE(std::isnan(Metric(text, "swarr_coordinator_learner_step"))) << text;
  EXPECT_EQ(Metric(text, "swarr_coordinator_worker_weight_version{worker=\"w\"}"), 0) << text;
  if (access("/usr/bin/promtool", X_OK) == 0) {
    const std::string file = dir + "/metrics.txt";
    std::ofstream(file) << text;
    EXPECT_EQ(std::system(("/usr/bin/promtool check metrics < " + file + " > " + file + ".check 2>&1").c_str()), 0)
        << Slurp(file + ".check");
  }
}

TEST(CoordinatorTest, RestartedCoordinatorResumesTheStage) {
  LearnerServer learner;
  const auto pipeline = Pipeline(kWorkers + "stages:\n" + TrainStage("pre") + EvalStage("ev", 4, 1, false));
  const std::string dir = TempDir();
  std::vector<std::string> first_ids;
  {
    auto coord = StartCoordinator(pipeline, dir, learner.address);
    ASSERT_NE(coord, nullptr);
    FakeWorker w(Address(*coord), 64);
    w.Join("w");
    ASSERT_TRUE(WaitUntil([&] { return learner.learner.starts().size() == 1; }));
    learner.learner.Update([](v1::LearnerStatus* s) {
      s->set_state(v1::LearnerStatus::DONE);
      s->set_step(11);
    });
    ASSERT_TRUE(WaitUntil([&] { return w.groups().size() == 4; }));
    first_ids = w.group_ids();
    EXPECT_TRUE(w.groups()[0].sampling().greedy());
    ASSERT_TRUE(w.ReportEval(first_ids[0], {1}).ok());
    ASSERT_TRUE(w.ReportEval(first_ids[1], {0}).ok());
    ASSERT_TRUE(WaitUntil([&] {
      auto st = LoadState(dir + "/coordinator/state.json");
      return st.ok() && st->has_value() && (*st)->eval_results.size() == 2;
    }));
    coord->Shutdown();
  }
  auto saved = LoadState(dir + "/coordinator/state.json");
  ASSERT_TRUE(saved.ok() && saved->has_value());
  EXPECT_EQ((*saved)->stage_index, 1);
  EXPECT_EQ((*saved)->stages[0].state, "done");
  EXPECT_EQ((*saved)->stages[0].steps, 11);

  // The learner restarted too: it is idle and gets StartStage(1) from the new coordinator.
  learner.learner.Update([](v1::LearnerStatus* s) {
    s->set_state(v1::LearnerStatus::IDLE);
    s->set_stage_index(-1);
  });
  auto coord = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(coord, nullptr);
  const v1::PipelineStatus st = coord->coordinator().GetStatus();
  EXPECT_EQ(st.stage_index(), 1);
  EXPECT_EQ(st.stage_name(), "ev");
  EXPECT_EQ(st.stages(0).steps(), 11);
  EXPECT_NE(st.incarnation(), first_ids[0].substr(3, 8));
  FakeWorker w(Address(*coord), 64);
  w.Join("w2");
  ASSERT_TRUE(WaitUntil([&] { return w.groups().size() == 2; }));
  ASSERT_TRUE(learner.learner.WaitPolls(3));
  EXPECT_EQ(w.groups().size(), 2u) << "only the problems without a result are generated again";
  EXPECT_THAT(w.group_ids()[0], HasSubstr(absl::StrCat("ev/", coord->coordinator().incarnation(), "-000002")));
  EXPECT_THAT(w.group_ids()[1], HasSubstr("-000003"));
  EXPECT_EQ(learner.learner.starts().back(), 1);
  // A result of the first incarnation's group is still accepted (by problem), once.
  ASSERT_TRUE(w.ReportEval(first_ids[2], {1}).ok());
  ASSERT_TRUE(w.ReportEval(first_ids[0], {0}).ok());
  ASSERT_TRUE(w.ReportEval(w.group_ids()[1], {1}).ok());
  ASSERT_TRUE(coord->WaitForDone(absl::Seconds(kWait)));
  const auto m = nlohmann::json::parse(Slurp(dir + "/stages/ev/metrics.jsonl"));
  EXPECT_EQ(m["n"], 4);
  EXPECT_DOUBLE_EQ(m["accuracy"].get<double>(), 3.0 / 4);
}

TEST(CoordinatorTest, WeightLoadsAreOrderedOneWorkerAtATime) {
  LearnerServer learner;
  learner.learner.SetAvailable(false);
  const auto pipeline = Pipeline(kWorkers + "stages:\n" + RlStage("rl", 1, 0));
  const std::string dir = TempDir();
  auto coord = StartCoordinator(pipeline, dir, learner.address);
  ASSERT_NE(coord, nullptr);
  FakeWorker a(Address(*coord), 8), b(Address(*coord), 8);
  a.Join("a");
  b.Join("b");
  ASSERT_TRUE(WaitUntil([&] { return a.received().size() == 1 && b.received().size() == 1; }));
  learner.learner.SetAvailable(true);  // StartStage publishes version 1 of L1

  ASSERT_TRUE(WaitUntil([&] { return a.loads().size() + b.loads().size() == 1; }));
  ASSERT_TRUE(learner.learner.WaitPolls(3));
  FakeWorker* first = a.loads().empty() ? &b : &a;
  FakeWorker* second = first == &a ? &b : &a;
  EXPECT_EQ(second->loads().size(), 0u) << "the second worker waits for the first";
  EXPECT_EQ(first->loads()[0].version(), 1);
  EXPECT_EQ(first->loads()[0].learner_incarnation(), "L1");
  first->SetLoaded(1, "L1");
  ASSERT_TRUE(WaitUntil([&] { return second->loads().size() == 1; }));
  second->SetLoaded(1, "L1");
  // A new version: again one at a time.
  learner.learner.Update([](v1::LearnerStatus* s) { s->mutable_latest()->set_version(2); });
  ASSERT_TRUE(WaitUntil([&] { return a.loads().size() + b.loads().size() == 3; }));
  ASSERT_TRUE(learner.learner.WaitPolls(3));
  EXPECT_EQ(a.loads().size() + b.loads().size(), 3u);
  EXPECT_TRUE(WaitUntil([&] {
    auto st = coord->coordinator().GetStatus();
    return st.workers(0).loaded().version() == 1 && st.workers(0).tokens_per_second() > 0;
  }));
}

TEST(CoordinatorTest, MissingTokenAndBadRequestsAreRefusedAndTheServerKeepsServing) {
  LearnerServer learner(RpcSecurity{"s3cret", "", "", "", ""});
  const auto pipeline = Pipeline(kWorkers + "stages:\n" + RlStage("rl", 2, 0));
  const std::string dir = TempDir();
  auto coord = StartCoordinator(pipeline, dir, learner.address, "s3cret");
  ASSERT_NE(coord, nullptr);

  FakeWorker anonymous(Address(*coord), 8);
  EXPECT_EQ(anonymous.Register("x").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext ctx;
    v1::PipelineStatus out;
    EXPECT_EQ(anonymous.stub()->GetStatus(&ctx, v1::GetPipelineStatusRequest(), &out).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  anonymous.OpenStream();
  ASSERT_TRUE(WaitUntil([&] { return anonymous.stream_ended(); }));
  EXPECT_EQ(anonymous.stream_status().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(anonymous.received().empty());
  FakeWorker wrong(Address(*coord), 8, 0, "guess");
  EXPECT_EQ(wrong.Register("x").error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // With the token: bad fields are INVALID_ARGUMENT naming them, unknown ids NOT_FOUND.
  FakeWorker w(Address(*coord), 8, 0, "s3cret");
  auto register_with = [&](const std::function<void(v1::RegisterWorkerRequest*)>& f) {
    v1::RegisterWorkerRequest req;
    req.set_role("rollout");
    req.set_max_sequences(4);
    f(&req);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer s3cret");
    v1::RegisterWorkerResponse resp;
    return w.stub()->RegisterWorker(&ctx, req, &resp);
  };
  grpc::Status s = register_with([](v1::RegisterWorkerRequest* r) { r->set_role("learner"); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("role"));
  s = register_with([](v1::RegisterWorkerRequest* r) { r->set_max_sequences(-1); });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("max_sequences"));
  s = register_with([](v1::RegisterWorkerRequest* r) { r->set_max_tokens(-5); });
  EXPECT_THAT(s.error_message(), HasSubstr("max_tokens"));
  s = register_with([](v1::RegisterWorkerRequest* r) { r->set_name(std::string(10000, 'n')); });
  EXPECT_THAT(s.error_message(), HasSubstr("name"));
  EXPECT_EQ(w.Heartbeat().error_code(), grpc::StatusCode::INVALID_ARGUMENT);  // no id yet
  {
    v1::HeartbeatRequest req;
    req.set_worker_id("w-nobody-0001");
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer s3cret");
    v1::HeartbeatResponse resp;
    EXPECT_EQ(w.stub()->Heartbeat(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    v1::HeartbeatRequest req;
    req.set_worker_id("w-nobody-0001");
    req.set_active_sequences(-1);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer s3cret");
    v1::HeartbeatResponse resp;
    s = w.stub()->Heartbeat(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("active_sequences"));
  }
  EXPECT_EQ(w.ReportEval("rl/x-1", {1}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // A stream for an unknown worker ends with NOT_FOUND; the real one works.
  w.SetIdForTest("w-nobody-0001");
  w.OpenStream();
  ASSERT_TRUE(WaitUntil([&] { return w.stream_ended(); }));
  EXPECT_EQ(w.stream_status().error_code(), grpc::StatusCode::NOT_FOUND);
  w.Join("w");
  ASSERT_TRUE(WaitUntil([&] { return w.groups().size() == 2; })) << "the coordinator must reach the learner with the token";
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer s3cret");
  v1::PipelineStatus out;
  ASSERT_TRUE(w.stub()->GetStatus(&ctx, v1::GetPipelineStatusRequest(), &out).ok());
  EXPECT_EQ(out.workers_size(), 1);
  EXPECT_EQ(out.stage_kind(), "rl");
}

TEST(CoordinatorTest, StateFileRoundTrips) {
  CoordinatorState s;
  s.pipeline = "p";
  s.stage_index = 1;
  s.incarnations = {"aa", "bb"};
  s.stages.push_back({"a", "train", "done", 4, {{"loss", 0.25}}, 0});
  s.stages.push_back({"b", "eval", "running", 0, {}, 0});
  s.eval_results[3] = {"b/aa-000003", "w-1", 2, {{"x\xff", 1, true, 3}}};
  s.groups_dispatched = 9;
  s.groups_redispatched_after_learner_restart = 5;
  s.groups_adopted = 4;
  auto back = StateFromJson(StateToJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->stage_index, 1);
  EXPECT_EQ(back->stages[0].metrics.at("loss"), 0.25);
  EXPECT_EQ(back->eval_results.at(3).samples[0].reward, 1);
  EXPECT_EQ(back->groups_dispatched, 9);
  EXPECT_EQ(back->groups_redispatched_after_learner_restart, 5);
  EXPECT_EQ(back->groups_adopted, 4);
  EXPECT_EQ(back->groups_acked_never_trained, 0);
  EXPECT_EQ(back->incarnations.size(), 2u);
  auto bad = StateFromJson("{\"stage_index\": \"x\", \"stages\": []}");
  EXPECT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("stage_index"));
}

}  // namespace
}  // namespace swarr
