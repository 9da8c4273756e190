// The running services seen from outside (issue 5, integration tests 6 and 7): bad input of
// every kind gets the right gRPC code while the servers keep serving, and a real Prometheus
// server scrapes all three services.
#include <signal.h>

#include <stdlib.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/rpc/service_options.h"
#include "common/rpc/weights_wire.h"
#include "common/util/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/swarr/v1/coordinator.grpc.pb.h"
#include "proto/swarr/v1/learner.grpc.pb.h"
#include "proto/swarr/v1/rollout.grpc.pb.h"
#include "tests/pipeline_testing.h"

namespace swarr {
namespace {

using pipeline_testing::FreePort;
using pipeline_testing::HttpGet;
using pipeline_testing::LaunchRun;
using pipeline_testing::ToyPipeline;
using pipeline_testing::WaitUntil;
using ::testing::HasSubstr;

TEST(PipelineServicesTest, MalformedConfigIsOneLineNamingTheField) {
  const std::string dir = cli_testing::TempDir();
  ASSERT_TRUE(WriteFileAtomically(dir + "/bad.yaml", {"name: bad\nstages:\n  - name: rl\n    rl: {clip_high: abc}\n"}).ok());
  cli_testing::ExpectUsageError(absl::StrCat("launch --config ", dir, "/bad.yaml --run-dir ", dir, "/run"),
                                {"stages[0].rl.clip_high", "expected number", "line 4"});
  ASSERT_TRUE(WriteFileAtomically(dir + "/bad2.yaml",
                                  {"name: bad\nworkers: {lease_seconds: 0.1}\nstages:\n  - name: e\n    eval: "
                                   "{max_new_tokens: 4}\n    model: {path: x}\n    data: {format: gsm8k, path: y}\n"})
                  .ok());
  cli_testing::ExpectUsageError(absl::StrCat("launch --config ", dir, "/bad2.yaml --run-dir ", dir, "/run"),
                                "workers.lease_seconds");
  cli_testing::ExpectUsageError(absl::StrCat("coordinator --config ", dir, "/bad.yaml --run-dir ", dir,
                                             "/run --learner 127.0.0.1:1"),
                                "stages[0].rl.clip_high");
}

class RunningPipelineTest : public ::testing::Test {
 protected:
  template <typename Stub>
  static std::unique_ptr<typename Stub::Stub> Connect(int port) {
    auto channel = MakeChannel(absl::StrCat("127.0.0.1:", port), RpcSecurity(), RpcLimits());
    return Stub::NewStub(*channel);
  }
};

// 6. Bad RPCs: a missing token, a token of the wrong role, out-of-vocabulary ids, an oversized
//    message, stale and unknown versions: the right codes, and every server keeps serving; the
//    run still completes.
TEST_F(RunningPipelineTest, BadRequestsGetTheRightCodesAndServersKeepServing) {
  ToyPipeline p;
  p.rl_steps = 10;
  LaunchRun run(p, 1);  // per-role tokens made by `swarr launch` in RUN/tokens
  ASSERT_TRUE(WaitUntil([&] { return run.RlSteps() >= 4; }, 300)) << run.Log();
  auto as = [&](const std::string& role) {
    RpcSecurity s;
    s.token = std::string(absl::StripAsciiWhitespace(cli_testing::Slurp(run.tokens() + "/" + role + ".token")));
    return s;
  };
  const RpcSecurity none, rollout_role = as("rollout"), operator_role = as("operator");
  RpcLimits limits;
  auto learner = Connect<v1::Learner>(run.ServicePort("learner"));
  auto coordinator = Connect<v1::Coordinator>(run.ServicePort("coordinator"));
  auto rollout = Connect<v1::Rollout>(run.ServicePort("rollout-0"));

  auto learner_status = [&](const RpcSecurity& sec, v1::LearnerStatus* out) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, sec, limits, 10);
    return learner->GetStatus(&ctx, v1::GetLearnerStatusRequest(), out);
  };
  v1::LearnerStatus ls;
  EXPECT_EQ(learner_status(none, &ls).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, none, limits, 10);
    v1::PipelineStatus ps;
    EXPECT_EQ(coordinator->GetStatus(&ctx, v1::GetPipelineStatusRequest(), &ps).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, none, limits, 10);
    v1::RolloutStatus rs;
    EXPECT_EQ(rollout->GetStatus(&ctx, v1::GetRolloutStatusRequest(), &rs).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  ASSERT_TRUE(learner_status(operator_role, &ls).ok());
  const int64_t version = ls.latest().version();
  // Per-role tokens: a rollout server's token is known but may not start a stage.
  {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, rollout_role, limits, 10);
    v1::LearnerStatus out;
    const grpc::Status s = learner->StartStage(&ctx, v1::StartStageRequest(), &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr("role rollout may not call Learner.StartStage"));
  }

