// A rollout server in process, over real gRPC on 127.0.0.1, against test doubles of the
// coordinator's and learner's RPCs.
#include "rollout_server/rollout_server.h"

#include <atomic>
#include <future>
#include <mutex>

#include <grpcpp/grpcpp.h>
#include <grpcpp/generic/generic_stub.h>

#include "common/math/synthetic.h"
#include "common/model/generator.h"
#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/swarr/v1/rollout.grpc.pb.h"
#include "rollout_server/test_fakes.h"
#include "rollout_server/validation.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;
using testing_fakes::BehaviourLogProbTolerance;
using testing_fakes::BlobOf;
using testing_fakes::Reference;
using testing_fakes::FakeCoordinator;
using testing_fakes::FakeLearner;
using testing_fakes::FakeServer;
using testing_fakes::Version;
using testing_fakes::WaitUntil;

constexpr int64_t kVocab = CharVocab::kSize;

v1::PromptGroup Group(const std::string& id, int samples, int max_new, uint64_t seed, int64_t min_version = 1) {
  v1::PromptGroup g;
  g.set_group_id(id);
  g.set_stage("rl");
  for (int64_t t : {5, 9, 13, 4, 7, 8}) g.add_prompt_ids(static_cast<int32_t>(t));
  g.set_answer("12");
  g.set_num_samples(samples);
  g.set_max_new_tokens(max_new);
  g.mutable_sampling()->set_temperature(0.8);
  g.mutable_sampling()->add_stop_token_ids(CharVocab::kEos);
  g.set_min_policy_version(min_version);
  g.set_seed(seed);
  g.set_reward("exact");
  return g;
}

// A coordinator, a learner publishing version 1 of a tiny model, and a rollout server
// registered with them.
// The test model; without eos, sequences with no stop ids run to max_new_tokens.
ModelConfig TestConfig(bool eos = true) {
  ModelConfig c = TinyConfig({4, 0}, 0, kVocab);
  if (!eos) c.eos_token_ids.clear();
  return c;
}

struct Cluster {
  std::unique_ptr<Model> model;
  FakeLearner learner;
  FakeCoordinator coordinator;
  FakeServer learner_server, coordinator_server;
  std::unique_ptr<RolloutServer> rollout;

  explicit Cluster(RolloutServerOptions options = {}, int32_t max_sequences = 8, bool eos = true)
      : model(SharpRandomModel(TestConfig(eos), 41)) {
    learner.Publish(BlobOf(*model, Version(1)));
    learner_server = FakeServer::Start(&learner);
    coordinator.learner_address = learner_server.address;
    coordinator.max_sequences = max_sequences;
    // A group may be reported finished only once the learner has every trajectory of it.
    coordinator.finished_check = [this](const std::string& id) {
      return id.rfind("bad", 0) == 0 || id.rfind("eval", 0) == 0 || learner.GroupAccepted(id, 1);
    };
    coordinator_server = FakeServer::Start(&coordinator);
    options.coordinator_address = coordinator_server.address;
    options.metrics_listen = "";
    options.backoff_initial_seconds = 0.02;
    options.backoff_max_seconds = 0.1;
    auto r = RolloutServer::Start(options);
    EXPECT_TRUE(r.ok()) << r.status();
    rollout = *std::move(r);
  }
  ~Cluster() {
    coordinator.Close();
    if (rollout) rollout->Shutdown();
    coordinator_server.Stop();
    learner_server.Stop();
  }
  bool Registered() {
    return WaitUntil([&] { return !rollout->worker_id().empty() && coordinator.streams() > 0; });
  }
  // Trajectories of a group at the learner, in sample order.
  std::vector<v1::Trajectory> At(const std::string& group_id, int n) {
    auto all = learner.accepted();
    std::vector<v1::Trajectory> out;
    for (int i = 0; i < n; ++i) out.push_back(all.at(absl::StrCat(group_id, "/", i)));
    return out;
  }
};

