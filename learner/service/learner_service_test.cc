// The learner service over real gRPC on 127.0.0.1 with the tiny model (configs/models/tiny).
#include "learner/service/learner_service.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/config/config_loader.h"
#include "common/rpc/service_options.h"
#include "common/rpc/weights_wire.h"
#include "common/util/file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "learner/service/weights_blob.h"
#include "learner/stage_common.h"
#include "nlohmann/json.hpp"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

const std::string kTinyModel = std::string(SWARR_SOURCE_DIR) + "/configs/models/tiny";
constexpr char kToken[] = "sekrit";

std::string TempDir() {
  char tmpl[] = "/tmp/swarr_learner_service_XXXXXX";
  return ::mkdtemp(tmpl);
}

v1::PipelineConfig Pipeline(const std::string& yaml) {
  v1::PipelineConfig p;
  absl::Status st = ParseYamlConfig(yaml, &p);
  EXPECT_TRUE(st.ok()) << st;
  return p;
}

// One rl stage on the tiny model: groups of 4, two groups per step. `extra_rl`: more rl
// fields ("key: value, ...").
std::string RlStage(int max_steps, int max_staleness = 0, int every_steps = 1, const std::string& extra_rl = "") {
  return "  - name: rl\n    seed: 5\n"
         "    rl: {prompts_per_step: 2, samples_per_prompt: 4, max_new_tokens: 8, reward: exact,\n"
         "         max_staleness: " + std::to_string(max_staleness) + (extra_rl.empty() ? "" : ", " + extra_rl) + "}\n"
         "    model: {path: " + kTinyModel + ", attention: {window: 4}}\n"
         "    data: {format: synthetic, synthetic_task: sum_digits}\n"
         "    optimizer: {lr: 0.01}\n"
         "    stop: {max_steps: " + std::to_string(max_steps) + "}\n"
         "    checkpoint: {every_steps: " + std::to_string(every_steps) + "}\n";
}

std::vector<nlohmann::json> JsonLines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(ReadFile(path).value_or(""));
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// A learner service with a bearer token, and a client for it.
class Learner {
 public:
  explicit Learner(const std::string& run_dir) {
    LearnerServiceOptions opts;
    opts.run_dir = run_dir;
    opts.security.token = kToken;
    opts.metrics_registry = registry_;
    service_ = std::make_unique<LearnerService>(opts);
    absl::Status st = service_->Start();
    EXPECT_TRUE(st.ok()) << st;
    security_.token = kToken;
    stub_ = v1::Learner::NewStub(*MakeChannel("127.0.0.1:" + std::to_string(service_->port()), security_, limits_));
  }

  LearnerService& service() { return *service_; }
  LearnerEngine& engine() { return service_->engine(); }
  std::string inc() { return engine().incarnation(); }

  grpc::Status StartStage(int index, const v1::PipelineConfig& p, v1::LearnerStatus* out) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, security_, limits_);
    v1::StartStageRequest req;
    req.set_stage_index(index);
    *req.mutable_pipeline() = p;
    return stub_->StartStage(&ctx, req, out);
  }
  v1::LearnerStatus Status() {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, security_, limits_);
    v1::LearnerStatus s;
    grpc::Status st = stub_->GetStatus(&ctx, v1::GetLearnerStatusRequest(), &s);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return s;
  }
  grpc::Status Push(const std::vector<v1::Trajectory>& ts, v1::PushTrajectoriesResponse* out,
                    bool with_token = true) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, with_token ? security_ : RpcSecurity(), limits_);
    v1::PushTrajectoriesRequest req;
    for (const auto& t : ts) *req.add_trajectories() = t;
    return stub_->PushTrajectories(&ctx, req, out);
  }
  // Acks of a push that must succeed, as "A" (accepted), "D" (duplicate), "S" (dropped stale).
  std::string PushOk(const std::vector<v1::Trajectory>& ts) {
    v1::PushTrajectoriesResponse r;
    grpc::Status st = Push(ts, &r);
    EXPECT_TRUE(st.ok()) << st.error_message();
    std::string out;
    for (const auto& ack : r.acks()) {
      out += ack.result() == v1::TrajectoryAck::ACCEPTED    ? "A"
             : ack.result() == v1::TrajectoryAck::DUPLICATE ? "D"
             : ack.result() == v1::TrajectoryAck::DROPPED_STALE ? "S"
                                                              : "?";
    }
    return out;
  }
  absl::StatusOr<WeightsBlob> Weights(int64_t version, const std::string& incarnation = "", bool latest = false) {
    v1::GetWeightsRequest req;
    req.set_version(version);
    req.set_learner_incarnation(incarnation);
    req.set_latest(latest);
    return FetchWeights(*stub_, req, security_, limits_, 30);
  }
  // GetGroupStates of groups of 4: one letter per group, U(nknown) B(uffered) T(rained)
  // D(urable) X (dropped); or the error.
  std::string GroupStates(const std::vector<std::string>& ids, grpc::StatusCode* code = nullptr, int size = 4) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, security_, limits_);
    v1::GetGroupStatesRequest req;
    for (const auto& id : ids) {
      auto* g = req.add_groups();
      g->set_group_id(id);
      g->set_group_size(size);
    }
    v1::GetGroupStatesResponse r;
    grpc::Status st = stub_->GetGroupStates(&ctx, req, &r);
    if (code != nullptr) *code = st.error_code();
    if (!st.ok()) return st.error_message();
    std::string out;
    for (int s : r.states()) out += "UBTDX"[s];
    return out;
  }
  bool WaitFor(const std::function<bool(const v1::LearnerStatus&)>& done) {
    return engine().WaitForStatusForTest(done, 30);
  }
  std::string MetricsText() {
    return prometheus::TextSerializer().Serialize(registry_->Collect());
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();
  std::unique_ptr<LearnerService> service_;
  RpcSecurity security_;
  RpcLimits limits_;
  std::unique_ptr<v1::Learner::Stub> stub_;
};

