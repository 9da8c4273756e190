#include "common/util/line_stderr.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace swarr {
namespace {

// 8 threads each write 2000 lines made of 29 separate insertions (as the services' logging
// does). With the line-atomic buffer, every line of the output is one of the lines written,
// whole. (Without it, this test sees torn lines: checked once by skipping the call.)
TEST(LineStderrTest, LinesFromManyThreadsStayWhole) {
  const std::string path = ::testing::TempDir() + "/line_stderr_test.txt";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  const int saved = ::dup(STDERR_FILENO);
  ASSERT_EQ(::dup2(fd, STDERR_FILENO), STDERR_FILENO);
  MakeStderrLineAtomic();
  MakeStderrLineAtomic();  // idempotent
  constexpr int kThreads = 8, kLines = 2000;
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &ready] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();  // start together
      for (int i = 0; i < kLines; ++i) {
        std::cerr << "thread " << t << " line " << i << ":";
        for (int k = 0; k < 8; ++k) {
          for (char c : std::string(" w")) std::cerr << c;  // many small insertions per line
          std::cerr << k;
        }
        std::cerr << "\n";
      }
    });
  }
  for (auto& th : threads) th.join();
  std::cerr << "progress without a newline" << std::flush;  // a flush writes a partial line
  std::cerr << "\n";
  std::cerr.flush();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fd);
  std::ifstream in(path);
  std::string line;
  std::set<std::string> seen;
  int count = 0;
  while (std::getline(in, line)) {
    if (line == "progress without a newline") continue;
    ++count;
    std::istringstream parse(line);
    std::string word;
    int t = -1, i = -1;
    parse >> word >> t >> word >> i;
    std::ostringstream want;
    want << "thread " << t << " line " << i << ":";
    for (int k = 0; k < 8; ++k) want << " w" << k;
    ASSERT_EQ(line, want.str()) << "a torn line";
    seen.insert(line);
  }
  EXPECT_EQ(count, kThreads * kLines);
  EXPECT_EQ(static_cast<int>(seen.size()), kThreads * kLines);
}

}  // namespace
}  // namespace swarr