// `got` is what the server pushed for group `g`; `want` what a plain Generator gives on `model`
// (Reference).
void ExpectLike(const std::vector<v1::Trajectory>& got, const std::vector<GenerationResult>& want,
                const v1::PromptGroup& g, const Model& model) {
  ASSERT_EQ(got.size(), want.size());
  const double tol = BehaviourLogProbTolerance(model, want, g);
  for (size_t i = 0; i < got.size(); ++i) {
    const std::vector<int64_t> completion(want[i].tokens.begin() + want[i].prompt_length, want[i].tokens.end());
    ASSERT_EQ(std::vector<int64_t>(got[i].completion_ids().begin(), got[i].completion_ids().end()), completion) << i;
    ASSERT_EQ(got[i].behaviour_logprobs_size(), static_cast<int>(want[i].logprobs.size()));
    for (int k = 0; k < got[i].behaviour_logprobs_size(); ++k) {
      EXPECT_NEAR(got[i].behaviour_logprobs(k), want[i].logprobs[k], tol) << i << " " << k;
    }
    EXPECT_EQ(got[i].stopped(), want[i].stopped);
  }
}

TEST(RolloutServerTest, GroupGoesToTheLearnerWithEveryField) {
  Cluster c;
  ASSERT_TRUE(c.Registered());
  // Without --max-sequences the worker asked for the pipeline's capacity (0) and took it.
  EXPECT_EQ(c.coordinator.registrations().at(0).max_sequences(), 0);
  EXPECT_EQ(c.rollout->engine().max_sequences(), 8);
  v1::PromptGroup g = Group("rl/x-1", 3, 16, 77);
  const auto want = Reference(*c.model, g);
  // Sample 1's decoded completion is the answer: its reward is 1, the others' 0 unless equal.
  const std::vector<int64_t> c1(want[1].tokens.begin() + want[1].prompt_length, want[1].tokens.end());
  g.set_answer(CharVocab::Decode(c1));
  c.coordinator.SendGroup(g);
  ASSERT_TRUE(WaitUntil([&] { return c.coordinator.finished().count("rl/x-1") > 0; }));
  EXPECT_TRUE(c.coordinator.early_finished().empty());
  auto got = c.At("rl/x-1", 3);
  ExpectLike(got, want, g, *c.model);
  for (int i = 0; i < 3; ++i) {
    const v1::Trajectory& t = got[i];
    EXPECT_EQ(t.id(), absl::StrCat("rl/x-1/", i));
    EXPECT_EQ(t.group_id(), "rl/x-1");
    EXPECT_EQ(t.group_size(), 3);
    EXPECT_EQ(t.stage(), "rl");
    EXPECT_EQ(std::vector<int32_t>(t.prompt_ids().begin(), t.prompt_ids().end()),
              std::vector<int32_t>(g.prompt_ids().begin(), g.prompt_ids().end()));
    EXPECT_EQ(t.token_versions_size(), t.completion_ids_size());
    for (int64_t v : t.token_versions()) EXPECT_EQ(v, 1);
    EXPECT_EQ(t.policy_version(), 1);
    EXPECT_EQ(t.learner_incarnation(), "inc-A");
    EXPECT_EQ(t.worker_id(), c.rollout->worker_id());
    const std::vector<int64_t> ci(t.completion_ids().begin(), t.completion_ids().end());
    EXPECT_EQ(t.reward(), CharVocab::Decode(ci) == g.answer() ? 1.0 : 0.0);
  }
  EXPECT_EQ(got[1].reward(), 1.0);
  EXPECT_EQ(c.coordinator.finished_reports("rl/x-1"), 1);
  // Heartbeats report the version loaded and the tokens generated.
  ASSERT_TRUE(WaitUntil([&] {
    auto hb = c.coordinator.heartbeats();
    return !hb.empty() && hb.back().loaded().version() == 1 && hb.back().tokens_generated() > 0;
  }));
}

// grpc.health.v1.Health/Check of the server on `port`: 1 SERVING, 2 NOT_SERVING, -1 no answer.
int HealthOf(int port) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice no_bytes("");  // HealthCheckRequest{service: ""}
  grpc::ByteBuffer request(&no_bytes, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status st) { done.set_value(st); });
  if (!done.get_future().get().ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  return bytes.size() == 2 && bytes[0] == 0x08 ? bytes[1] : -1;
}