// Trajectories `first..last` of group `group` (size `size`) as a rollout server pushes them.
std::vector<v1::Trajectory> Group(const std::string& group, int64_t version, const std::string& inc, int size = 4,
                                  int first = 0, int last = -1) {
  std::vector<v1::Trajectory> out;
  if (last < 0) last = size - 1;
  for (int i = first; i <= last; ++i) {
    v1::Trajectory t;
    t.set_id(group + "/" + std::to_string(i));
    t.set_group_id(group);
    t.set_group_size(size);
    t.set_stage("rl");
    for (int id : {3, 4, 5, 6}) t.add_prompt_ids(id);
    for (int j = 0; j < 3 + i % 2; ++j) {
      t.add_completion_ids(5 + (i + j) % 10);
      t.add_behaviour_logprobs(-2.5f);
      t.add_token_versions(version);
    }
    t.set_policy_version(version);
    t.set_learner_incarnation(inc);
    t.set_reward(i % 2);
    out.push_back(t);
  }
  return out;
}

int64_t Latest(const v1::LearnerStatus& s) { return s.has_latest() ? s.latest().version() : -1; }

TEST(LearnerServiceTest, TrainStageRunsToDoneThenEvalPublishesItsModel) {
  const std::string dir = TempDir();
  Learner learner(dir);
  const v1::PipelineConfig p = Pipeline(
      "name: p\nstages:\n"
      "  - name: pre\n    seed: 3\n    train: {micro_batch_tokens: 128}\n"
      "    model: {path: " + kTinyModel + "}\n"
      "    data: {format: synthetic, synthetic_task: sum_digits, synthetic_size: 50}\n"
      "    optimizer: {lr: 0.003}\n    stop: {max_steps: 4}\n    checkpoint: {every_steps: 2}\n"
      "  - name: ev\n    eval: {max_new_tokens: 8, greedy: true}\n"
      "    model: {attention: {window: 3}}\n    data: {format: synthetic, synthetic_task: sum_digits}\n");
  EXPECT_EQ(learner.Status().state(), v1::LearnerStatus::IDLE);
  EXPECT_EQ(learner.Status().stage_index(), -1);
  v1::LearnerStatus s;
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  EXPECT_EQ(s.stage_name(), "pre");
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return s.state() != v1::LearnerStatus::RUNNING; }));
  s = learner.Status();
  ASSERT_EQ(s.state(), v1::LearnerStatus::DONE) << s.error();
  EXPECT_EQ(s.step(), 4);
  EXPECT_EQ(s.stop_reason(), "max_steps");
  EXPECT_EQ(s.final_model_dir(), dir + "/learner/pre/final");
  EXPECT_EQ(Latest(s), 1);  // one version at the start, one at the end
  EXPECT_EQ(s.latest().learner_incarnation(), learner.inc());
  ASSERT_TRUE(s.metrics().count("loss"));
  const auto lines = JsonLines(dir + "/stages/pre/metrics.jsonl");
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines.back()["step"], 4);
  EXPECT_DOUBLE_EQ(s.metrics().at("loss"), lines.back()["loss"].get<double>());
  EXPECT_TRUE(ReadFile(dir + "/learner/pre/checkpoints/step-000000004/trainer_state.json").ok());
  EXPECT_TRUE(ReadFile(dir + "/learner/pre/final/config.json").ok());
  EXPECT_THAT(*ReadFile(dir + "/learner/pre/done.json"), HasSubstr("max_steps"));
  // Asking again for the same stage changes nothing.
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  EXPECT_EQ(s.state(), v1::LearnerStatus::DONE);
  EXPECT_EQ(Latest(s), 1);

  // eval: the previous stage's final model with the eval's window, DONE at once.
  ASSERT_TRUE(learner.StartStage(1, p, &s).ok());
  EXPECT_EQ(s.state(), v1::LearnerStatus::DONE);
  EXPECT_EQ(Latest(s), 2);
  absl::StatusOr<WeightsBlob> w = learner.Weights(0, "", /*latest=*/true);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->version.version(), 2);
  EXPECT_THAT(w->config_json, HasSubstr("sliding_attention"));
  EXPECT_THAT(w->config_json, HasSubstr("\"sliding_window\": 3"));
  // The final model's weights, unchanged by the attention override.
  absl::StatusOr<WeightsBlob> trained = learner.Weights(1);
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(trained->data, w->data);
  // An earlier stage is refused.
  grpc::Status back = learner.StartStage(0, p, &s);
  EXPECT_EQ(back.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << back.error_message();
  // A broken pipeline is INVALID_ARGUMENT.
  v1::PipelineConfig bad = p;
  bad.mutable_stages(0)->mutable_optimizer()->set_lr(-1);
  EXPECT_EQ(learner.StartStage(1, bad, &s).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(learner.StartStage(7, p, &s).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(LearnerServiceTest, RlStepsOnResolvedGroupsDedupsAndDropsStale) {
  const std::string dir = TempDir();
  Learner learner(dir);
  const v1::PipelineConfig p = Pipeline("name: p\nstages:\n" + RlStage(/*max_steps=*/3));
  // Nothing is running yet.
  v1::PushTrajectoriesResponse r;
  EXPECT_EQ(learner.Push(Group("rl/x-0", 0, learner.inc()), &r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::LearnerStatus s;
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  // The stage's first version is out before StartStage returns RUNNING.
  EXPECT_EQ(s.state(), v1::LearnerStatus::RUNNING);
  EXPECT_EQ(Latest(s), 0);
  EXPECT_EQ(s.min_accepted_version(), 0);
  const std::string inc = learner.inc();

  EXPECT_EQ(learner.PushOk(Group("rl/x-0", 0, inc, 4, 0, 1)), "AA");
  EXPECT_EQ(learner.Status().partial_groups(), 1);
  EXPECT_EQ(learner.PushOk(Group("rl/x-0", 0, inc)), "DDAA");  // a retry of the whole group
  s = learner.Status();
  EXPECT_EQ(s.partial_groups(), 0);
  EXPECT_EQ(s.buffered_groups(), 1);
  EXPECT_EQ(s.step(), 0);
  // While the Step runs, its groups still count as buffered (the coordinator's in-flight
  // bound) and the version is the old one.
  std::vector<v1::LearnerStatus> during;
  learner.engine().SetBeforeRlStepHookForTest([&] { during.push_back(learner.engine().GetStatus()); });
  EXPECT_EQ(learner.PushOk(Group("rl/x-1", 0, inc)), "AAAA");
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return Latest(s) == 1; }));
  learner.engine().SetBeforeRlStepHookForTest(nullptr);
  ASSERT_EQ(during.size(), 1u);
  EXPECT_EQ(during[0].buffered_groups(), 2);
  EXPECT_EQ(Latest(during[0]), 0);
  s = learner.Status();
  EXPECT_EQ(s.state(), v1::LearnerStatus::RUNNING);
  EXPECT_EQ(s.step(), 1);
  EXPECT_EQ(s.trajectories_received(), 8);
  EXPECT_EQ(s.trajectories_duplicate(), 2);
  EXPECT_EQ(s.trajectories_trained(), 8);
  EXPECT_EQ(s.buffered_groups(), 0);
  EXPECT_EQ(s.min_accepted_version(), 1);
  ASSERT_TRUE(s.metrics().count("reward_mean"));
  EXPECT_DOUBLE_EQ(s.metrics().at("reward_mean"), 0.5);
  std::string ids = *ReadFile(dir + "/learner/trained_ids.log");
  EXPECT_EQ(std::count(ids.begin(), ids.end(), '\n'), 8);
  EXPECT_THAT(ids, HasSubstr("rl/x-1/3\n"));
  auto lines = JsonLines(dir + "/stages/rl/metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["policy_version"], 1);
  for (const char* key : {"step", "loss", "lr", "tokens", "reward_mean", "kl", "clip_frac", "entropy"}) {
    EXPECT_TRUE(lines[0].contains(key)) << key;
  }

  // Versions out of order (all published by this learner): malformed.
  {
    std::vector<v1::Trajectory> g = Group("rl/x-9", 1, inc);
    g[1].set_token_versions(0, 1);
    g[1].set_token_versions(1, 0);
    g[1].set_policy_version(0);
    v1::PushTrajectoriesResponse r;
    grpc::Status st = learner.Push(g, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(st.error_message(), HasSubstr("trajectory rl/x-9/1: token_versions[0]: is 1, but policy_version"));
  }
  // Trained ids stay duplicates; version 0 is stale now (max_staleness 0) and its group
  // still resolves.
  EXPECT_EQ(learner.PushOk(Group("rl/x-0", 1, inc)), "DDDD");
  EXPECT_EQ(learner.PushOk(Group("rl/x-2", 0, inc)), "SSSS");
  s = learner.Status();
  EXPECT_EQ(s.trajectories_dropped_stale(), 4);
  EXPECT_EQ(s.buffered_groups(), 1);
  EXPECT_EQ(learner.PushOk(Group("rl/x-3", 1, inc, 4, 0, 2)), "AAA");
  EXPECT_EQ(learner.PushOk(Group("rl/x-3", 1, inc, 4, 3, 3)), "A");
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return Latest(s) == 2; }));
  s = learner.Status();
  EXPECT_EQ(s.trajectories_trained(), 12);
  EXPECT_EQ(s.trajectory_ids_trained_twice(), 0);

  const std::string text = learner.MetricsText();
  EXPECT_THAT(text, HasSubstr("swarr_learner_trajectories_total{result=\"accepted\"} 12"));
  EXPECT_THAT(text, HasSubstr("swarr_learner_trajectories_total{result=\"duplicate\"} 6"));
  EXPECT_THAT(text, HasSubstr("swarr_learner_trajectories_total{result=\"dropped_stale\"} 4"));
  EXPECT_THAT(text, HasSubstr("swarr_learner_trajectories_trained_total 12"));
  EXPECT_THAT(text, HasSubstr("swarr_learner_policy_version 2"));
  for (const char* name : {"swarr_learner_step_seconds_count 2", "swarr_learner_loss", "swarr_learner_reward",
                           "swarr_learner_kl", "swarr_learner_clip_fraction",
                           "swarr_learner_trajectory_staleness_count 16", "swarr_learner_weights_served_bytes_total"}) {
    EXPECT_THAT(text, HasSubstr(name));
  }

  // The third step ends the stage (max_steps 3); later pushes are acknowledged, not trained.
  EXPECT_EQ(learner.PushOk(Group("rl/x-4", 2, inc)), "AAAA");
  EXPECT_EQ(learner.PushOk(Group("rl/x-5", 2, inc)), "AAAA");
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return s.state() != v1::LearnerStatus::RUNNING; }));
  s = learner.Status();
  ASSERT_EQ(s.state(), v1::LearnerStatus::DONE) << s.error();
  EXPECT_EQ(s.step(), 3);
  EXPECT_EQ(s.stop_reason(), "max_steps");
  EXPECT_EQ(Latest(s), 3);
  EXPECT_EQ(s.final_model_dir(), dir + "/learner/rl/final");
  EXPECT_THAT(*ReadFile(dir + "/learner/rl/final/config.json"), HasSubstr("sliding_attention"));
  EXPECT_EQ(learner.PushOk(Group("rl/x-6", 3, inc)), "SSSS");
  EXPECT_EQ(learner.Status().trajectories_trained(), 20);

  // A restarted learner asked for the finished stage reports it DONE again and re-publishes
  // its final model under the next number.
  ASSERT_TRUE(learner.service().Shutdown().ok());
  Learner again(dir);
  ASSERT_TRUE(again.StartStage(0, p, &s).ok());
  EXPECT_EQ(s.state(), v1::LearnerStatus::DONE);
  EXPECT_EQ(s.step(), 3);
  EXPECT_EQ(s.stop_reason(), "max_steps");
  EXPECT_EQ(Latest(s), 4);
  EXPECT_EQ(s.trajectories_trained(), 20);
  EXPECT_EQ(s.trajectories_dropped_stale(), 8);
  EXPECT_TRUE(s.metrics().count("loss"));
  EXPECT_EQ(again.PushOk(Group("rl/x-5", 3, again.inc())), "DDDD");
  EXPECT_EQ(again.PushOk(Group("rl/x-7", 3, again.inc())), "SSSS");
}

