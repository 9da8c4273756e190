// The rollout engine without gRPC: weights come from an in-memory "learner".
#include "rollout_server/engine.h"

#include <cmath>
#include <future>
#include <map>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/math/synthetic.h"
#include "common/model/generator.h"
#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "rollout_server/test_fakes.h"
#include "rollout_server/validation.h"
#include "rollout_server/weights.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using testing_fakes::BehaviourLogProbTolerance;
using testing_fakes::BlobOf;
using testing_fakes::Reference;
using testing_fakes::Version;
using testing_fakes::WaitUntil;

constexpr int64_t kVocab = CharVocab::kSize;

// Versions by number; `latest` is what {latest: true} gets.
struct MemoryLearner {
  std::mutex mu;
  std::map<int64_t, WeightsBlob> blobs;
  int64_t latest = -1;
  int calls = 0;
  void Publish(const WeightsBlob& b) {
    std::lock_guard<std::mutex> l(mu);
    blobs[b.version.version()] = b;
    latest = b.version.version();
  }
  FetchWeightsFn Fetcher() {
    return [this](const v1::GetWeightsRequest& req) -> absl::StatusOr<WeightsBlob> {
      std::lock_guard<std::mutex> l(mu);
      ++calls;
      auto it = blobs.find(req.latest() ? latest : req.version());
      if (it == blobs.end()) return absl::NotFoundError("no such version");
      return it->second;
    };
  }
};

struct Fixture {
  prometheus::Registry registry;
  RolloutMetrics metrics{registry};
  MemoryLearner learner;
  std::unique_ptr<RolloutEngine> engine;
  explicit Fixture(int64_t max_sequences, int64_t max_tokens = 0) {
    EngineOptions o;
    o.max_sequences = max_sequences;
    o.max_tokens = max_tokens;
    o.prefill_chunk = 4;
    o.load_retry_initial_seconds = 0.01;
    o.load_retry_max_seconds = 0.05;
    auto e = RolloutEngine::Create(o, &metrics);
    EXPECT_TRUE(e.ok()) << e.status();
    engine = *std::move(e);
    engine->SetFetcher(learner.Fetcher());
    engine->SetWorkerId("worker-7");
  }
  absl::StatusOr<LoadResult> Load(int64_t version) {
    std::promise<absl::StatusOr<LoadResult>> p;
    v1::GetWeightsRequest req;
    req.set_version(version);
    engine->RequestLoad(req, [&p](absl::StatusOr<LoadResult> r) { p.set_value(std::move(r)); });
    return p.get_future().get();
  }
};

v1::PromptGroup Group(const std::string& id, int samples, int max_new, uint64_t seed, int64_t min_version = 0) {
  v1::PromptGroup g;
  g.set_group_id(id);
  g.set_stage("rl");
  for (int64_t t : {5, 9, 13, 4, 7}) g.add_prompt_ids(static_cast<int32_t>(t));
  g.set_answer("7");
  g.set_num_samples(samples);
  g.set_max_new_tokens(max_new);
  g.mutable_sampling()->set_temperature(0.9);
  g.mutable_sampling()->add_stop_token_ids(CharVocab::kEos);
  g.set_min_policy_version(min_version);
  g.set_seed(seed);
  g.set_reward("exact");
  return g;
}

struct GroupWaiter {
  std::promise<std::pair<absl::Status, std::vector<SampleResult>>> p;
  GroupCallbacks Callbacks() {
    GroupCallbacks cb;
    cb.on_done = [this](absl::Status s, std::vector<SampleResult> r) { p.set_value({s, std::move(r)}); };
    return cb;
  }
  std::pair<absl::Status, std::vector<SampleResult>> Get() {
    auto f = p.get_future();
    EXPECT_EQ(f.wait_for(std::chrono::seconds(20)), std::future_status::ready);
    return f.get();
  }
};