// Progress liveness (docs/reliability.md): the engine loop hangs (held in the step observer)
// with a group running and one queued. Heartbeats go on and say so (decode steps frozen, 4
// runnable sequences, both groups held); after the progress timeout the server's health is
// NOT_SERVING; when the engine moves again it is SERVING and both groups finish.
TEST(RolloutServerTest, StuckEngineTurnsHealthNotServingUntilItMovesAgain) {
  RolloutServerOptions o;
  o.progress_timeout_seconds = 0.5;
  Cluster c(o);
  ASSERT_TRUE(c.Registered());
  EXPECT_EQ(HealthOf(c.rollout->port()), 1);
  std::promise<void> stuck;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> once{false};
  c.rollout->engine().SetStepObserverForTest([&](int64_t, const std::vector<std::string>&) {
    if (!once.exchange(true)) {
      stuck.set_value();
      released.wait();
    }
  });
  v1::PromptGroup a = Group("rl/a", 2, 40, 1), b = Group("rl/b", 2, 10, 2);
  a.mutable_sampling()->clear_stop_token_ids();
  a.mutable_sampling()->add_stop_token_ids(kVocab - 1);
  c.coordinator.SendGroup(a);
  stuck.get_future().wait();
  const auto t0 = std::chrono::steady_clock::now();
  c.coordinator.SendGroup(b);
  ASSERT_TRUE(WaitUntil([&] { return c.rollout->engine().Stats().runnable_sequences == 4; }))
      << "queued sequences of a stuck engine must count as runnable";
  EXPECT_TRUE(WaitUntil([&] { return HealthOf(c.rollout->port()) == 2; }));
  EXPECT_GE(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0.3);
  const v1::HeartbeatRequest hb = c.coordinator.heartbeats().back();
  ASSERT_TRUE(hb.has_progress());
  EXPECT_EQ(hb.progress().running_sequences(), 4);
  EXPECT_EQ(hb.progress().decode_steps(), c.rollout->engine().Stats().decode_steps);
  EXPECT_THAT(hb.held_group_ids(), ::testing::UnorderedElementsAre("rl/a", "rl/b"));
  release.set_value();
  EXPECT_TRUE(WaitUntil([&] { return HealthOf(c.rollout->port()) == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return c.coordinator.finished().size() == 2; }));
  EXPECT_TRUE(WaitUntil([&] {
    const v1::HeartbeatRequest last = c.coordinator.heartbeats().back();
    return last.held_group_ids_size() == 0 && last.progress().running_sequences() == 0;
  }));
}

TEST(RolloutServerTest, SecondGroupJoinsTheRunningBatch) {
  Cluster c;
  ASSERT_TRUE(c.Registered());
  std::mutex mu;
  std::vector<std::vector<std::string>> steps;
  std::promise<void> first_running;
  std::atomic<bool> once{false};
  std::promise<void> second_sent;
  std::shared_future<void> sent = second_sent.get_future().share();
  c.rollout->engine().SetStepObserverForTest([&](int64_t, const std::vector<std::string>& running) {
    {
      std::lock_guard<std::mutex> l(mu);
      steps.push_back(running);
    }
    if (!once.exchange(true)) {
      first_running.set_value();
      sent.wait();  // hold the engine until the second group is queued
    }
  });
  v1::PromptGroup a = Group("rl/a", 2, 40, 1), b = Group("rl/b", 2, 10, 2);
  a.mutable_sampling()->clear_stop_token_ids();
  a.mutable_sampling()->add_stop_token_ids(kVocab - 1);
  c.coordinator.SendGroup(a);
  first_running.get_future().wait();
  c.coordinator.SendGroup(b);
  ASSERT_TRUE(WaitUntil([&] { return c.rollout->engine().Stats().queued_sequences == 2; }));
  second_sent.set_value();
  ASSERT_TRUE(WaitUntil([&] { return c.coordinator.finished().size() == 2; }));
  // Some step ran samples of both groups together.
  bool together = false;
  std::lock_guard<std::mutex> l(mu);
  for (const auto& s : steps) {
    bool has_a = false, has_b = false;
    for (const auto& id : s) {
      has_a = has_a || id.rfind("rl/a/", 0) == 0;
      has_b = has_b || id.rfind("rl/b/", 0) == 0;
    }
    together = together || (has_a && has_b);
  }
  EXPECT_TRUE(together);
  ExpectLike(c.At("rl/b", 2), Reference(*c.model, b), b, *c.model);
}