TEST(LearnerServiceTest, MalformedPushesAreRejectedWholeAndTheServerKeepsServing) {
  const std::string dir = TempDir();
  Learner learner(dir);
  const v1::PipelineConfig p = Pipeline("name: p\nstages:\n" + RlStage(5));
  v1::LearnerStatus s;
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return s.has_latest(); }));
  const std::string inc = learner.inc();
  struct Case {
    std::function<void(std::vector<v1::Trajectory>*)> mutate;
    grpc::StatusCode code;
    std::string want;
  };
  const std::vector<Case> cases = {
      {[](auto* g) { (*g)[2].set_completion_ids(1, 24); }, grpc::StatusCode::INVALID_ARGUMENT,
       "trajectory rl/g/2: completion_ids[1]: token id 24 is outside the vocabulary [0, 24)"},
      {[](auto* g) { (*g)[1].add_behaviour_logprobs(-1); }, grpc::StatusCode::INVALID_ARGUMENT,
       "trajectory rl/g/1: behaviour_logprobs"},
      {[](auto* g) { (*g)[0].clear_completion_ids(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "trajectory rl/g/0: completion_ids: empty"},
      {[](auto* g) { (*g)[3].clear_token_versions(); }, grpc::StatusCode::INVALID_ARGUMENT,
       "trajectory rl/g/3: token_versions"},
      {[](auto* g) { (*g)[3].clear_id(); }, grpc::StatusCode::INVALID_ARGUMENT, "trajectory #3: id: empty"},
      {[](auto* g) { (*g)[0].set_reward(std::nan("")); }, grpc::StatusCode::INVALID_ARGUMENT, "reward"},
      {[](auto* g) { (*g)[0].set_stage("nope"); }, grpc::StatusCode::INVALID_ARGUMENT, "not a stage"},
      {[](auto* g) {
         for (auto& t : *g) t.set_group_size(5);
         (*g)[1].set_group_size(4);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "group_size"},
      {[](auto* g) {
         (*g)[1].set_policy_version(1);
         for (auto& v : *(*g)[1].mutable_token_versions()) v = 1;
       },
       grpc::StatusCode::FAILED_PRECONDITION, "trajectory rl/g/1: versions 1..1 were not all published"},
      // A sequence that spans a learner restart: versions of another incarnation.
      {[](auto* g) {
         (*g)[2].set_token_versions(0, 1);
       },
       grpc::StatusCode::FAILED_PRECONDITION, "trajectory rl/g/2: versions 0..1 were not all published"},
      {[](auto* g) {
         (*g)[2].add_completion_ids(5);
         (*g)[2].add_behaviour_logprobs(-1);
         (*g)[2].add_token_versions(-1);
       },
       grpc::StatusCode::FAILED_PRECONDITION, "versions -1..0"},
      {[](auto* g) { (*g)[2].set_learner_incarnation("someone-else"); }, grpc::StatusCode::FAILED_PRECONDITION,
       "incarnation someone-else"},
  };
  for (const Case& c : cases) {
    std::vector<v1::Trajectory> g = Group("rl/g", 0, inc);
    c.mutate(&g);
    v1::PushTrajectoriesResponse r;
    grpc::Status st = learner.Push(g, &r);
    EXPECT_EQ(st.error_code(), c.code) << c.want << ": " << st.error_message();
    EXPECT_THAT(st.error_message(), HasSubstr(c.want));
    s = learner.Status();
    EXPECT_EQ(s.trajectories_received(), 0) << c.want;  // nothing of the call was kept
    EXPECT_EQ(s.partial_groups(), 0) << c.want;
  }
  v1::PushTrajectoriesResponse r;
  EXPECT_EQ(learner.Push(Group("rl/g", 0, inc), &r, /*with_token=*/false).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // The same group, well-formed, is accepted afterwards.
  EXPECT_EQ(learner.PushOk(Group("rl/g", 0, inc)), "AAAA");
  EXPECT_EQ(learner.Status().state(), v1::LearnerStatus::RUNNING);
}

TEST(LearnerServiceTest, GetWeightsStreamsTheModelBytesAndKeepsTheNewestVersions) {
  const std::string dir = TempDir();
  Learner learner(dir);
  v1::PipelineConfig p = Pipeline("name: p\nstages:\n" + RlStage(10));
  p.mutable_rpc()->set_weight_chunk_bytes(1000);  // many chunks
  v1::LearnerStatus s;
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return s.has_latest(); }));
  const std::string inc = learner.inc();
  absl::StatusOr<WeightsBlob> w = learner.Weights(0, inc);
  ASSERT_TRUE(w.ok()) << w.status();
  // The same bytes as the stage's starting model serialized here.
  v1::ModelSpec spec = p.stages(0).model();
  auto model = LoadStageModel(spec, p.stages(0).seed(), "");
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<WeightsBlob> expect = SerializeModelWeights(**model, w->version);
  ASSERT_TRUE(expect.ok()) << expect.status();
  EXPECT_EQ(w->data.size(), static_cast<size_t>((*model)->num_parameters() * 4));
  EXPECT_TRUE(w->data == expect->data);
  EXPECT_EQ(w->xxhash64, expect->xxhash64);
  EXPECT_EQ(w->config_json, expect->config_json);
  ASSERT_EQ(w->tensors.size(), (*model)->named_parameters().size());
  EXPECT_EQ(w->tensors[0].name(), (*model)->named_parameters()[0].first);
  EXPECT_EQ(w->tensors[0].dtype(), "F32");
  EXPECT_THAT(w->config_json, HasSubstr("\"sliding_window\": 4"));

  EXPECT_EQ(learner.Weights(1, inc).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(learner.Weights(0, "old-incarnation").status().code(), absl::StatusCode::kNotFound);
  // Two steps: versions 1 and 2; with max_staleness 0 the newest two are kept.
  for (int step = 0; step < 2; ++step) {
    for (int g = 0; g < 2; ++g) {
      const std::string id = "rl/w-" + std::to_string(step) + std::to_string(g);
      EXPECT_EQ(learner.PushOk(Group(id, step, inc)), "AAAA");
    }
    ASSERT_TRUE(learner.WaitFor([&](const v1::LearnerStatus& s) { return Latest(s) == step + 1; }));
  }
  absl::StatusOr<WeightsBlob> gone = learner.Weights(0, inc);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(gone.status().message()), HasSubstr("oldest kept is 1"));
  absl::StatusOr<WeightsBlob> v1w = learner.Weights(1, inc), v2w = learner.Weights(2);
  ASSERT_TRUE(v1w.ok() && v2w.ok());
  EXPECT_FALSE(v1w->data == v2w->data);  // the steps changed the weights
  EXPECT_FALSE(v1w->data == w->data);
  EXPECT_EQ(v2w->version.learner_incarnation(), inc);
  EXPECT_THAT(learner.MetricsText(), HasSubstr("swarr_learner_weights_served_bytes_total " +
                                                   std::to_string(w->data.size() * 3)));
}

