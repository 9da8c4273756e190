// Time per Verify() call on real reference solutions: MATH-500 (prediction = the full
// reference solution, reference = its "The answer is:" line) and GSM8K test (prediction =
// the full solution, reference = the "#### N" number). Prints a Markdown table.
//
//   verifier_bench [--shared DIR] [--reps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/math/verifier.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"

namespace {

struct Case {
  std::string completion, reference;
};

std::vector<Case> Load(const std::string& path, const std::string& marker) {
  std::vector<Case> cases;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded() || !row.contains("answer") || !row["answer"].is_string()) continue;
    const std::string solution = row["answer"].get<std::string>();
    const size_t at = solution.rfind(marker);
    if (at == std::string::npos) continue;
    cases.push_back({solution, solution.substr(at + marker.size())});
  }
  return cases;
}

struct Stats {
  size_t calls = 0, correct = 0;
  double mean_us = 0, p50_us = 0, p99_us = 0, max_us = 0;
};

Stats Measure(const std::vector<Case>& cases, int reps) {
  std::vector<double> us;
  Stats s;
  for (int r = 0; r < reps; ++r) {
    for (const Case& c : cases) {
      auto t0 = std::chrono::steady_clock::now();
      swarr::VerifyResult v = swarr::Verify(c.completion, c.reference);
      auto t1 = std::chrono::steady_clock::now();
      us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      if (r == 0 && v.correct) ++s.correct;
    }
  }
  if (us.empty()) return s;
  s.calls = us.size();
  double sum = 0;
  for (double u : us) sum += u;
  s.mean_us = sum / us.size();
  std::sort(us.begin(), us.end());
  s.p50_us = us[us.size() / 2];
  s.p99_us = us[std::min(us.size() - 1, static_cast<size_t>(us.size() * 0.99))];
  s.max_us = us.back();
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = swarr::Args::Parse(std::vector<std::string>(argv + 1, argv + argc), {"shared", "reps"}, {});
  if (!args.ok()) {
    std::cerr << "verifier_bench: " << args.status().message() << "\n";
    return 2;
  }
  const std::string shared = args->Optional("shared").value_or(SWARR_SHARED_DIR);
  auto reps = args->Int("reps");
  if (!reps.ok()) {
    std::cerr << "verifier_bench: " << reps.status().message() << "\n";
    return 2;
  }
  const int n = static_cast<int>(reps->value_or(20));

  struct Row {
    const char* name;
    std::vector<Case> cases;
  };
  const std::vector<Case> math = Load(shared + "/data/math500/test.jsonl", "The answer is: ");
  const std::vector<Case> gsm = Load(shared + "/data/gsm8k/test.jsonl", "#### ");
  // The boxed answer and the reference are often the same string, which takes a shortcut;
  // these variants force the full path: normalisation, parsing, evaluation, matching.
  std::vector<Case> math_wrapped = math, math_mismatched = math, gsm_mismatched = gsm;
  for (size_t k = 0; k < math.size(); ++k) {
    math_wrapped[k].reference = "$" + math[k].reference + "$.";
    math_mismatched[k].reference = math[(k + 1) % math.size()].reference;
  }
  for (size_t k = 0; k < gsm.size(); ++k) gsm_mismatched[k].reference = gsm[(k + 1) % gsm.size()].reference;
  std::vector<Row> rows = {
      {"MATH-500: solution vs its final answer", math},
      {"MATH-500: solution vs `$final$.` (no shortcut)", math_wrapped},
      {"MATH-500: solution vs the next problem's answer", math_mismatched},
      {"GSM8K test: solution vs its #### number", gsm},
      {"GSM8K test: solution vs the next problem's number", gsm_mismatched},
  };
  std::printf("| data set | items | calls | correct | mean µs | p50 µs | p99 µs | max µs |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (const Row& row : rows) {
    if (row.cases.empty()) {
      std::cerr << "verifier_bench: no data for " << row.name << " under " << shared << "\n";
      return 2;
    }
    Stats s = Measure(row.cases, n);
    std::printf("| %s | %zu | %zu | %zu/%zu | %.2f | %.2f | %.2f | %.2f |\n", row.name, row.cases.size(), s.calls,
                s.correct, row.cases.size(), s.mean_us, s.p50_us, s.p99_us, s.max_us);
  }
  return 0;
}
