#include "common/math/datasets.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "gmock/gmock.h"
#include "common/math/verifier.h"
#include "gtest/gtest.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

const std::string kData = std::string(SWARR_SHARED_DIR) + "/data/";

std::vector<MathProblem> Load(DatasetSpec::Format format, const std::string& file, bool shuffle = false,
                              uint64_t seed = 0) {
  DatasetSpec spec;
  spec.format = format;
  spec.path = kData + file;
  spec.shuffle = shuffle;
  spec.seed = seed;
  auto reader = DatasetReader::Open(spec);
  EXPECT_TRUE(reader.ok()) << reader.status();
  auto all = (*reader)->ReadAll();
  EXPECT_TRUE(all.ok()) << all.status();
  return all.ok() ? *all : std::vector<MathProblem>{};
}

std::string TempFile(const std::string& content) {
  char tmpl[] = "/tmp/swarr_data_XXXXXX";
  int fd = mkstemp(tmpl);
  close(fd);
  std::ofstream(tmpl) << content;
  return tmpl;
}

TEST(DatasetsTest, Gsm8k) {
  auto test = Load(DatasetSpec::Format::kGsm8k, "gsm8k/test.jsonl");
  ASSERT_EQ(test.size(), 1319u);
  EXPECT_EQ(test[0].answer, "18");
  EXPECT_THAT(test[0].question, HasSubstr("Janet"));
  EXPECT_EQ(test[0].line, 1);
  EXPECT_EQ(Load(DatasetSpec::Format::kGsm8k, "gsm8k/train.jsonl").size(), 7473u);
  for (const auto& p : test) ASSERT_FALSE(p.answer.empty()) << p.id;
}

TEST(DatasetsTest, ChatSolutionDropsAnnotationsAndBoxesTheAnswer) {
  MathProblem p;
  p.answer = "72";
  p.solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 in all.\n#### 72";
  EXPECT_EQ(ChatSolution(p), "Natalia sold 48/2 = 24 clips in May.\nShe sold 48+24 = 72 in all.\n"
                             "The final answer is $\\boxed{72}$.");
  p.solution = "So $x = \\boxed{5}$.";  // already boxed: unchanged
  EXPECT_EQ(ChatSolution(p), p.solution);
  p.solution = "";  // no solution: the answer line alone
  EXPECT_EQ(ChatSolution(p), "The final answer is $\\boxed{72}$.");
  p.solution = "a <<unclosed";  // not an annotation: kept
  EXPECT_EQ(ChatSolution(p), "a <<unclosed\nThe final answer is $\\boxed{72}$.");
  // Every GSM8K train solution: no annotation or "####" left, and the verifier's extraction
  // ( the last \boxed{} ) gives the data set's answer.
  for (const MathProblem& q : Load(DatasetSpec::Format::kGsm8k, "gsm8k/train.jsonl")) {
    const std::string s = ChatSolution(q);
    ASSERT_EQ(s.find("<<"), std::string::npos) << q.id << ": " << s;
    ASSERT_EQ(s.find("####"), std::string::npos) << q.id;
    ASSERT_EQ(LastBoxed(s).value_or(""), q.answer) << q.id;
  }
}

TEST(DatasetsTest, Math500FinalAnswerFromBoxed) {
  auto math = Load(DatasetSpec::Format::kMath500, "math500/test.jsonl");
  ASSERT_EQ(math.size(), 500u);
  EXPECT_EQ(math[0].answer, "\\left( 3, \\frac{\\pi}{2} \\right)");
  EXPECT_THAT(math[0].solution, HasSubstr("The answer is:"));
}

TEST(DatasetsTest, AimeAndAmc) {
  auto aime = Load(DatasetSpec::Format::kAimeAmc, "aime24/test.jsonl");
  ASSERT_EQ(aime.size(), 30u);
  EXPECT_EQ(aime[0].answer, "204");
  EXPECT_EQ(aime[0].id, "60");
  auto amc = Load(DatasetSpec::Format::kAimeAmc, "amc23/test.jsonl");
  ASSERT_EQ(amc.size(), 40u);
  EXPECT_EQ(amc[0].answer, "27");  // stored as the JSON number 27.0
}

