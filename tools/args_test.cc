#include "tools/args.h"

#include "gtest/gtest.h"

namespace swarr {
namespace {

TEST(ArgsTest, ParsesValuesAndBools) {
  auto a = Args::Parse({"--model", "m", "--top-p=0.9", "--greedy", "--ids", "1,2,3"}, {"model", "top-p", "ids"}, {"greedy"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a->Required("model"), "m");
  EXPECT_DOUBLE_EQ(**a->Double("top-p"), 0.9);
  EXPECT_TRUE(a->Has("greedy"));
  EXPECT_EQ(*a->IntList("ids"), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_FALSE(a->Int("missing")->has_value());
}

TEST(ArgsTest, ErrorsNameTheFlag) {
  EXPECT_NE(Args::Parse({"--bogus", "1"}, {"model"}, {}).status().message().find("--bogus"), std::string::npos);
  EXPECT_NE(Args::Parse({"--model"}, {"model"}, {}).status().message().find("needs a value"), std::string::npos);
  EXPECT_NE(Args::Parse({"stray"}, {"model"}, {}).status().message().find("stray"), std::string::npos);
  auto a = Args::Parse({"--n", "x1", "--ids", "1,,2"}, {"n", "ids"}, {});
  ASSERT_TRUE(a.ok());
  EXPECT_NE(a->Int("n").status().message().find("--n"), std::string::npos);
  EXPECT_FALSE(a->IntList("ids").ok());
  EXPECT_NE(a->Required("model").status().message().find("--model"), std::string::npos);
}

}  // namespace
}  // namespace swarr
