#include "common/dist/zero_partition.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr::dist {
namespace {

using ::testing::HasSubstr;

// Every element of every parameter is owned exactly once, in order; shards are contiguous,
// equal-length (padded), balanced.
void CheckPlan(const std::vector<ParamSpec>& params, const ZeroPlan& plan, int world) {
  ASSERT_EQ(plan.world_size, world);
  ASSERT_EQ(static_cast<int>(plan.ranks.size()), world);
  int64_t total = 0;
  for (const auto& p : params) total += p.numel;
  EXPECT_EQ(plan.total_numel, total);
  EXPECT_GE(plan.shard_numel * world, total);
  int64_t flat = 0;
  size_t param = 0;
  int64_t in_param = 0;  // next element of `param` expected
  for (int r = 0; r < world; ++r) {
    const RankShard& s = plan.ranks[r];
    EXPECT_EQ(s.rank, r);
    EXPECT_EQ(s.padded_numel, plan.shard_numel);
    EXPECT_EQ(s.flat_begin, flat) << "rank " << r << " not contiguous";
    EXPECT_LE(s.numel(), plan.shard_numel);
    int64_t sliced = 0;
    for (const ParamSlice& sl : s.slices) {
      ASSERT_EQ(static_cast<size_t>(sl.param_index), param) << "rank " << r;
      ASSERT_EQ(sl.begin, in_param) << params[param].name;
      ASSERT_GT(sl.end, sl.begin);
      ASSERT_LE(sl.end, params[param].numel);
      EXPECT_EQ(sl.flat_begin, flat + sliced);
      sliced += sl.end - sl.begin;
      in_param = sl.end;
      if (in_param == params[param].numel) {
        ++param;
        in_param = 0;
      }
    }
    EXPECT_EQ(sliced, s.numel()) << "rank " << r;
    flat = s.flat_end;
    // Balanced: every rank owns a full shard until the elements run out.
    EXPECT_EQ(s.numel(), std::max<int64_t>(0, std::min(plan.shard_numel, total - r * plan.shard_numel)));
  }
  EXPECT_EQ(flat, total);
  EXPECT_EQ(param, params.size());
}

TEST(ZeroPartitionTest, HandMadeTable) {
  const std::vector<ParamSpec> params = {{"a", 10}, {"b", 3}, {"c", 7}};  // 20 elements
  auto plan = PlanZero1(params, 3);
  ASSERT_TRUE(plan.ok()) << plan.status();
  CheckPlan(params, *plan, 3);
  EXPECT_EQ(plan->shard_numel, 7);
  // rank 0: a[0,7); rank 1: a[7,10) b[0,3) c[0,1); rank 2: c[1,7) (6 real + 1 padding).
  ASSERT_EQ(plan->ranks[0].slices.size(), 1u);
  EXPECT_EQ(plan->ranks[0].slices[0].end, 7);
  ASSERT_EQ(plan->ranks[1].slices.size(), 3u);
  EXPECT_EQ(plan->ranks[1].slices[0].begin, 7);
  EXPECT_EQ(plan->ranks[1].slices[2].param_index, 2);
  EXPECT_EQ(plan->ranks[1].slices[2].end, 1);
  ASSERT_EQ(plan->ranks[2].slices.size(), 1u);
  EXPECT_EQ(plan->ranks[2].slices[0].begin, 1);
  EXPECT_EQ(plan->ranks[2].numel(), 6);
}

TEST(ZeroPartitionTest, OneRankOwnsEverything) {
  const std::vector<ParamSpec> params = {{"a", 10}, {"b", 3}};
  auto plan = PlanZero1(params, 1);
  ASSERT_TRUE(plan.ok());
  CheckPlan(params, *plan, 1);
  EXPECT_EQ(plan->ranks[0].slices.size(), 2u);
}

TEST(ZeroPartitionTest, MoreRanksThanElementsAndAlignment) {
  const std::vector<ParamSpec> params = {{"a", 2}, {"b", 1}};
  auto plan = PlanZero1(params, 8);
  ASSERT_TRUE(plan.ok());
  CheckPlan(params, *plan, 8);
  EXPECT_TRUE(plan->ranks[7].slices.empty());
  auto aligned = PlanZero1({{"a", 1000}, {"b", 24}}, 4, 128);
  ASSERT_TRUE(aligned.ok());
  EXPECT_EQ(aligned->shard_numel, 256);
  EXPECT_EQ(aligned->ranks[3].numel(), 1024 - 3 * 256);
}

TEST(ZeroPartitionTest, Errors) {
  EXPECT_THAT(PlanZero1({}, 2).status().message(), HasSubstr("empty"));
  EXPECT_THAT(PlanZero1({{"a", 1}}, 0).status().message(), HasSubstr("world_size"));
  EXPECT_THAT(PlanZero1({{"a", 0}}, 2).status().message(), HasSubstr("not positive"));
  EXPECT_THAT(PlanZero1({{"a", 2}, {"a", 2}}, 2).status().message(), HasSubstr("duplicate"));
  EXPECT_THAT(PlanZero1({{"a", 2}}, 2, 0).status().message(), HasSubstr("align_numel"));
}

TEST(ZeroPartitionTest, QwenParameterCounts) {
  int64_t n15 = 0, n7 = 0;
  for (const auto& p : DecoderParams(Qwen25_1p5B())) n15 += p.numel;
  for (const auto& p : DecoderParams(Qwen25_7B())) n7 += p.numel;
  EXPECT_EQ(n15, 1'543'714'304);
  EXPECT_EQ(n7, 7'615'616'512);  // "7.6B"
}

TEST(ZeroPartitionTest, Qwen7BOverRanks) {
  const std::vector<ParamSpec> params = DecoderParams(Qwen25_7B());
  for (int world : {1, 2, 4, 8}) {
    auto plan = PlanZero1(params, world, 128);
    ASSERT_TRUE(plan.ok()) << plan.status();
    CheckPlan(params, *plan, world);
    // Balanced by element count: shards differ by less than the alignment + the remainder rank.
    EXPECT_LE(plan->shard_numel - plan->total_numel / world, 128);
  }
}

// Where a 7B ZeRO-1 learner fits: 80 GB (H100, ~78 GiB usable) and 141 GB (H200, ~139 GiB).
// bf16 weights + bf16 grads replicated, fp32 master + AdamW moments sharded, 8 GiB of activations
// (one micro-batch under the token budget) and 3 GiB of context / NCCL overhead per rank.
TEST(ZeroPartitionTest, Qwen7BMemoryPerRank) {
  constexpr int64_t kGiB = int64_t{1} << 30;
  const int64_t h100 = 78 * kGiB, h200 = 139 * kGiB;
  int64_t n = 0;
  for (const auto& p : DecoderParams(Qwen25_7B())) n += p.numel;
  ZeroMemoryOptions o;
  o.activation_bytes = 8 * kGiB;
  std::printf("ZeRO-%d, Qwen2.5-7B (%lld params), GiB per rank:\n", o.zero_stage, static_cast<long long>(n));
  std::printf("ranks weights grads master moments act+ovh total fits80 fits141\n");
  bool fits80[9] = {}, fits141[9] = {};
  for (int world : {1, 2, 4, 8}) {
    const ZeroMemoryEstimate e = EstimateZeroMemory(n, world, o);
    fits80[world] = e.FitsIn(h100);
    fits141[world] = e.FitsIn(h200);
    std::printf("%5d %7.1f %5.1f %6.1f %7.1f %7.1f %5.1f %6s %7s\n", world, 1.0 * e.weights / kGiB,
                1.0 * e.grads / kGiB, 1.0 * e.master / kGiB, 1.0 * e.moments / kGiB,
                1.0 * (e.activations + e.overhead) / kGiB, 1.0 * e.total() / kGiB, fits80[world] ? "yes" : "no",
                fits141[world] ? "yes" : "no");
  }
  // One device: fp32 master + moments alone are 85 GiB (~91 GB): no 80 GB card holds it.
  const ZeroMemoryEstimate one = EstimateZeroMemory(n, 1, o);
  EXPECT_NEAR(1.0 * (one.master + one.moments) / 1e9, 91.4, 0.1);
  EXPECT_NEAR(1.0 * (one.weights + one.grads + one.master + one.moments) / 1e9, 121.8, 0.1);  // "~122 GB"
  EXPECT_FALSE(fits80[1]);
  EXPECT_TRUE(fits141[1]);  // just: 124.5 GiB of 139
  EXPECT_FALSE(fits80[2]);  // 81.9 GiB
  EXPECT_TRUE(fits141[2]);
  EXPECT_TRUE(fits80[4]);   // 60.6 GiB
  EXPECT_TRUE(fits80[8]);   // 50.0 GiB
  // ZeRO-2 (gradients sharded too) brings 2 ranks under 80 GB.
  o.zero_stage = 2;
  EXPECT_TRUE(EstimateZeroMemory(n, 2, o).FitsIn(h100));
  EXPECT_LT(EstimateZeroMemory(n, 8, o).total(), EstimateZeroMemory(n, 4, o).total());
}

}  // namespace
}  // namespace swarr::dist