TEST(RolloutServerTest, UnavailableLearnerIsRetriedWithoutDuplicates) {
  Cluster c;
  ASSERT_TRUE(c.Registered());
  using P = FakeLearner::Push;
  // Down three times, then it keeps the trajectories but the answer is lost, then it answers.
  c.learner.Script({P::kUnavailable, P::kUnavailable, P::kUnavailable, P::kAcceptButUnavailable});
  c.coordinator.SendGroup(Group("rl/r-1", 3, 8, 5));
  ASSERT_TRUE(WaitUntil([&] { return c.coordinator.finished().count("rl/r-1") > 0; }));
  EXPECT_EQ(c.learner.push_calls(), 5);
  EXPECT_EQ(c.learner.max_accept_count(), 1);  // each id accepted once
  EXPECT_EQ(c.learner.duplicates(), 3);        // the retry after the lost answer
  EXPECT_EQ(c.learner.accepted().size(), 3u);
  EXPECT_TRUE(c.coordinator.early_finished().empty());
  EXPECT_TRUE(c.coordinator.returned().empty());
}

TEST(RolloutServerTest, RejectedGroupsAreReturnedOrFinished) {
  Cluster c;
  ASSERT_TRUE(c.Registered());
  c.learner.RejectGroups("rl/old", FakeLearner::Push::kFailedPrecondition);
  c.learner.RejectGroups("bad", FakeLearner::Push::kInvalidArgument);
  c.coordinator.SendGroup(Group("rl/old-1", 2, 4, 1));
  c.coordinator.SendGroup(Group("bad-1", 2, 4, 2));
  // A group the model cannot take (token outside the vocabulary): finished, never retried.
  v1::PromptGroup oov = Group("bad-oov", 1, 4, 3);
  oov.set_prompt_ids(0, static_cast<int32_t>(kVocab + 5));
  c.coordinator.SendGroup(oov);
  ASSERT_TRUE(WaitUntil([&] {
    return c.coordinator.returned().count("rl/old-1") && c.coordinator.finished().count("bad-1") &&
           c.coordinator.finished().count("bad-oov");
  }));
  EXPECT_EQ(c.coordinator.finished().count("rl/old-1"), 0u);
  // Still working.
  c.coordinator.SendGroup(Group("rl/ok", 1, 4, 4));
  ASSERT_TRUE(WaitUntil([&] { return c.coordinator.finished().count("rl/ok") > 0; }));
}

TEST(RolloutServerTest, WeightUpdateMidSequenceChangesTokenVersions) {
  Cluster c({}, 8, /*eos=*/false);
  ASSERT_TRUE(c.Registered());
  auto m2 = SharpRandomModel(TestConfig(/*eos=*/false), 42);
  std::atomic<int> steps{0};
  c.rollout->engine().SetStepObserverForTest([&](int64_t, const std::vector<std::string>&) {
    if (++steps != 5) return;
    c.learner.Publish(BlobOf(*m2, Version(2)));  // published mid-generation
    v1::Assignment load;
    *load.mutable_load_weights()->mutable_version() = Version(2);
    c.coordinator.Send(load);
    ASSERT_TRUE(WaitUntil([&] { return c.rollout->engine().PendingInstallsForTest() == 1; }));
  });
  v1::PromptGroup g = Group("rl/w", 2, 30, 9);
  g.mutable_sampling()->clear_stop_token_ids();  // 30 tokens each
  c.coordinator.SendGroup(g);
  ASSERT_TRUE(WaitUntil([&] { return c.coordinator.finished().count("rl/w") > 0; }));
  for (const v1::Trajectory& t : c.At("rl/w", 2)) {
    ASSERT_EQ(t.token_versions_size(), 30);
    std::vector<int64_t> v(t.token_versions().begin(), t.token_versions().end());
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
    EXPECT_EQ(v.front(), 1);
    EXPECT_EQ(v.back(), 2);
    EXPECT_EQ(t.policy_version(), 1);
    // Five steps of version 1: prefill's token and one per step.
    EXPECT_EQ(std::count(v.begin(), v.end(), 1), 6);
  }
  ASSERT_TRUE(WaitUntil([&] {
    auto hb = c.coordinator.heartbeats();
    return !hb.empty() && hb.back().loaded().version() == 2;
  }));
}

