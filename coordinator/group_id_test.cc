#include "coordinator/group_id.h"

#include <string>

#include "gtest/gtest.h"

namespace swarr {
namespace {

TEST(GroupIdTest, RoundTripsAndRejectsOtherShapes) {
  const std::string id = GroupId("rl", "1a2b3c4d", 7);
  EXPECT_EQ(id, "rl/1a2b3c4d-000007");
  GroupIdParts p;
  ASSERT_TRUE(ParseGroupId(id, &p));
  EXPECT_EQ(p.stage, "rl");
  EXPECT_EQ(p.incarnation, "1a2b3c4d");
  EXPECT_EQ(p.n, 7);
  for (const char* bad : {"", "rl", "/abc-1", "rl/-1", "rl/abc-", "rl/abc-x"}) {
    EXPECT_FALSE(ParseGroupId(bad, &p)) << bad;
  }
}

}  // namespace
}  // namespace swarr
