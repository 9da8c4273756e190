#include "common/dist/group_membership.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr::dist {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr int64_t kWatchdog = 1000, kGrace = 500, kDeadline = kWatchdog + kGrace;

GroupMembership NewGroup() { return GroupMembership(MembershipOptions{kWatchdog, kGrace}); }

MemberState State(const GroupMembership& g, const std::string& id) {
  auto s = g.StateOf(id);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : MemberState::kDropped;
}
Transport Via(const GroupMembership& g, const std::string& id) {
  auto t = g.TransportFor(id);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : Transport::kGrpc;
}

// learner + rollouts r1, r2 bootstrapped; version 1 opens epoch 1 with ranks L, r1, r2.
GroupMembership ThreeMemberGroup() {
  GroupMembership g = NewGroup();
  EXPECT_TRUE(g.Join("L", Role::kPublisher).ok());
  EXPECT_TRUE(g.Join("r1", Role::kRollout).ok());
  EXPECT_TRUE(g.Join("r2", Role::kRollout).ok());
  EXPECT_TRUE(g.MarkBootstrapped("r1", 0 + 1).ok());
  EXPECT_TRUE(g.MarkBootstrapped("r2", 1).ok());
  auto v = g.BeginVersion(1, 0);
  EXPECT_TRUE(v.ok()) << v.status();
  return g;
}

void AckAll(GroupMembership& g, int64_t version) {
  for (int r = 1; r < g.epoch().size(); ++r) ASSERT_TRUE(g.AckVersion(g.epoch().ranks[r], version).ok());
}

TEST(GroupMembershipTest, JoinBootstrapThenEnterAtBoundary) {
  GroupMembership g = NewGroup();
  ASSERT_TRUE(g.Join("L", Role::kPublisher).ok());
  EXPECT_EQ(State(g, "L"), MemberState::kReady);  // the publisher has nothing to bootstrap
  ASSERT_TRUE(g.Join("r1", Role::kRollout).ok());
  EXPECT_EQ(State(g, "r1"), MemberState::kBootstrapping);
  EXPECT_EQ(Via(g, "r1"), Transport::kGrpc);  // a newcomer loads over gRPC first
  ASSERT_TRUE(g.MarkBootstrapped("r1", 1).ok());
  EXPECT_EQ(State(g, "r1"), MemberState::kReady);
  EXPECT_EQ(Via(g, "r1"), Transport::kGrpc);  // still gRPC until the boundary
  EXPECT_EQ(g.epoch().number, 0);

  auto v = g.BeginVersion(2, 100);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->new_epoch);
  EXPECT_EQ(v->epoch.number, 1);
  EXPECT_EQ(v->epoch.first_version, 2);
  EXPECT_EQ(v->epoch.comm_slot, 1);
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r1"));
  EXPECT_THAT(v->entered, ElementsAre("r1"));
  EXPECT_EQ(v->deadline_ms, 100 + kDeadline);
  EXPECT_EQ(State(g, "r1"), MemberState::kActive);
  EXPECT_EQ(State(g, "L"), MemberState::kActive);
  EXPECT_EQ(Via(g, "r1"), Transport::kNccl);
  EXPECT_TRUE(g.in_flight());
  ASSERT_TRUE(g.AckVersion("r1", 2).ok());
  EXPECT_FALSE(g.in_flight());
  EXPECT_TRUE(g.VersionSettled());
}

