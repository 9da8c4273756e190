// Token lengths of the recipe data in the format SFT, RL and eval use (issue 13): the chat
// prompt (ChatML + the Qwen2.5-Math system prompt, StagePromptText) and the reference solution
// as SFT trains on it (ChatSolution + <|im_end|>), through the real Qwen2 tokenizer. Prints a
// table of percentiles and the share of sequences longer than each window, and writes JSON:
//   build/bin/token_lengths [--tokenizer FILE] [--out bench/results/token_lengths.json]
// A window binds for a sequence when the sequence is longer than the window: a later token
// then cannot attend to the earliest ones (the prompt's question first of all).
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/math/datasets.h"
#include "common/math/prompt_set.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"

namespace swarr {
namespace {

int64_t Percentile(std::vector<int64_t> v, double q) {
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

int Run(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  auto args = Args::Parse(a, {"tokenizer", "out", "data"}, {});
  if (!args.ok()) {
    std::cerr << args.status().message() << "\n";
    return 2;
  }
  const std::string data_dir = args->Optional("data").value_or(SWARR_SHARED_DIR "/data");
  const std::string tok_path = args->Optional("tokenizer").value_or(SWARR_SHARED_DIR "/fixtures/tokenizer/qwen2/tokenizer.json");
  auto tok = Tokenizer::FromFile(tok_path);
  if (!tok.ok()) {
    std::cerr << tok.status().message() << "\n";
    return 1;
  }
  struct Set {
    const char* name;
    const char* format;
    const char* file;
  };
  const std::vector<Set> sets = {{"gsm8k_train", "gsm8k", "gsm8k/train.jsonl"},
                                 {"gsm8k_test", "gsm8k", "gsm8k/test.jsonl"},
                                 {"math500", "math500", "math500/test.jsonl"}};
  const std::vector<int64_t> windows = {64, 128, 256, 512, 1024};
  nlohmann::json out = {{"tokenizer", tok_path}, {"prompt_format", "chatml + Qwen2.5-Math system prompt"}};
  std::printf("%-12s %6s | %-22s | %-22s | %-22s | %s\n", "data", "n", "prompt p50/p90/p99/max",
              "solution p50/p90/p99", "total p50/p90/p99/max", "share of totals > W (64/128/256/512/1024)");
  for (const Set& s : sets) {
    DatasetSpec spec;
    auto format = ParseDatasetFormat(s.format);
    spec.format = *format;
    spec.path = data_dir + "/" + s.file;
    auto reader = DatasetReader::Open(spec);
    if (!reader.ok()) {
      std::cerr << reader.status().message() << "\n";
      return 1;
    }
    auto problems = (*reader)->ReadAll();
    if (!problems.ok()) {
      std::cerr << problems.status().message() << "\n";
      return 1;
    }
    v1::DataSpec data;
    data.set_format(s.format);
    data.set_chat_template("chatml");
    std::vector<int64_t> prompt, solution, total;
    for (const MathProblem& p : *problems) {
      auto text = StagePromptText(data, p.question);
      auto pi = (*tok)->Encode(*text);
      auto si = (*tok)->Encode(ChatSolution(p));
      if (!pi.ok() || !si.ok()) {
        std::cerr << p.id << ": cannot tokenise\n";
        return 1;
      }
      prompt.push_back(static_cast<int64_t>(pi->size()));
      solution.push_back(static_cast<int64_t>(si->size()) + 1);  // + <|im_end|>
      total.push_back(prompt.back() + solution.back());
    }
    nlohmann::json j;
    j["n"] = problems->size();
    for (auto [key, v] : {std::pair<const char*, std::vector<int64_t>*>{"prompt", &prompt}, {"solution", &solution},
                          {"total", &total}}) {
      j[key] = {{"p50", Percentile(*v, 0.5)}, {"p90", Percentile(*v, 0.9)}, {"p99", Percentile(*v, 0.99)},
                {"max", *std::max_element(v->begin(), v->end())}};
    }
    std::string shares;
    for (int64_t w : windows) {
      const double share = static_cast<double>(std::count_if(total.begin(), total.end(), [w](int64_t t) { return t > w; })) /
                           static_cast<double>(total.size());
      j["share_longer_than_window"][std::to_string(w)] = share;
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%s%.3f", shares.empty() ? "" : "/", share);
      shares += buf;
    }
    std::printf("%-12s %6zu | %4lld/%4lld/%4lld/%5lld | %4lld/%4lld/%4lld       | %4lld/%4lld/%4lld/%5lld | %s\n", s.name,
                problems->size(), (long long)j["prompt"]["p50"], (long long)j["prompt"]["p90"],
                (long long)j["prompt"]["p99"], (long long)j["prompt"]["max"], (long long)j["solution"]["p50"],
                (long long)j["solution"]["p90"], (long long)j["solution"]["p99"], (long long)j["total"]["p50"],
                (long long)j["total"]["p90"], (long long)j["total"]["p99"], (long long)j["total"]["max"],
                shares.c_str());
    out["sets"][s.name] = j;
  }
  if (auto path = args->Optional("out")) {
    std::ofstream(*path) << out.dump(2) << "\n";
    std::cout << "wrote " << *path << "\n";
  }
  return 0;
}

}  // namespace
}  // namespace swarr

int main(int argc, char** argv) { return swarr::Run(argc, argv); }