TEST(LearnerServiceTest, RestartResumesTheRlStageFromItsCheckpoint) {
  const std::string dir = TempDir();
  const v1::PipelineConfig p = Pipeline("name: p\nstages:\n" + RlStage(/*max_steps=*/4, /*max_staleness=*/1));
  std::string old_inc;
  std::string v1_bytes;
  {
    Learner learner(dir);
    v1::LearnerStatus s;
    ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
    ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return s.has_latest(); }));
    old_inc = learner.inc();
    EXPECT_EQ(learner.PushOk(Group("rl/a-0", 0, old_inc)), "AAAA");
    EXPECT_EQ(learner.PushOk(Group("rl/a-1", 0, old_inc)), "AAAA");
    ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return Latest(s) == 1; }));
    v1_bytes = learner.Weights(1, old_inc)->data;
    // Buffered, not trained yet: one whole group and half of another.
    EXPECT_EQ(learner.PushOk(Group("rl/a-2", 1, old_inc)), "AAAA");
    EXPECT_EQ(learner.PushOk(Group("rl/a-3", 1, old_inc, 4, 0, 1)), "AA");
    ASSERT_TRUE(learner.service().Shutdown().ok());  // the SIGTERM path
  }
  nlohmann::json state = nlohmann::json::parse(*ReadFile(dir + "/learner/state.json"));
  EXPECT_EQ(state["latest_version"], 1);
  EXPECT_EQ(state["counters"]["received"], 14);

  Learner learner(dir);
  EXPECT_NE(learner.inc(), old_inc);
  v1::LearnerStatus s = learner.Status();
  EXPECT_EQ(s.state(), v1::LearnerStatus::IDLE);
  EXPECT_EQ(s.trajectories_received(), 14);
  EXPECT_EQ(s.trajectories_trained(), 8);
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return s.has_latest(); }));
  s = learner.Status();
  EXPECT_EQ(s.step(), 1);
  EXPECT_EQ(Latest(s), 1);  // numbering continues from the checkpoint, under a new incarnation
  EXPECT_EQ(s.latest().learner_incarnation(), learner.inc());
  EXPECT_EQ(s.buffered_groups(), 1);  // restored
  EXPECT_EQ(s.partial_groups(), 1);
  EXPECT_TRUE(learner.Weights(1)->data == v1_bytes);
  // The old incarnation's versions are gone; what it trained stays trained.
  v1::PushTrajectoriesResponse r;
  EXPECT_EQ(learner.Push(Group("rl/a-4", 1, old_inc), &r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(learner.PushOk(Group("rl/a-0", 1, learner.inc())), "DDDD");
  EXPECT_EQ(learner.PushOk(Group("rl/a-2", 1, learner.inc())), "DDDD");
  EXPECT_EQ(learner.PushOk(Group("rl/a-3", 1, learner.inc())), "DDAA");
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return Latest(s) == 2; }));
  s = learner.Status();
  EXPECT_EQ(s.step(), 2);
  EXPECT_EQ(s.trajectories_trained(), 16);
  EXPECT_EQ(s.trajectory_ids_trained_twice(), 0);
  const auto lines = JsonLines(dir + "/stages/rl/metrics.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["step"], 1);
  EXPECT_EQ(lines[1]["step"], 2);
  EXPECT_EQ(lines[1]["policy_version"], 2);
}

