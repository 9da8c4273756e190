// `swarr tokenize` as other tools use it: exact output format, order, exit statuses, errors.
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/util/file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using namespace cli_testing;  // NOLINT

const std::string kTokenizer = std::string(SWARR_SHARED_DIR) + "/fixtures/tokenizer/qwen2/tokenizer.json";
const std::string kCases = std::string(SWARR_SHARED_DIR) + "/fixtures/tokenizer/qwen2/cases.json";

std::string WriteTemp(const std::string& name, const std::string& content) {
  const std::string path = TempDir() + "/" + name;
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) lines.push_back(line);
  return lines;
}


json Cases() { return json::parse(Slurp(kCases)); }

TEST(TokenizeCliTest, EncodesEachLineInOrderWithHfIds) {
  const json cases = Cases();
  std::string input;
  for (size_t i = 0; i < cases.size(); ++i) {
    input += json{{"text", cases[i]["text"]}, {"other", i}}.dump() + "\n";
    if (i == 2) input += "\n   \n";  // blank lines are skipped
  }
  const std::string path = WriteTemp("in.jsonl", input);
  const Result r = RunSwarr("tokenize --tokenizer " + kTokenizer + " --input " + path);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const json got = json::parse(lines[i]);
    ASSERT_TRUE(got.is_object() && got.size() == 1 && got.contains("ids")) << lines[i];
    EXPECT_EQ(got["ids"], cases[i]["ids"]) << cases[i]["text"];
  }
  // The exact format of a line.
  EXPECT_THAT(lines[0], StartsWith("{\"ids\": [18315, 295, 594, "));
}

TEST(TokenizeCliTest, DecodesIdsBackToText) {
  const json cases = Cases();
  std::string input;
  for (const json& c : cases) input += json{{"ids", c["ids"]}}.dump() + "\n";
  const std::string path = WriteTemp("ids.jsonl", input);
  const Result r = RunSwarr("tokenize --decode --tokenizer=" + kTokenizer + " --input " + path);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const json got = json::parse(lines[i]);
    EXPECT_EQ(got["text"], cases[i]["decoded"]);
  }
}

TEST(TokenizeCliTest, ReadsStdinWithDash) {
  const std::string path = WriteTemp("in.jsonl", "{\"text\": \"Hello world\"}\n");
  const Result r = RunSwarr("tokenize --tokenizer " + kTokenizer + " --input - <" + path);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "{\"ids\": [9707, 1879]}\n");
}

TEST(TokenizeCliTest, BadArgumentsAndInputs) {
  const std::string good = WriteTemp("in.jsonl", "{\"text\": \"a\"}\n");
  ExpectUsageError("tokenize --input " + good, {"--tokenizer"});
  ExpectUsageError("tokenize --tokenizer " + kTokenizer, {"--input"});
  ExpectUsageError("tokenize --tokenizer " + kTokenizer + " --input " + good + " --bogus", {"--bogus"});
  ExpectUsageError("tokenize --tokenizer /nonexistent/tok.json --input " + good, {"/nonexistent/tok.json"});
  const std::string bad_tok = WriteTemp("tokenizer.json", "{\"model\": {\"type\": \"WordPiece\"}, "
                                                          "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
  ExpectUsageError("tokenize --tokenizer " + bad_tok + " --input " + good, {"model.type"});
  ExpectUsageError("tokenize --tokenizer " + kTokenizer + " --input /nonexistent/in.jsonl", {"/nonexistent/in.jsonl"});

  const std::string not_json = WriteTemp("in.jsonl", "{\"text\": \"a\"}\n{\"text\": \n");
  ExpectUsageError("tokenize --tokenizer " + kTokenizer + " --input " + not_json, {not_json + ":2", "JSON"});
  const std::string no_field = WriteTemp("in.jsonl", "{\"txt\": \"a\"}\n");
  ExpectUsageError("tokenize --tokenizer " + kTokenizer + " --input " + no_field, {no_field + ":1", "\"text\""});
  const std::string not_string = WriteTemp("in.jsonl", "\n{\"text\": 5}\n");
  ExpectUsageError("tokenize --tokenizer " + kTokenizer + " --input " + not_string, {not_string + ":2", "\"text\""});
  const std::string bad_utf8 = WriteTemp("in.jsonl", "{\"text\": \"ab\xff\"}\n");
  ExpectUsageError("tokenize --tokenizer " + kTokenizer + " --input " + bad_utf8, {bad_utf8 + ":1", "UTF-8"});
  const std::string array = WriteTemp("in.jsonl", "[1, 2]\n");
  ExpectUsageError("tokenize --tokenizer " + kTokenizer + " --input " + array, {array + ":1", "object"});

  const std::string oov = WriteTemp("ids.jsonl", "{\"ids\": [1, 2]}\n{\"ids\": [1, 999999]}\n");
  ExpectUsageError("tokenize --decode --tokenizer " + kTokenizer + " --input " + oov,
                   {oov + ":2", "\"ids\"", "999999", "index 1"});
  const std::string no_ids = WriteTemp("ids.jsonl", "{\"text\": \"a\"}\n");
  ExpectUsageError("tokenize --decode --tokenizer " + kTokenizer + " --input " + no_ids, {no_ids + ":1", "\"ids\""});
  const std::string bad_id = WriteTemp("ids.jsonl", "{\"ids\": [1, \"x\"]}\n");
  ExpectUsageError("tokenize --decode --tokenizer " + kTokenizer + " --input " + bad_id, {bad_id + ":1", "\"ids\""});
  const std::string float_id = WriteTemp("ids.jsonl", "{\"ids\": [1.5]}\n");
  ExpectUsageError("tokenize --decode --tokenizer " + kTokenizer + " --input " + float_id, {float_id + ":1", "\"ids\""});
}

TEST(TokenizeCliTest, LinesBeforeAnErrorAreWritten) {
  const std::string path = WriteTemp("in.jsonl", "{\"text\": \"Hello world\"}\nnope\n");
  const Result r = RunSwarr("tokenize --tokenizer " + kTokenizer + " --input " + path);
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.out, "{\"ids\": [9707, 1879]}\n");
  EXPECT_THAT(r.err, HasSubstr(path + ":2"));
}

}  // namespace
}  // namespace swarr