// A restarted learner numbers its versions anew (here 1 again, under incarnation "inc-B"): a
// group of the new incarnation is generated with the new incarnation's weights, although the
// worker's loaded version number is not older.
TEST(RolloutServerTest, GroupOfANewLearnerIncarnationLoadsItsWeightsFirst) {
  Cluster c;
  ASSERT_TRUE(c.Registered());
  v1::PromptGroup first = Group("rl/a", 1, 4, 3);
  c.coordinator.SendGroup(first);
  ASSERT_TRUE(WaitUntil([&] { return c.coordinator.finished().count("rl/a") > 0; }));
  auto restarted = SharpRandomModel(TestConfig(), 43);
  c.learner.Publish(BlobOf(*restarted, Version(1, "inc-B")));
  v1::PromptGroup g = Group("rl/b", 2, 4, 5, /*min_version=*/1);
  g.set_learner_incarnation("inc-B");
  c.coordinator.SendGroup(g);
  ASSERT_TRUE(WaitUntil([&] { return c.learner.accepted().count("rl/b/1") > 0; }));
  for (const v1::Trajectory& t : c.At("rl/b", 2)) {
    EXPECT_EQ(t.learner_incarnation(), "inc-B");
    EXPECT_EQ(t.policy_version(), 1);
  }
  ExpectLike(c.At("rl/b", 2), Reference(*restarted, g), g, *restarted);
}

// A group dispatched for a version that the learner published just before it crashed
// (min_policy_version 5 of "inc-A"); the restarted learner ("inc-B") only has version 1. The
// worker must not wait for version 5 forever: once it has loaded the newest weights and they
// are of another incarnation, the group's incarnation is gone and it generates with them.
TEST(RolloutServerTest, GroupOfAVanishedIncarnationRunsWithTheNewestWeights) {
  Cluster c;
  ASSERT_TRUE(c.Registered());
  auto restarted = SharpRandomModel(TestConfig(), 44);
  c.learner.Publish(BlobOf(*restarted, Version(1, "inc-B")));
  v1::PromptGroup g = Group("rl/c", 2, 4, 6, /*min_version=*/5);
  g.set_learner_incarnation("inc-A");
  c.coordinator.SendGroup(g);
  ASSERT_TRUE(WaitUntil([&] { return c.learner.accepted().count("rl/c/1") > 0; }));
  for (const v1::Trajectory& t : c.At("rl/c", 2)) EXPECT_EQ(t.learner_incarnation(), "inc-B");
  ExpectLike(c.At("rl/c", 2), Reference(*restarted, g), g, *restarted);
}

TEST(RolloutServerTest, EvalGroupsAreReportedToTheCoordinator) {
  Cluster c;
  ASSERT_TRUE(c.Registered());
  v1::PromptGroup g = Group("eval/e-1", 2, 6, 3);
  g.set_eval(true);
  g.mutable_sampling()->set_greedy(true);
  c.coordinator.SendGroup(g);
  ASSERT_TRUE(WaitUntil([&] { return c.coordinator.finished().count("eval/e-1") > 0; }));
  auto evals = c.coordinator.evals();
  ASSERT_EQ(evals.size(), 1u);
  EXPECT_EQ(evals[0].group_id(), "eval/e-1");
  EXPECT_EQ(evals[0].worker_id(), c.rollout->worker_id());
  EXPECT_EQ(evals[0].version().version(), 1);
  ASSERT_EQ(evals[0].samples_size(), 2);
  const auto want = Reference(*c.model, g);
  for (int i = 0; i < 2; ++i) {
    const std::vector<int64_t> completion(want[i].tokens.begin() + want[i].prompt_length, want[i].tokens.end());
    EXPECT_EQ(std::vector<int64_t>(evals[0].samples(i).completion_ids().begin(),
                                   evals[0].samples(i).completion_ids().end()),
              completion);
    EXPECT_EQ(evals[0].samples(i).completion_text(), CharVocab::Decode(completion));
  }
  EXPECT_TRUE(c.learner.accepted().empty());
}