TEST(DatasetsTest, ShuffleIsASeededPermutation) {
  auto plain = Load(DatasetSpec::Format::kMath500, "math500/test.jsonl");
  auto a = Load(DatasetSpec::Format::kMath500, "math500/test.jsonl", true, 7);
  auto b = Load(DatasetSpec::Format::kMath500, "math500/test.jsonl", true, 7);
  auto c = Load(DatasetSpec::Format::kMath500, "math500/test.jsonl", true, 8);
  ASSERT_EQ(a.size(), 500u);
  std::vector<int64_t> la, lb, lc;
  for (auto& p : a) la.push_back(p.line);
  for (auto& p : b) lb.push_back(p.line);
  for (auto& p : c) lc.push_back(p.line);
  EXPECT_EQ(la, lb);
  EXPECT_NE(la, lc);
  EXPECT_EQ(std::set<int64_t>(la.begin(), la.end()).size(), 500u);
  // Each shuffled record is the record at its line.
  for (const auto& p : a) EXPECT_EQ(p.question, plain[p.line - 1].question);
  // Pinned order for seed 7: a change to the shuffle would break resuming runs that
  // recorded their data position.
  EXPECT_EQ(std::vector<int64_t>(la.begin(), la.begin() + 5), (std::vector<int64_t>{134, 454, 309, 194, 453}));
}

TEST(DatasetsTest, GenericFieldsAndNumbers) {
  std::string path = TempFile("{\"q\": \"2+2?\", \"a\": 4}\n\n{\"q\": \"half?\", \"a\": 0.5, \"id\": \"x7\"}\n");
  DatasetSpec spec;
  spec.path = path;
  spec.question_field = "q";
  spec.answer_field = "a";
  auto reader = DatasetReader::Open(spec);
  ASSERT_TRUE(reader.ok());
  auto all = (*reader)->ReadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].answer, "4");
  EXPECT_EQ((*all)[0].id, path + ":1");
  EXPECT_EQ((*all)[1].answer, "0.5");
  EXPECT_EQ((*all)[1].id, "x7");
  EXPECT_EQ((*all)[1].line, 3);
}

TEST(DatasetsTest, MalformedLinesNameFileLineAndField) {
  auto error = [](DatasetSpec::Format f, const std::string& content) {
    DatasetSpec spec;
    spec.format = f;
    spec.path = TempFile(content);
    auto reader = DatasetReader::Open(spec);
    EXPECT_TRUE(reader.ok());
    auto all = (*reader)->ReadAll();
    EXPECT_FALSE(all.ok());
    return std::make_pair(spec.path, std::string(all.status().message()));
  };
  auto [p1, e1] = error(DatasetSpec::Format::kGsm8k, "{\"question\": \"a\", \"answer\": \"b\\n#### 3\"}\n{oops\n");
  EXPECT_THAT(e1, HasSubstr(p1 + ":2"));
  EXPECT_THAT(e1, HasSubstr("not a JSON object"));
  auto [p2, e2] = error(DatasetSpec::Format::kGsm8k, "{\"question\": \"a\", \"answer\": \"no marker\"}\n");
  EXPECT_THAT(e2, HasSubstr(p2 + ":1"));
  EXPECT_THAT(e2, HasSubstr("####"));
  auto [p3, e3] = error(DatasetSpec::Format::kAimeAmc, "{\"problem\": \"a\"}\n");
  EXPECT_THAT(e3, HasSubstr("field 'answer' is missing"));
  auto [p4, e4] = error(DatasetSpec::Format::kMath500, "{\"question\": 5, \"answer\": \"x\"}\n");
  EXPECT_THAT(e4, HasSubstr("field 'question' must be a string"));
  auto [p5, e5] = error(DatasetSpec::Format::kMath500, "{\"question\": \"q\", \"answer\": \"no final answer\"}\n");
  EXPECT_THAT(e5, HasSubstr("boxed"));
  DatasetSpec missing;
  missing.path = "/nonexistent/data.jsonl";
  EXPECT_EQ(DatasetReader::Open(missing).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(ParseDatasetFormat("csv").ok());
}

TEST(DatasetsTest, ReaderGoesOnAfterABadLine) {
  DatasetSpec spec;
  spec.format = DatasetSpec::Format::kAimeAmc;
  spec.path = TempFile("{\"problem\": \"a\", \"answer\": 1}\nnot json\n{\"problem\": \"c\", \"answer\": \"3\"}\n");
  auto reader = DatasetReader::Open(spec);
  ASSERT_TRUE(reader.ok());
  EXPECT_TRUE((*reader)->Next().ok());
  EXPECT_FALSE((*reader)->Next().ok());
  auto third = (*reader)->Next();
  ASSERT_TRUE(third.ok() && third->has_value());
  EXPECT_EQ((**third).answer, "3");
}

}  // namespace
}  // namespace swarr