TEST(LearnerServiceTest, InterruptedTrainStageResumesWhereItStopped) {
  const std::string dir = TempDir();
  const v1::PipelineConfig p = Pipeline(
      "name: p\nstages:\n"
      "  - name: pre\n    seed: 3\n    train: {micro_batch_tokens: 128}\n"
      "    model: {path: " + kTinyModel + "}\n"
      "    data: {format: synthetic, synthetic_task: sum_digits, synthetic_size: 50}\n"
      "    optimizer: {lr: 0.003}\n    stop: {max_steps: 100000}\n");
  int64_t stopped_at = 0;
  {
    Learner learner(dir);
    v1::LearnerStatus s;
    ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
    ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return s.step() >= 3; }));
    ASSERT_TRUE(learner.service().Shutdown().ok());
    stopped_at = learner.engine().GetStatus().step();
  }
  const auto before = JsonLines(dir + "/stages/pre/metrics.jsonl");
  ASSERT_GE(static_cast<int64_t>(before.size()), stopped_at);
  Learner learner(dir);
  v1::LearnerStatus s;
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  ASSERT_TRUE(learner.WaitFor([&](const v1::LearnerStatus& s) { return s.step() >= stopped_at + 2; }));
  ASSERT_TRUE(learner.service().Shutdown().ok());
  const auto after = JsonLines(dir + "/stages/pre/metrics.jsonl");
  ASSERT_GE(after.size(), before.size() + 2);
  for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(after[i]["step"], static_cast<int64_t>(i + 1));
}

}  // namespace
}  // namespace swarr

