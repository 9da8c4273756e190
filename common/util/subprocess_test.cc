#include "common/util/subprocess.h"

#include <signal.h>

#include <mutex>
#include <vector>

#include "common/util/file.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

TEST(SubprocessTest, LinesExitStatusAndSignals) {
  std::mutex mu;
  std::vector<std::string> lines;
  Subprocess::Options opts;
  opts.on_line = [&](const std::string& l) {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(l);
  };
  auto p = Subprocess::Start({"/bin/sh", "-c", "echo one; echo two >&2; printf three; exit 3"}, opts);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Wait(10), 3);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));

  auto sleeper = Subprocess::Start({"/bin/sleep", "30"}, {});
  ASSERT_TRUE(sleeper.ok());
  EXPECT_TRUE((*sleeper)->running());
  EXPECT_EQ((*sleeper)->Wait(0.1), -1);  // still running: timeout
  (*sleeper)->Signal(SIGKILL);
  EXPECT_EQ((*sleeper)->Wait(10), 128 + SIGKILL);
  EXPECT_FALSE((*sleeper)->running());
}

TEST(SubprocessTest, OutputFileAndExecFailure) {
  const std::string path = ::testing::TempDir() + "/subprocess_out.txt";
  std::remove(path.c_str());
  Subprocess::Options opts;
  opts.output_file = path;
  auto p = Subprocess::Start({"/bin/sh", "-c", "echo hello"}, opts);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ((*p)->Wait(10), 0);
  EXPECT_EQ(*ReadFile(path), "hello\n");
  auto missing = Subprocess::Start({"/nonexistent/binary"}, opts);
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ((*missing)->Wait(10), 127);
  EXPECT_FALSE(Subprocess::Start({}, opts).ok());
}

}  // namespace
}  // namespace swarr