  // A trajectory with a token id outside the tiny model's 24-token vocabulary.
  v1::PushTrajectoriesRequest push;
  v1::Trajectory* t = push.add_trajectories();
  t->set_id("rl/bogus-1/0");
  t->set_group_id("rl/bogus-1");
  t->set_group_size(1);
  t->set_stage("rl");
  for (int id : {1, 5, 6}) t->add_prompt_ids(id);
  t->add_completion_ids(5000);
  t->add_behaviour_logprobs(-0.5f);
  t->add_token_versions(version);
  t->set_policy_version(version);
  t->set_learner_incarnation(ls.incarnation());
  {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, rollout_role, limits, 10);
    v1::PushTrajectoriesResponse resp;
    const grpc::Status s = learner->PushTrajectories(&ctx, push, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("5000"));
    EXPECT_THAT(s.error_message(), HasSubstr("rl/bogus-1/0"));
  }
  // A version the learner never published.
  t->set_completion_ids(0, 5);
  t->set_token_versions(0, version + 1000);
  t->set_policy_version(version + 1000);
  {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, rollout_role, limits, 10);
    v1::PushTrajectoriesResponse resp;
    EXPECT_EQ(learner->PushTrajectories(&ctx, push, &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  // An oversized message (the default limit is 64 MiB): 25M ids of 3 varint bytes each.
  {
    v1::PushTrajectoriesRequest big;
    v1::Trajectory* bt = big.add_trajectories();
    *bt = push.trajectories(0);
    bt->mutable_completion_ids()->Resize(25'000'000, 100'000);
    ASSERT_GT(big.ByteSizeLong(), size_t{64} << 20);
    grpc::ClientContext ctx;
    PrepareContext(&ctx, rollout_role, limits, 30);
    v1::PushTrajectoriesResponse resp;
    EXPECT_EQ(learner->PushTrajectories(&ctx, big, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // Weights: an unknown (future) version and a superseded one.
  {
    v1::GetWeightsRequest req;
    req.set_version(version + 1000);
    auto blob = FetchWeights(*learner, req, rollout_role, limits, 10);
    EXPECT_EQ(blob.status().code(), absl::StatusCode::kNotFound) << blob.status();
    ASSERT_GE(version, 4);  // sft start, sft end, rl start, rl steps...: older ones are superseded
    req.set_version(version - 3);
    blob = FetchWeights(*learner, req, rollout_role, limits, 10);
    EXPECT_EQ(blob.status().code(), absl::StatusCode::kFailedPrecondition) << blob.status();
    req.set_latest(true);
    blob = FetchWeights(*learner, req, none, limits, 10);
    EXPECT_EQ(blob.status().code(), absl::StatusCode::kUnauthenticated) << blob.status();
  }
  // The rollout server: an out-of-vocabulary prompt.
  {
    v1::GenerateRequest req;
    v1::PromptGroup* g = req.add_groups();
    g->set_group_id("direct/1");
    g->set_stage("rl");
    g->add_prompt_ids(3);
    g->add_prompt_ids(99999);
    g->set_num_samples(1);
    g->set_max_new_tokens(2);
    grpc::ClientContext ctx;
    PrepareContext(&ctx, operator_role, limits, 10);
    auto reader = rollout->Generate(&ctx, req);
    v1::GenerateResponse r;
    while (reader->Read(&r)) {
    }
    const grpc::Status s = reader->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("99999"));
  }
  // Coordinator: a heartbeat from a worker it does not know.
  {
    v1::HeartbeatRequest hb;
    hb.set_worker_id("no-such-worker");
    grpc::ClientContext ctx;
    PrepareContext(&ctx, rollout_role, limits, 10);
    v1::HeartbeatResponse resp;
    EXPECT_EQ(coordinator->Heartbeat(&ctx, hb, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  // Everyone still serves, and the pipeline completes.
  ASSERT_TRUE(learner_status(operator_role, &ls).ok());
  {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, operator_role, limits, 10);
    v1::RolloutStatus rs;
    EXPECT_TRUE(rollout->GetStatus(&ctx, v1::GetRolloutStatusRequest(), &rs).ok());
  }
  ASSERT_EQ(run.Wait(600), 0) << run.Log();
  EXPECT_EQ(run.Summary()["trajectory_ids_trained_twice"].get<int64_t>(), 0);
}

// 7. A real Prometheus server scrapes the three services; one metric of each read back
//    through Prometheus' HTTP API. Every exporter's output passes `promtool check metrics`.
TEST(PipelineServicesTest, PrometheusScrapesEveryService) {
  ToyPipeline p;
  p.rl_steps = 30;
  LaunchRun run(p, 1);
  ASSERT_TRUE(WaitUntil([&] { return run.RlSteps() >= 1; }, 300)) << run.Log();
  const int learner = run.MetricsPort("learner"), coordinator = run.MetricsPort("coordinator"),
            rollout = run.MetricsPort("rollout-0");
  ASSERT_GT(learner, 0);
  ASSERT_GT(coordinator, 0);
  ASSERT_GT(rollout, 0);

  for (int port : {learner, coordinator, rollout}) {
    const std::string text = HttpGet(port, "/metrics");
    ASSERT_FALSE(text.empty()) << port;
    const std::string file = run.dir() + "/metrics_" + std::to_string(port) + ".txt";
    ASSERT_TRUE(WriteFileAtomically(file, {text}).ok());
    const int raw = std::system(("promtool check metrics < " + file + " > " + file + ".check 2>&1").c_str());
    EXPECT_EQ(raw, 0) << cli_testing::Slurp(file + ".check") << "\n" << text;
  }

  const int prom_port = FreePort();
  const std::string prom_dir = run.dir() + "/prometheus";
  ASSERT_TRUE(MakeDirs(prom_dir).ok());
  const std::string config = absl::StrCat(
      "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
      "scrape_configs:\n"
      "  - job_name: swarr\n"
      "    static_configs:\n"
      "      - targets: ['127.0.0.1:", learner, "', '127.0.0.1:", coordinator, "', '127.0.0.1:", rollout, "']\n");
  ASSERT_TRUE(WriteFileAtomically(prom_dir + "/prometheus.yml", {config}).ok());
  Subprocess::Options opts;
  opts.output_file = prom_dir + "/prometheus.log";
  auto prom = Subprocess::Start({"/usr/bin/prometheus", "--config.file=" + prom_dir + "/prometheus.yml",
                                 "--storage.tsdb.path=" + prom_dir + "/data",
                                 absl::StrCat("--web.listen-address=127.0.0.1:", prom_port)},
                                opts);
  ASSERT_TRUE(prom.ok()) << prom.status();
  for (const std::string metric :
       {"swarr_learner_policy_version", "swarr_coordinator_workers", "swarr_rollout_tokens_generated_total"}) {
    std::string body;
    const bool found = WaitUntil(
        [&] {
          body = HttpGet(prom_port, "/api/v1/query?query=" + metric);
          auto j = nlohmann::json::parse(body, nullptr, false);
          return !j.is_discarded() && j.value("status", "") == "success" && !j["data"]["result"].empty();
        },
        60);
    EXPECT_TRUE(found) << metric << ": " << body << "\n" << cli_testing::Slurp(prom_dir + "/prometheus.log");
  }
  // The scrape targets are all up.
  const std::string up = HttpGet(prom_port, "/api/v1/query?query=up");
  auto j = nlohmann::json::parse(up, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << up;
  int healthy = 0;
  for (const auto& r : j["data"]["result"]) healthy += r["value"][1] == "1";
  EXPECT_EQ(healthy, 3) << up;
  (*prom)->Signal(SIGTERM);
  (*prom)->Wait(30);
}

// grpc.health.v1.Health/Check of the server on `port`: 1 SERVING, 2 NOT_SERVING, -1 no answer.
int HealthOf(int port) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice no_bytes("");  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer request(&no_bytes, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status st) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = st;
                   done = true;
                   cv.notify_one();
                 });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  return bytes.size() == 2 && bytes[0] == 0x08 ? bytes[1] : -1;
}

// Progress-based liveness (issue 16, docs/reliability.md): rollout-0's engine loop hangs (test
// hook) while its heartbeats go on. Its gRPC health turns NOT_SERVING, the coordinator marks it
// unhealthy after workers.progress_timeout_seconds and gives its groups to rollout-1, and the run
// finishes. Before, the wedged rollout kept its lease and its groups forever: the run never ended.
TEST(PipelineServicesTest, WedgedRolloutEngineLosesItsGroupsAndTheRunFinishes) {
  ToyPipeline p;
  p.sft_steps = 60;
  p.rl_steps = 12;
  const std::string yaml =
      absl::StrReplaceAll(p.Yaml(), {{"lease_seconds: 2}", "lease_seconds: 2, progress_timeout_seconds: 2}"}});
  ASSERT_NE(yaml, p.Yaml());
  // The hook reads the variable in rollout-0 only: its engine hangs after 12 decode steps (about
  // the third group it runs), for 5 s (2.5 progress timeouts), then goes on.
  ASSERT_EQ(setenv("SWARR_TEST_ENGINE_HANG", "rollout-0:12:5", 1), 0);
  LaunchRun run(yaml, 2);
  unsetenv("SWARR_TEST_ENGINE_HANG");
  ASSERT_TRUE(WaitUntil([&] { return run.Log().find("the engine loop hangs") != std::string::npos; }, 300))
      << run.Log();
  const auto hung_at = std::chrono::steady_clock::now();
  const int port = run.ServicePort("rollout-0");
  ASSERT_GT(port, 0);
  EXPECT_TRUE(WaitUntil([&] { return HealthOf(port) == 2; }, 30)) << "health never turned NOT_SERVING\n" << run.Log();
  ASSERT_TRUE(WaitUntil([&] { return run.Log().find("is unhealthy") != std::string::npos; }, 60)) << run.Log();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - hung_at).count();
  ASSERT_EQ(run.Wait(600), 0) << run.Log();
  const nlohmann::json summary = run.Summary();
  ASSERT_TRUE(summary.is_object()) << run.Log();
  ASSERT_EQ(summary["stages"].size(), 3u);
  EXPECT_EQ(summary["stages"][1]["steps"].get<int>(), p.rl_steps);
  EXPECT_EQ(summary["stages"][2]["state"], "done");
  EXPECT_GE(summary["groups_reassigned"].get<int64_t>(), 1) << summary.dump();
  EXPECT_EQ(summary["trajectory_ids_trained_twice"].get<int64_t>(), 0);
  EXPECT_THAT(run.Log(), HasSubstr("health NOT_SERVING"));
  // Once its engine moved again it was healthy (unless the run had ended first: then the drain
  // released it; the coordinator's "pipeline ... done" comes before it tells the rollouts to exit).
  if (run.Log().find("the engine loop goes on") < run.Log().find("coordinator: pipeline toy done")) {
    EXPECT_THAT(run.Log(), HasSubstr("makes progress again"));
    EXPECT_THAT(run.Log(), HasSubstr("health SERVING"));
  }
  std::cerr << "unhealthy " << took << " s after the hang; summary " << summary.dump() << "\n";
}

// The ids of trained_ids.log, in order.
std::vector<std::string> TrainedIds(const std::string& run_dir) {
  std::vector<std::string> out;
  for (absl::string_view line :
       absl::StrSplit(cli_testing::Slurp(run_dir + "/learner/trained_ids.log"), '\n', absl::SkipEmpty())) {
    out.emplace_back(line);
  }
  return out;
}

// Crash consistency (issue 16, docs/reliability.md): the learner is killed -9 three times during
// RL (checkpoints every 3 steps), each time with steps after its last checkpoint and groups in its
// buffer. In the final history (the surviving steps: trajectories.jsonl, truncated with the
// checkpoint like metrics.jsonl) every trained id appears once, trained_ids.log holds exactly
// those ids, and no group the learner acknowledged was lost (groups_acked_never_trained 0): the
// lost ones were generated again. Before, trained_ids.log kept the ids of lost steps (never
// trained in any surviving step, refused as duplicates when generated again).
TEST(PipelineServicesTest, LearnerKilledAtSeveralMomentsLosesNoAcknowledgedGroup) {
  ToyPipeline p;
  p.sft_steps = 100;
  p.rl_steps = 14;
  p.rl_checkpoint_every = 3;
  const std::string yaml = absl::StrReplaceAll(
      p.Yaml(), {{"max_importance_weight: 2.0}", "max_importance_weight: 2.0, log_trajectories: true}"}});
  ASSERT_NE(yaml, p.Yaml());
  LaunchRun run(yaml, 2, {"--max-restarts", "5"});
  int kills = 0;
  for (int at : {4, 8, 11}) {
    // Just after a step that no checkpoint holds (steps 4, 8 and 11; checkpoints at 3, 6, 9, 12).
    ASSERT_TRUE(WaitUntil([&] { return run.RlSteps() >= at; }, 300)) << run.Log();
    const pid_t victim = run.Pid("learner");
    ASSERT_GT(victim, 0);
    ASSERT_EQ(kill(victim, SIGKILL), 0);
    ++kills;
    // Until the new learner resumed (metrics.jsonl cut back to the checkpoint).
    ASSERT_TRUE(WaitUntil([&] { return run.Pid("learner") != victim && run.Pid("learner") > 0; }, 60)) << run.Log();
  }
  ASSERT_EQ(run.Wait(600), 0) << run.Log();
  const nlohmann::json summary = run.Summary();
  ASSERT_TRUE(summary.is_object()) << run.Log();
  EXPECT_EQ(summary["stages"][1]["steps"].get<int>(), p.rl_steps);
  EXPECT_EQ(summary["groups_acked_never_trained"].get<int64_t>(), 0) << summary.dump();
  EXPECT_GE(summary["groups_redispatched_after_learner_restart"].get<int64_t>(), 1) << summary.dump();
  EXPECT_EQ(summary["trajectory_ids_trained_twice"].get<int64_t>(), 0) << summary.dump();
  // The final history: each step once, each trajectory id in one step only.
  const auto lines = pipeline_testing::JsonLines(run.run() + "/stages/rl/trajectories.jsonl");
  std::map<std::string, int> step_of;
  std::set<int> steps;
  for (const auto& l : lines) {
    const std::string id = l["id"].get<std::string>();
    steps.insert(l["step"].get<int>());
    EXPECT_TRUE(step_of.emplace(id, l["step"].get<int>()).second) << id << " trained in two surviving steps";
  }
  EXPECT_EQ(static_cast<int>(steps.size()), p.rl_steps);
  const std::vector<std::string> logged = TrainedIds(run.run());
  const std::set<std::string> logged_set(logged.begin(), logged.end());
  EXPECT_EQ(logged.size(), logged_set.size()) << "an id is in trained_ids.log twice";
  std::set<std::string> history;
  for (const auto& [id, step] : step_of) history.insert(id);
  EXPECT_EQ(logged_set, history) << "trained_ids.log and the surviving steps disagree";
  EXPECT_EQ(summary["trajectories_trained"].get<int64_t>(), static_cast<int64_t>(history.size()));
  EXPECT_EQ(kills, 3);
  std::cerr << "summary " << summary.dump() << "\n";
}

}  // namespace
}  // namespace swarr
