#include "learner/stage_common.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/math/datasets.h"
#include "common/math/prompt_set.h"
#include "common/math/synthetic.h"
#include "common/model/runtime.h"
#include "common/tokenizer/tokenizer.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace swarr {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Model>> LoadStageModel(const v1::ModelSpec& spec, uint64_t seed,
                                                      const std::string& resume_dir) {
  ModelOptions opts;
  if (!spec.device().empty()) opts.device = spec.device();
  // "" = float32 on the CPU, bfloat16 compute on CUDA (AdamW keeps float32 master weights).
  opts.dtype = spec.dtype();
  if (spec.attention().window() > 0) opts.conversion.window = spec.attention().window();
  for (int64_t w : spec.attention().layer_windows()) opts.conversion.layer_windows.push_back(w);
  if (spec.attention().sinks() > 0) opts.conversion.attention_sinks = spec.attention().sinks();
  if (!resume_dir.empty()) return Model::Load(resume_dir, opts);
  const std::string& dir = spec.path();
  if (Exists(dir + "/model.safetensors") || Exists(dir + "/model.safetensors.index.json")) {
    return Model::Load(dir, opts);
  }
  SWARR_ASSIGN_OR_RETURN(ModelConfig config, LoadModelConfig(dir));
  return Model::RandomInit(config, seed, opts);
}

absl::StatusOr<std::vector<SftExample>> BuildSftData(const v1::DataSpec& data, const Model& model,
                                                     const std::string& model_dir) {
  std::vector<SftExample> out;
  if (data.format() == "synthetic") {
    SWARR_RETURN_IF_ERROR(ValidateSyntheticTask(data.synthetic_task()));
    if (model.config().vocab_size < CharVocab::kSize) {
      return absl::InvalidArgumentError(absl::StrCat("data.synthetic_task needs vocab_size >= ", CharVocab::kSize,
                                                     ", the model has ", model.config().vocab_size));
    }
    // 0 = "endless": a pool large enough that toy runs never repeat an epoch.
    const int64_t n = data.synthetic_size() > 0 ? data.synthetic_size() : 20000;
    std::mt19937_64 rng(data.seed());
    for (int64_t i = 0; i < n; ++i) {
      SyntheticProblem p = MakeSyntheticProblem(data.synthetic_task(), rng);
      SftExample e;
      SWARR_ASSIGN_OR_RETURN(e.prompt, CharVocab::Encode(p.prompt));
      SWARR_ASSIGN_OR_RETURN(e.response, CharVocab::Encode(p.response));
      e.response.push_back(CharVocab::kEos);
      out.push_back(std::move(e));
    }
    return out;
  }
  // Tokenised text data.
  std::string tok_path = data.tokenizer();
  if (tok_path.empty()) tok_path = model_dir + "/tokenizer.json";
  auto tokenizer = Tokenizer::FromFile(tok_path);
  if (!tokenizer.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("data.tokenizer: ", tokenizer.status().message()));
  }
  if (model.config().eos_token_ids.empty()) return absl::InvalidArgumentError("the model config has no eos_token_id");
  const int64_t eos = model.config().eos_token_ids[0];
  auto add = [&](const std::string& prompt, const std::string& response, const std::string& where) -> absl::Status {
    SftExample e;
    // The prompt format of the stage's RL and eval prompts (PromptSet), system prompt included.
    SWARR_ASSIGN_OR_RETURN(const std::string text, StagePromptText(data, prompt));
    auto p = (*tokenizer)->Encode(text);
    auto r = (*tokenizer)->Encode(response);
    if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": prompt: ", p.status().message()));
    if (!r.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": response: ", r.status().message()));
    e.prompt = std::move(*p);
    e.response = std::move(*r);
    e.response.push_back(eos);
    out.push_back(std::move(e));
    return absl::OkStatus();
  };
  if (data.format() == "prompt_response") {
    std::ifstream in(data.path());
    if (!in) return absl::NotFoundError(absl::StrCat("data.path: cannot open ", data.path()));
    const std::string pf = data.prompt_field().empty() ? "prompt" : data.prompt_field();
    const std::string rf = data.response_field().empty() ? "response" : data.response_field();
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = absl::StrCat(data.path(), ":", n);
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": not a JSON object"));
      for (const std::string& f : {pf, rf}) {
        if (!j.contains(f) || !j[f].is_string()) {
          return absl::InvalidArgumentError(absl::StrCat(where, ": field '", f, "' must be a string"));
        }
      }
      SWARR_RETURN_IF_ERROR(add(j[pf].get<std::string>(), j[rf].get<std::string>(), where));
    }
    return out;
  }
  DatasetSpec spec;
  SWARR_ASSIGN_OR_RETURN(spec.format, ParseDatasetFormat(data.format()));
  spec.path = data.path();
  if (!data.question_field().empty()) spec.question_field = data.question_field();
  if (!data.answer_field().empty()) spec.answer_field = data.answer_field();
  spec.shuffle = data.shuffle();
  spec.seed = data.seed();
  SWARR_ASSIGN_OR_RETURN(auto reader, DatasetReader::Open(spec));
  while (true) {
    SWARR_ASSIGN_OR_RETURN(auto problem, reader->Next());
    if (!problem.has_value()) break;
    // The reference solution in the format eval expects: annotations gone, answer in \boxed{}.
    SWARR_RETURN_IF_ERROR(add(problem->question, ChatSolution(*problem), problem->id));
  }
  return out;
}