TEST(GroupMembershipTest, NewcomerWaitsForTheBoundaryAndDoesNotChangeTheEpochBefore) {
  GroupMembership g = ThreeMemberGroup();
  ASSERT_TRUE(g.Join("r3", Role::kRollout).ok());
  ASSERT_TRUE(g.MarkBootstrapped("r3", 1).ok());
  // Mid-version: the epoch and its ranks are untouched.
  EXPECT_EQ(g.epoch().number, 1);
  EXPECT_THAT(g.epoch().ranks, ElementsAre("L", "r1", "r2"));
  EXPECT_EQ(g.AckVersion("r3", 1).code(), absl::StatusCode::kFailedPrecondition);  // holds no rank
  AckAll(g, 1);
  auto v = g.BeginVersion(2, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->new_epoch);
  EXPECT_EQ(v->epoch.number, 2);
  EXPECT_EQ(v->epoch.comm_slot, 2);  // fresh slot
  EXPECT_TRUE(v->epoch.unique_id.empty());
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r1", "r2", "r3"));
}

TEST(GroupMembershipTest, NoChangeKeepsTheEpochAndItsCommunicator) {
  GroupMembership g = ThreeMemberGroup();
  ASSERT_TRUE(g.SetUniqueId(1, std::string(kNcclUniqueIdBytes, 'x')).ok());
  AckAll(g, 1);
  auto v = g.BeginVersion(2, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->new_epoch);
  EXPECT_EQ(v->epoch.number, 1);
  EXPECT_EQ(v->epoch.unique_id, std::string(kNcclUniqueIdBytes, 'x'));
  EXPECT_THAT(v->entered, IsEmpty());
  EXPECT_THAT(v->removed, IsEmpty());
}

TEST(GroupMembershipTest, VersionBoundaryRules) {
  GroupMembership g = ThreeMemberGroup();
  // Not increasing.
  EXPECT_EQ(g.BeginVersion(1, 10).status().code(), absl::StatusCode::kInvalidArgument);
  // Previous version not answered and not past its deadline.
  auto early = g.BeginVersion(2, 10);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.status().message(), HasSubstr("still in flight"));
  ASSERT_TRUE(g.AckVersion("r1", 1).ok());
  EXPECT_TRUE(g.in_flight());  // r2 still owes an answer
  EXPECT_EQ(g.AckVersion("r1", 2).code(), absl::StatusCode::kFailedPrecondition);  // wrong version
  EXPECT_EQ(g.AckVersion("L", 1).code(), absl::StatusCode::kInvalidArgument);        // the publisher
  EXPECT_EQ(g.AckVersion("nobody", 1).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(g.AckVersion("r2", 1).ok());
  EXPECT_TRUE(g.BeginVersion(2, 10).ok());
}