namespace swarr {
namespace {

TEST(LearnerServiceTest, AStageWhoseModelIsMissingFailsWithoutTakingTheServerDown) {
  const std::string dir = TempDir();
  Learner learner(dir);
  // Stage 1 starts from stage 0's final model, which was never trained.
  const v1::PipelineConfig p = Pipeline(
      "name: p\nstages:\n"
      "  - name: a\n    train: {}\n    model: {path: " + kTinyModel + "}\n"
      "    data: {format: synthetic, synthetic_task: sum_digits}\n    optimizer: {lr: 0.01}\n"
      "    stop: {max_steps: 1}\n"
      "  - name: b\n    rl: {prompts_per_step: 1, samples_per_prompt: 2, max_new_tokens: 4}\n"
      "    data: {format: synthetic, synthetic_task: sum_digits}\n    optimizer: {lr: 0.01}\n"
      "    stop: {max_steps: 1}\n");
  v1::LearnerStatus s;
  ASSERT_TRUE(learner.StartStage(1, p, &s).ok());
  EXPECT_EQ(s.state(), v1::LearnerStatus::FAILED);
  EXPECT_EQ(s.stage_name(), "b");
  EXPECT_THAT(s.error(), HasSubstr(dir + "/learner/a/final"));
  v1::PushTrajectoriesResponse r;
  std::vector<v1::Trajectory> g = Group("b/x-0", 0, learner.inc(), 2);
  for (auto& t : g) t.set_stage("b");
  EXPECT_EQ(learner.Push(g, &r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(learner.Status().state(), v1::LearnerStatus::FAILED);
  EXPECT_EQ(learner.Weights(0, "", true).status().code(), absl::StatusCode::kNotFound);
}


// Group() with every reward `reward`: a uniform group, which dynamic sampling drops.
std::vector<v1::Trajectory> UniformGroup(const std::string& group, int64_t version, const std::string& inc,
                                         double reward) {
  std::vector<v1::Trajectory> g = Group(group, version, inc);
  for (auto& t : g) t.set_reward(reward);
  return g;
}

// An rl stage whose reward never varies inside a group (all 0: too hard) made no update and
// waited forever for one (no max_minutes): now it fails after rl.max_uniform_batches such
// batches in a row, naming the stage, the count and the reason.
TEST(LearnerServiceTest, EveryGroupUniformFailsTheStageAfterTheBoundInsteadOfStalling) {
  const std::string dir = TempDir();
  Learner learner(dir);
  const v1::PipelineConfig p = Pipeline(
      "name: p\nstages:\n" +
      RlStage(/*max_steps=*/5, 0, 1, "dynamic_sampling: true, max_uniform_batches: 3"));
  v1::LearnerStatus s;
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  ASSERT_EQ(s.state(), v1::LearnerStatus::RUNNING) << s.error();
  const std::string inc = learner.inc();
  // Two batches of all-zero groups: dropped, no update, the stage keeps collecting.
  for (int g = 0; g < 4; ++g) {
    EXPECT_EQ(learner.PushOk(UniformGroup("rl/z-" + std::to_string(g), 0, inc, 0.0)), "AAAA");
  }
  ASSERT_TRUE(learner.engine().WaitForStatusForTest(
      [](const v1::LearnerStatus& s) { return s.trajectories_trained() == 16 && s.buffered_groups() == 0; }, 20));
  s = learner.Status();
  EXPECT_EQ(s.state(), v1::LearnerStatus::RUNNING) << s.error();
  EXPECT_EQ(s.step(), 0);
  EXPECT_EQ(Latest(s), 0);
  EXPECT_THAT(learner.MetricsText(), HasSubstr("swarr_learner_uniform_batches_consecutive 2"));
  // The third one reaches the bound.
  for (int g = 4; g < 6; ++g) {
    EXPECT_EQ(learner.PushOk(UniformGroup("rl/z-" + std::to_string(g), 0, inc, 0.0)), "AAAA");
  }
  ASSERT_TRUE(learner.engine().WaitForStatusForTest(
      [](const v1::LearnerStatus& s) { return s.state() != v1::LearnerStatus::RUNNING; }, 20))
      << "the stage is still waiting for an update";
  s = learner.Status();
  ASSERT_EQ(s.state(), v1::LearnerStatus::FAILED);
  EXPECT_THAT(s.error(), HasSubstr("stage rl: all rewards 0 in 3 consecutive batches: the task is too hard"));
  EXPECT_THAT(s.error(), HasSubstr("rl.max_uniform_batches: 3"));
  EXPECT_EQ(s.step(), 0);
  EXPECT_EQ(Latest(s), 0);
  EXPECT_EQ(s.trajectories_trained(), 24);  // consumed, once
  const std::string text = learner.MetricsText();
  EXPECT_THAT(text, HasSubstr("swarr_learner_uniform_batches_total 3"));
  EXPECT_THAT(text, HasSubstr("swarr_learner_uniform_batches_consecutive 3"));
  EXPECT_TRUE(JsonLines(dir + "/stages/rl/metrics.jsonl").empty());  // no optimizer step
  v1::PushTrajectoriesResponse r;
  EXPECT_EQ(learner.Push(UniformGroup("rl/z-9", 0, inc, 0.0), &r).error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  // All solved says so (here at the first batch: max_uniform_batches 1).
  const std::string dir2 = TempDir();
  Learner solved(dir2);
  ASSERT_TRUE(solved
                  .StartStage(0,
                              Pipeline("name: p\nstages:\n" +
                                       RlStage(5, 0, 1, "dynamic_sampling: true, max_uniform_batches: 1")),
                              &s)
                  .ok());
  EXPECT_EQ(solved.PushOk(UniformGroup("rl/s-0", 0, solved.inc(), 1.0)), "AAAA");
  EXPECT_EQ(solved.PushOk(UniformGroup("rl/s-1", 0, solved.inc(), 1.0)), "AAAA");
  ASSERT_TRUE(solved.engine().WaitForStatusForTest(
      [](const v1::LearnerStatus& s) { return s.state() != v1::LearnerStatus::RUNNING; }, 20));
  s = solved.Status();
  ASSERT_EQ(s.state(), v1::LearnerStatus::FAILED);
  EXPECT_THAT(s.error(), HasSubstr("stage rl: all rewards 1 (all solved) in 1 batch: the policy already solves the task"));
}

// Dynamic sampling still trains on what is left of a partly uniform batch, and a batch with a
// group to train on resets the count of uniform batches in a row.
// A learner with no data (no rollout server generating for its rl stage) waited forever when
// stop.max_minutes was not set: now the stage fails after rl.max_idle_minutes with no
// trajectory arriving, saying why. (The bound here is 0.002 minutes; the wait for the failure
// has no upper bound on timing beyond WaitForStatusForTest's.)
TEST(LearnerServiceTest, AnRlStageWithNoDataFailsAfterTheIdleBoundInsteadOfWaitingForever) {
  const std::string dir = TempDir();
  Learner learner(dir);
  const v1::PipelineConfig p =
      Pipeline("name: p\nstages:\n" + RlStage(/*max_steps=*/5, 0, 1, "max_idle_minutes: 0.002"));
  v1::LearnerStatus s;
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  EXPECT_NE(s.state(), v1::LearnerStatus::FAILED) << s.error();
  ASSERT_TRUE(learner.engine().WaitForStatusForTest(
      [](const v1::LearnerStatus& s) { return s.state() != v1::LearnerStatus::RUNNING; }, 20))
      << "the stage is still waiting for groups that never come";
  s = learner.Status();
  ASSERT_EQ(s.state(), v1::LearnerStatus::FAILED);
  EXPECT_THAT(s.error(), HasSubstr("stage rl: no trajectories arrived for 0.002 minutes (rl.max_idle_minutes: 0.002)"));
  EXPECT_THAT(s.error(), HasSubstr("waited for 2 resolved groups (0 resolved, 0 partly arrived)"));
  EXPECT_EQ(s.step(), 0);
  EXPECT_EQ(Latest(s), 0);  // its first version was published
}

TEST(LearnerServiceTest, PartlyUniformBatchesTrainAndResetTheUniformCount) {
  const std::string dir = TempDir();
  Learner learner(dir);
  const v1::PipelineConfig p = Pipeline(
      "name: p\nstages:\n" +
      RlStage(/*max_steps=*/2, 0, 1, "dynamic_sampling: true, max_uniform_batches: 2"));
  v1::LearnerStatus s;
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  const std::string inc = learner.inc();
  // Batch 1: both groups uniform (no update, 1 in a row). Batch 2: one solved group and one
  // mixed: trains on the mixed one.
  EXPECT_EQ(learner.PushOk(UniformGroup("rl/b-0", 0, inc, 0.0)), "AAAA");
  EXPECT_EQ(learner.PushOk(UniformGroup("rl/b-1", 0, inc, 1.0)), "AAAA");
  EXPECT_EQ(learner.PushOk(UniformGroup("rl/b-2", 0, inc, 1.0)), "AAAA");
  EXPECT_EQ(learner.PushOk(Group("rl/b-3", 0, inc)), "AAAA");
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) {
    return Latest(s) == 1 || s.state() != v1::LearnerStatus::RUNNING;
  }));
  s = learner.Status();
  ASSERT_EQ(s.state(), v1::LearnerStatus::RUNNING) << s.error();
  EXPECT_EQ(s.step(), 1);
  auto lines = JsonLines(dir + "/stages/rl/metrics.jsonl");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0]["groups_used"], 1);
  EXPECT_EQ(lines[0]["groups_dropped_uniform"], 1);
  EXPECT_THAT(learner.MetricsText(), HasSubstr("swarr_learner_uniform_batches_consecutive 0"));
  // Batch 3: uniform again — 1 in a row, not 2: the stage goes on. Batch 4 trains: max_steps.
  EXPECT_EQ(learner.PushOk(UniformGroup("rl/b-4", 1, inc, 0.0)), "AAAA");
  EXPECT_EQ(learner.PushOk(UniformGroup("rl/b-5", 1, inc, 0.0)), "AAAA");
  EXPECT_EQ(learner.PushOk(Group("rl/b-6", 1, inc)), "AAAA");
  EXPECT_EQ(learner.PushOk(Group("rl/b-7", 1, inc)), "AAAA");
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return s.state() != v1::LearnerStatus::RUNNING; }));
  s = learner.Status();
  ASSERT_EQ(s.state(), v1::LearnerStatus::DONE) << s.error();
  EXPECT_EQ(s.step(), 2);
  EXPECT_EQ(s.stop_reason(), "max_steps");
  EXPECT_EQ(s.trajectories_trained(), 32);
  lines = JsonLines(dir + "/stages/rl/metrics.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["groups_used"], 2);
  const std::string text = learner.MetricsText();
  EXPECT_THAT(text, HasSubstr("swarr_learner_uniform_batches_total 2"));
  EXPECT_THAT(text, HasSubstr("swarr_learner_uniform_batches_consecutive 0"));
}