AdamWOptions AdamFromConfig(const v1::OptimizerConfig& c) {
  AdamWOptions o;
  if (c.has_beta1()) o.beta1 = c.beta1();
  if (c.has_beta2()) o.beta2 = c.beta2();
  if (c.has_eps()) o.eps = c.eps();
  if (c.has_grad_clip()) o.grad_clip = c.grad_clip();
  o.weight_decay = c.weight_decay();
  return o;
}

LrSchedule ScheduleFromConfig(const v1::OptimizerConfig& c, int64_t max_steps) {
  LrSchedule s;
  s.lr = c.lr();
  s.warmup_steps = c.warmup_steps();
  s.total_steps = max_steps;
  s.kind = c.schedule().empty() ? "constant" : c.schedule();
  s.min_lr_ratio = c.min_lr_ratio();
  return s;
}

RlOptions RlOptionsFromStage(const v1::Stage& stage) {
  const v1::RlConfig& cfg = stage.rl();
  const double temperature = cfg.has_temperature() ? cfg.temperature() : 1.0;
  RlOptions opts;
  opts.loss.clip_low = cfg.clip_low() > 0 ? cfg.clip_low() : 0.2;
  opts.loss.clip_high = cfg.clip_high() > 0 ? cfg.clip_high() : opts.loss.clip_low;
  opts.loss.aggregation =
      cfg.loss_aggregation() == "sequence_mean" ? LossAggregation::kSequenceMean : LossAggregation::kTokenMean;
  opts.loss.kl_coef = cfg.kl_coef();
  opts.loss.entropy_coef = cfg.entropy_coef();
  opts.loss.max_importance_weight = cfg.max_importance_weight();
  opts.kl_reward_coef = cfg.kl_reward_coef();
  opts.overlong_filter = cfg.overlong_filter();
  opts.overlong_buffer = cfg.overlong_buffer();
  opts.overlong_penalty = cfg.has_overlong_penalty() ? cfg.overlong_penalty() : 1.0;
  opts.max_new_tokens = cfg.max_new_tokens();
  opts.advantages.divide_by_std = cfg.std_normalize_advantages();
  opts.advantages.subtract_mean = cfg.advantage() != "reward";
  opts.temperature = temperature > 0 ? temperature : 1.0;
  opts.epochs = std::max<int64_t>(1, cfg.epochs());
  opts.minibatches = std::max<int64_t>(1, cfg.minibatches());
  opts.dynamic_sampling = cfg.dynamic_sampling();
  opts.max_staleness = cfg.max_staleness();
  opts.micro_batch_tokens = stage.memory().micro_batch_tokens();
  opts.scoring = ScoringFromStage(stage);
  opts.schedule = ScheduleFromConfig(stage.optimizer(), stage.stop().max_steps() * opts.epochs * opts.minibatches);
  opts.adam = AdamFromConfig(stage.optimizer());
  return opts;
}

