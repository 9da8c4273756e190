#include "common/dist/bucket_plan.h"

#include <cstdio>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/dist/zero_partition.h"

namespace swarr::dist {
namespace {

using ::testing::HasSubstr;

TensorSpec T(const std::string& name, int64_t nbytes, const std::string& dtype = "BF16") {
  return TensorSpec{name, dtype, {}, nbytes};
}

BucketPlanOptions Opt(int64_t target, int64_t align = 256) {
  BucketPlanOptions o;
  o.target_bucket_bytes = target;
  o.alignment_bytes = align;
  return o;
}

// Every tensor appears once, in table order, inside its bucket, aligned, without overlap.
void CheckInvariants(const std::vector<TensorSpec>& table, const BucketPlan& plan) {
  int next = 0;
  int64_t total = 0, payload = 0;
  for (size_t b = 0; b < plan.buckets.size(); ++b) {
    const Bucket& bucket = plan.buckets[b];
    EXPECT_EQ(bucket.index, static_cast<int>(b));
    ASSERT_FALSE(bucket.entries.empty()) << "bucket " << b;
    EXPECT_EQ(bucket.bytes % plan.options.alignment_bytes, 0) << "bucket " << b;
    int64_t end = 0, bucket_payload = 0;
    for (const BucketEntry& e : bucket.entries) {
      ASSERT_EQ(e.tensor_index, next) << "order";
      EXPECT_EQ(e.name, table[next].name);
      EXPECT_EQ(e.nbytes, table[next].nbytes);
      EXPECT_EQ(e.offset % plan.options.alignment_bytes, 0) << e.name;
      EXPECT_GE(e.offset, end) << e.name << " overlaps";
      end = e.offset + e.nbytes;
      bucket_payload += e.nbytes;
      ++next;
    }
    EXPECT_LE(end, bucket.bytes);
    EXPECT_GT(end + plan.options.alignment_bytes, bucket.bytes) << "more padding than alignment";
    // Only a bucket with a single oversized tensor may exceed the target.
    if (bucket.bytes > plan.options.target_bucket_bytes) {
      EXPECT_EQ(bucket.entries.size(), 1u) << "bucket " << b;
      EXPECT_GT(bucket.entries[0].nbytes, plan.options.target_bucket_bytes);
    }
    EXPECT_EQ(bucket.payload_bytes, bucket_payload);
    total += bucket.bytes;
    payload += bucket_payload;
  }
  EXPECT_EQ(next, static_cast<int>(table.size()));
  EXPECT_EQ(plan.num_tensors, static_cast<int>(table.size()));
  EXPECT_EQ(plan.total_bytes, total);
  EXPECT_EQ(plan.payload_bytes, payload);
  EXPECT_EQ(plan.fingerprint, PlanFingerprint(plan));
}

TEST(BucketPlanTest, HandMadeTableSizesOffsetsAndOrder) {
  // target 1024, align 256.
  const std::vector<TensorSpec> table = {T("a", 100), T("b", 300), T("c", 200), T("d", 600), T("e", 2)};
  auto plan = PlanBuckets(table, Opt(1024));
  ASSERT_TRUE(plan.ok()) << plan.status();
  CheckInvariants(table, *plan);
  // a @0 (ends 100), b @256 (ends 556), c @768 (ends 968) -> bucket 0 of 1024 bytes;
  // d does not fit at 1024 -> bucket 1: d @0 (ends 600), e @768 (ends 770) -> 1024 bytes.
  ASSERT_EQ(plan->buckets.size(), 2u);
  const auto& b0 = plan->buckets[0].entries;
  ASSERT_EQ(b0.size(), 3u);
  EXPECT_EQ(b0[0].offset, 0);
  EXPECT_EQ(b0[1].offset, 256);
  EXPECT_EQ(b0[2].offset, 768);
  EXPECT_EQ(plan->buckets[0].bytes, 1024);
  EXPECT_EQ(plan->buckets[0].payload_bytes, 600);
  const auto& b1 = plan->buckets[1].entries;
  ASSERT_EQ(b1.size(), 2u);
  EXPECT_EQ(b1[0].name, "d");
  EXPECT_EQ(b1[0].offset, 0);
  EXPECT_EQ(b1[1].offset, 768);
  EXPECT_EQ(plan->buckets[1].bytes, 1024);
  EXPECT_EQ(plan->total_bytes, 2048);
  EXPECT_EQ(plan->payload_bytes, 1202);
  EXPECT_EQ(plan->max_bucket_bytes(), 1024);
}

TEST(BucketPlanTest, ExactFitStaysInBucket) {
  const std::vector<TensorSpec> table = {T("a", 512), T("b", 512), T("c", 2)};
  auto plan = PlanBuckets(table, Opt(1024));
  ASSERT_TRUE(plan.ok()) << plan.status();
  CheckInvariants(table, *plan);
  ASSERT_EQ(plan->buckets.size(), 2u);
  EXPECT_EQ(plan->buckets[0].entries.size(), 2u);
  EXPECT_EQ(plan->buckets[0].bytes, 1024);
  EXPECT_EQ(plan->buckets[1].bytes, 256);  // 2 bytes padded to the alignment
}

TEST(BucketPlanTest, HugeTensorGetsItsOwnBucket) {
  const std::vector<TensorSpec> table = {T("small0", 100), T("huge", 5000), T("small1", 100), T("small2", 100)};
  auto plan = PlanBuckets(table, Opt(1024));
  ASSERT_TRUE(plan.ok()) << plan.status();
  CheckInvariants(table, *plan);
  ASSERT_EQ(plan->buckets.size(), 3u);
  EXPECT_EQ(plan->buckets[0].entries.size(), 1u);
  ASSERT_EQ(plan->buckets[1].entries.size(), 1u);
  EXPECT_EQ(plan->buckets[1].entries[0].name, "huge");
  EXPECT_EQ(plan->buckets[1].bytes, 5120);  // 5000 aligned up to 256
  EXPECT_EQ(plan->buckets[2].entries.size(), 2u);  // small1, small2 together after it
}

TEST(BucketPlanTest, HugeTensorFirstAndLast) {
  const std::vector<TensorSpec> table = {T("embed", 4096), T("x", 10), T("lm_head", 4096)};
  auto plan = PlanBuckets(table, Opt(1024));
  ASSERT_TRUE(plan.ok()) << plan.status();
  CheckInvariants(table, *plan);
  ASSERT_EQ(plan->buckets.size(), 3u);
  EXPECT_EQ(plan->buckets[2].entries[0].name, "lm_head");
}

TEST(BucketPlanTest, OtherAlignments) {
  const std::vector<TensorSpec> table = {T("a", 6), T("b", 12, "F32"), T("c", 2), T("d", 100)};
  for (int64_t align : {1, 2, 16, 4096}) {
    auto plan = PlanBuckets(table, Opt(8192, align));
    ASSERT_TRUE(plan.ok()) << plan.status();
    CheckInvariants(table, *plan);
  }
  auto plan = PlanBuckets(table, Opt(8192, 16));
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->buckets.size(), 1u);
  EXPECT_EQ(plan->buckets[0].entries[1].offset, 16);
  EXPECT_EQ(plan->buckets[0].entries[2].offset, 32);
  EXPECT_EQ(plan->buckets[0].entries[3].offset, 48);
  EXPECT_EQ(plan->buckets[0].bytes, 160);
}

TEST(BucketPlanTest, RealisticShapeInConfiguredRange) {
  // A Qwen2.5-1.5B-like bf16 table: 28 layers + embeddings (tied), 512 MiB buckets.
  std::vector<TensorSpec> table;
  const int64_t h = 1536, inter = 8960, kv = 256, vocab = 151936;
  table.push_back({"model.embed_tokens.weight", "BF16", {vocab, h}, vocab * h * 2});
  for (int l = 0; l < 28; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    table.push_back({p + "self_attn.q_proj.weight", "BF16", {h, h}, h * h * 2});
    table.push_back({p + "self_attn.q_proj.bias", "BF16", {h}, h * 2});
    table.push_back({p + "self_attn.k_proj.weight", "BF16", {kv, h}, kv * h * 2});
    table.push_back({p + "self_attn.v_proj.weight", "BF16", {kv, h}, kv * h * 2});
    table.push_back({p + "self_attn.o_proj.weight", "BF16", {h, h}, h * h * 2});
    table.push_back({p + "mlp.gate_proj.weight", "BF16", {inter, h}, inter * h * 2});
    table.push_back({p + "mlp.up_proj.weight", "BF16", {inter, h}, inter * h * 2});
    table.push_back({p + "mlp.down_proj.weight", "BF16", {h, inter}, inter * h * 2});
    table.push_back({p + "input_layernorm.weight", "BF16", {h}, h * 2});
  }
  table.push_back({"model.norm.weight", "BF16", {h}, h * 2});
  BucketPlanOptions o;  // defaults: 512 MiB, 256 B
  ASSERT_TRUE(ValidateBucketTarget(o).ok());
  auto plan = PlanBuckets(table, o);
  ASSERT_TRUE(plan.ok()) << plan.status();
  CheckInvariants(table, *plan);
  EXPECT_GE(plan->buckets.size(), 5u);
  EXPECT_LE(plan->buckets.size(), 8u);
  EXPECT_LE(plan->max_bucket_bytes(), o.target_bucket_bytes);
  EXPECT_LT(plan->total_bytes - plan->payload_bytes, 256 * static_cast<int64_t>(table.size()));
}

// The Qwen2.5 shapes in bf16 at the configurable targets (docs/multi-gpu.md's table).
TEST(BucketPlanTest, QwenShapesAtTheConfiguredTargets) {
  for (const auto& [label, shape] : {std::pair{"1.5B", Qwen25_1p5B()}, std::pair{"7B", Qwen25_7B()}}) {
    std::vector<TensorSpec> table;
    for (const ParamSpec& p : DecoderParams(shape)) table.push_back({p.name, "BF16", {}, p.numel * 2});
    for (int64_t target : {256 * kMiB, 512 * kMiB, 1 * kGiB}) {
      BucketPlanOptions o;
      o.target_bucket_bytes = target;
      ASSERT_TRUE(ValidateBucketTarget(o).ok());
      auto plan = PlanBuckets(table, o);
      ASSERT_TRUE(plan.ok()) << plan.status();
      CheckInvariants(table, *plan);
      int oversized = 0;
      for (const Bucket& b : plan->buckets) oversized += b.bytes > target;
      std::printf("%-4s target %4lld MiB: %3zu buckets, %6.3f GB payload, padding %lld B, largest %4lld MiB, %d oversized\n",
                  label, static_cast<long long>(target / kMiB), plan->buckets.size(), plan->payload_bytes / 1e9,
                  static_cast<long long>(plan->total_bytes - plan->payload_bytes),
                  static_cast<long long>(plan->max_bucket_bytes() / kMiB), oversized);
      // Nearly full buckets: at most one bucket's worth of slack per bucket boundary.
      EXPECT_LE(plan->total_bytes - plan->payload_bytes, 256 * static_cast<int64_t>(table.size()));
    }
  }
  // 7B's embedding and lm_head (152064 x 3584 bf16 = 1.09 GB) each exceed even 1 GiB: own buckets.
  std::vector<TensorSpec> table;
  for (const ParamSpec& p : DecoderParams(Qwen25_7B())) table.push_back({p.name, "BF16", {}, p.numel * 2});
  BucketPlanOptions o;
  o.target_bucket_bytes = kGiB;
  auto plan = PlanBuckets(table, o);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->buckets.front().entries.size(), 1u);
  EXPECT_EQ(plan->buckets.front().entries[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(plan->buckets.back().entries.size(), 1u);
  EXPECT_EQ(plan->buckets.back().entries[0].name, "lm_head.weight");
  EXPECT_EQ(plan->payload_bytes, 2 * 7'615'616'512);
}

TEST(BucketPlanTest, Errors) {
  EXPECT_THAT(PlanBuckets({}, Opt(1024)).status().message(), HasSubstr("empty"));
  EXPECT_THAT(PlanBuckets({T("a", 10), T("a", 10)}, Opt(1024)).status().message(), HasSubstr("duplicate name \"a\""));
  EXPECT_THAT(PlanBuckets({T("", 10)}, Opt(1024)).status().message(), HasSubstr("empty name"));
  EXPECT_THAT(PlanBuckets({T("a", -2)}, Opt(1024)).status().message(), HasSubstr("negative"));
  EXPECT_THAT(PlanBuckets({T("a", 3)}, Opt(1024)).status().message(), HasSubstr("whole number"));
  EXPECT_THAT(PlanBuckets({T("a", 4, "Q4")}, Opt(1024)).status().message(), HasSubstr("unknown dtype"));
  EXPECT_THAT(PlanBuckets({TensorSpec{"w", "BF16", {3, 4}, 20}}, Opt(1024)).status().message(),
              HasSubstr("12 elements"));
  EXPECT_TRUE(PlanBuckets({TensorSpec{"w", "BF16", {3, 4}, 24}}, Opt(1024)).ok());
  EXPECT_THAT(PlanBuckets({T("a", 2)}, Opt(1024, 3)).status().message(), HasSubstr("power of two"));
  EXPECT_THAT(PlanBuckets({T("a", 2)}, Opt(128, 256)).status().message(), HasSubstr("below alignment"));
  EXPECT_EQ(PlanBuckets({}, Opt(1024)).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BucketPlanTest, ConfigRange) {
  EXPECT_TRUE(ValidateBucketTarget(Opt(256 * kMiB)).ok());
  EXPECT_TRUE(ValidateBucketTarget(Opt(1 * kGiB)).ok());
  EXPECT_THAT(ValidateBucketTarget(Opt(255 * kMiB)).message(), HasSubstr("bucket_bytes"));
  EXPECT_THAT(ValidateBucketTarget(Opt(1 * kGiB + 256)).message(), HasSubstr("bucket_bytes"));
  EXPECT_THAT(ValidateBucketTarget(Opt(512 * kMiB, 8192)).message(), HasSubstr("bucket_alignment"));
  EXPECT_THAT(ValidateBucketTarget(Opt(512 * kMiB, 0)).message(), HasSubstr("bucket_alignment"));
}

TEST(BucketPlanTest, FingerprintAgreesAndDetectsDifferences) {
  const std::vector<TensorSpec> table = {T("a", 100), T("b", 300), T("c", 200), T("d", 600)};
  auto p1 = PlanBuckets(table, Opt(1024));
  auto p2 = PlanBuckets(table, Opt(1024));
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(p1->fingerprint, p2->fingerprint);
  EXPECT_TRUE(ComparePlans(*p1, *p2).ok());

  // Different target, alignment, a renamed tensor, a changed dtype, a reordered table.
  auto other_target = PlanBuckets(table, Opt(2048));
  auto other_align = PlanBuckets(table, Opt(1024, 128));
  auto renamed = PlanBuckets({T("a", 100), T("B", 300), T("c", 200), T("d", 600)}, Opt(1024));
  auto retyped = PlanBuckets({T("a", 100), T("b", 300, "F16"), T("c", 200), T("d", 600)}, Opt(1024));
  auto reordered = PlanBuckets({T("b", 300), T("a", 100), T("c", 200), T("d", 600)}, Opt(1024));
  for (const auto* p : {&other_target, &other_align, &renamed, &retyped, &reordered}) {
    ASSERT_TRUE(p->ok());
    EXPECT_NE((*p)->fingerprint, p1->fingerprint);
    absl::Status s = ComparePlans(*p1, **p);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(s.message(), HasSubstr("broadcast plans differ"));
  }
  EXPECT_THAT(ComparePlans(*p1, *renamed).message(), HasSubstr("\"b\""));

  // A plan tampered with after planning (offset moved) is caught by the fingerprint and compare.
  BucketPlan tampered = *p1;
  tampered.buckets[0].entries[1].offset += 256;
  EXPECT_NE(PlanFingerprint(tampered), p1->fingerprint);
  EXPECT_THAT(ComparePlans(*p1, tampered).message(), HasSubstr("entry 1"));
  // Same layout but a stale fingerprint field.
  BucketPlan stale = *p1;
  stale.fingerprint ^= 1;
  EXPECT_THAT(ComparePlans(*p1, stale).message(), HasSubstr("fingerprint"));
}

}  // namespace
}  // namespace swarr::dist
