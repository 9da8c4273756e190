#include "learner/service/run_state.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
    EXPECT_TRUE((*log)->Contains("a/2"));  // a member of a trained group
    EXPECT_FALSE((*log)->Contains("b/0"));
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

std::string GroupId(int64_t n) { return absl::StrFormat("rl/c1-%06d", n); }

// Bounded memory (docs/reliability.md "Bounded memory of the trained-id log"): lines a
// checkpoint holds are settled into intervals of group numbers; the log keeps only the steps
// since the newest checkpoint exactly, also when it is opened again.
TEST(TrainedIdsLogTest, SettledLinesKeepFewEntriesAcrossReopensAndStayTrained) {
  const std::string path = TempDir() + "/trained_ids.log";
  const int kSize = 4, kPerStep = 8, kSteps = 500;  // 16,000 ids
  int64_t most = 0;
  {
    auto log = TrainedIdsLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    int64_t next = 0;
    for (int step = 0; step < kSteps; ++step) {
      std::vector<std::string> ids;
      for (int g = 0; g < kPerStep; ++g, ++next) {
        if (next % 10 == 7) continue;  // a group dropped stale: never trained (a hole)
        for (int k = 0; k < kSize; ++k) ids.push_back(absl::StrCat(GroupId(next), "/", k));
      }
      ASSERT_TRUE((*log)->Append(ids).ok());
      if (step % 5 == 4) ASSERT_TRUE((*log)->Settle((*log)->lines()).ok());  // a checkpoint
      most = std::max(most, (*log)->retained());
    }
    EXPECT_EQ((*log)->lines(), int64_t{kSteps} * kPerStep * kSize * 9 / 10);
    EXPECT_EQ((*log)->settled_lines(), (*log)->lines());
    EXPECT_EQ(*ReadFile(path + ".settled"), absl::StrCat((*log)->lines(), "\n"));
  }
  // At most the ids of 5 steps, plus one interval between two holes per 10 groups.
  EXPECT_LE(most, 5 * kPerStep * kSize + kSteps * kPerStep / 10 + 1);
  auto log = TrainedIdsLog::Open(path);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ((*log)->lines(), int64_t{kSteps} * kPerStep * kSize * 9 / 10);
  EXPECT_LE((*log)->retained(), kSteps * kPerStep / 10 + 1);
  // Every id of a trained group is still trained, and settled; a hole is not.
  EXPECT_TRUE((*log)->Contains(GroupId(0) + "/0"));
  EXPECT_TRUE((*log)->Contains(GroupId(1234) + "/3"));
  EXPECT_EQ((*log)->FirstLine(GroupId(1234) + "/3"), (*log)->settled_lines() - 1);
  EXPECT_FALSE((*log)->Contains(GroupId(17) + "/0"));
  EXPECT_EQ((*log)->FirstLine(GroupId(17) + "/0"), -1);
  EXPECT_EQ((*log)->trained_twice(), 0);
  // A settled group trained again is counted.
  ASSERT_TRUE((*log)->Append({GroupId(3) + "/1"}).ok());
  EXPECT_EQ((*log)->trained_twice(), 1);
  EXPECT_EQ((*log)->FirstLine(GroupId(3) + "/1"), (*log)->settled_lines() - 1);
  const std::string bad = TempDir() + "/trained_ids.log";
  std::ofstream(bad + ".settled") << "many\n";
  EXPECT_EQ(TrainedIdsLog::Open(bad).status().code(), absl::StatusCode::kDataLoss);
}

// A step takes a group whole: another member of a trained group is trained too (a copy of a
// member its step dropped as stale is a duplicate), in the recent part as in the settled one.
// A cut below the settled count (a checkpoint gone) re-reads the file and still cuts exactly.
TEST(TrainedIdsLogTest, GroupsCountWholeAndACutBelowTheSettledLinesIsExact) {
  const std::string path = TempDir() + "/trained_ids.log";
  auto log = TrainedIdsLog::Open(path);
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->Append({GroupId(0) + "/0", GroupId(0) + "/2", "odd-id"}).ok());
  EXPECT_TRUE((*log)->Contains(GroupId(0) + "/1"));
  EXPECT_EQ((*log)->FirstLine(GroupId(0) + "/1"), 0);
  EXPECT_EQ((*log)->FirstLine(GroupId(0) + "/2"), 1);
  EXPECT_FALSE((*log)->Contains("odd"));
  ASSERT_TRUE((*log)->Settle(3).ok());
  ASSERT_TRUE((*log)->Append({GroupId(1) + "/0", GroupId(2) + "/0"}).ok());
  ASSERT_TRUE((*log)->Settle(2).ok());  // below: no-op
  EXPECT_EQ((*log)->settled_lines(), 3);
  EXPECT_TRUE((*log)->Contains("odd-id"));
  EXPECT_EQ((*log)->FirstLine("odd-id"), 2);
  EXPECT_EQ((*log)->FirstLine(GroupId(2) + "/3"), 4);
  ASSERT_TRUE((*log)->TruncateTo(1).ok());
  EXPECT_EQ((*log)->lines(), 1);
  EXPECT_EQ((*log)->settled_lines(), 1);
  EXPECT_EQ(*ReadFile(path), GroupId(0) + "/0\n");
  EXPECT_EQ(*ReadFile(path + ".settled"), "1\n");
  EXPECT_FALSE((*log)->Contains("odd-id"));
  EXPECT_FALSE((*log)->Contains(GroupId(1) + "/0"));
  EXPECT_TRUE((*log)->Contains(GroupId(0) + "/3"));
  EXPECT_EQ((*log)->trained_twice(), 0);
}

}  // namespace
}  // namespace swarr
