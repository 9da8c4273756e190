#include "common/util/sequence_id_set.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

std::string Id(const std::string& key, int64_t n) { return absl::StrFormat("%s-%06d", key, n); }

TEST(SequenceIdSetTest, ManyGroupsFinishedOutOfOrderKeepFewEntries) {
  SequenceIdSet f;
  // 200k groups finishing in shuffled windows of 64 (groups in flight finish in any order).
  std::mt19937 rng(7);
  const int64_t kGroups = 200000, kWindow = 64;
  int64_t most = 0;
  for (int64_t base = 0; base < kGroups; base += kWindow) {
    std::vector<int64_t> w;
    for (int64_t n = base; n < base + kWindow; ++n) w.push_back(n);
    std::shuffle(w.begin(), w.end(), rng);
    for (int64_t n : w) {
      ASSERT_TRUE(f.Insert(Id("rl/c1", n)));
      most = std::max(most, f.retained());
    }
  }
  EXPECT_EQ(f.size(), kGroups);
  EXPECT_EQ(f.retained(), 1);  // one interval [0, kGroups)
  EXPECT_LE(most, kWindow);    // never more than the window out of order
}

TEST(SequenceIdSetTest, AFinishedIdIsStillKnownAfterItsRunWasCompacted) {
  SequenceIdSet f;
  for (int64_t n = 0; n < 1000; ++n) ASSERT_TRUE(f.Insert(Id("rl/c1", n)));
  ASSERT_EQ(f.retained(), 1);
  for (int64_t n : {0, 1, 499, 999}) {
    EXPECT_TRUE(f.Contains(Id("rl/c1", n))) << n;
    EXPECT_FALSE(f.Insert(Id("rl/c1", n))) << n;  // a duplicate report is refused
  }
  EXPECT_EQ(f.size(), 1000);
  EXPECT_FALSE(f.Contains(Id("rl/c1", 1000)));  // not finished yet
  EXPECT_FALSE(f.Contains(Id("rl/c2", 5)));     // another coordinator incarnation
  EXPECT_FALSE(f.Contains(Id("eval/c1", 5)));   // another stage
  EXPECT_FALSE(f.Contains("rl/c1-5"));          // another spelling is another id
}

TEST(SequenceIdSetTest, HolesStayUnfinishedAndCloseWhenTheirGroupFinishes) {
  SequenceIdSet f;
  for (int64_t n = 0; n < 100; ++n) {
    if (n != 10 && n != 50) ASSERT_TRUE(f.Insert(Id("s/c", n)));
  }
  EXPECT_EQ(f.retained(), 3);
  EXPECT_FALSE(f.Contains(Id("s/c", 10)));
  EXPECT_FALSE(f.Contains(Id("s/c", 50)));
  EXPECT_TRUE(f.Contains(Id("s/c", 9)));
  EXPECT_TRUE(f.Contains(Id("s/c", 11)));
  EXPECT_TRUE(f.Insert(Id("s/c", 50)));
  EXPECT_TRUE(f.Insert(Id("s/c", 10)));
  EXPECT_EQ(f.retained(), 1);
  EXPECT_FALSE(f.Insert(Id("s/c", 10)));
  // A run that starts above 0 (a restarted coordinator draws on from the stage's count).
  for (int64_t n = 500; n < 600; ++n) ASSERT_TRUE(f.Insert(Id("s/c2", n)));
  EXPECT_EQ(f.retained(), 2);
  EXPECT_FALSE(f.Contains(Id("s/c2", 499)));
  EXPECT_TRUE(f.Contains(Id("s/c2", 500)));
  // Beyond six digits GroupId writes no padding.
  ASSERT_TRUE(f.Insert(Id("big/c", 999999)));
  ASSERT_TRUE(f.Insert(Id("big/c", 1000000)));
  EXPECT_TRUE(f.Contains("big/c-1000000"));
  EXPECT_EQ(f.retained(), 3);
}

TEST(SequenceIdSetTest, IdsOfAnotherFormAreKeptExactly) {
  SequenceIdSet f;
  for (const char* id : {"plain", "x-", "-5", "x-1a", "x--3", "x-0000001"}) {
    EXPECT_FALSE(f.Contains(id)) << id;
    EXPECT_TRUE(f.Insert(id)) << id;
    EXPECT_TRUE(f.Contains(id)) << id;
    EXPECT_FALSE(f.Insert(id)) << id;
  }
  EXPECT_FALSE(f.Contains("x-000001"));
  EXPECT_EQ(f.retained(), 6);
}

}  // namespace
}  // namespace swarr