ScoringOptions ScoringFromStage(const v1::Stage& stage) {
  const v1::LearnerMemory& mem = stage.memory();
  ScoringOptions s;
  const bool cuda = stage.model().device().rfind("cuda", 0) == 0;
  const std::string& packing = mem.packing();
  // Auto: where FlashAttention-2 takes the packed batch (CUDA, bf16/fp16; "" is bf16 on CUDA).
  // Elsewhere packing would run the band path one sequence at a time, slower than padded.
  const std::string& dtype = stage.model().dtype();
  const bool half = dtype.empty() || dtype == "bfloat16" || dtype == "float16";
  s.packed = packing == "on" || ((packing.empty() || packing == "auto") && cuda && half);
  s.chunk_tokens = mem.logprob_chunk_tokens() > 0 ? mem.logprob_chunk_tokens() : (cuda ? 2048 : 0);
  s.checkpoint_layers = mem.activation_checkpointing();
  s.checkpoint_layer_count = mem.checkpoint_layers();
  return s;
}

namespace {
std::string Gib(int64_t bytes) { return absl::StrFormat("%.1f", static_cast<double>(bytes) / (1 << 30)); }
}  // namespace

std::string MemoryEstimate::ToString() const {
  return absl::StrCat(Gib(total()), " GiB (weights ", Gib(weights), ", gradients ", Gib(gradients),
                      ", master weights + AdamW moments ", Gib(optimizer), ", reference ", Gib(reference),
                      ", activations ", Gib(activations), ", log-prob chunk ", Gib(logprobs), ")");
}

MemoryEstimate EstimateTrainingMemory(const ModelConfig& c, int64_t num_parameters, at::ScalarType dtype,
                                      int64_t micro_tokens, const ScoringOptions& scoring, bool with_reference) {
  const int64_t e = dtype == at::kFloat ? 4 : (dtype == at::kDouble ? 8 : 2);
  const bool low = e == 2;
  MemoryEstimate m;
  m.weights = num_parameters * e;
  m.gradients = num_parameters * e;
  m.optimizer = num_parameters * ((low ? 4 : 0) + 2 * 4);  // fp32 master + exp_avg + exp_avg_sq
  m.reference = with_reference ? num_parameters * e : 0;
  // Saved activations per token of one decoder layer: the two norms' float32 temporaries and
  // outputs, q/k/v (+ RoPE copies), the attention output, gate/up/SiLU/product, residuals.
  const int64_t qkv = (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim;
  const int64_t per_layer = (4 * c.hidden_size + 2 * qkv + c.num_attention_heads * c.head_dim + 4 * c.intermediate_size) * e +
                            2 * c.hidden_size * 4;
  const int64_t layers = c.num_hidden_layers;
  const int64_t recomputed = !scoring.checkpoint_layers ? 0
                             : scoring.checkpoint_layer_count > 0 ? std::min(scoring.checkpoint_layer_count, layers)
                                                                  : layers;
  const int64_t kept = recomputed * c.hidden_size * e + (layers - recomputed) * per_layer + (recomputed > 0 ? per_layer : 0);
  m.activations = micro_tokens * (kept + 2 * c.hidden_size * e);  // + embeddings / final norm
  // One chunk's logits in the compute dtype plus float32 logits, probabilities and their gradient.
  const int64_t rows = scoring.chunk_tokens > 0 ? std::min(scoring.chunk_tokens, micro_tokens) : micro_tokens;
  m.logprobs = std::max<int64_t>(rows, 1) * c.vocab_size * (e + 3 * 4);
  return m;
}

absl::Status CheckStageFitsMemory(const v1::Stage& stage, const Model& model, int64_t micro_tokens) {
  const DeviceMemory dev = QueryDeviceMemory(stage.model().device());
  if (!dev.available) return absl::OkStatus();
  const bool ref = stage.has_rl() && (stage.rl().kl_coef() > 0 || stage.rl().kl_reward_coef() > 0);
  const MemoryEstimate est = EstimateTrainingMemory(model.config(), model.num_parameters(), model.dtype(),
                                                    micro_tokens, ScoringFromStage(stage), ref);
  const double limit_gib = stage.memory().max_gib() > 0 ? stage.memory().max_gib()
                                                        : static_cast<double>(dev.total_bytes) / (1 << 30);
  const double need_gib = static_cast<double>(est.total()) / (1 << 30);
  if (need_gib <= limit_gib) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "stage '", stage.name(), "' would need about ", est.ToString(), " of GPU memory for micro-batches of ",
      micro_tokens, " tokens, more than the ", absl::StrFormat("%.1f", limit_gib),
      " GiB available (memory.max_gib or the device); lower the micro-batch tokens (train.micro_batch_tokens, "
      "memory.micro_batch_tokens), turn on memory.activation_checkpointing or use a smaller memory.logprob_chunk_tokens"));
}

