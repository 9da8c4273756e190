// `swarr verify --input IN.jsonl [--strict] [--allow-set-relation]`: grades model outputs
// with the math answer verifier. --strict reads no lenient number forms in the last-number
// fallback (no decimal comma, no space as thousands separator: ExtractOptions);
// --allow-set-relation lets a predicted inequality match a reference interval
// (CompareOptions). Both are off by default (docs/verifier.md).
// Each input line {"prediction": "...", "answer": "..." | number} gives one output line
// {"correct": true|false, "extracted": "..."}; the last line on stderr is the accuracy.
// Input is streamed line by line; blank lines are skipped. A bad argument or line prints
// one "swarr: ..." line naming FILE:LINE (and the field) and exits with status 2.
#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "common/math/verifier.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"
#include "tools/commands.h"

namespace swarr {
namespace {

using nlohmann::json;

int UsageError(const std::string& message) {
  std::cout.flush();
  std::cerr << "swarr: " << message << "\n";
  return 2;
}

// The reference answer as text: a JSON string, or a JSON number (AMC data has 27.0 -> "27").
std::optional<std::string> AnswerText(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return v.dump();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d)) return std::nullopt;
    if (d == std::floor(d) && std::fabs(d) < 1e15) return std::to_string(static_cast<long long>(d));
    return v.dump();
  }
  return std::nullopt;
}

bool IsBlank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

}  // namespace

int RunVerify(const std::vector<std::string>& args) {
  auto parsed = Args::Parse(args, /*value_flags=*/{"input"}, /*bool_flags=*/{"strict", "allow-set-relation"});
  if (!parsed.ok()) return UsageError(std::string(parsed.status().message()));
  auto path = parsed->Required("input");
  if (!path.ok()) return UsageError(std::string(path.status().message()));

  struct stat st;
  if (stat(path->c_str(), &st) != 0) return UsageError(*path + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return UsageError(*path + ": is a directory");
  std::ifstream in(*path);
  if (!in) return UsageError(*path + ": cannot open for reading");
  ExtractOptions extract;
  extract.lenient_numbers = !parsed->Has("strict");
  CompareOptions compare;
  compare.allow_set_relation = parsed->Has("allow-set-relation");

  std::string line;
  size_t line_no = 0, total = 0, correct = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (IsBlank(line)) continue;
    const std::string where = *path + ":" + std::to_string(line_no);
    const json row = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded()) return UsageError(where + ": not valid JSON");
    if (!row.is_object()) return UsageError(where + ": not a JSON object");
    const auto prediction = row.find("prediction");
    if (prediction == row.end()) return UsageError(where + ": missing field \"prediction\"");
    if (!prediction->is_string()) return UsageError(where + ": field \"prediction\" is not a string");
    const auto answer = row.find("answer");
    if (answer == row.end()) return UsageError(where + ": missing field \"answer\"");
    const std::optional<std::string> reference = AnswerText(*answer);
    if (!reference) return UsageError(where + ": field \"answer\" is not a string or a finite number");

    const VerifyResult result = Verify(prediction->get_ref<const std::string&>(), *reference, extract, compare);
    ++total;
    if (result.correct) ++correct;
    std::cout << "{\"correct\": " << (result.correct ? "true" : "false")
              << ", \"extracted\": " << json(result.extracted).dump(-1, ' ', false, json::error_handler_t::replace)
              << "}\n";
  }
  if (in.bad()) return UsageError(*path + ": read error after line " + std::to_string(line_no));
  std::cout.flush();
  char accuracy[64];
  std::snprintf(accuracy, sizeof(accuracy), "%.4f", total == 0 ? 0.0 : static_cast<double>(correct) / total);
  std::cerr << "accuracy " << accuracy << " (" << correct << "/" << total << ")\n";
  return 0;
}

}  // namespace swarr