// Issue 16, bounded memory: the learner's set of taken trajectory ids keeps complete groups as
// intervals of the coordinator's group numbers, so it stays small over many groups, and a
// trajectory of any earlier group is still refused as a duplicate.
TEST(LearnerServiceTest, TakenIdsStayBoundedOverManyGroupsAndOldDuplicatesAreStillRefused) {
  const std::string dir = TempDir();
  Learner learner(dir);
  const v1::PipelineConfig p = Pipeline(
      "name: p\nstages:\n" +
      RlStage(/*max_steps=*/5, 0, 1, "dynamic_sampling: true, max_uniform_batches: 1000000"));
  v1::LearnerStatus s;
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  ASSERT_EQ(s.state(), v1::LearnerStatus::RUNNING) << s.error();
  const std::string inc = learner.inc();
  auto name = [](int g) { return absl::StrFormat("rl/c0ffee-%06d", g); };
  // Uniform groups: taken and dropped by dynamic sampling, no optimizer step (fast).
  const int kGroups = 400;
  int64_t most = 0;
  for (int g = 0; g < kGroups; ++g) {
    // Two members of a group, then the other two (groups arrive in parts).
    std::vector<v1::Trajectory> all = UniformGroup(name(g), 0, inc, 0.0);
    ASSERT_EQ(learner.PushOk({all[0], all[2]}), "AA");
    ASSERT_EQ(learner.PushOk({all[1], all[3]}), "AA");
    most = std::max(most, learner.engine().KnownIdsRetainedForTest());
  }
  EXPECT_LE(most, 2);
  EXPECT_EQ(learner.engine().KnownIdsRetainedForTest(), 1);
  // Old duplicates, long after their group was compacted: refused, not taken again.
  EXPECT_EQ(learner.PushOk(UniformGroup(name(0), 0, inc, 0.0)), "DDDD");
  EXPECT_EQ(learner.PushOk(UniformGroup(name(kGroups / 2), 0, inc, 0.0)), "DDDD");
  EXPECT_EQ(learner.PushOk(UniformGroup(name(kGroups), 0, inc, 0.0)), "AAAA");  // new groups
  EXPECT_EQ(learner.PushOk(UniformGroup(name(kGroups + 1), 0, inc, 0.0)), "AAAA");  // (a batch is 2)
  ASSERT_TRUE(learner.WaitFor([&](const v1::LearnerStatus& s) {
    return s.trajectories_trained() == 4 * (kGroups + 2) || s.state() != v1::LearnerStatus::RUNNING;
  }));
  s = learner.Status();
  EXPECT_EQ(s.state(), v1::LearnerStatus::RUNNING) << s.error();
  EXPECT_EQ(s.trajectories_trained(), 4 * (kGroups + 2));
  EXPECT_EQ(s.trajectory_ids_trained_twice(), 0);

  // Trajectories that are taken but never trained (acknowledged as stale once the stage is
  // over) are known only to this set, not to trained_ids.log: their duplicates too are refused.
  const std::string dir2 = TempDir();
  Learner over(dir2);
  ASSERT_TRUE(over.StartStage(0, Pipeline("name: p\nstages:\n" + RlStage(/*max_steps=*/1)), &s).ok());
  EXPECT_EQ(over.PushOk(Group("rl/c0ffee-000000", 0, over.inc())), "AAAA");
  EXPECT_EQ(over.PushOk(Group("rl/c0ffee-000001", 0, over.inc())), "AAAA");
  ASSERT_TRUE(over.WaitFor([](const v1::LearnerStatus& s) { return s.state() != v1::LearnerStatus::RUNNING; }));
  ASSERT_EQ(over.Status().state(), v1::LearnerStatus::DONE);
  for (int g = 2; g < kGroups; ++g) ASSERT_EQ(over.PushOk(Group(name(g), 0, over.inc())), "SSSS");
  EXPECT_LE(over.engine().KnownIdsRetainedForTest(), 2);
  EXPECT_EQ(over.PushOk(Group(name(2), 0, over.inc())), "DDDD");
  EXPECT_EQ(over.PushOk(Group(name(kGroups / 2), 0, over.inc())), "DDDD");
  EXPECT_EQ(over.PushOk(Group(name(kGroups), 0, over.inc())), "SSSS");
  EXPECT_EQ(over.Status().trajectories_duplicate(), 8);
}