int64_t RlMicroBatchTokens(const v1::Stage& stage) {
  const v1::RlConfig& rl = stage.rl();
  const int64_t minibatch_tokens = std::max<int64_t>(1, rl.prompts_per_step()) *
                                   std::max<int64_t>(1, rl.samples_per_prompt()) *
                                   std::max<int64_t>(1, rl.max_new_tokens()) / std::max<int64_t>(1, rl.minibatches());
  const int64_t micro = stage.memory().micro_batch_tokens();
  return micro > 0 ? std::min(micro, minibatch_tokens) : minibatch_tokens;
}

nlohmann::json PeakMemoryFields(const Model& model) {
  nlohmann::json j = nlohmann::json::object();
  if (!model.device().is_cuda()) return j;
  const std::string dev = model.device().str();
  const DeviceMemory m = QueryDeviceMemory(dev);
  if (!m.available) return j;
  j["peak_gpu_gib"] = static_cast<double>(m.peak_allocated_bytes) / (1 << 30);
  ResetPeakDeviceMemory(dev);
  return j;
}

std::string RlStepMetricsLine(const RlStepMetrics& m, int64_t policy_version, double seconds, const Model& policy) {
  nlohmann::json fields({{"step", m.step},
                         {"policy_version", policy_version},
                         {"loss", m.loss},
                         {"lr", m.lr},
                         {"tokens", m.tokens},
                         {"reward_mean", m.reward_mean},
                         {"reward_std", m.reward_std},
                         {"kl", m.kl},
                         {"clip_frac", m.clip_frac},
                         {"entropy", m.entropy},
                         {"grad_norm", m.grad_norm},
                         {"importance_weight_mean", m.importance_weight_mean},
                         {"updates", m.updates},
                         {"groups_used", m.groups_used},
                         {"groups_dropped_uniform", m.groups_dropped_uniform},
                         {"trajectories_invalid", m.trajectories_invalid},
                         {"seconds", seconds}});
  for (const auto& [key, value] : RlAlgorithmMetricFields(m)) fields[key] = value;
  fields.update(PeakMemoryFields(policy));
  return fields.dump();
}

int64_t RlUpdatesPerStep(const v1::RlConfig& config) {
  return std::max<int64_t>(1, config.epochs()) * std::max<int64_t>(1, config.minibatches());
}

absl::StatusOr<std::unique_ptr<MetricsLog>> MetricsLog::Open(const std::string& path, int64_t keep_up_to_step) {
  std::vector<std::string> kept;
  if (auto text = ReadFile(path); text.ok()) {
    std::istringstream in(*text);
    std::string line;
    while (std::getline(in, line)) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.contains("step") && j["step"].is_number_integer() &&
          j["step"].get<int64_t>() <= keep_up_to_step) {
        kept.push_back(line + "\n");
      }
    }
  }
  std::vector<std::string_view> pieces(kept.begin(), kept.end());
  SWARR_RETURN_IF_ERROR(WriteFileAtomically(path, pieces));
  auto log = std::unique_ptr<MetricsLog>(new MetricsLog());
  log->file_ = std::fopen(path.c_str(), "a");
  if (log->file_ == nullptr) return absl::InternalError(absl::StrCat("cannot append to ", path));
  return log;
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void MetricsLog::Write(const std::string& json_line) {
  std::fputs(json_line.c_str(), file_);
  std::fputc('\n', file_);
  std::fflush(file_);
}

}  // namespace swarr