// `got` is what the engine produced for group `g` at `version`; `want` what a plain Generator
// gives on `model` (Reference).
void ExpectMatches(const std::vector<SampleResult>& got, const std::vector<GenerationResult>& want,
                   const v1::PromptGroup& g, int64_t version, const Model& model) {
  ASSERT_EQ(got.size(), want.size());
  const double tol = BehaviourLogProbTolerance(model, want, g);
  for (size_t i = 0; i < got.size(); ++i) {
    const v1::Trajectory& t = got[i].trajectory;
    EXPECT_EQ(t.id(), absl::StrCat(g.group_id(), "/", i));
    EXPECT_EQ(t.group_size(), g.num_samples());
    const std::vector<int64_t> completion(want[i].tokens.begin() + want[i].prompt_length, want[i].tokens.end());
    ASSERT_EQ(std::vector<int64_t>(t.completion_ids().begin(), t.completion_ids().end()), completion) << i;
    ASSERT_EQ(t.behaviour_logprobs_size(), static_cast<int>(want[i].logprobs.size()));
    for (int k = 0; k < t.behaviour_logprobs_size(); ++k) {
      EXPECT_NEAR(t.behaviour_logprobs(k), want[i].logprobs[k], tol);
      testing_numeric::ReportMargin(std::abs(t.behaviour_logprobs(k) - want[i].logprobs[k]), tol);
    }
    EXPECT_EQ(t.token_versions_size(), t.completion_ids_size());
    for (int64_t v : t.token_versions()) EXPECT_EQ(v, version);
    EXPECT_EQ(t.policy_version(), version);
    EXPECT_EQ(t.stopped(), want[i].stopped);
    EXPECT_EQ(t.reward(), ComputeReward("exact", got[i].completion_text, g.answer()));
  }
}

TEST(RolloutEngineTest, GroupsMatchTheGeneratorAndCarryTheirVersion) {
  Fixture f(4);
  auto model = SharpRandomModel(TinyConfig({4, 0}, 0, kVocab), 11);
  f.learner.Publish(BlobOf(*model, Version(1)));
  // No weights yet: the group's min_policy_version makes the engine load the latest.
  v1::PromptGroup g = Group("rl/a-1", 3, 12, 500, /*min_version=*/1);
  g.set_answer(CharVocab::Decode({3, 4}));
  GroupWaiter w;
  const absl::Time submitted = absl::Now();
  ASSERT_TRUE(f.engine->Submit(g, GroupSource::kCoordinator, nullptr, w.Callbacks()).ok());
  auto [status, results] = w.Get();
  const absl::Time returned = absl::Now();
  ASSERT_TRUE(status.ok()) << status;
  ExpectMatches(results, Reference(*model, g), g, 1, *model);
  const double elapsed = absl::ToDoubleSeconds(returned - submitted);
  for (const SampleResult& s : results) {
    EXPECT_EQ(s.trajectory.worker_id(), "worker-7");
    EXPECT_EQ(s.trajectory.learner_incarnation(), "inc-A");
    EXPECT_EQ(s.trajectory.stage(), "rl");
    // Durations inside this call: generating 12 tokens takes time, waiting may not; together
    // they fit between Submit and the callback; the finish time lies in that interval.
    const v1::TrajectoryTimings& tm = s.trajectory.timings();
    EXPECT_GE(tm.queue_seconds(), 0);
    EXPECT_GT(tm.generate_seconds(), 0);
    EXPECT_LE(tm.queue_seconds() + tm.generate_seconds() + tm.reward_seconds(), elapsed);
    EXPECT_GE(tm.finished_unix_seconds(), absl::ToDoubleSeconds(submitted - absl::UnixEpoch()));
    EXPECT_LE(tm.finished_unix_seconds(), absl::ToDoubleSeconds(returned - absl::UnixEpoch()));
  }
  const EngineStats st = f.engine->Stats();
  EXPECT_TRUE(st.has_weights);
  EXPECT_EQ(st.loaded.version(), 1);
  int64_t tokens = 0;
  for (const SampleResult& s : results) tokens += s.trajectory.completion_ids_size();
  EXPECT_EQ(st.tokens_generated, tokens);
  EXPECT_EQ(f.metrics.tokens_generated.Value(), tokens);
  EXPECT_EQ(f.metrics.weight_version.Value(), 1);
  // Validate (the Generate RPC's check) knows the vocabulary and the model's positions now.
  v1::PromptGroup oov = Group("v", 1, 4, 1);
  oov.add_prompt_ids(static_cast<int32_t>(kVocab));
  EXPECT_THAT(std::string(f.engine->Validate(oov).message()), HasSubstr("prompt_ids[5]"));
  EXPECT_THAT(std::string(f.engine->Validate(Group("v", 1, 1 << 20, 1)).message()), HasSubstr("positions"));
  EXPECT_TRUE(f.engine->Validate(Group("v", 1, 4, 1)).ok());
}

