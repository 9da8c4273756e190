#include "common/dist/staging.h"

#include "gtest/gtest.h"

namespace swarr::dist {
namespace {

using State = StagingSlots::State;

TEST(StagingTest, ReceiveThenSwapBetweenSteps) {
  StagingSlots st(2, /*live_version=*/4);
  EXPECT_FALSE(st.SlotToSwap().has_value());
  auto slot = st.BeginReceive(5, 3);
  ASSERT_TRUE(slot.ok()) << slot.status();
  EXPECT_EQ(st.state(*slot), State::kReceiving);
  EXPECT_FALSE(st.SlotToSwap().has_value());  // decode keeps the live weights meanwhile
  ASSERT_TRUE(st.BucketDone(*slot, 0).ok());
  ASSERT_TRUE(st.BucketDone(*slot, 2).ok());
  EXPECT_EQ(st.CompleteReceive(*slot).status().code(), absl::StatusCode::kFailedPrecondition);  // 2 of 3
  EXPECT_EQ(st.BucketDone(*slot, 2).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(st.BucketDone(*slot, 3).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(st.BucketDone(*slot, 1).ok());
  auto done = st.CompleteReceive(*slot);
  ASSERT_TRUE(done.ok());
  EXPECT_FALSE(done->has_value());
  ASSERT_EQ(st.SlotToSwap(), *slot);
  EXPECT_EQ(st.live_version(), 4);
  ASSERT_TRUE(st.SwapDone(*slot).ok());
  EXPECT_EQ(st.live_version(), 5);
  EXPECT_EQ(st.state(*slot), State::kFree);
  EXPECT_EQ(st.SwapDone(*slot).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(StagingTest, DoubleBufferReceivesNextWhileReadyWaits) {
  StagingSlots st(2, 1);
  auto a = st.BeginReceive(2, 1);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(st.BucketDone(*a, 0).ok());
  ASSERT_TRUE(st.CompleteReceive(*a).ok());
  // Version 2 is ready but the engine has not reached a step boundary yet; version 3 arrives.
  auto b = st.BeginReceive(3, 1);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(*a, *b);
  EXPECT_EQ(st.SlotToSwap(), *a);  // 2 can still be swapped in while 3 streams
  ASSERT_TRUE(st.BucketDone(*b, 0).ok());
  auto done = st.CompleteReceive(*b);
  ASSERT_TRUE(done.ok());
  ASSERT_TRUE(done->has_value());
  EXPECT_EQ(**done, 2);  // superseded, never swapped
  EXPECT_EQ(st.state(*a), State::kFree);
  EXPECT_EQ(st.SlotToSwap(), *b);
  ASSERT_TRUE(st.SwapDone(*b).ok());
  EXPECT_EQ(st.live_version(), 3);
}

TEST(StagingTest, SingleSlotMustSwapBeforeNextReceive) {
  StagingSlots st(1, 1);
  auto a = st.BeginReceive(2, 1);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(st.BucketDone(*a, 0).ok());
  ASSERT_TRUE(st.CompleteReceive(*a).ok());
  EXPECT_EQ(st.BeginReceive(3, 1).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(st.SwapDone(*a).ok());
  EXPECT_TRUE(st.BeginReceive(3, 1).ok());
}

TEST(StagingTest, OneReceiveAtATimeAndVersionsOnlyMoveForward) {
  StagingSlots st(2, 5);
  EXPECT_EQ(st.BeginReceive(5, 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.BeginReceive(6, 0).status().code(), absl::StatusCode::kInvalidArgument);
  auto a = st.BeginReceive(6, 2);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(st.BeginReceive(7, 2).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(st.BucketDone(*a, 0).ok());
  ASSERT_TRUE(st.BucketDone(*a, 1).ok());
  ASSERT_TRUE(st.CompleteReceive(*a).ok());
  EXPECT_EQ(st.BeginReceive(6, 1).status().code(), absl::StatusCode::kInvalidArgument);  // already staged
}

TEST(StagingTest, AbortFreesTheSlotAndKeepsTheLiveWeights) {
  StagingSlots st(2, 1);
  auto a = st.BeginReceive(2, 4);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(st.BucketDone(*a, 0).ok());
  ASSERT_TRUE(st.AbortReceive(*a).ok());  // watchdog: the version comes over gRPC instead
  EXPECT_EQ(st.state(*a), State::kFree);
  EXPECT_EQ(st.live_version(), 1);
  EXPECT_FALSE(st.SlotToSwap().has_value());
  EXPECT_EQ(st.BucketDone(*a, 1).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(st.AbortReceive(7).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(st.BeginReceive(3, 4).ok());  // the next version may use NCCL again
}

}  // namespace
}  // namespace swarr::dist