TEST(RolloutServerTest, RegistersAgainWhenTheCoordinatorForgetsIt) {
  FakeCoordinator* coord = nullptr;
  RolloutServerOptions o;
  o.max_sequences = 4;
  Cluster c(o);
  coord = &c.coordinator;
  ASSERT_TRUE(c.Registered());
  EXPECT_EQ(coord->registrations().at(0).max_sequences(), 4);  // its own limit
  const std::string first = c.rollout->worker_id();
  coord->ForgetWorkers();
  ASSERT_TRUE(WaitUntil([&] { return c.rollout->worker_id() != first && coord->registrations().size() >= 2; }));
  coord->SendGroup(Group("rl/after", 1, 4, 1));
  ASSERT_TRUE(WaitUntil([&] { return coord->finished().count("rl/after") > 0; }));
}

TEST(RolloutServerTest, DrainReturnsUnstartedGroupsAndFinishesRunningOnes) {
  RolloutServerOptions o;
  o.max_sequences = 2;
  Cluster c(o);
  ASSERT_TRUE(c.Registered());
  std::atomic<bool> once{false};
  std::promise<void> running;
  std::promise<void> queued;
  std::shared_future<void> q = queued.get_future().share();
  c.rollout->engine().SetStepObserverForTest([&](int64_t, const std::vector<std::string>&) {
    if (once.exchange(true)) return;
    running.set_value();
    q.wait();
  });
  v1::PromptGroup a = Group("rl/d-a", 2, 20, 1);
  c.coordinator.SendGroup(a);
  running.get_future().wait();
  c.coordinator.SendGroup(Group("rl/d-b", 2, 20, 2));
  c.coordinator.SendGroup(Group("rl/d-c", 1, 20, 3));
  ASSERT_TRUE(WaitUntil([&] { return c.rollout->engine().Stats().queued_sequences == 3; }));
  c.rollout->Drain();
  queued.set_value();
  ASSERT_TRUE(c.rollout->Wait().ok());
  EXPECT_THAT(c.coordinator.returned(), UnorderedElementsAre("rl/d-b", "rl/d-c"));
  EXPECT_EQ(c.coordinator.finished(), std::set<std::string>{"rl/d-a"});
  ExpectLike(c.At("rl/d-a", 2), Reference(*c.model, a), a, *c.model);
  auto hb = c.coordinator.heartbeats();
  ASSERT_FALSE(hb.empty());
  EXPECT_TRUE(hb.back().draining());
}

TEST(RolloutServerTest, DrainDeadlineHandsBackWhatIsLeft) {
  RolloutServerOptions o;
  o.drain_seconds = 0.2;
  Cluster c(o);
  ASSERT_TRUE(c.Registered());
  c.learner.Script(std::vector<FakeLearner::Push>(1000, FakeLearner::Push::kUnavailable));  // down for good
  c.coordinator.SendGroup(Group("rl/stuck", 1, 3, 1));
  ASSERT_TRUE(WaitUntil([&] { return c.learner.push_calls() >= 2; }));
  c.rollout->Drain();
  ASSERT_TRUE(c.rollout->Wait().ok());
  EXPECT_EQ(c.coordinator.returned(), std::set<std::string>{"rl/stuck"});
  EXPECT_TRUE(c.coordinator.finished().empty());
}

// ---------------------------------------------------------------------------------------------
// The Rollout service, standalone (no coordinator), with a bearer token.

struct Standalone {
  std::unique_ptr<Model> model = SharpRandomModel(TinyConfig({4, 0}, 0, kVocab), 43);
  FakeLearner learner;
  FakeServer learner_server;
  std::unique_ptr<RolloutServer> rollout;
  std::unique_ptr<v1::Rollout::Stub> stub;

