// `swarr verify` as other tools use it: exact output lines, accuracy on stderr, exit
// statuses and one-line errors naming FILE:LINE and the field.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using namespace cli_testing;  // NOLINT


std::string WriteInput(const std::string& text) {
  const std::string path = TempDir() + "/in.jsonl";
  std::ofstream(path) << text;
  return path;
}


TEST(VerifyCliTest, GradesLinesAndReportsAccuracy) {
  const std::string input = WriteInput(
      R"j({"prediction": "so the answer is $\\boxed{\\frac{1}{2}}$.", "answer": "0.5"})j" "\n"
      R"j({"prediction": "They meet after 27 miles.", "answer": 27.0})j" "\n"
      "\n"
      R"j({"prediction": "#### 1,000", "answer": 1000})j" "\n"
      R"j({"prediction": "The answer is (1,2).", "answer": "(2,1)"})j" "\n"
      R"j({"prediction": "no idea", "answer": "\\text{\"quoted\"}"})j" "\n");
  Result r = RunSwarr("verify --input " + input);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"correct\": true, \"extracted\": \"\\\\frac{1}{2}\"}\n"
            "{\"correct\": true, \"extracted\": \"27\"}\n"
            "{\"correct\": true, \"extracted\": \"1,000\"}\n"
            "{\"correct\": false, \"extracted\": \"(1,2)\"}\n"
            "{\"correct\": false, \"extracted\": \"\"}\n");
  EXPECT_EQ(r.err, "accuracy 0.6000 (3/5)\n");
}

TEST(VerifyCliTest, EmptyInput) {
  Result r = RunSwarr("verify --input=" + WriteInput(""));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "accuracy 0.0000 (0/0)\n");
}

TEST(VerifyCliTest, BadArgumentsAndInputs) {
  ExpectUsageError("verify", {"--input"});
  ExpectUsageError("verify --input", {"--input"});
  ExpectUsageError("verify --input x --bogus 1", {"--bogus"});
  ExpectUsageError("verify --input /nonexistent/in.jsonl", {"/nonexistent/in.jsonl"});
  ExpectUsageError("verify --input /tmp", {"/tmp", "directory"});

  const std::string not_json = WriteInput("{\"prediction\": \"1\", \"answer\": \"1\"}\n{not json\n");
  ExpectUsageError("verify --input " + not_json, {not_json + ":2", "JSON"});
  const std::string not_object = WriteInput("[1, 2]\n");
  ExpectUsageError("verify --input " + not_object, {not_object + ":1", "object"});
  const std::string no_answer = WriteInput("\n\n{\"prediction\": \"1\"}\n");
  ExpectUsageError("verify --input " + no_answer, {no_answer + ":3", "\"answer\""});
  const std::string no_prediction = WriteInput("{\"answer\": \"1\"}\n");
  ExpectUsageError("verify --input " + no_prediction, {no_prediction + ":1", "\"prediction\""});
  const std::string bad_answer = WriteInput("{\"prediction\": \"1\", \"answer\": [1]}\n");
  ExpectUsageError("verify --input " + bad_answer, {bad_answer + ":1", "\"answer\""});
  const std::string bad_prediction = WriteInput("{\"prediction\": 1, \"answer\": \"1\"}\n");
  ExpectUsageError("verify --input " + bad_prediction, {bad_prediction + ":1", "\"prediction\""});
}

}  // namespace
}  // namespace swarr