TEST(RolloutEngineTest, TokenBudgetAndSlotsBoundTheBatch) {
  // 5 prompt + 10 new = 15 tokens a sequence; a budget of 40 fits two at once.
  Fixture f(/*max_sequences=*/3, /*max_tokens=*/40);
  auto model = SharpRandomModel(TinyConfig({4, 0}, 0, kVocab), 12);
  f.learner.Publish(BlobOf(*model, Version(1)));
  ASSERT_TRUE(f.Load(1).ok());
  std::mutex mu;
  size_t widest = 0;
  f.engine->SetStepObserverForTest([&](int64_t, const std::vector<std::string>& running) {
    std::lock_guard<std::mutex> l(mu);
    widest = std::max(widest, running.size());
  });
  v1::PromptGroup a = Group("a", 3, 10, 1), b = Group("b", 2, 10, 2);
  a.mutable_sampling()->clear_stop_token_ids();
  b.mutable_sampling()->clear_stop_token_ids();
  GroupWaiter wa, wb;
  ASSERT_TRUE(f.engine->Submit(a, GroupSource::kDirect, nullptr, wa.Callbacks()).ok());
  ASSERT_TRUE(f.engine->Submit(b, GroupSource::kDirect, nullptr, wb.Callbacks()).ok());
  auto ra = wa.Get();
  auto rb = wb.Get();
  ASSERT_TRUE(ra.first.ok() && rb.first.ok());
  // Empty stop list: the model's eos (2) stops sequences.
  a.mutable_sampling()->add_stop_token_ids(2);
  b.mutable_sampling()->add_stop_token_ids(2);
  ExpectMatches(ra.second, Reference(*model, a), a, 1, *model);
  ExpectMatches(rb.second, Reference(*model, b), b, 1, *model);
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(widest, 2u);
}

TEST(RolloutEngineTest, BadTransfersKeepTheLoadedWeights) {
  Fixture f(2);
  auto model = SharpRandomModel(TinyConfig({4, 0}, 0, kVocab), 13);
  f.learner.Publish(BlobOf(*model, Version(1)));
  ASSERT_TRUE(f.Load(1).ok());
  // A damaged transfer.
  WeightsBlob corrupt = BlobOf(*SharpRandomModel(TinyConfig({4, 0}, 0, kVocab), 14), Version(2));
  corrupt.data[100] ^= 1;
  f.learner.Publish(corrupt);
  auto r = f.Load(2);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  // A tensor missing from the table.
  WeightsBlob missing = BlobOf(*SharpRandomModel(TinyConfig({4, 0}, 0, kVocab), 15), Version(3));
  const int64_t cut = missing.tensors.back().nbytes();
  missing.tensors.pop_back();
  missing.data.resize(missing.data.size() - cut);
  missing.xxhash64 = Xxh64(missing.data.data(), missing.data.size());
  f.learner.Publish(missing);
  r = f.Load(3);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("missing tensor"));
  // A config that does not parse.
  WeightsBlob bad_config = BlobOf(*model, Version(4));
  bad_config.config_json = "{\"model_type\": \"gpt17\"}";
  f.learner.Publish(bad_config);
  EXPECT_FALSE(f.Load(4).ok());
  EXPECT_EQ(f.engine->Stats().loaded.version(), 1);
  // Still generating with version 1.
  v1::PromptGroup g = Group("g", 2, 8, 3);
  GroupWaiter w;
  ASSERT_TRUE(f.engine->Submit(g, GroupSource::kDirect, nullptr, w.Callbacks()).ok());
  auto [status, results] = w.Get();
  ASSERT_TRUE(status.ok()) << status;
  ExpectMatches(results, Reference(*model, g), g, 1, *model);
}

TEST(RolloutEngineTest, ArchitectureChangeWaitsForAnEmptyBatch) {
  Fixture f(2);
  auto m1 = SharpRandomModel(TinyConfig({4, 0}, 0, kVocab), 16);
  auto m2 = SharpRandomModel(TinyConfig({2, 2}, 0, kVocab), 17);  // another window: rebuild
  f.learner.Publish(BlobOf(*m1, Version(1)));
  ASSERT_TRUE(f.Load(1).ok());
  f.learner.Publish(BlobOf(*m2, Version(2)));
  std::atomic<bool> asked{false};
  std::promise<absl::StatusOr<LoadResult>> loaded;
  f.engine->SetStepObserverForTest([&](int64_t, const std::vector<std::string>&) {
    if (asked.exchange(true)) return;
    v1::GetWeightsRequest req;
    req.set_version(2);
    f.engine->RequestLoad(req, [&](absl::StatusOr<LoadResult> r) { loaded.set_value(std::move(r)); });
    ASSERT_TRUE(WaitUntil([&] { return f.engine->PendingInstallsForTest() == 1; }));
  });
  v1::PromptGroup a = Group("a", 2, 30, 4);
  a.mutable_sampling()->clear_stop_token_ids();
  GroupWaiter wa;
  ASSERT_TRUE(f.engine->Submit(a, GroupSource::kDirect, nullptr, wa.Callbacks()).ok());
  auto ra = wa.Get();
  ASSERT_TRUE(ra.first.ok());
  a.mutable_sampling()->add_stop_token_ids(2);
  ExpectMatches(ra.second, Reference(*m1, a), a, 1, *m1);  // finished entirely on version 1
  auto r = loaded.get_future().get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->loaded.version(), 2);
  v1::PromptGroup b = Group("b", 2, 10, 5);
  GroupWaiter wb;
  ASSERT_TRUE(f.engine->Submit(b, GroupSource::kDirect, nullptr, wb.Callbacks()).ok());
  auto rb = wb.Get();
  ASSERT_TRUE(rb.first.ok());
  ExpectMatches(rb.second, Reference(*m2, b), b, 2, *m2);
}

