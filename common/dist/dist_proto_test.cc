#include "common/dist/dist_proto.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr::dist {
namespace {

using ::testing::HasSubstr;

std::vector<TensorSpec> Table() {
  return {{"embed", "BF16", {16, 8}, 256},
          {"w1", "BF16", {8, 8}, 128},
          {"norm", "F32", {8}, 32},
          {"huge", "BF16", {64, 64}, 8192},
          {"w2", "BF16", {8, 8}, 128}};
}

BucketPlan Plan() {
  BucketPlanOptions o;
  o.target_bucket_bytes = 1024;
  o.alignment_bytes = 256;
  auto p = PlanBuckets(Table(), o);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

v1::WeightVersion Version(int64_t v) {
  v1::WeightVersion w;
  w.set_version(v);
  w.set_learner_incarnation("inc-1");
  return w;
}

TEST(DistProtoTest, PlanRoundTrip) {
  const BucketPlan plan = Plan();
  const v1::BroadcastPlan m = BroadcastPlanToProto(plan, Version(7), 3);
  EXPECT_EQ(m.version().version(), 7);
  EXPECT_EQ(m.epoch(), 3);
  EXPECT_EQ(m.buckets_size(), static_cast<int>(plan.buckets.size()));
  // Survives the wire.
  v1::BroadcastPlan wire;
  ASSERT_TRUE(wire.ParseFromString(m.SerializeAsString()));
  auto back = BroadcastPlanFromProto(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(ComparePlans(plan, *back).ok());
  EXPECT_EQ(back->fingerprint, plan.fingerprint);
  EXPECT_EQ(back->num_tensors, 5);
  EXPECT_TRUE(CheckReceivedPlan(wire, Table()).ok());
}

TEST(DistProtoTest, DamagedPlansAreRefused) {
  const v1::BroadcastPlan good = BroadcastPlanToProto(Plan(), Version(1), 1);
  {
    v1::BroadcastPlan m = good;
    m.set_fingerprint(m.fingerprint() + 1);
    EXPECT_EQ(BroadcastPlanFromProto(m).status().code(), absl::StatusCode::kDataLoss);
  }
  {
    // A renamed tensor or another shape leaves a valid layout: the fingerprint catches them.
    v1::BroadcastPlan m = good;
    m.mutable_buckets(0)->mutable_tensors(1)->set_name("W1");
    EXPECT_EQ(BroadcastPlanFromProto(m).status().code(), absl::StatusCode::kDataLoss);
    m = good;
    m.mutable_buckets(0)->mutable_tensors(1)->set_shape(0, 4);
    m.mutable_buckets(0)->mutable_tensors(1)->set_shape(1, 16);
    EXPECT_EQ(BroadcastPlanFromProto(m).status().code(), absl::StatusCode::kDataLoss);
  }
  {
    v1::BroadcastPlan m = good;
    m.mutable_buckets(0)->mutable_tensors(1)->set_offset(100);
    EXPECT_THAT(BroadcastPlanFromProto(m).status().message(), HasSubstr("unaligned"));
  }
  {
    v1::BroadcastPlan m = good;
    m.mutable_buckets(0)->mutable_tensors(0)->set_nbytes(5000);
    EXPECT_THAT(BroadcastPlanFromProto(m).status().message(), HasSubstr("leaves the bucket"));
  }
  {
    v1::BroadcastPlan m = good;
    m.mutable_buckets(0)->mutable_tensors(0)->set_dtype("Q4");
    EXPECT_THAT(BroadcastPlanFromProto(m).status().message(), HasSubstr("unknown dtype"));
  }
  {
    v1::BroadcastPlan m = good;
    m.set_total_bytes(m.total_bytes() + 256);
    EXPECT_THAT(BroadcastPlanFromProto(m).status().message(), HasSubstr("totals"));
  }
  {
    v1::BroadcastPlan m = good;
    m.clear_buckets();
    EXPECT_THAT(BroadcastPlanFromProto(m).status().message(), HasSubstr("no buckets"));
  }
}

TEST(DistProtoTest, ReceiverWithADifferentTableFallsBack) {
  const v1::BroadcastPlan m = BroadcastPlanToProto(Plan(), Version(1), 1);
  std::vector<TensorSpec> other = Table();
  other[2].dtype = "BF16";  // the receiver's model keeps norms in bf16
  other[2].nbytes = 16;
  absl::Status s = CheckReceivedPlan(m, other);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("norm"));
  std::vector<TensorSpec> reshaped = Table();
  reshaped[1].shape = {4, 16};  // same bytes, other shape
  EXPECT_EQ(CheckReceivedPlan(m, reshaped).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CheckReceivedPlan(m, {}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(DistProtoTest, NcclGroup) {
  GroupMembership g(MembershipOptions{2000, 1000});
  ASSERT_TRUE(g.Join("learner", Role::kPublisher).ok());
  ASSERT_TRUE(g.Join("r1", Role::kRollout).ok());
  ASSERT_TRUE(g.MarkBootstrapped("r1", 1).ok());
  ASSERT_TRUE(g.BeginVersion(1, 0).ok());
  v1::NcclGroup m = NcclGroupToProto(g.epoch(), MembershipOptions{2000, 1000});
  EXPECT_TRUE(ValidateNcclGroup(m).ok());  // no unique id yet is fine
  ASSERT_TRUE(g.SetUniqueId(1, std::string(kNcclUniqueIdBytes, '\x07')).ok());
  m = NcclGroupToProto(g.epoch(), MembershipOptions{2000, 1000});
  ASSERT_TRUE(ValidateNcclGroup(m).ok());
  EXPECT_EQ(m.epoch(), 1);
  EXPECT_EQ(m.first_version(), 1);
  ASSERT_EQ(m.ranks_size(), 2);
  EXPECT_EQ(m.ranks(0).worker_id(), "learner");
  EXPECT_EQ(m.ranks(1).rank(), 1);
  EXPECT_EQ(m.unique_id().size(), 128u);
  EXPECT_EQ(m.watchdog_timeout_ms(), 2000);

  v1::NcclGroup bad = m;
  bad.set_unique_id("short");
  EXPECT_THAT(ValidateNcclGroup(bad).message(), HasSubstr("unique_id"));
  bad = m;
  bad.mutable_ranks(1)->set_rank(5);
  EXPECT_THAT(ValidateNcclGroup(bad).message(), HasSubstr("ranks[1]"));
  bad = m;
  bad.mutable_ranks(1)->set_worker_id("learner");
  EXPECT_THAT(ValidateNcclGroup(bad).message(), HasSubstr("twice"));
  bad = m;
  bad.set_epoch(0);
  EXPECT_THAT(ValidateNcclGroup(bad).message(), HasSubstr("epoch"));
  bad = m;
  bad.set_watchdog_timeout_ms(0);
  EXPECT_THAT(ValidateNcclGroup(bad).message(), HasSubstr("watchdog"));
}

}  // namespace
}  // namespace swarr::dist
