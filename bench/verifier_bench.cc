// Time per Verify() call on real reference solutions: MATH-500 (prediction = the full
// reference solution, reference = its "The answer is:" line) and GSM8K test (prediction =
// the full solution, reference = the "#### N" number). Prints a Markdown table.
//
//   verifier_bench [--shared DIR] [--reps N]
//
// With --mathverify CASES.jsonl it instead runs the (gold, prediction, expected) cases
// taken from Hugging Face Math-Verify's tests (bench/mathverify/): both sides go through
// ExtractAnswer (Math-Verify parses both), then AnswersEquivalent with the case's
// allow_set_relation_comp. It prints every miss and every false positive, then
// "true pairs accepted A/T (P%), false positives F/N" and the time per case.
//
//   verifier_bench --mathverify bench/mathverify/cases.jsonl [--verbose]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
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

std::string Short(const std::string& s, size_t n = 160) {
  std::string out;
  for (char c : s.size() > n ? s.substr(0, n / 2) + " ... " + s.substr(s.size() - n / 2) : s) {
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

int RunMathVerify(const std::string& path, bool verbose) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << "verifier_bench: cannot read " << path << "\n";
    return 2;
  }
  std::string line;
  size_t true_total = 0, true_ok = 0, false_total = 0, false_pos = 0, line_no = 0;
  std::vector<double> us;
  double slowest = 0;
  std::string slowest_source;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded() || !row.contains("gold") || !row.contains("prediction") || !row.contains("expected")) {
      std::cerr << "verifier_bench: " << path << ":" << line_no << ": not a case\n";
      return 2;
    }
    const std::string gold = row["gold"].get<std::string>(), pred = row["prediction"].get<std::string>();
    const bool expected = row["expected"].get<bool>();
    swarr::CompareOptions compare;
    compare.allow_set_relation = row.value("allow_set_relation_comp", false);
    auto t0 = std::chrono::steady_clock::now();
    const std::optional<std::string> g = swarr::ExtractAnswer(gold);
    const std::optional<std::string> p = swarr::ExtractAnswer(pred);
    const bool got = g && p && swarr::AnswersEquivalent(*p, *g, compare);
    auto t1 = std::chrono::steady_clock::now();
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    if (us.back() > slowest) {
      slowest = us.back();
      slowest_source = row.value("source", std::string("?"));
    }
    (expected ? true_total : false_total) += 1;
    if (expected && got) ++true_ok;
    if (!expected && got) ++false_pos;
    if (got != expected || verbose) {
      std::printf("%s %s\n  gold [%s] -> [%s]\n  pred [%s] -> [%s]\n",
                  got == expected ? "ok" : (expected ? "MISS" : "FALSE POSITIVE"),
                  row.value("source", std::string("?")).c_str(), Short(gold).c_str(), Short(g.value_or("-")).c_str(),
                  Short(pred).c_str(), Short(p.value_or("-")).c_str());
    }
  }
  std::sort(us.begin(), us.end());
  double sum = 0;
  for (double u : us) sum += u;
  std::printf("true pairs accepted %zu/%zu (%.1f%%), false positives %zu/%zu\n", true_ok, true_total,
              true_total ? 100.0 * true_ok / true_total : 0.0, false_pos, false_total);
  if (!us.empty()) {
    std::printf("time per case (extract both + compare): mean %.2f µs, p50 %.2f µs, max %.2f µs (%s)\n",
                sum / us.size(), us[us.size() / 2], us.back(), slowest_source.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = swarr::Args::Parse(std::vector<std::string>(argv + 1, argv + argc),
                                 {"shared", "reps", "mathverify"}, {"verbose"});
  if (!args.ok()) {
    std::cerr << "verifier_bench: " << args.status().message() << "\n";
    return 2;
  }
  if (auto cases = args->Optional("mathverify")) return RunMathVerify(*cases, args->Has("verbose"));
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