TEST(RolloutEngineTest, NewerMinPolicyVersionWaitsForTheLearner) {
  Fixture f(2);
  auto m1 = SharpRandomModel(TinyConfig({4, 0}, 0, kVocab), 18);
  auto m2 = SharpRandomModel(TinyConfig({4, 0}, 0, kVocab), 19);
  f.learner.Publish(BlobOf(*m1, Version(1)));
  ASSERT_TRUE(f.Load(1).ok());
  v1::PromptGroup g = Group("g", 2, 6, 6, /*min_version=*/2);
  GroupWaiter w;
  ASSERT_TRUE(f.engine->Submit(g, GroupSource::kCoordinator, nullptr, w.Callbacks()).ok());
  // The engine keeps asking for the latest (still 1), the group waits unstarted.
  ASSERT_TRUE(WaitUntil([&] {
    std::lock_guard<std::mutex> l(f.learner.mu);
    return f.learner.calls >= 3;
  }));
  EXPECT_EQ(f.engine->Stats().queued_sequences, 2);
  f.learner.Publish(BlobOf(*m2, Version(2)));
  auto [status, results] = w.Get();
  ASSERT_TRUE(status.ok()) << status;
  ExpectMatches(results, Reference(*m2, g), g, 2, *m2);
}

TEST(RolloutEngineTest, TakeUnstartedCancelAndAbort) {
  Fixture f(1);
  ModelConfig config = TinyConfig({4, 0}, 0, kVocab);
  config.eos_token_ids.clear();  // nothing stops `a` but max_new_tokens
  auto model = SharpRandomModel(config, 20);
  f.learner.Publish(BlobOf(*model, Version(1)));
  ASSERT_TRUE(f.Load(1).ok());
  std::promise<void> started;
  std::atomic<bool> once{false};
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  f.engine->SetStepObserverForTest([&](int64_t, const std::vector<std::string>&) {
    if (!once.exchange(true)) {
      started.set_value();
      released.wait();
    }
  });
  v1::PromptGroup a = Group("a", 1, 1000, 1), b = Group("b", 1, 5, 2), c = Group("c", 2, 5, 3);
  a.mutable_sampling()->clear_stop_token_ids();
  GroupWaiter wa, wb, wc;
  ASSERT_TRUE(f.engine->Submit(a, GroupSource::kCoordinator, nullptr, wa.Callbacks()).ok());
  started.get_future().wait();  // `a` runs, the engine is held after its first step
  ASSERT_TRUE(f.engine->Submit(b, GroupSource::kCoordinator, nullptr, wb.Callbacks()).ok());
  auto hc = f.engine->Submit(c, GroupSource::kDirect, nullptr, wc.Callbacks());
  ASSERT_TRUE(hc.ok());
  auto back = f.engine->TakeUnstarted(GroupSource::kCoordinator);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].group_id(), "b");
  EXPECT_EQ(f.engine->NumGroups(GroupSource::kCoordinator), 1);
  f.engine->Cancel(*hc);
  release.set_value();
  EXPECT_EQ(wc.Get().first.code(), absl::StatusCode::kCancelled);
  f.engine->AbortAll(absl::AbortedError("drain deadline"));
  EXPECT_EQ(wa.Get().first.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(f.engine->NumGroups(GroupSource::kCoordinator), 0);
  EXPECT_EQ(f.engine->Stats().active_sequences, 0);
  // Still serving.
  GroupWaiter wd;
  ASSERT_TRUE(f.engine->Submit(Group("d", 1, 4, 9), GroupSource::kDirect, nullptr, wd.Callbacks()).ok());
  EXPECT_TRUE(wd.Get().first.ok());
}

}  // namespace
}  // namespace swarr
