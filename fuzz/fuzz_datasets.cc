// JSONL math data sets (common/math/datasets.h) in every format, and the SFT target rewrite.
#include <unistd.h>

#include <fstream>

#include "common/math/datasets.h"
#include "fuzz/fuzz_target.h"

namespace swarr_fuzz {
std::vector<std::string> FuzzSeeds() {
  return {std::string(1, '\0') + R"({"question": "What is 1+1?", "answer": "1+1=<<1+1=2>>2\n#### 2"})" "\n",
          std::string(1, '\1') + R"({"problem": "x", "solution": "so \\boxed{\\frac{1}{2}}", "answer": "\\frac{1}{2}"})" "\n",
          std::string(1, '\2') + R"({"problem": "p", "answer": 17, "id": 3})" "\n\n" R"({"problem": "q", "answer": "0.5"})",
          std::string(1, '\3') + R"({"question": "q", "answer": 4.25, "id": "a"})" "\n"};
}
}  // namespace swarr_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const std::string path = "/tmp/swarr_fuzz_datasets_" + std::to_string(getpid()) + ".jsonl";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data) + 1, static_cast<std::streamsize>(size - 1));
  }
  using F = swarr::DatasetSpec::Format;
  const F formats[] = {F::kGsm8k, F::kMath500, F::kAimeAmc, F::kGeneric};
  swarr::DatasetSpec spec;
  spec.format = formats[data[0] % 4];
  spec.path = path;
  spec.shuffle = (data[0] & 4) != 0;
  auto reader = swarr::DatasetReader::Open(spec);
  if (!reader.ok()) return 0;
  auto all = (*reader)->ReadAll();
  if (all.ok()) {
    for (const auto& p : *all) (void)swarr::ChatSolution(p);
  }
  return 0;
}
