// YAML pipeline and stage configs (common/config/config_loader.h): parse, validate, placement.
#include <fstream>
#include <sstream>

#include "common/config/config_loader.h"
#include "common/config/placement.h"
#include "fuzz/fuzz_target.h"

namespace swarr_fuzz {
std::vector<std::string> FuzzSeeds() {
  std::vector<std::string> out;
  for (const char* f : {"/configs/examples/pipeline_toy.yaml", "/configs/examples/rl_toy.yaml",
                        "/configs/examples/sft_toy.yaml", "/configs/recipes/qwen2.5-math-1.5b.yaml"}) {
    std::ifstream in(std::string(SWARR_SOURCE_DIR) + f);
    std::stringstream ss;
    ss << in.rdbuf();
    out.push_back(ss.str());
  }
  out.push_back("name: x\nstages: [{name: a, eval: {max_new_tokens: 1}, model: {path: m}, data: {format: gsm8k, path: p}}]\n"
                "placement: {learner: 'cuda:0', rollouts: ['cuda:1..3'], rollout_memory_gib: 2}\n");
  out.push_back("a: &x [*x]\n");
  return out;
}
}  // namespace swarr_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  swarr::v1::PipelineConfig p;
  if (swarr::ParseYamlConfig(text, &p).ok() && swarr::ValidatePipeline(p).ok()) {
    for (int gpus : {0, 1, 8}) (void)swarr::ResolvePlacement(p, 3, {gpus, {}}, "");
    for (int i = 0; i < p.stages_size(); ++i) (void)swarr::StageWithPlacement(p, i);
  }
  swarr::v1::Stage s;
  if (swarr::ParseYamlConfig(text, &s).ok()) (void)swarr::ValidateStage(s);
  return 0;
}
