#include "common/math/datasets.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/math/verifier.h"
#include "nlohmann/json.hpp"

namespace swarr {
namespace {

using json = nlohmann::json;

// Uniform integer in [0, n) from a 64-bit Mersenne twister, without modulo bias and
// independent of the standard library's distribution implementations.
uint64_t UniformBelow(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % n;
}

}  // namespace

std::string FormatNumberAnswer(double value) {
  if (std::isfinite(value) && value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", value);
  return buf;
}

absl::StatusOr<DatasetSpec::Format> ParseDatasetFormat(const std::string& name) {
  if (name == "gsm8k") return DatasetSpec::Format::kGsm8k;
  if (name == "math500" || name == "math") return DatasetSpec::Format::kMath500;
  if (name == "aime" || name == "amc") return DatasetSpec::Format::kAimeAmc;
  if (name == "jsonl") return DatasetSpec::Format::kGeneric;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown data set format '", name, "' (gsm8k, math500, aime, amc, jsonl)"));
}

absl::StatusOr<std::unique_ptr<DatasetReader>> DatasetReader::Open(const DatasetSpec& spec) {
  std::unique_ptr<DatasetReader> reader(new DatasetReader(spec));
  reader->in_.open(spec.path, std::ios::binary);
  if (!reader->in_) return absl::NotFoundError(absl::StrCat("cannot open data set ", spec.path));
  if (spec.shuffle) {
    std::string text;
    int64_t line = 0;
    while (true) {
      const int64_t offset = reader->in_.tellg();
      if (!std::getline(reader->in_, text)) break;
      ++line;
      if (!absl::StripAsciiWhitespace(text).empty()) reader->order_.push_back({offset, line});
    }
    reader->in_.clear();
    std::mt19937_64 rng(spec.seed);
    for (size_t i = reader->order_.size(); i > 1; --i) {
      std::swap(reader->order_[i - 1], reader->order_[UniformBelow(rng, i)]);
    }
  }
  return reader;
}

absl::StatusOr<std::optional<MathProblem>> DatasetReader::Next() {
  std::string text;
  int64_t line = 0;
  if (spec_.shuffle) {
    if (next_ >= order_.size()) return std::optional<MathProblem>();
    const auto [offset, l] = order_[next_++];
    in_.clear();
    in_.seekg(offset);
    if (!std::getline(in_, text)) {
      return absl::DataLossError(absl::StrCat(spec_.path, ":", l, ": cannot read the line (file changed?)"));
    }
    line = l;
  } else {
    do {
      if (!std::getline(in_, text)) return std::optional<MathProblem>();
      line = ++line_;
    } while (absl::StripAsciiWhitespace(text).empty());
  }
  auto problem = Parse(text, line);
  if (!problem.ok()) return problem.status();
  return std::optional<MathProblem>(std::move(*problem));
}

absl::StatusOr<std::vector<MathProblem>> DatasetReader::ReadAll() {
  std::vector<MathProblem> out;
  while (true) {
    auto next = Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) return out;
    out.push_back(std::move(**next));
  }
}

absl::StatusOr<MathProblem> DatasetReader::Parse(const std::string& text, int64_t line) const {
  const std::string where = absl::StrCat(spec_.path, ":", line);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
  }
  auto string_field = [&](const std::string& name, bool allow_number) -> absl::StatusOr<std::string> {
    auto it = j.find(name);
    if (it == j.end() || it->is_null()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": field '", name, "' is missing"));
    }
    if (it->is_string()) return it->get<std::string>();
    if (allow_number && it->is_number()) {
      if (it->is_number_integer()) return absl::StrCat(it->get<int64_t>());
      return FormatNumberAnswer(it->get<double>());
    }
    return absl::InvalidArgumentError(absl::StrCat(where, ": field '", name, "' must be a ",
                                                   allow_number ? "string or number" : "string", ", got ",
                                                   it->type_name()));
  };
  MathProblem p;
  p.line = line;
  using Format = DatasetSpec::Format;
  // The question and answer fields of each format; AIME/AMC and generic answers may be numbers.
  const bool gsm8k_or_math = spec_.format == Format::kGsm8k || spec_.format == Format::kMath500;
  const std::string question_field = spec_.format == Format::kAimeAmc ? "problem"
                                     : spec_.format == Format::kGeneric ? spec_.question_field
                                                                        : "question";
  const std::string answer_field = spec_.format == Format::kGeneric ? spec_.answer_field : "answer";
  auto question = string_field(question_field, false);
  if (!question.ok()) return question.status();
  auto answer = string_field(answer_field, !gsm8k_or_math);
  if (!answer.ok()) return answer.status();
  p.question = std::move(*question);
  switch (spec_.format) {
    case Format::kGsm8k: {
      p.solution = std::move(*answer);
      const size_t mark = p.solution.rfind("####");
      if (mark == std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": field 'answer' has no '#### <answer>' line"));
      }
      p.answer = std::string(absl::StripAsciiWhitespace(p.solution.substr(mark + 4)));
      if (p.answer.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": field 'answer': empty after ####"));
      break;
    }
    case Format::kMath500: {
      p.solution = std::move(*answer);
      if (auto boxed = LastBoxed(p.solution)) {
        p.answer = std::string(absl::StripAsciiWhitespace(*boxed));
      } else if (const size_t at = p.solution.rfind("The answer is:"); at != std::string::npos) {
        p.answer = std::string(absl::StripAsciiWhitespace(p.solution.substr(at + 14)));
      }
      if (p.answer.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": field 'answer' has no \\boxed{} answer and no 'The answer is:' line"));
      }
      break;
    }
    case Format::kAimeAmc:
      p.answer = std::move(*answer);
      if (auto s = j.find("solution"); s != j.end() && s->is_string()) p.solution = s->get<std::string>();
      break;
    case Format::kGeneric:
      p.answer = std::move(*answer);
      break;
  }
  if (auto id = j.find(spec_.id_field); !spec_.id_field.empty() && id != j.end() && !id->is_null()) {
    p.id = id->is_string() ? id->get<std::string>() : id->dump();
  } else {
    p.id = where;
  }
  return p;
}

std::string ChatSolution(const MathProblem& problem) {
  std::string text;
  // Calculator annotations: drop every "<<...>>" (GSM8K has no nested ones).
  for (size_t i = 0; i < problem.solution.size();) {
    if (problem.solution.compare(i, 2, "<<") == 0) {
      const size_t end = problem.solution.find(">>", i + 2);
      if (end != std::string::npos) {
        i = end + 2;
        continue;
      }
    }
    text.push_back(problem.solution[i++]);
  }
  // The "#### x" line goes; what is left ends where it ended.
  if (const size_t mark = text.rfind("####"); mark != std::string::npos) text.erase(mark);
  text = std::string(absl::StripTrailingAsciiWhitespace(text));
  if (LastBoxed(text).has_value()) return text;
  const std::string last = absl::StrCat("The final answer is $\\boxed{", problem.answer, "}$.");
  return text.empty() ? last : absl::StrCat(text, "\n", last);
}

}  // namespace swarr
