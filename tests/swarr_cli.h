// Running the built `swarr` binary from integration tests: its exit status, stdout and
// stderr, and the shape every bad-input error must have.
#ifndef SWARR_TESTS_SWARR_CLI_H_
#define SWARR_TESTS_SWARR_CLI_H_

#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace cli_testing {

inline const std::string& SwarrBinary() {
  static const std::string path = std::string(SWARR_BINARY_DIR) + "/bin/swarr";
  return path;
}

// A fresh directory under /tmp.
inline std::string TempDir() {
  char tmpl[] = "/tmp/swarr_cli_XXXXXX";
  return mkdtemp(tmpl);
}

// The whole file ("" if it cannot be read).
inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Result {
  int status = -1;  // exit status; 128 + signal if killed
  std::string out, err;
};

// Runs `swarr ARGS` through the shell (ARGS may redirect stdin).
inline Result RunSwarr(const std::string& args) {
  const std::string dir = TempDir();
  const std::string cmd = SwarrBinary() + " " + args + " >" + dir + "/out 2>" + dir + "/err";
  const int raw = std::system(cmd.c_str());
  Result r;
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  r.out = Slurp(dir + "/out");
  r.err = Slurp(dir + "/err");
  return r;
}

// A bad-input run: exit status 2, exactly one line on stderr starting "swarr: " and naming
// each of `what`, no stack trace.
inline void ExpectUsageError(const std::string& args, const std::vector<std::string>& what) {
  using ::testing::HasSubstr;
  using ::testing::Not;
  using ::testing::StartsWith;
  const Result r = RunSwarr(args);
  EXPECT_EQ(r.status, 2) << args << "\n" << r.err;
  EXPECT_THAT(r.err, StartsWith("swarr: ")) << args;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
  for (const std::string& w : what) EXPECT_THAT(r.err, HasSubstr(w)) << args;
  EXPECT_THAT(r.err, Not(HasSubstr("frame #"))) << args;
  EXPECT_THAT(r.err, Not(HasSubstr("terminate"))) << args;
}

inline void ExpectUsageError(const std::string& args, const char* what) {
  ExpectUsageError(args, std::vector<std::string>{what});
}

}  // namespace cli_testing
}  // namespace swarr

#endif  // SWARR_TESTS_SWARR_CLI_H_