// Crash consistency (docs/reliability.md): GetGroupStates says what a crash would lose, and a
// learner started on the files a SIGKILL leaves (a copy of the run directory taken while the
// first one runs: no SIGTERM checkpoint, no pending.binpb) cuts trained_ids.log back to its
// checkpoint, so the groups of the lost step are new to it (before, they were refused as
// duplicates and counted as trained).
TEST(LearnerServiceTest, GroupStatesAndACrashedLearnersTrainedIdsAreCutToTheCheckpoint) {
  const std::string dir = TempDir();
  const v1::PipelineConfig p = Pipeline("name: p\nstages:\n" + RlStage(/*max_steps=*/6, 0, /*every_steps=*/2));
  Learner learner(dir);
  v1::LearnerStatus s;
  grpc::StatusCode code;
  EXPECT_THAT(learner.GroupStates({"rl/a-0"}, &code), HasSubstr("no rl stage is running"));
  EXPECT_EQ(code, grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(learner.StartStage(0, p, &s).ok());
  ASSERT_TRUE(learner.WaitFor([](const v1::LearnerStatus& s) { return s.has_latest(); }));
  const std::string inc = learner.inc();
  for (int step = 0; step < 3; ++step) {
    for (int g = 2 * step; g < 2 * step + 2; ++g) {
      EXPECT_EQ(learner.PushOk(Group("rl/a-" + std::to_string(g), step, inc)), "AAAA");
    }
    ASSERT_TRUE(learner.WaitFor([&](const v1::LearnerStatus& s) { return Latest(s) == step + 1; }));
  }
  // Steps 1-3 trained; the checkpoint holds steps 1-2 (every 2 steps).
  // Buffered: parts of groups (a step needs 2 resolved groups; the stale one is the only one).
  EXPECT_EQ(learner.PushOk(Group("rl/a-6", 3, inc, 4, 0, 2)), "AAA");
  EXPECT_EQ(learner.PushOk(Group("rl/a-7", 3, inc, 4, 0, 1)), "AA");
  EXPECT_EQ(learner.PushOk(Group("rl/old", 0, inc)), "SSSS");  // too stale: nothing to train
  const std::vector<std::string> ids = {"rl/a-0", "rl/a-3", "rl/a-4", "rl/a-5", "rl/a-6", "rl/a-7", "rl/old", "rl/zz"};
  EXPECT_EQ(learner.GroupStates(ids), "DDTTBBXU");
  EXPECT_THAT(learner.GroupStates({""}, &code), HasSubstr("groups[0].group_id: empty"));
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(learner.GroupStates({"rl/a-0"}, &code, 0), HasSubstr("groups[0].group_size"));
  EXPECT_EQ(code, grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(learner.Status().trajectories_trained(), 24);
  // Bounded memory: the 16 ids the checkpoint holds are kept as their 4 groups; the 8 of step 3
  // exactly (until the next checkpoint).
  EXPECT_EQ(learner.engine().TrainedIdsRetainedForTest(), 4 + 8);

  // What a SIGKILL now leaves on disk.
  const std::string crashed = TempDir() + "/run";
  // (cp retried: a temporary file of an atomic write may vanish under it.)
  bool copied = false;
  for (int i = 0; i < 5 && !copied; ++i) {
    copied = std::system(("rm -rf " + crashed + " && cp -a " + dir + " " + crashed + " 2>/dev/null").c_str()) == 0;
  }
  ASSERT_TRUE(copied);
  Learner next(crashed);
  ASSERT_TRUE(next.StartStage(0, p, &s).ok());
  ASSERT_TRUE(next.WaitFor([](const v1::LearnerStatus& s) { return s.has_latest(); }));
  s = next.Status();
  EXPECT_EQ(s.step(), 2);
  EXPECT_EQ(s.trajectories_trained(), 16) << "the ids of step 3 (not in the checkpoint) were not cut";
  EXPECT_EQ(next.engine().TrainedIdsRetainedForTest(), 4) << "the checkpointed ids were not settled on open";
  // Step 3's groups and the buffered ones are unknown to it: the coordinator generates them again.
  EXPECT_EQ(next.GroupStates(ids), "DDUUUUUU");
  EXPECT_EQ(next.PushOk(Group("rl/a-4", 2, next.inc())), "AAAA");
  EXPECT_EQ(next.PushOk(Group("rl/a-0", 2, next.inc())), "DDDD");
  EXPECT_EQ(next.PushOk(Group("rl/a-5", 2, next.inc())), "AAAA");
  ASSERT_TRUE(next.WaitFor([](const v1::LearnerStatus& s) { return s.step() == 3; }));
  EXPECT_EQ(next.Status().trajectories_trained(), 24);
  EXPECT_EQ(next.Status().trajectory_ids_trained_twice(), 0);
}

}  // namespace
}  // namespace swarr
