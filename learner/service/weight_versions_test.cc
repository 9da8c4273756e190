#include "learner/service/weight_versions.h"

#include <memory>
#include <optional>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const WeightsBlob> Blob(int64_t version) {
  auto b = std::make_shared<WeightsBlob>();
  b->version.set_version(version);
  b->version.set_learner_incarnation("inc");
  return b;
}

v1::GetWeightsRequest Request(int64_t version, const std::string& inc = "inc") {
  v1::GetWeightsRequest r;
  r.set_version(version);
  r.set_learner_incarnation(inc);
  return r;
}

TEST(WeightVersionsTest, NumbersOnFromTheRunKeepsTheNewestAndNamesWhatIsMissing) {
  WeightVersions v;
  EXPECT_EQ(v.Next(), 0);
  EXPECT_EQ(v.Get(Request(0), "inc").status().code(), absl::StatusCode::kNotFound);
  v.SetRunLatest(4);  // an earlier learner of the run published up to 4
  EXPECT_EQ(v.Next(), 5);
  EXPECT_EQ(v.latest(), -1);
  for (int64_t n = 5; n <= 7; ++n) v.Add(n, Blob(n), std::nullopt);
  EXPECT_EQ(v.latest(), 7);
  EXPECT_EQ(v.first_published(), 5);
  EXPECT_EQ(v.run_latest(), 7);
  EXPECT_EQ(v.Next(), 8);
  EXPECT_EQ(v.kept(), (std::vector<int64_t>{6, 7}));  // keep 2 by default
  v1::GetWeightsRequest latest;
  latest.set_latest(true);
  EXPECT_EQ((*v.Get(latest, "inc"))->version.version(), 7);
  EXPECT_EQ((*v.Get(Request(6), "inc"))->version.version(), 6);
  absl::Status st = v.Get(Request(5), "inc").status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("version 5 is no longer kept; the oldest kept is 6 (newest 7)"));
  st = v.Get(Request(4), "inc").status();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("version 4 was never published by this learner (published: 5..7)"));
  st = v.Get(Request(6, "other"), "inc").status();
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("of learner incarnation other is not this learner's"));
  v.SetKeep(3);
  v.Add(8, Blob(8), std::nullopt);
  EXPECT_EQ(v.kept(), (std::vector<int64_t>{6, 7, 8}));
  v.SetKeep(1);
  EXPECT_EQ(v.kept(), (std::vector<int64_t>{8}));
}

TEST(WeightVersionsTest, CudaIpcExportsSayWhyTheyAreMissingAndGoWithTheirVersion) {
  WeightVersions v;
  v.Add(0, Blob(0), std::nullopt);
  absl::Status st = v.Ipc(0).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("version 0 was published from a model not on a GPU"));
  v.Add(1, Blob(1), absl::StatusOr<std::shared_ptr<const IpcWeights>>(absl::InternalError("no CUDA driver")));
  st = v.Ipc(1).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("version 1 has no CUDA IPC buffer (no CUDA driver); use GetWeights"));
  v.Add(2, Blob(2), std::nullopt);
  v.Add(3, Blob(3), std::nullopt);  // version 1 evicted, its export with it
  EXPECT_THAT(v.Ipc(1).status().message(), HasSubstr("not on a GPU"));
}

}  // namespace
}  // namespace swarr