TEST(GroupMembershipTest, NoPublisherNoVersion) {
  GroupMembership g = NewGroup();
  ASSERT_TRUE(g.Join("r1", Role::kRollout).ok());
  ASSERT_TRUE(g.MarkBootstrapped("r1", 1).ok());
  auto v = g.BeginVersion(1, 0);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(v.status().message(), HasSubstr("no publisher"));
  EXPECT_EQ(g.current_version(), 0);
  // A second publisher is refused while one is present.
  ASSERT_TRUE(g.Join("L", Role::kPublisher).ok());
  EXPECT_EQ(g.Join("L2", Role::kPublisher).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(g.Join("r1", Role::kRollout).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(g.Join("", Role::kRollout).code(), absl::StatusCode::kInvalidArgument);
}

TEST(GroupMembershipTest, PublisherAloneNeedsNoCommunicator) {
  GroupMembership g = NewGroup();
  ASSERT_TRUE(g.Join("L", Role::kPublisher).ok());
  ASSERT_TRUE(g.Join("r1", Role::kRollout).ok());  // still bootstrapping
  auto v = g.BeginVersion(1, 0);
  ASSERT_TRUE(v.ok());
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L"));
  EXPECT_FALSE(v->epoch.needs_communicator());
  EXPECT_FALSE(g.in_flight());
  EXPECT_EQ(Via(g, "r1"), Transport::kGrpc);
  EXPECT_TRUE(g.BeginVersion(2, 1).ok());
}

TEST(GroupMembershipTest, LeaveActiveKeepsRankUntilBoundary) {
  GroupMembership g = ThreeMemberGroup();
  ASSERT_TRUE(g.Leave("r1").ok());
  EXPECT_EQ(State(g, "r1"), MemberState::kLeaving);
  EXPECT_EQ(g.epoch().RankOf("r1"), 1);
  EXPECT_EQ(Via(g, "r1"), Transport::kNccl);  // still receives this version: the others need it
  ASSERT_TRUE(g.AckVersion("r1", 1).ok());
  ASSERT_TRUE(g.AckVersion("r2", 1).ok());
  ASSERT_TRUE(g.Leave("r1").ok());  // idempotent
  auto v = g.BeginVersion(2, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->new_epoch);
  EXPECT_THAT(v->removed, ElementsAre("r1"));
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r2"));
  EXPECT_EQ(g.StateOf("r1").status().code(), absl::StatusCode::kNotFound);
}

TEST(GroupMembershipTest, LeaveBeforeEnteringIsImmediate) {
  GroupMembership g = ThreeMemberGroup();
  ASSERT_TRUE(g.Join("r3", Role::kRollout).ok());
  ASSERT_TRUE(g.Leave("r3").ok());
  EXPECT_EQ(g.StateOf("r3").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(g.Join("r4", Role::kRollout).ok());
  ASSERT_TRUE(g.MarkBootstrapped("r4", 1).ok());
  ASSERT_TRUE(g.Leave("r4").ok());
  EXPECT_EQ(g.StateOf("r4").status().code(), absl::StatusCode::kNotFound);
  AckAll(g, 1);
  auto v = g.BeginVersion(2, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_FALSE(v->new_epoch);  // nothing changed for the communicator
  EXPECT_EQ(g.Leave("r4").code(), absl::StatusCode::kNotFound);
}

TEST(GroupMembershipTest, MissedDeadlineDropsAtNextBoundaryAndSurvivorsRebuild) {
  GroupMembership g = ThreeMemberGroup();
  ASSERT_TRUE(g.Join("r3", Role::kRollout).ok());
  ASSERT_TRUE(g.MarkBootstrapped("r3", 1).ok());
  AckAll(g, 1);
  ASSERT_TRUE(g.BeginVersion(2, 1000).ok());  // epoch 2: L r1 r2 r3
  ASSERT_TRUE(g.SetUniqueId(2, std::string(kNcclUniqueIdBytes, 'a')).ok());
  // r2 dies mid-broadcast: r1 and r3's watchdogs abort their communicators and they report.
  ASSERT_TRUE(g.ReportAborted("r1", 2).ok());
  EXPECT_TRUE(g.epoch().aborted);
  EXPECT_EQ(Via(g, "r1"), Transport::kGrpc);  // survivors finish the version over gRPC
  EXPECT_EQ(Via(g, "r3"), Transport::kGrpc);
  ASSERT_TRUE(g.ReportAborted("r3", 2).ok());
  EXPECT_EQ(g.AckVersion("r3", 2).code(), absl::StatusCode::kFailedPrecondition);  // it said aborted
  EXPECT_TRUE(g.in_flight());  // r2 owes an answer
  EXPECT_THAT(g.CheckDeadlines(1000 + kDeadline - 1), IsEmpty());
  EXPECT_THAT(g.CheckDeadlines(1000 + kDeadline), ElementsAre("r2"));
  EXPECT_EQ(State(g, "r2"), MemberState::kDropped);
  EXPECT_FALSE(g.in_flight());
  EXPECT_EQ(g.AckVersion("r2", 2).code(), absl::StatusCode::kFailedPrecondition);  // too late
  EXPECT_EQ(Via(g, "r2"), Transport::kGrpc);

  auto v = g.BeginVersion(3, 1000 + kDeadline + 1);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->new_epoch);
  EXPECT_EQ(v->epoch.number, 3);
  EXPECT_FALSE(v->epoch.aborted);
  EXPECT_TRUE(v->epoch.unique_id.empty());  // a fresh id for the rebuilt communicator
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r1", "r3"));  // survivors keep their order
  EXPECT_THAT(v->removed, ElementsAre("r2"));
  EXPECT_EQ(Via(g, "r1"), Transport::kNccl);
  EXPECT_EQ(g.StateOf("r2").status().code(), absl::StatusCode::kNotFound);
}

TEST(GroupMembershipTest, BeginVersionChecksDeadlinesItself) {
  GroupMembership g = ThreeMemberGroup();  // version 1 began at t=0
  ASSERT_TRUE(g.AckVersion("r1", 1).ok());
  EXPECT_EQ(g.BeginVersion(2, kDeadline - 1).status().code(), absl::StatusCode::kFailedPrecondition);
  auto v = g.BeginVersion(2, kDeadline);  // r2 silent past the deadline: dropped, rebuilt now
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(v->removed, ElementsAre("r2"));
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r1"));
  EXPECT_EQ(v->epoch.number, 2);
}

TEST(GroupMembershipTest, AckBeforeAbortKeepsTheNcclCopy) {
  GroupMembership g = ThreeMemberGroup();
  ASSERT_TRUE(g.AckVersion("r1", 1).ok());
  ASSERT_TRUE(g.ReportAborted("r2", 1).ok());
  EXPECT_EQ(Via(g, "r1"), Transport::kNccl);  // it had every bucket
  EXPECT_EQ(Via(g, "r2"), Transport::kGrpc);
  EXPECT_EQ(g.ReportAborted("r1", 1).code(), absl::StatusCode::kFailedPrecondition);  // already acked
  EXPECT_FALSE(g.in_flight());
  auto v = g.BeginVersion(2, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->new_epoch);  // the communicator was aborted: rebuild with the same members
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r1", "r2"));
  EXPECT_THAT(v->removed, IsEmpty());
}

TEST(GroupMembershipTest, MarkDeadAbortsAVersionInFlight) {
  GroupMembership g = ThreeMemberGroup();
  ASSERT_TRUE(g.MarkDead("r2").ok());  // lease expired while it held a rank
  EXPECT_EQ(State(g, "r2"), MemberState::kDropped);
  EXPECT_TRUE(g.epoch().aborted);
  EXPECT_EQ(Via(g, "r1"), Transport::kGrpc);
  EXPECT_TRUE(g.in_flight());  // r1 still answers
  ASSERT_TRUE(g.ReportAborted("r1", 1).ok());
  EXPECT_FALSE(g.in_flight());
  auto v = g.BeginVersion(2, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r1"));
  EXPECT_THAT(v->removed, ElementsAre("r2"));
}

TEST(GroupMembershipTest, RestartedMemberOwesNoAnswerForTheOldEpoch) {
  GroupMembership g = ThreeMemberGroup();
  ASSERT_TRUE(g.MarkDead("r2").ok());
  ASSERT_TRUE(g.Join("r2", Role::kRollout).ok());  // back before the version settled
  ASSERT_TRUE(g.ReportAborted("r1", 1).ok());
  EXPECT_FALSE(g.in_flight());  // settled now, not at the deadline
  auto v = g.BeginVersion(2, 10);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r1"));
  EXPECT_EQ(State(g, "r2"), MemberState::kBootstrapping);
}

TEST(GroupMembershipTest, MarkDeadBetweenVersionsAndOfANonRank) {
  GroupMembership g = ThreeMemberGroup();
  AckAll(g, 1);
  ASSERT_TRUE(g.Join("r3", Role::kRollout).ok());
  ASSERT_TRUE(g.MarkDead("r3").ok());  // no rank: simply gone
  EXPECT_EQ(g.StateOf("r3").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(g.MarkDead("r1").ok());
  EXPECT_FALSE(g.epoch().aborted);  // nothing in flight
  auto v = g.BeginVersion(2, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->new_epoch);
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r2"));
}

TEST(GroupMembershipTest, DroppedMemberRejoinsThroughBootstrap) {
  GroupMembership g = ThreeMemberGroup();
  ASSERT_TRUE(g.AckVersion("r1", 1).ok());
  EXPECT_FALSE(g.epoch().aborted);
  EXPECT_THAT(g.CheckDeadlines(kDeadline), ElementsAre("r2"));
  EXPECT_TRUE(g.epoch().aborted);  // r2's silence left the communicator unusable
  // r2 restarts before the boundary: Join again, it bootstraps over gRPC.
  ASSERT_TRUE(g.Join("r2", Role::kRollout).ok());
  EXPECT_EQ(State(g, "r2"), MemberState::kBootstrapping);
  EXPECT_EQ(Via(g, "r2"), Transport::kGrpc);
  auto v = g.BeginVersion(2, kDeadline + 1);
  ASSERT_TRUE(v.ok());
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r1"));  // not yet: still bootstrapping
  ASSERT_TRUE(g.MarkBootstrapped("r2", 2).ok());
  ASSERT_TRUE(g.AckVersion("r1", 2).ok());
  auto v3 = g.BeginVersion(3, kDeadline + 2);
  ASSERT_TRUE(v3.ok());
  EXPECT_THAT(v3->epoch.ranks, ElementsAre("L", "r1", "r2"));
  EXPECT_THAT(v3->entered, ElementsAre("r2"));
}

TEST(GroupMembershipTest, MarkBootstrappedOnlyFromBootstrapping) {
  GroupMembership g = ThreeMemberGroup();
  EXPECT_EQ(g.MarkBootstrapped("r1", 1).code(), absl::StatusCode::kFailedPrecondition);  // active
  EXPECT_EQ(g.MarkBootstrapped("zz", 1).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(g.Join("r3", Role::kRollout).ok());
  EXPECT_EQ(g.MarkBootstrapped("r3", 0).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(g.MarkBootstrapped("r3", 1).ok());
  EXPECT_EQ(g.MarkBootstrapped("r3", 1).code(), absl::StatusCode::kFailedPrecondition);  // ready
}

TEST(GroupMembershipTest, NewcomersEnterInJoinOrder) {
  GroupMembership g = ThreeMemberGroup();
  for (const char* id : {"z", "a", "m"}) ASSERT_TRUE(g.Join(id, Role::kRollout).ok());
  // Bootstrapped in another order; the rank order is the join order.
  for (const char* id : {"m", "z", "a"}) ASSERT_TRUE(g.MarkBootstrapped(id, 1).ok());
  AckAll(g, 1);
  auto v = g.BeginVersion(2, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L", "r1", "r2", "z", "a", "m"));
}

TEST(GroupMembershipTest, PublisherReplacement) {
  GroupMembership g = ThreeMemberGroup();
  AckAll(g, 1);
  ASSERT_TRUE(g.Leave("L").ok());  // the learner restarts under a new id
  EXPECT_EQ(g.BeginVersion(2, 10).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(g.Join("L2", Role::kPublisher).ok());  // allowed: the old one is leaving
  auto v = g.BeginVersion(2, 10);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_THAT(v->epoch.ranks, ElementsAre("L2", "r1", "r2"));
  EXPECT_THAT(v->removed, UnorderedElementsAre("L"));
}

TEST(GroupMembershipTest, UniqueIdOncePerEpoch) {
  GroupMembership g = ThreeMemberGroup();
  EXPECT_EQ(g.SetUniqueId(2, std::string(kNcclUniqueIdBytes, 'a')).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(g.SetUniqueId(1, "short").code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(g.SetUniqueId(1, std::string(kNcclUniqueIdBytes, 'a')).ok());
  EXPECT_EQ(g.SetUniqueId(1, std::string(kNcclUniqueIdBytes, 'b')).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(g.epoch().unique_id, std::string(kNcclUniqueIdBytes, 'a'));
}

}  // namespace
}  // namespace swarr::dist
