#include "learner/service/known_ids.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

std::string GroupName(int64_t n) { return absl::StrFormat("rl/c1-%06d", n); }
std::string TrajId(int64_t n, int k) { return absl::StrCat(GroupName(n), "/", k); }

TEST(KnownTrajectoryIdsTest, ManyGroupsKeepFewEntriesAndEveryIdStaysKnown) {
  KnownTrajectoryIds known;
  // 50k groups of 4; 32 groups in flight at a time, their members arriving interleaved.
  const int64_t kWindow = 32, kGroups = 1600 * kWindow;
  const int kSize = 4;
  std::mt19937 rng(3);
  int64_t most = 0;
  for (int64_t base = 0; base < kGroups; base += kWindow) {
    std::vector<std::pair<int64_t, int>> w;
    for (int64_t n = base; n < base + kWindow; ++n) {
      for (int k = 0; k < kSize; ++k) w.emplace_back(n, k);
    }
    std::shuffle(w.begin(), w.end(), rng);
    for (const auto& [n, k] : w) {
      ASSERT_FALSE(known.Contains(TrajId(n, k)));
      known.Insert(TrajId(n, k), GroupName(n), kSize);
      ASSERT_TRUE(known.Contains(TrajId(n, k)));
      most = std::max(most, known.retained());
    }
  }
  EXPECT_EQ(known.retained(), 1);  // one interval of complete groups
  EXPECT_LE(most, kWindow + 1);
  // A duplicate of an early group, long after its members were compacted, is still known.
  for (int k = 0; k < kSize; ++k) {
    EXPECT_TRUE(known.Contains(TrajId(0, k)));
    EXPECT_TRUE(known.Contains(TrajId(kGroups / 2, k)));
  }
  EXPECT_FALSE(known.Contains(TrajId(kGroups, 0)));  // the next group: new
  EXPECT_FALSE(known.Contains(absl::StrFormat("rl/c2-%06d/0", 5)));  // another coordinator's group
}

TEST(KnownTrajectoryIdsTest, AGroupInProgressKnowsOnlyTheMembersSeen) {
  KnownTrajectoryIds known;
  known.Insert(TrajId(7, 0), GroupName(7), 3);
  known.Insert(TrajId(7, 2), GroupName(7), 3);
  EXPECT_TRUE(known.Contains(TrajId(7, 0)));
  EXPECT_FALSE(known.Contains(TrajId(7, 1)));
  EXPECT_TRUE(known.Contains(TrajId(7, 2)));
  EXPECT_FALSE(known.Contains(TrajId(7, 3)));
  EXPECT_EQ(known.retained(), 1);
  known.Insert(TrajId(7, 1), GroupName(7), 3);
  EXPECT_TRUE(known.Contains(TrajId(7, 1)));
  EXPECT_EQ(known.retained(), 1);  // now as an interval
  // Every member of a complete group is known, as is any other trajectory claiming it.
  EXPECT_TRUE(known.Contains(TrajId(7, 0)));
  EXPECT_TRUE(known.Contains(TrajId(7, 3)));
}

TEST(KnownTrajectoryIdsTest, IdsOfAnotherFormAreKeptExactly) {
  KnownTrajectoryIds known;
  known.Insert("t-1", "g", 4);                      // not "<group>/<k>"
  known.Insert("g/01", "g", 4);                     // leading zero
  known.Insert("h/5", "h", 4);                      // k >= group_size
  known.Insert("x/0", "y", 4);                      // another group's name
  known.Insert(TrajId(1, 0), GroupName(1), 2);
  known.Insert(TrajId(1, 1), GroupName(1), 3);      // another size than the first member's
  for (const std::string& id : {std::string("t-1"), std::string("g/01"), std::string("h/5"), std::string("x/0"),
                                TrajId(1, 0), TrajId(1, 1)}) {
    EXPECT_TRUE(known.Contains(id)) << id;
  }
  EXPECT_FALSE(known.Contains("g/1"));
  EXPECT_FALSE(known.Contains("h/4"));
  EXPECT_FALSE(known.Contains("y/0"));
}

}  // namespace
}  // namespace swarr
