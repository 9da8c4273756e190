// Tokenizer benchmark: single-thread encode throughput of swarr::Tokenizer.
//
// usage: tokenizer_bench [--tokenizer tokenizer.json] [--data IN.jsonl] [--repeats N]
//                        [--ids-out FILE] [--cache-capacity N]
//
// Corpus: one text per line of --data: the line's "text" field if it has one, otherwise
// question + "\n" + answer (GSM8K). Defaults: the Qwen2 tokenizer fixture and GSM8K train.
// The corpus is read into memory first; each pass encodes every text with one Encode() call,
// on this thread. One untimed warm-up pass, then --repeats timed passes (default 5); the
// median pass is reported. The first (cold, empty BPE cache) pass is reported too.
//
// Prints one JSON object on stdout (bench/tokenizer/compare.sh reads it):
//   {"impl", "lines", "bytes", "tokens", "cold_seconds", "median_seconds", "best_seconds",
//    "bytes_per_s", "tokens_per_s", "cpu_over_wall"}
// --ids-out writes the ids of each text as one line of space-separated integers.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"

namespace swarr {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

int Fail(const std::string& message) {
  std::cerr << "tokenizer_bench: " << message << "\n";
  return 2;
}

int Main(const std::vector<std::string>& argv) {
  auto args = Args::Parse(argv, {"tokenizer", "data", "repeats", "ids-out", "cache-capacity"}, {});
  if (!args.ok()) return Fail(std::string(args.status().message()));
  const std::string shared = SWARR_SHARED_DIR;
  const std::string tokenizer_path =
      args->Optional("tokenizer").value_or(shared + "/fixtures/tokenizer/qwen2/tokenizer.json");
  const std::string data_path = args->Optional("data").value_or(shared + "/data/gsm8k/train.jsonl");
  auto repeats = args->Int("repeats");
  auto capacity = args->Int("cache-capacity");
  if (!repeats.ok()) return Fail(std::string(repeats.status().message()));
  if (!capacity.ok()) return Fail(std::string(capacity.status().message()));
  const int64_t n_repeats = std::max<int64_t>(1, repeats->value_or(5));

  TokenizerOptions options;
  if (*capacity) options.cache_capacity = static_cast<size_t>(std::max<int64_t>(0, **capacity));
  auto tokenizer = Tokenizer::FromFile(tokenizer_path, options);
  if (!tokenizer.ok()) return Fail(std::string(tokenizer.status().message()));

  std::vector<std::string> texts;
  {
    std::ifstream in(data_path);
    if (!in) return Fail("cannot open " + data_path);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      const json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return Fail(data_path + ": a line is not a JSON object");
      if (j.contains("text") && j["text"].is_string()) {
        texts.push_back(j["text"].get<std::string>());
      } else if (j.contains("question") && j["question"].is_string() && j.contains("answer") &&
                 j["answer"].is_string()) {
        texts.push_back(j["question"].get<std::string>() + "\n" + j["answer"].get<std::string>());
      } else {
        return Fail(data_path + ": a line has neither \"text\" nor \"question\" and \"answer\"");
      }
    }
  }
  size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();

  std::vector<std::vector<int64_t>> ids(texts.size());
  auto pass = [&]() -> double {
    const auto start = Clock::now();
    for (size_t i = 0; i < texts.size(); ++i) {
      auto r = (*tokenizer)->Encode(texts[i]);
      if (!r.ok()) {
        std::cerr << "tokenizer_bench: line " << i + 1 << ": " << r.status().message() << "\n";
        std::exit(1);
      }
      ids[i] = std::move(*r);
    }
    return std::chrono::duration<double>(Clock::now() - start).count();
  };
  const double cold = pass();  // warm-up, fills the BPE cache
  std::vector<double> times;
  const double cpu0 = CpuSeconds();
  const auto wall0 = Clock::now();
  for (int64_t r = 0; r < n_repeats; ++r) times.push_back(pass());
  const double cpu_over_wall =
      (CpuSeconds() - cpu0) / std::chrono::duration<double>(Clock::now() - wall0).count();
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2];
  size_t tokens = 0;
  for (const auto& v : ids) tokens += v.size();

  if (auto out_path = args->Optional("ids-out")) {
    std::ofstream out(*out_path);
    if (!out) return Fail("cannot write " + *out_path);
    std::string line;
    for (const auto& v : ids) {
      line.clear();
      for (size_t k = 0; k < v.size(); ++k) {
        if (k) line += ' ';
        line += std::to_string(v[k]);
      }
      out << line << "\n";
    }
  }
  json result = {{"impl", "swarr"},
                 {"lines", texts.size()},
                 {"bytes", bytes},
                 {"tokens", tokens},
                 {"cold_seconds", cold},
                 {"median_seconds", median},
                 {"best_seconds", times.front()},
                 {"bytes_per_s", static_cast<double>(bytes) / median},
                 {"tokens_per_s", static_cast<double>(tokens) / median},
                 {"cpu_over_wall", cpu_over_wall}};
  std::cout << result.dump() << "\n";
  return 0;
}

}  // namespace
}  // namespace swarr

int main(int argc, char** argv) { return swarr::Main(std::vector<std::string>(argv + 1, argv + argc)); }