  Standalone() {
    learner.Publish(BlobOf(*model, Version(1)));
    RpcSecurity sec;
    sec.token = "s3cret";
    learner_server = FakeServer::Start(&learner, sec);
    RolloutServerOptions o;
    o.learner_address = learner_server.address;
    o.security = sec;
    o.max_sequences = 4;
    o.max_tokens = 100;
    o.metrics_listen = "127.0.0.1:0";
    auto r = RolloutServer::Start(o);
    EXPECT_TRUE(r.ok()) << r.status();
    rollout = *std::move(r);
    stub = v1::Rollout::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", rollout->port()), grpc::InsecureChannelCredentials()));
  }
  ~Standalone() {
    rollout->Shutdown();
    learner_server.Stop();
  }
  void Prepare(grpc::ClientContext* ctx, bool token = true) {
    if (token) ctx->AddMetadata("authorization", "Bearer s3cret");
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  }
  grpc::Status Generate(const v1::GenerateRequest& req, std::vector<v1::Trajectory>* out, bool token = true) {
    grpc::ClientContext ctx;
    Prepare(&ctx, token);
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse r;
    while (reader->Read(&r)) out->push_back(r.trajectory());
    return reader->Finish();
  }
  grpc::Status Load(int64_t version, v1::LoadWeightsResponse* resp, bool token = true) {
    grpc::ClientContext ctx;
    Prepare(&ctx, token);
    v1::LoadWeightsRequest req;
    *req.mutable_version() = Version(version);
    return stub->LoadWeights(&ctx, req, resp);
  }
};

v1::GenerateRequest Request(std::vector<v1::PromptGroup> groups) {
  v1::GenerateRequest r;
  for (auto& g : groups) *r.add_groups() = g;
  return r;
}

