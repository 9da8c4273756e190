#include "learner/service/run_state.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "common/util/file.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

std::string TempDir() {
  char tmpl[] = "/tmp/swarr_run_state_XXXXXX";
  return ::mkdtemp(tmpl);
}

TEST(LearnerRunStateTest, RoundTrips) {
  const std::string path = TempDir() + "/state.json";
  EXPECT_EQ(ReadLearnerRunState(path).status().code(), absl::StatusCode::kNotFound);
  LearnerRunState s;
  s.trajectories_received = 12;
  s.trajectories_duplicate = 3;
  s.trajectories_dropped_stale = 2;
  s.latest_version = 7;
  s.latest_incarnation = "abc";
  s.kept_versions = {6, 7};
  s.stage_index = 2;
  s.stage_name = "rl";
  s.state = "RUNNING";
  ASSERT_TRUE(WriteLearnerRunState(path, s).ok());
  absl::StatusOr<LearnerRunState> r = ReadLearnerRunState(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->trajectories_received, 12);
  EXPECT_EQ(r->trajectories_duplicate, 3);
  EXPECT_EQ(r->trajectories_dropped_stale, 2);
  EXPECT_EQ(r->latest_version, 7);
  EXPECT_EQ(r->latest_incarnation, "abc");
  EXPECT_EQ(r->kept_versions, (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(r->stage_index, 2);
  EXPECT_EQ(r->stage_name, "rl");
  std::ofstream(path) << "{\"latest_version\": \"x\"}";
  EXPECT_EQ(ReadLearnerRunState(path).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TrainedIdsLogTest, CountsLinesAndRepeatsAcrossReopens) {
  const std::string path = TempDir() + "/trained_ids.log";
  {
    auto log = TrainedIdsLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    ASSERT_TRUE((*log)->Append({"a/0", "a/1"}).ok());
    EXPECT_TRUE((*log)->Contains("a/1"));
    EXPECT_FALSE((*log)->Contains("a/2"));
    EXPECT_EQ((*log)->lines(), 2);
    EXPECT_EQ((*log)->trained_twice(), 0);
  }
  // A crash mid-append leaves a torn line: it is cut off on the next open.
  std::ofstream(path, std::ios::app) << "b/0\nb/";
  auto log = TrainedIdsLog::Open(path);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ((*log)->lines(), 3);
  EXPECT_FALSE((*log)->Contains("b/"));
  ASSERT_TRUE((*log)->Append({"a/0", "c/0"}).ok());
  EXPECT_EQ((*log)->lines(), 5);
  EXPECT_EQ((*log)->trained_twice(), 1);
  EXPECT_EQ(*ReadFile(path), "a/0\na/1\nb/0\na/0\nc/0\n");
}

// Crash consistency: a learner resuming from a checkpoint cuts the ids of later steps.
TEST(TrainedIdsLogTest, TruncateToKeepsTheFirstLinesOnDiskAndInMemory) {
  const std::string path = TempDir() + "/trained_ids.log";
  {
    auto log = TrainedIdsLog::Open(path);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append({"g/0", "g/1"}).ok());  // step 1 (checkpointed: 2 lines)
    ASSERT_TRUE((*log)->Append({"h/0", "g/1"}).ok());  // step 2, lost
    EXPECT_EQ((*log)->FirstLine("g/1"), 1);
    EXPECT_EQ((*log)->FirstLine("h/0"), 2);
    EXPECT_EQ((*log)->trained_twice(), 1);
    ASSERT_TRUE((*log)->TruncateTo(2).ok());
    EXPECT_EQ((*log)->lines(), 2);
    EXPECT_FALSE((*log)->Contains("h/0"));
    EXPECT_EQ((*log)->FirstLine("h/0"), -1);
    EXPECT_EQ((*log)->trained_twice(), 0);
    ASSERT_TRUE((*log)->TruncateTo(5).ok());  // more than there are: no-op
    EXPECT_EQ((*log)->lines(), 2);
    ASSERT_TRUE((*log)->Append({"h/0"}).ok());  // trained again, once
    EXPECT_EQ((*log)->FirstLine("h/0"), 2);
    EXPECT_FALSE((*log)->TruncateTo(-1).ok());
  }
  auto log = TrainedIdsLog::Open(path);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ((*log)->lines(), 3);
  EXPECT_EQ((*log)->trained_twice(), 0);
  EXPECT_TRUE((*log)->Contains("h/0"));
}

}  // namespace
}  // namespace swarr
