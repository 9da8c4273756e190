// Math data sets as streams of problems: GSM8K, MATH-500, AIME / AMC and generic JSONL.
//
// Files are read line by line; the whole file is never held in memory. Shuffling reads
// the file once to index line offsets (8 bytes per line), permutes the index with a
// seeded Fisher-Yates shuffle (the same order for the same seed on every platform), then
// reads each line when its turn comes. Not thread-safe: one reader per thread.
#ifndef SWARR_COMMON_MATH_DATASETS_H_
#define SWARR_COMMON_MATH_DATASETS_H_

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace swarr {

struct MathProblem {
  std::string id;        // the record's `id` field if it has one, else "<file>:<line>"
  std::string question;
  std::string answer;    // the final answer, what the verifier compares against
  std::string solution;  // the full reference solution where the data set has one
  int64_t line = 0;      // 1-based line in the file
};

struct DatasetSpec {
  enum class Format {
    kGsm8k,    // {question, answer}; final answer after "####" on the answer's last line
    kMath500,  // {question, answer = full solution}; final answer = its last \boxed{},
               // else its "The answer is: ..." line
    kAimeAmc,  // {problem, answer (string or number)}, optional `solution`, `id`
    kGeneric,  // JSONL with the field names below; answer string or number
  };
  Format format = Format::kGeneric;
  std::string path;
  std::string question_field = "question";  // kGeneric only
  std::string answer_field = "answer";      // kGeneric only
  std::string id_field = "id";              // optional in every format
  bool shuffle = false;
  uint64_t seed = 0;
};

// "gsm8k" | "math500" | "aime" | "amc" | "jsonl"; anything else is kInvalidArgument.
absl::StatusOr<DatasetSpec::Format> ParseDatasetFormat(const std::string& name);

// The SFT target of `problem` in the format eval and RL expect (issue 13): the reference
// solution with GSM8K's calculator annotations ("48/2 = <<48/2=24>>24" -> "48/2 = 24") removed
// and its "#### x" line replaced by "The final answer is $\boxed{x}$."; a solution that has a
// \boxed{} answer already stays as it is (MATH-500); one without either gets that last line
// appended; no solution at all: the last line alone.
std::string ChatSolution(const MathProblem& problem);

class DatasetReader {
 public:
  // Opens (and, with shuffle, indexes) the file. kNotFound names a missing file.
  static absl::StatusOr<std::unique_ptr<DatasetReader>> Open(const DatasetSpec& spec);

  // The next problem, or nullopt at the end. Blank lines are skipped. A malformed line is
  // kInvalidArgument naming "<path>:<line>" and the field; the reader can go on after it.
  absl::StatusOr<std::optional<MathProblem>> Next();

  // Reads every remaining problem; stops at the first error.
  absl::StatusOr<std::vector<MathProblem>> ReadAll();

 private:
  explicit DatasetReader(DatasetSpec spec) : spec_(std::move(spec)) {}
  absl::StatusOr<MathProblem> Parse(const std::string& text, int64_t line) const;

  DatasetSpec spec_;
  std::ifstream in_;
  int64_t line_ = 0;                                   // sequential mode: last line read
  std::vector<std::pair<int64_t, int64_t>> order_;     // shuffled mode: (offset, line)
  size_t next_ = 0;
};

// Formats a JSON number answer the way a person writes it: 27.0 -> "27", 0.5 -> "0.5".
std::string FormatNumberAnswer(double value);

}  // namespace swarr

#endif  // SWARR_COMMON_MATH_DATASETS_H_