TEST(RolloutServiceTest, GenerateValidatesEverythingAndKeepsServing) {
  Standalone s;
  std::vector<v1::Trajectory> out;
  v1::GenerateRequest good = Request({Group("d/1", 2, 8, 1), Group("d/2", 1, 8, 2)});
  // No weights yet.
  EXPECT_EQ(s.Generate(good, &out).error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::LoadWeightsResponse loaded;
  EXPECT_EQ(s.Load(1, &loaded, /*token=*/false).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ASSERT_TRUE(s.Load(1, &loaded).ok());
  EXPECT_EQ(loaded.loaded().version(), 1);
  EXPECT_GT(loaded.bytes(), 0);
  EXPECT_EQ(s.Load(9, &loaded).error_code(), grpc::StatusCode::NOT_FOUND);  // the learner's answer

  EXPECT_EQ(s.Generate(good, &out, /*token=*/false).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  auto bad = [&](const std::function<void(v1::PromptGroup*)>& edit) {
    v1::GenerateRequest r = good;
    edit(r.mutable_groups(1));
    std::vector<v1::Trajectory> ignored;
    return s.Generate(r, &ignored);
  };
  grpc::Status st = bad([](v1::PromptGroup* g) { g->set_prompt_ids(2, 9999); });
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("group 'd/2': prompt_ids[2] = 9999"));
  st = bad([](v1::PromptGroup* g) { g->mutable_sampling()->add_stop_token_ids(-1); });
  EXPECT_THAT(st.error_message(), HasSubstr("stop_token_ids[1]"));
  EXPECT_EQ(bad([](v1::PromptGroup* g) { g->set_num_samples(0); }).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad([](v1::PromptGroup* g) { g->set_max_new_tokens(0); }).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad([](v1::PromptGroup* g) { g->clear_prompt_ids(); }).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad([](v1::PromptGroup* g) { g->mutable_sampling()->set_temperature(-1); }).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad([](v1::PromptGroup* g) { g->mutable_sampling()->set_top_p(1.5); }).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad([](v1::PromptGroup* g) { g->mutable_sampling()->set_top_k(-3); }).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad([](v1::PromptGroup* g) { g->set_reward("vibes"); }).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bad([](v1::PromptGroup* g) { g->set_group_id("d/1"); }).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  st = bad([](v1::PromptGroup* g) { g->set_max_new_tokens(200); });  // one sequence > max_tokens
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("too many tokens"));
  // More sequences, or tokens, than the server holds at once.
  EXPECT_EQ(bad([](v1::PromptGroup* g) { g->set_num_samples(3); }).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(bad([](v1::PromptGroup* g) { g->set_max_new_tokens(80); }).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.Generate(v1::GenerateRequest(), &out).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // And it serves.
  out.clear();
  ASSERT_TRUE(s.Generate(good, &out).ok());
  ASSERT_EQ(out.size(), 3u);
  std::map<std::string, v1::Trajectory> by_id;
  for (auto& t : out) by_id[t.id()] = t;
  ExpectLike({by_id.at("d/1/0"), by_id.at("d/1/1")}, Reference(*s.model, good.groups(0)), good.groups(0), *s.model);
  ExpectLike({by_id.at("d/2/0")}, Reference(*s.model, good.groups(1)), good.groups(1), *s.model);

  grpc::ClientContext ctx;
  s.Prepare(&ctx);
  v1::RolloutStatus status;
  ASSERT_TRUE(s.stub->GetStatus(&ctx, v1::GetRolloutStatusRequest(), &status).ok());
  EXPECT_EQ(status.loaded().version(), 1);
  EXPECT_GT(status.tokens_generated(), 0);
  EXPECT_FALSE(status.draining());
  grpc::ClientContext no_token;
  EXPECT_EQ(s.stub->GetStatus(&no_token, v1::GetRolloutStatusRequest(), &status).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(RolloutServiceTest, CorruptTransferKeepsTheOldWeightsAndArchitectureChangesRebuild) {
  Standalone s;
  v1::LoadWeightsResponse loaded;
  ASSERT_TRUE(s.Load(1, &loaded).ok());
  auto m2 = SharpRandomModel(TinyConfig({3, 3}, 1, kVocab), 44);  // another window and sinks
  s.learner.Publish(BlobOf(*m2, Version(2)));
  s.learner.CorruptNextTransfer();
  EXPECT_EQ(s.Load(2, &loaded).error_code(), grpc::StatusCode::DATA_LOSS);
  std::vector<v1::Trajectory> out;
  v1::GenerateRequest req = Request({Group("c/1", 2, 8, 1)});
  ASSERT_TRUE(s.Generate(req, &out).ok());
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id() < b.id(); });
  ExpectLike(out, Reference(*s.model, req.groups(0)), req.groups(0), *s.model);
  for (const auto& t : out) EXPECT_EQ(t.policy_version(), 1);
  ASSERT_TRUE(s.Load(2, &loaded).ok());
  EXPECT_EQ(loaded.loaded().version(), 2);
  out.clear();
  ASSERT_TRUE(s.Generate(req, &out).ok());
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id() < b.id(); });
  ExpectLike(out, Reference(*m2, req.groups(0)), req.groups(0), *m2);
  for (const auto& t : out) EXPECT_EQ(t.policy_version(), 2);
}

TEST(RolloutServiceTest, MetricsUseTheDocumentedNames) {
  Standalone s;
  v1::LoadWeightsResponse loaded;
  ASSERT_TRUE(s.Load(1, &loaded).ok());
  std::vector<v1::Trajectory> out;
  ASSERT_TRUE(s.Generate(Request({Group("m/1", 1, 4, 1)}), &out).ok());
  std::set<std::string> names;
  for (const auto& family : s.rollout->metrics_registry().Collect()) names.insert(family.name);
  for (const char* want :
       {"swarr_rollout_tokens_generated_total", "swarr_rollout_active_sequences", "swarr_rollout_queued_sequences",
        "swarr_rollout_kv_cache_bytes", "swarr_rollout_trajectory_latency_seconds", "swarr_rollout_weight_version",
        "swarr_rollout_weight_sync_seconds", "swarr_rollout_weight_sync_bytes_total",
        "swarr_rollout_push_retries_total", "swarr_rollout_trajectories_pushed_total"}) {
    EXPECT_TRUE(names.count(want)) << want;
  }
  // The endpoint itself is MetricsExporter's (it may run without one: see docs/rollout.md).
}

}  // namespace
}  // namespace swarr
