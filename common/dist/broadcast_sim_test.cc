// The broadcast protocol end to end on CPU: the membership state machine, bucket plans, staging
// slots and the watchdog drive a publisher and three receivers (threads) over HostComm, an
// in-process stand-in for an NCCL communicator with NCCL's collective semantics. One receiver is
// "killed" mid-broadcast: the others' watchdogs abort, they report and take the version over
// "gRPC", the dead one is dropped at the deadline, and the next version goes over a rebuilt
// communicator. What it cannot show: CUDA streams, real NCCL, real processes (docs/multi-gpu.md).
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/dist/bucket_io.h"
#include "common/dist/bucket_plan.h"
#include "common/dist/group_membership.h"
#include "common/dist/host_comm.h"
#include "common/dist/staging.h"
#include "common/dist/watchdog.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr::dist {
namespace {

using ::testing::ElementsAre;
using std::chrono::milliseconds;

constexpr milliseconds kWatchdog(1000);  // generous: a loaded CI machine must not trip it on a live peer

std::vector<TensorSpec> Table() {
  std::vector<TensorSpec> t;
  const int64_t sizes[] = {3000, 512, 64, 1024, 9000, 128, 2048, 2, 700, 4096};
  for (int i = 0; i < 10; ++i) t.push_back({"t" + std::to_string(i), "BF16", {}, sizes[i]});
  return t;
}

// A version's tensors: deterministic random bytes.
std::vector<std::string> Weights(int64_t version) {
  std::mt19937 rng(static_cast<uint32_t>(version));
  std::vector<std::string> out;
  for (const TensorSpec& t : Table()) {
    std::string s(t.nbytes, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    out.push_back(std::move(s));
  }
  return out;
}

struct Receiver {
  std::string id;
  std::unique_ptr<StagingSlots> staging;
  std::vector<std::string> live;  // the model's weights
  int64_t live_version = 0;
  Transport used = Transport::kGrpc;
};

class Sim {
 public:
  Sim() : group_(MembershipOptions{kWatchdog.count(), 500}) {
    auto plan = PlanBuckets(Table(), BucketPlanOptions{4096, 256});
    EXPECT_TRUE(plan.ok()) << plan.status();
    plan_ = *plan;
  }

  // A newcomer: joins, loads the latest version over "gRPC", is bootstrapped.
  void AddReceiver(const std::string& id, int64_t latest) {
    std::lock_guard<std::mutex> l(mu_);
    ASSERT_TRUE(group_.Join(id, Role::kRollout).ok());
    Receiver& r = receivers_[id];
    r.id = id;
    r.live = Weights(latest);
    r.live_version = latest;
    r.staging = std::make_unique<StagingSlots>(2, latest);
    ASSERT_TRUE(group_.MarkBootstrapped(id, latest).ok());
  }

  // One version: the boundary, then every rank's thread; `killed` stops after bucket 0.
  VersionStart RunVersion(int64_t version, int64_t now_ms, const std::string& killed = "") {
    VersionStart start;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto s = group_.BeginVersion(version, now_ms);
      EXPECT_TRUE(s.ok()) << s.status();
      start = *s;
      if (start.new_epoch) comm_ = std::make_shared<HostComm>(start.epoch.size());
    }
    const std::vector<std::string> weights = Weights(version);
    std::vector<std::thread> threads;
    threads.emplace_back([&] { Publish(version, weights); });
    for (int r = 1; r < start.epoch.size(); ++r) {
      threads.emplace_back([&, r] { Receive(start.epoch.ranks[r], r, version, start.epoch.ranks[r] == killed); });
    }
    for (auto& t : threads) t.join();
    return start;
  }

  void Publish(int64_t version, const std::vector<std::string>& weights) {
    std::shared_ptr<HostComm> comm = comm_;
    Watchdog dog([comm](const std::string&) { comm->Abort(0); });
    for (const Bucket& b : plan_.buckets) {
      std::string buf(b.bytes, '\0');
      ASSERT_TRUE(PackBucket(plan_, b.index, weights, buf.data()).ok());
      Watchdog::Scope scope(dog, kWatchdog, "publish bucket " + std::to_string(b.index));
      if (!comm->Broadcast(0, buf.data(), buf.size(), 0).ok()) return;  // aborted: the coordinator knows
    }
    (void)version;
  }

  void Receive(const std::string& id, int rank, int64_t version, bool killed) {
    std::shared_ptr<HostComm> comm = comm_;
    Receiver& r = receivers_.at(id);
    Watchdog dog([comm, rank](const std::string&) { comm->Abort(rank); });
    auto slot = r.staging->BeginReceive(version, static_cast<int>(plan_.buckets.size()));
    ASSERT_TRUE(slot.ok()) << slot.status();
    std::vector<std::string> staged;
    bool aborted = false;
    for (const Bucket& b : plan_.buckets) {
      if (killed && b.index == 1) return;  // kill -9: gone without a word
      std::string buf(b.bytes, '\0');
      Watchdog::Scope scope(dog, kWatchdog, "receive bucket " + std::to_string(b.index));
      if (!comm->Broadcast(rank, buf.data(), buf.size(), 0).ok()) {
        aborted = true;
        break;
      }
      ASSERT_TRUE(r.staging->BucketDone(*slot, b.index).ok());
      staged.push_back(std::move(buf));
    }
    if (aborted) {
      ASSERT_TRUE(r.staging->AbortReceive(*slot).ok());
      {
        std::lock_guard<std::mutex> l(mu_);
        ASSERT_TRUE(group_.ReportAborted(id, version).ok());
        auto t = group_.TransportFor(id);
        ASSERT_TRUE(t.ok());
        ASSERT_EQ(*t, Transport::kGrpc);
      }
      r.live = Weights(version);  // GetWeights
      r.live_version = version;
      r.staging = std::make_unique<StagingSlots>(2, version);
      r.used = Transport::kGrpc;
      return;
    }
    ASSERT_TRUE(r.staging->CompleteReceive(*slot).ok());
    // Between two decode steps: swap in.
    ASSERT_EQ(r.staging->SlotToSwap(), *slot);
    auto tensors = UnpackAll(plan_, staged);
    ASSERT_TRUE(tensors.ok()) << tensors.status();
    r.live = *tensors;
    ASSERT_TRUE(r.staging->SwapDone(*slot).ok());
    r.live_version = version;
    r.used = Transport::kNccl;
    std::lock_guard<std::mutex> l(mu_);
    ASSERT_TRUE(group_.AckVersion(id, version).ok());
  }

  std::mutex mu_;  // guards group_ (the coordinator's state: one RPC at a time)
  GroupMembership group_;
  BucketPlan plan_;
  std::shared_ptr<HostComm> comm_;
  std::map<std::string, Receiver> receivers_;
};

TEST(BroadcastSimTest, KillDuringBroadcastSurvivorsFinishAndTheGroupRebuilds) {
  Sim sim;
  ASSERT_GE(sim.plan_.buckets.size(), 4u);
  ASSERT_TRUE(sim.group_.Join("learner", Role::kPublisher).ok());
  for (const char* id : {"r1", "r2", "r3"}) sim.AddReceiver(id, 1);

  // Version 2: everyone over the broadcast.
  VersionStart v2 = sim.RunVersion(2, 0);
  EXPECT_EQ(v2.epoch.number, 1);
  EXPECT_THAT(v2.epoch.ranks, ElementsAre("learner", "r1", "r2", "r3"));
  EXPECT_FALSE(sim.group_.in_flight());
  for (const char* id : {"r1", "r2", "r3"}) {
    EXPECT_EQ(sim.receivers_[id].used, Transport::kNccl) << id;
    EXPECT_EQ(sim.receivers_[id].live, Weights(2)) << id;
  }

  // Version 3: r2 dies after the first bucket. Nobody hangs: the others' watchdogs abort.
  const auto t0 = std::chrono::steady_clock::now();
  VersionStart v3 = sim.RunVersion(3, 10'000, "r2");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_FALSE(v3.new_epoch);
  for (const char* id : {"r1", "r3"}) {
    EXPECT_EQ(sim.receivers_[id].used, Transport::kGrpc) << id;  // finished the version over gRPC
    EXPECT_EQ(sim.receivers_[id].live, Weights(3)) << id;
    EXPECT_EQ(sim.receivers_[id].live_version, 3) << id;
  }
  EXPECT_TRUE(sim.group_.epoch().aborted);
  EXPECT_TRUE(sim.group_.in_flight());  // r2 owes an answer until the deadline
  EXPECT_THAT(sim.group_.CheckDeadlines(v3.deadline_ms), ElementsAre("r2"));

  // Version 4: a new epoch without r2, over a rebuilt communicator, by broadcast again.
  VersionStart v4 = sim.RunVersion(4, v3.deadline_ms + 1);
  EXPECT_TRUE(v4.new_epoch);
  EXPECT_EQ(v4.epoch.number, 2);
  EXPECT_THAT(v4.epoch.ranks, ElementsAre("learner", "r1", "r3"));
  EXPECT_THAT(v4.removed, ElementsAre("r2"));
  for (const char* id : {"r1", "r3"}) {
    EXPECT_EQ(sim.receivers_[id].used, Transport::kNccl) << id;
    EXPECT_EQ(sim.receivers_[id].live, Weights(4)) << id;
  }
  EXPECT_FALSE(sim.group_.in_flight());

  // r2 restarts: bootstraps over gRPC, enters at the next boundary.
  sim.AddReceiver("r2", 4);
  VersionStart v5 = sim.RunVersion(5, v3.deadline_ms + 2);
  EXPECT_EQ(v5.epoch.number, 3);
  EXPECT_THAT(v5.epoch.ranks, ElementsAre("learner", "r1", "r3", "r2"));
  for (const char* id : {"r1", "r2", "r3"}) EXPECT_EQ(sim.receivers_[id].live, Weights(5)) << id;
}

TEST(BucketIoTest, PackUnpackAndWordSum) {
  auto plan = PlanBuckets(Table(), BucketPlanOptions{4096, 256});
  ASSERT_TRUE(plan.ok());
  const std::vector<std::string> w = Weights(7);
  std::vector<std::string> buckets;
  for (const Bucket& b : plan->buckets) {
    std::string buf(b.bytes, 'x');
    ASSERT_TRUE(PackBucket(*plan, b.index, w, buf.data()).ok());
    buckets.push_back(buf);
  }
  auto back = UnpackAll(*plan, buckets);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, w);
  // Padding is zeroed, so equal versions give equal bucket sums; one flipped byte changes it.
  std::string copy = buckets[0];
  EXPECT_EQ(WordSum(copy.data(), copy.size()), WordSum(buckets[0].data(), buckets[0].size()));
  copy[5] ^= 1;
  EXPECT_NE(WordSum(copy.data(), copy.size()), WordSum(buckets[0].data(), buckets[0].size()));
  const unsigned char words[] = {1, 0, 0, 0, 2, 0, 0, 0, 3};
  EXPECT_EQ(WordSum(words, sizeof(words)), 6u);
  EXPECT_EQ(WordSum(words, 8), 3u);
  buckets[1].pop_back();
  EXPECT_EQ(UnpackAll(*plan, buckets).status().code(), absl::StatusCode::kDataLoss);
  std::vector<std::string> wrong = w;
  wrong[0].push_back('!');
  std::string buf(plan->buckets[0].bytes, '\0');
  EXPECT_EQ(PackBucket(*plan, 0, wrong, buf.data()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PackBucket(*plan, 99, w, buf.data()).code(), absl::StatusCode::kInvalidArgument);
}

TEST(HostCommTest, CollectiveWaitsForEveryRankAndAbortIsPerRank) {
  HostComm comm(2);
  std::string a = "hello", b = "-----";
  std::thread t([&] { EXPECT_TRUE(comm.Broadcast(1, b.data(), 5, 0).ok()); });
  EXPECT_TRUE(comm.Broadcast(0, a.data(), 5, 0).ok());
  t.join();
  EXPECT_EQ(b, "hello");
  // Rank 1 never comes to the next one: rank 0 waits until its own abort.
  std::thread aborter([&] {
    std::this_thread::sleep_for(milliseconds(50));
    comm.Abort(0);
  });
  EXPECT_EQ(comm.Broadcast(0, a.data(), 5, 0).code(), absl::StatusCode::kAborted);
  aborter.join();
  EXPECT_TRUE(comm.aborted(0));
  EXPECT_FALSE(comm.aborted(1));
}

}  // namespace
}  // namespace swarr::dist
