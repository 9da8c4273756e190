// The `swarr` command-line tool.
#include <iostream>
#include <string>
#include <vector>

#include <c10/util/Exception.h>

#include "common/model/runtime.h"
#include "common/util/line_stderr.h"
#include "tools/commands.h"

namespace {

constexpr char kUsage[] =
    "usage: swarr <command> [flags]\n"
    "commands:\n"
    "  score     --model DIR --input FILE.safetensors --out FILE.safetensors [--window W] [--sinks S]\n"
    "            teacher-forced float32 logits [B, T, V] of the int64 tensor input_ids [B, T]\n"
    "  generate  --model DIR --prompt-ids 5,17,42 --max-new-tokens N\n"
    "            [--greedy | --temperature T --top-p P --top-k K] [--seed S] [--window W] [--sinks S]\n"
    "            [--ignore-eos]; prints {\"ids\": [...], \"logprobs\": [...]}\n"
    "  convert   --model DIR --out DIR [--window W | --layer-windows W0,W1,...] [--sinks S]\n"
    "            [--dtype float32|bfloat16|float16] [--max-shard-mb M]; writes an HF checkpoint\n"
    "            with the attention settings (sharded with an index past M MiB, default 5120)\n"
    "  tokenize  --tokenizer tokenizer.json --input IN.jsonl [--decode]\n"
    "            {\"text\": ...} lines -> {\"ids\": [...]} lines (--decode: the reverse)\n"
    "  verify    --input IN.jsonl: {\"prediction\", \"answer\"} lines -> {\"correct\", \"extracted\"} lines,\n"
    "            accuracy on stderr\n"
    "  train     --config STAGE.yaml --run-dir DIR: one train (SFT) or rl stage; DIR/metrics.jsonl,\n"
    "            DIR/checkpoints/ (resumes from the newest), DIR/final/\n"
    "  coordinator / learner / rollout  the services (one process each; --help for their flags);\n"
    "            also installed as swarr-coordinator, swarr-learner, swarr-rollout\n"
    "  launch    --config PIPELINE.yaml --run-dir DIR [--rollouts N]: coordinator, learner and N\n"
    "            rollout servers on loopback; DIR/summary.json\n"
    "  status    --coordinator ADDR: stage, step, versions, workers\n"
    "  fetch-weights --learner ADDR [--device D] [--path grpc|ipc|both]: time weight loads\n"
    "  demo      [--quick] [--from-scratch] [--seed S] [--device cpu|cuda] [--run-dir DIR]: the SWARR\n"
    "            experiment end to end through the services; DIR/results.json, DIR/report.md\n"
    "common flags: --layer-windows W0,W1,... (one window per layer, 0 = full attention),\n"
    "              --device cpu|cuda[:N], --dtype float32|bfloat16|float16\n";

}  // namespace

int main(int argc, char** argv) {
  // Whole log lines from the services' threads (docs/services.md "Logs").
  swarr::MakeStderrLineAtomic();
  // swarr-coordinator / swarr-learner / swarr-rollout (symlinks to this binary) run the
  // service of their name: `swarr-learner FLAGS` == `swarr learner FLAGS`.
  const std::string self = argv[0];
  const std::string base = self.substr(self.find_last_of('/') == std::string::npos ? 0 : self.find_last_of('/') + 1);
  if (base.rfind("swarr-", 0) == 0) {
    std::vector<std::string> args(argv + 1, argv + argc);
    swarr::InitTorchRuntime();
    const std::string service = base.substr(6);
    if (service == "coordinator") return swarr::RunCoordinator(args);
    if (service == "learner") return swarr::RunLearner(args);
    if (service == "rollout") return swarr::RunRollout(args);
    std::cerr << "swarr: unknown service binary '" << base << "'\n";
    return 2;
  }
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "help") {
    std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  swarr::InitTorchRuntime();
  const std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (command == "score") return swarr::RunScore(args);
    if (command == "generate") return swarr::RunGenerate(args);
    if (command == "convert") return swarr::RunConvert(args);
    if (command == "tokenize") return swarr::RunTokenize(args);
    if (command == "verify") return swarr::RunVerify(args);
    if (command == "train") return swarr::RunTrain(args);
    if (command == "coordinator") return swarr::RunCoordinator(args);
    if (command == "learner") return swarr::RunLearner(args);
    if (command == "rollout") return swarr::RunRollout(args);
    if (command == "status") return swarr::RunStatus(args);
    if (command == "launch") return swarr::RunLaunch(args);
    if (command == "fetch-weights") return swarr::RunFetchWeights(args);
    if (command == "demo") return swarr::RunDemo(args);
  } catch (const c10::Error& e) {
    std::cerr << "swarr: internal error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "swarr: internal error: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "swarr: unknown command '" << command << "' (try swarr --help)\n";
  return 2;
}
