// swarr score / swarr generate.
#include <iostream>

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model/generator.h"
#include "common/model/model.h"
#include "common/model/tensor_io.h"
#include "common/util/status_macros.h"
#include "nlohmann/json.hpp"
#include "tools/args.h"
#include "tools/commands.h"

namespace swarr {
namespace {

absl::StatusOr<ModelOptions> ModelOptionsFrom(const Args& args) {
  ModelOptions opts;
  SWARR_ASSIGN_OR_RETURN(auto window, args.Int("window"));
  SWARR_ASSIGN_OR_RETURN(auto sinks, args.Int("sinks"));
  opts.conversion.window = window;
  opts.conversion.attention_sinks = sinks;
  if (args.Has("layer-windows")) {
    SWARR_ASSIGN_OR_RETURN(opts.conversion.layer_windows, args.IntList("layer-windows"));
  }
  if (auto d = args.Optional("device")) opts.device = *d;
  if (auto d = args.Optional("dtype")) opts.dtype = *d;
  return opts;
}

absl::Status Score(const std::vector<std::string>& argv) {
  SWARR_ASSIGN_OR_RETURN(Args args, Args::Parse(argv, {"model", "input", "out", "window", "layer-windows", "sinks", "device", "dtype"}, {}));
  SWARR_ASSIGN_OR_RETURN(std::string model_dir, args.Required("model"));
  SWARR_ASSIGN_OR_RETURN(std::string input, args.Required("input"));
  SWARR_ASSIGN_OR_RETURN(std::string out, args.Required("out"));
  SWARR_ASSIGN_OR_RETURN(ModelOptions opts, ModelOptionsFrom(args));
  SWARR_ASSIGN_OR_RETURN(auto model, Model::Load(model_dir, opts));
  auto ids = ReadTensor(input, "input_ids");
  if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat("--input: ", ids.status().message()));
  if (ids->scalar_type() != at::kLong || ids->dim() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("--input: input_ids must be int64 [B, T], got ",
                                                   c10::toString(ids->scalar_type()), " of ", ids->dim(), " dims"));
  }
  SWARR_ASSIGN_OR_RETURN(at::Tensor logits, model->Score(*ids));
  return WriteTensors(out, {{"logits", logits}});
}

absl::Status Generate(const std::vector<std::string>& argv) {
  SWARR_ASSIGN_OR_RETURN(
      Args args, Args::Parse(argv, {"model", "prompt-ids", "max-new-tokens", "temperature", "top-p", "top-k", "seed",
                                    "window", "layer-windows", "sinks", "device", "dtype"},
                             {"greedy", "ignore-eos"}));
  SWARR_ASSIGN_OR_RETURN(std::string model_dir, args.Required("model"));
  GenerationRequest req;
  SWARR_ASSIGN_OR_RETURN(req.prompt, args.IntList("prompt-ids"));
  SWARR_ASSIGN_OR_RETURN(auto max_new, args.Int("max-new-tokens"));
  if (!max_new) return absl::InvalidArgumentError("missing required flag --max-new-tokens");
  req.max_new_tokens = *max_new;
  const bool greedy = args.Has("greedy");
  if (greedy && (args.Has("temperature") || args.Has("top-p") || args.Has("top-k"))) {
    return absl::InvalidArgumentError("--greedy cannot be combined with --temperature, --top-p or --top-k");
  }
  req.sampling.greedy = greedy;
  SWARR_ASSIGN_OR_RETURN(auto temperature, args.Double("temperature"));
  SWARR_ASSIGN_OR_RETURN(auto top_p, args.Double("top-p"));
  SWARR_ASSIGN_OR_RETURN(auto top_k, args.Int("top-k"));
  SWARR_ASSIGN_OR_RETURN(auto seed, args.Int("seed"));
  if (temperature) req.sampling.temperature = *temperature;
  if (top_p) req.sampling.top_p = *top_p;
  if (top_k) req.sampling.top_k = *top_k;
  if (seed) req.sampling.seed = static_cast<uint64_t>(*seed);
  SWARR_ASSIGN_OR_RETURN(ModelOptions opts, ModelOptionsFrom(args));
  SWARR_ASSIGN_OR_RETURN(auto model, Model::Load(model_dir, opts));
  if (!args.Has("ignore-eos")) req.stop_token_ids = model->config().eos_token_ids;
  Generator gen(*model);
  SWARR_ASSIGN_OR_RETURN(auto results, gen.Generate({req}));
  nlohmann::json line = {{"ids", results[0].tokens}, {"logprobs", results[0].logprobs}};
  std::cout << line.dump() << std::endl;
  return absl::OkStatus();
}

absl::Status Convert(const std::vector<std::string>& argv) {
  SWARR_ASSIGN_OR_RETURN(
      Args args, Args::Parse(argv, {"model", "out", "window", "layer-windows", "sinks", "dtype", "max-shard-mb"}, {}));
  SWARR_ASSIGN_OR_RETURN(std::string model_dir, args.Required("model"));
  SWARR_ASSIGN_OR_RETURN(std::string out, args.Required("out"));
  SWARR_ASSIGN_OR_RETURN(ModelOptions opts, ModelOptionsFrom(args));
  Model::SaveOptions save;
  save.dtype = opts.dtype.empty() ? "float32" : opts.dtype;
  SWARR_ASSIGN_OR_RETURN(auto shard_mb, args.Int("max-shard-mb"));
  if (shard_mb) {
    if (*shard_mb <= 0) return absl::InvalidArgumentError("--max-shard-mb must be positive");
    save.max_shard_bytes = *shard_mb << 20;
  }
  opts.dtype = "float32";
  SWARR_ASSIGN_OR_RETURN(auto model, Model::Load(model_dir, opts));
  SWARR_RETURN_IF_ERROR(model->Save(out, save));
  std::cerr << "swarr: wrote " << out << " (windows per layer: "
            << absl::StrJoin(model->config().layer_windows, ",") << ", sinks " << model->config().attention_sinks
            << ")\n";
  return absl::OkStatus();
}

}  // namespace

int RunConvert(const std::vector<std::string>& args) {
  absl::Status st = Convert(args);
  return st.ok() ? 0 : FailWithStatus(st);
}

int RunScore(const std::vector<std::string>& args) {
  absl::Status st = Score(args);
  return st.ok() ? 0 : FailWithStatus(st);
}

int RunGenerate(const std::vector<std::string>& args) {
  absl::Status st = Generate(args);
  return st.ok() ? 0 : FailWithStatus(st);
}

}  // namespace swarr
