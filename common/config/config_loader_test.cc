#include "common/config/config_loader.h"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {
namespace {

using ::swarr::v1::PipelineConfig;
using ::swarr::v1::Stage;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// The error message of parsing `yaml` onto a Stage (fails the test if it parses).
std::string StageError(const std::string& yaml) {
  Stage stage;
  const absl::Status status = ParseYamlConfig(yaml, &stage);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << yaml;
  return std::string(status.message());
}

std::string PipelineError(const std::string& yaml) {
  PipelineConfig pipeline;
  const absl::Status status = ParseYamlConfig(yaml, &pipeline);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << yaml;
  return std::string(status.message());
}

constexpr char kRlStage[] = R"yaml(
name: rl-1
seed: 7
rl:
  prompts_per_step: 32
  samples_per_prompt: 8
  max_new_tokens: 256
  temperature: 0.9
  top_p: 0.95
  top_k: 50
  clip_low: 0.2
  clip_high: 0.28
  loss_aggregation: sequence_mean
  epochs: 2
  minibatches: 4
  kl_coef: 0.001
  std_normalize_advantages: true
  max_importance_weight: 2
  dynamic_sampling: True
  reward: verifier
  max_staleness: 1
model:
  path: /models/Qwen2.5-Math-1.5B
  device: cuda:0
  dtype: bfloat16
  attention:
    layer_windows: [0, 512, 512, 0]
    sinks: 4
data:
  format: jsonl
  path: data/train.jsonl
  question_field: problem
  answer_field: solution
  tokenizer: /models/Qwen2.5-Math-1.5B/tokenizer.json
  chat_template: chatml
  system_prompt: "Please reason step by step: 1 + 1"
  shuffle: true
  seed: 18446744073709551615
optimizer:
  lr: 1e-6
  weight_decay: 0.1
  beta1: 0
  beta2: 0.95
  eps: 1.0e-8
  grad_clip: 0
  warmup_steps: 10
  schedule: cosine
  min_lr_ratio: 0.1
stop:
  max_steps: 500
  max_tokens: 100000000
  max_minutes: 90.5
  target_reward: 0.8
checkpoint:
  every_steps: 50
  keep_last: 3
  dir: /ckpt/rl
)yaml";

TEST(ParseYamlConfigTest, FullRlStage) {
  Stage stage;
  ASSERT_TRUE(ParseYamlConfig(kRlStage, &stage).ok()) << ParseYamlConfig(kRlStage, &stage);
  EXPECT_EQ(stage.name(), "rl-1");
  EXPECT_EQ(stage.seed(), 7u);
  ASSERT_EQ(stage.kind_case(), Stage::kRl);
  const v1::RlConfig& rl = stage.rl();
  EXPECT_EQ(rl.prompts_per_step(), 32);
  EXPECT_EQ(rl.samples_per_prompt(), 8);
  EXPECT_EQ(rl.max_new_tokens(), 256);
  EXPECT_TRUE(rl.has_temperature());
  EXPECT_DOUBLE_EQ(rl.temperature(), 0.9);
  EXPECT_DOUBLE_EQ(rl.top_p(), 0.95);
  EXPECT_EQ(rl.top_k(), 50);
  EXPECT_DOUBLE_EQ(rl.clip_low(), 0.2);
  EXPECT_DOUBLE_EQ(rl.clip_high(), 0.28);
  EXPECT_EQ(rl.loss_aggregation(), "sequence_mean");
  EXPECT_EQ(rl.epochs(), 2);
  EXPECT_EQ(rl.minibatches(), 4);
  EXPECT_DOUBLE_EQ(rl.kl_coef(), 0.001);
  EXPECT_TRUE(rl.std_normalize_advantages());
  EXPECT_DOUBLE_EQ(rl.max_importance_weight(), 2.0);
  EXPECT_TRUE(rl.dynamic_sampling());
  EXPECT_EQ(rl.reward(), "verifier");
  EXPECT_EQ(rl.max_staleness(), 1);

  EXPECT_EQ(stage.model().path(), "/models/Qwen2.5-Math-1.5B");
  EXPECT_EQ(stage.model().device(), "cuda:0");
  EXPECT_EQ(stage.model().dtype(), "bfloat16");
  EXPECT_EQ(stage.model().attention().window(), 0);
  EXPECT_THAT(stage.model().attention().layer_windows(), ::testing::ElementsAre(0, 512, 512, 0));
  EXPECT_EQ(stage.model().attention().sinks(), 4);

  EXPECT_EQ(stage.data().format(), "jsonl");
  EXPECT_EQ(stage.data().path(), "data/train.jsonl");
  EXPECT_EQ(stage.data().question_field(), "problem");
  EXPECT_EQ(stage.data().answer_field(), "solution");
  EXPECT_EQ(stage.data().tokenizer(), "/models/Qwen2.5-Math-1.5B/tokenizer.json");
  EXPECT_EQ(stage.data().chat_template(), "chatml");
  EXPECT_EQ(stage.data().system_prompt(), "Please reason step by step: 1 + 1");
  EXPECT_TRUE(stage.data().shuffle());
  EXPECT_EQ(stage.data().seed(), 18446744073709551615ull);

  const v1::OptimizerConfig& opt = stage.optimizer();
  EXPECT_DOUBLE_EQ(opt.lr(), 1e-6);
  EXPECT_DOUBLE_EQ(opt.weight_decay(), 0.1);
  EXPECT_TRUE(opt.has_beta1());  // an explicit 0 is kept apart from "unset = 0.9"
  EXPECT_EQ(opt.beta1(), 0.0);
  EXPECT_DOUBLE_EQ(opt.beta2(), 0.95);
  EXPECT_DOUBLE_EQ(opt.eps(), 1e-8);
  EXPECT_TRUE(opt.has_grad_clip());
  EXPECT_EQ(opt.grad_clip(), 0.0);
  EXPECT_EQ(opt.warmup_steps(), 10);
  EXPECT_EQ(opt.schedule(), "cosine");
  EXPECT_DOUBLE_EQ(opt.min_lr_ratio(), 0.1);

  EXPECT_EQ(stage.stop().max_steps(), 500);
  EXPECT_EQ(stage.stop().max_tokens(), 100000000);
  EXPECT_DOUBLE_EQ(stage.stop().max_minutes(), 90.5);
  EXPECT_DOUBLE_EQ(stage.stop().target_reward(), 0.8);
  EXPECT_EQ(stage.checkpoint().every_steps(), 50);
  EXPECT_EQ(stage.checkpoint().keep_last(), 3);
  EXPECT_EQ(stage.checkpoint().dir(), "/ckpt/rl");

  EXPECT_TRUE(ValidateStage(stage).ok()) << ValidateStage(stage);
}

TEST(ParseYamlConfigTest, PipelineWithTrainRlEval) {
  const std::string yaml = R"yaml(
name: demo
stages:
  - name: pretrain
    train: {micro_batch_tokens: 2048, grad_accum_steps: 2, max_seq_len: 128}
    model: {path: configs/models/tiny}
    data: {format: synthetic, synthetic_task: sum_digits, synthetic_size: 10000}
    optimizer: {lr: 1e-3, schedule: cosine}
    stop: {max_steps: 3000, target_loss: 0.05}
  - name: rl
    rl: {prompts_per_step: 32, samples_per_prompt: 8, max_new_tokens: 64}
    model: {path: runs/pretrain/final, attention: {window: 28}}
    data: {format: synthetic, synthetic_task: sum_digits}
    optimizer: {lr: 3e-4}
    stop: {max_minutes: 10}
  - name: eval-swa
    eval:
      num_problems: 300
      greedy: true
      max_new_tokens: 64
    model: {path: runs/rl/final, attention: {window: 28}}
    data: {format: gsm8k, path: ../shared/data/gsm8k/test.jsonl}
)yaml";
  PipelineConfig pipeline;
  ASSERT_TRUE(ParseYamlConfig(yaml, &pipeline).ok()) << ParseYamlConfig(yaml, &pipeline);
  EXPECT_EQ(pipeline.name(), "demo");
  ASSERT_EQ(pipeline.stages_size(), 3);
  EXPECT_EQ(pipeline.stages(0).kind_case(), Stage::kTrain);
  EXPECT_EQ(pipeline.stages(0).train().micro_batch_tokens(), 2048);
  EXPECT_EQ(pipeline.stages(0).train().grad_accum_steps(), 2);
  EXPECT_EQ(pipeline.stages(0).data().synthetic_size(), 10000);
  EXPECT_DOUBLE_EQ(pipeline.stages(0).optimizer().lr(), 1e-3);
  EXPECT_FALSE(pipeline.stages(0).optimizer().has_beta1());
  EXPECT_EQ(pipeline.stages(1).kind_case(), Stage::kRl);
  EXPECT_FALSE(pipeline.stages(1).rl().has_temperature());
  EXPECT_EQ(pipeline.stages(1).model().attention().window(), 28);
  EXPECT_DOUBLE_EQ(pipeline.stages(1).stop().max_minutes(), 10.0);
  EXPECT_EQ(pipeline.stages(2).kind_case(), Stage::kEval);
  EXPECT_EQ(pipeline.stages(2).eval().num_problems(), 300);
  EXPECT_TRUE(pipeline.stages(2).eval().greedy());
  EXPECT_EQ(pipeline.stages(2).data().path(), "../shared/data/gsm8k/test.jsonl");
  EXPECT_TRUE(ValidatePipeline(pipeline).ok()) << ValidatePipeline(pipeline);
}

TEST(ParseYamlConfigTest, NullKindSelectsItWithDefaults) {
  Stage stage;
  ASSERT_TRUE(ParseYamlConfig("name: s\ntrain:\n", &stage).ok());
  EXPECT_EQ(stage.kind_case(), Stage::kTrain);
  ASSERT_TRUE(ParseYamlConfig("eval: {}\n", &stage).ok());
  EXPECT_EQ(stage.kind_case(), Stage::kEval);
}

TEST(ParseYamlConfigTest, AcceptsJsonNamesAndNumberSpellings) {
  Stage stage;
  const std::string yaml =
      "rl: {samplesPerPrompt: 4, clipHigh: 3, clip_low: .5, top_p: \"1e-1\", maxNewTokens: 0x10}\n"
      "name: 12.50\n"
      "data: {systemPrompt: ~, format: 'jsonl'}\n";
  ASSERT_TRUE(ParseYamlConfig(yaml, &stage).ok()) << ParseYamlConfig(yaml, &stage);
  EXPECT_EQ(stage.rl().samples_per_prompt(), 4);
  EXPECT_DOUBLE_EQ(stage.rl().clip_high(), 3.0);
  EXPECT_DOUBLE_EQ(stage.rl().clip_low(), 0.5);
  EXPECT_DOUBLE_EQ(stage.rl().top_p(), 0.1);
  EXPECT_EQ(stage.rl().max_new_tokens(), 16);
  EXPECT_EQ(stage.name(), "12.50");  // a string field keeps the scalar's text
  EXPECT_EQ(stage.data().system_prompt(), "");
  EXPECT_EQ(stage.data().format(), "jsonl");
}

TEST(ParseYamlConfigTest, EmptyDocumentIsTheDefaultMessage) {
  for (const std::string text : {"", "\n\n", "# only a comment\n", "---\n", "~\n"}) {
    Stage stage;
    stage.set_name("stale");
    ASSERT_TRUE(ParseYamlConfig(text, &stage).ok()) << "text: " << text;
    EXPECT_EQ(stage.ByteSizeLong(), 0u) << "text: " << text;
  }
  // ... which ValidateStage then rejects for having no kind.
  EXPECT_THAT(std::string(ValidateStage(Stage()).message()), HasSubstr("stage has no kind"));
}

TEST(ParseYamlConfigTest, ErrorLeavesMessageUnchanged) {
  Stage stage;
  stage.set_name("kept");
  EXPECT_FALSE(ParseYamlConfig("name: other\nrl: {clip_high: abc}\n", &stage).ok());
  EXPECT_EQ(stage.name(), "kept");
  EXPECT_EQ(stage.kind_case(), Stage::KIND_NOT_SET);
}

TEST(ParseYamlConfigErrorTest, MistypedNumberNamesItsPath) {
  const std::string yaml = R"yaml(
stages:
  - name: a
    train: {}
  - name: b
    rl:
      clip_high: abc
)yaml";
  EXPECT_EQ(PipelineError(yaml),
            "stages[1].rl.clip_high: expected number, got \"abc\" (line 7, column 18)");
}

TEST(ParseYamlConfigErrorTest, UnknownFieldAtDepthWithSuggestion) {
  EXPECT_THAT(PipelineError("stages:\n  - name: a\n    trian: {}\n"),
              HasSubstr("stages[0].trian: unknown field (did you mean 'train'?) (line 3, column 5)"));
  EXPECT_THAT(StageError("model:\n  attention:\n    windw: 3\n"),
              HasSubstr("model.attention.windw: unknown field (did you mean 'window'?)"));
  // Nothing close: the message lists the fields instead.
  EXPECT_THAT(StageError("model:\n  zzzzzzzz: 3\n"),
              AllOf(HasSubstr("model.zzzzzzzz: unknown field (swarr.v1.ModelSpec has: path, "),
                    Not(HasSubstr("did you mean"))));
  EXPECT_THAT(StageError("bogus: 1\n"), HasSubstr("bogus: unknown field"));
}

TEST(ParseYamlConfigErrorTest, IntegerFields) {
  EXPECT_THAT(StageError("model: {attention: {layer_windows: [0, 16, 1.5]}}\n"),
              HasSubstr("model.attention.layer_windows[2]: expected integer, got \"1.5\""));
  EXPECT_THAT(StageError("rl: {top_k: 1e3}\n"), HasSubstr("rl.top_k: expected integer, got \"1e3\""));
  EXPECT_THAT(StageError("rl: {top_k: true}\n"), HasSubstr("rl.top_k: expected integer"));
  EXPECT_THAT(StageError("stop: {max_steps: 9223372036854775808}\n"),
              HasSubstr("stop.max_steps: integer out of range for int64, got \"9223372036854775808\""));
  EXPECT_THAT(StageError("stop: {max_steps: 99999999999999999999999}\n"),
              HasSubstr("stop.max_steps: integer out of range for int64"));
  EXPECT_THAT(StageError("seed: -1\n"), HasSubstr("seed: expected non-negative integer, got \"-1\""));
  EXPECT_THAT(StageError("seed: 18446744073709551616\n"),
              HasSubstr("seed: integer out of range for uint64"));
  Stage stage;
  ASSERT_TRUE(ParseYamlConfig("stop: {max_steps: -9223372036854775808}\n", &stage).ok());
  EXPECT_EQ(stage.stop().max_steps(), std::numeric_limits<int64_t>::min());
}

TEST(ParseYamlConfigErrorTest, DoubleAndBoolFields) {
  EXPECT_THAT(StageError("optimizer: {lr: .inf}\n"), HasSubstr("optimizer.lr: expected number, got \".inf\""));
  EXPECT_THAT(StageError("optimizer: {lr: 1e999}\n"),
              HasSubstr("optimizer.lr: number out of range for double"));
  EXPECT_THAT(StageError("optimizer: {lr: }\n"), HasSubstr("optimizer.lr: expected number, got null"));
  EXPECT_THAT(StageError("data: {shuffle: yes}\n"),
              HasSubstr("data.shuffle: expected true or false, got \"yes\""));
  EXPECT_THAT(StageError("data: {shuffle: 1}\n"), HasSubstr("data.shuffle: expected true or false"));
}

TEST(ParseYamlConfigErrorTest, ShapeMismatches) {
  // A string where a message belongs.
  EXPECT_THAT(StageError("model: /models/x\n"),
              HasSubstr("model: expected a mapping (swarr.v1.ModelSpec), got \"/models/x\" (line 1, column 8)"));
  // A list where a scalar belongs.
  EXPECT_THAT(StageError("rl: {clip_high: [1, 2]}\n"), HasSubstr("rl.clip_high: expected number, got a list"));
  EXPECT_THAT(StageError("name: {a: 1}\n"), HasSubstr("name: expected string, got a mapping"));
  // A scalar where a list belongs.
  EXPECT_THAT(StageError("model: {attention: {layer_windows: 4096}}\n"),
              HasSubstr("model.attention.layer_windows: expected a list, got \"4096\""));
  EXPECT_THAT(PipelineError("stages: {name: a}\n"), HasSubstr("stages: expected a list, got a mapping"));
  EXPECT_THAT(PipelineError("stages: [3]\n"),
              HasSubstr("stages[0]: expected a mapping (swarr.v1.Stage), got \"3\""));
  // The document itself must be a mapping.
  EXPECT_THAT(StageError("- a\n- b\n"),
              HasSubstr("(top level): expected a mapping (swarr.v1.Stage), got a list"));
  EXPECT_THAT(StageError("[1]: 2\n"), HasSubstr("mapping keys must be field names, got a list"));
}

TEST(ParseYamlConfigErrorTest, TwoKindsNameBoth) {
  EXPECT_THAT(PipelineError("stages:\n  - train: {}\n    rl: {}\n"),
              HasSubstr("stages[0]: both 'train' and 'rl' set; 'kind' takes one of them (line 3, column 5)"));
}

TEST(ParseYamlConfigErrorTest, DuplicateKeys) {
  EXPECT_THAT(StageError("name: a\nname: b\n"),
              HasSubstr("name: set twice (first (line 1, column 1)) (line 2, column 1)"));
  // The snake_case and the JSON spelling name the same field.
  EXPECT_THAT(StageError("rl: {clip_high: 1, clipHigh: 2}\n"), HasSubstr("rl.clip_high: set twice"));
}

TEST(ParseYamlConfigErrorTest, SyntaxErrorsCarryLineAndColumn) {
  EXPECT_THAT(StageError("name: a\nmodel:\n  path: x\n  device: cpu: 1\n"),
              HasSubstr("line 4, column 14: YAML syntax error: illegal map value"));
  EXPECT_THAT(StageError("model: {path: [1, 2\n"), HasSubstr("YAML syntax error: end of sequence flow not found"));
  EXPECT_THAT(StageError("name: a\n---\nname: b\n"),
              HasSubstr("a config file holds one YAML document; found another"));
}

TEST(ParseYamlConfigErrorTest, DeepNestingIsAnErrorNotACrash) {
  const int kDepth = 10000;
  std::string flow = "name: " + std::string(kDepth, '[') + std::string(kDepth, ']') + "\n";
  EXPECT_THAT(StageError(flow), HasSubstr("nested too deeply"));
  std::string flow_maps = "model: ";
  for (int i = 0; i < kDepth; ++i) flow_maps += "{a: ";
  flow_maps += "1" + std::string(kDepth, '}') + "\n";
  EXPECT_THAT(StageError(flow_maps), HasSubstr("nested too deeply"));
  std::string block;
  for (int i = 0; i < kDepth; ++i) block += std::string(i, ' ') + "model:\n";
  EXPECT_FALSE(ParseYamlConfig(block, std::make_unique<Stage>().get()).ok());
  // Shallow enough for the YAML parser but deeper than the walker allows, through a
  // recursive message type (google.protobuf.Struct).
  std::string deep_struct;
  for (int i = 0; i < 100; ++i) deep_struct += "{fields: {x: {struct_value: ";
  deep_struct += "{}";
  for (int i = 0; i < 100; ++i) deep_struct += "}}}";
  google::protobuf::Struct s;
  const absl::Status status = ParseYamlConfig(deep_struct, &s);
  EXPECT_THAT(std::string(status.message()), HasSubstr("nested deeper than 64 levels"));
  // A self-referencing alias would recurse forever without the guard.
  EXPECT_THAT(std::string(ParseYamlConfig("&a {fields: {x: {struct_value: *a}}}\n", &s).message()),
              HasSubstr("nested deeper than 64 levels"));
  // A modest Struct still parses (maps, enums and oneofs through reflection).
  ASSERT_TRUE(ParseYamlConfig("fields: {x: {number_value: 2.5}, y: {null_value: NULL_VALUE}}\n", &s).ok());
  EXPECT_DOUBLE_EQ(s.fields().at("x").number_value(), 2.5);
  EXPECT_THAT(std::string(ParseYamlConfig("fields: {y: {null_value: NIL}}\n", &s).message()),
              HasSubstr("fields[\"y\"].null_value: expected one of NULL_VALUE, got \"NIL\""));
}

TEST(LoadYamlConfigTest, PrefixesErrorsWithThePath) {
  const std::string path = ::testing::TempDir() + "/bad_stage.yaml";
  {
    std::ofstream out(path);
    out << "rl:\n  clip_high: abc\n";
  }
  Stage stage;
  const absl::Status status = LoadYamlConfig(path, &stage);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), path + ": rl.clip_high: expected number, got \"abc\" (line 2, column 14)");
  EXPECT_EQ(LoadYamlConfig(path + ".missing", &stage).code(), absl::StatusCode::kNotFound);
}

// ValidateStage / ValidatePipeline.

Stage ValidRlStage() {
  Stage stage;
  EXPECT_TRUE(ParseYamlConfig(kRlStage, &stage).ok());
  return stage;
}

std::string ValidationError(const Stage& stage, const std::string& prefix = "") {
  const absl::Status status = ValidateStage(stage, prefix);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  return std::string(status.message());
}

TEST(ValidateStageTest, NamesEachProblemWithItsPath) {
  Stage stage = ValidRlStage();
  stage.mutable_rl()->set_clip_low(-0.1);
  stage.mutable_rl()->set_samples_per_prompt(0);
  stage.mutable_optimizer()->set_lr(0);
  stage.mutable_model()->mutable_attention()->set_sinks(-1);
  stage.mutable_model()->mutable_attention()->set_layer_windows(1, -512);
  stage.mutable_rl()->set_max_uniform_batches(-3);
  const std::string message = ValidationError(stage, "stages[1]");
  EXPECT_THAT(message, HasSubstr("stages[1].rl.max_uniform_batches: must be >= 0, got -3"));
  EXPECT_THAT(message, HasSubstr("stages[1].rl.clip_low: must be in [0, 1), got -0.1"));
  EXPECT_THAT(message, HasSubstr("stages[1].rl.samples_per_prompt: must be >= 1, got 0"));
  EXPECT_THAT(message, HasSubstr("stages[1].optimizer.lr: must be > 0 for train and rl stages, got 0"));
  EXPECT_THAT(message, HasSubstr("stages[1].model.attention.sinks: must be >= 0, got -1"));
  EXPECT_THAT(message, HasSubstr("stages[1].model.attention.layer_windows[1]: must be >= 0, got -512"));
}

TEST(ValidateStageTest, UnknownStrings) {
  Stage stage = ValidRlStage();
  stage.mutable_data()->set_format("csv");
  stage.mutable_data()->set_chat_template("llama");
  stage.mutable_optimizer()->set_schedule("step");
  stage.mutable_rl()->set_loss_aggregation("sum");
  stage.mutable_rl()->set_reward("judge");
  stage.mutable_model()->set_device("tpu");
  stage.mutable_model()->set_dtype("fp8");
  const std::string message = ValidationError(stage);
  EXPECT_THAT(message, HasSubstr("data.format: unknown value \"csv\"; expected one of gsm8k, math500"));
  EXPECT_THAT(message, HasSubstr("data.chat_template: unknown value \"llama\""));
  EXPECT_THAT(message, HasSubstr("optimizer.schedule: unknown value \"step\""));
  EXPECT_THAT(message, HasSubstr("rl.loss_aggregation: unknown value \"sum\""));
  EXPECT_THAT(message, HasSubstr("rl.reward: unknown value \"judge\""));
  EXPECT_THAT(message, HasSubstr("model.device: unknown device \"tpu\""));
  EXPECT_THAT(message, HasSubstr("model.dtype: unknown value \"fp8\""));
}

TEST(ValidateStageTest, RequiredPiecesAndCrossFieldRules) {
  Stage stage;
  stage.mutable_train();
  std::string message = ValidationError(stage);
  EXPECT_THAT(message, HasSubstr("model.path: required"));
  EXPECT_THAT(message, HasSubstr("data.format: required"));
  EXPECT_THAT(message, HasSubstr("optimizer.lr: must be > 0"));
  EXPECT_THAT(message, HasSubstr("stop: train and rl stages need a budget"));

  stage = ValidRlStage();
  stage.mutable_data()->set_format("synthetic");
  stage.mutable_data()->clear_question_field();
  stage.mutable_data()->clear_answer_field();
  message = ValidationError(stage);
  EXPECT_THAT(message, HasSubstr("data.synthetic_task: required for format 'synthetic'"));

  stage = ValidRlStage();
  stage.mutable_data()->set_format("prompt_response");
  EXPECT_THAT(ValidationError(stage), HasSubstr("data.format: 'prompt_response' has no answers to score"));

  stage = ValidRlStage();
  stage.mutable_model()->mutable_attention()->set_window(128);
  EXPECT_THAT(ValidationError(stage), HasSubstr("model.attention: set window or layer_windows, not both"));

  stage = ValidRlStage();
  stage.mutable_stop()->set_max_steps(0);
  EXPECT_THAT(ValidationError(stage),
              HasSubstr("optimizer.schedule: 'cosine' decays over stop.max_steps, which is not set"));

  stage = ValidRlStage();
  stage.mutable_optimizer()->set_beta2(1.0);
  stage.mutable_rl()->set_max_importance_weight(0.5);
  stage.mutable_rl()->set_minibatches(1000);
  message = ValidationError(stage);
  EXPECT_THAT(message, HasSubstr("optimizer.beta2: must be in [0, 1), got 1"));
  EXPECT_THAT(message, HasSubstr("rl.max_importance_weight: must be 0 (off) or >= 1, got 0.5"));
  EXPECT_THAT(message, HasSubstr("rl.minibatches: must be <= prompts_per_step * samples_per_prompt (256)"));

  // The RL algorithm's options (issue 17).
  stage = ValidRlStage();
  stage.mutable_rl()->set_entropy_coef(-0.1);
  stage.mutable_rl()->set_kl_reward_coef(-1);
  stage.mutable_rl()->set_overlong_buffer(stage.rl().max_new_tokens() + 1);
  stage.mutable_rl()->set_overlong_penalty(-2);
  stage.mutable_rl()->set_advantage("reward");
  stage.mutable_rl()->set_std_normalize_advantages(true);
  message = ValidationError(stage);
  EXPECT_THAT(message, HasSubstr("rl.advantage: \"reward\" (no baseline) excludes std_normalize_advantages"));
  EXPECT_THAT(message, HasSubstr("rl.entropy_coef: must be >= 0, got -0.1"));
  EXPECT_THAT(message, HasSubstr("rl.kl_reward_coef: must be >= 0, got -1"));
  EXPECT_THAT(message, HasSubstr("rl.overlong_buffer: must be <= rl.max_new_tokens"));
  EXPECT_THAT(message, HasSubstr("rl.overlong_penalty: must be >= 0, got -2"));
  stage = ValidRlStage();
  stage.mutable_rl()->set_entropy_coef(0.01);
  stage.mutable_rl()->set_kl_reward_coef(0.05);
  stage.mutable_rl()->set_overlong_filter(true);
  stage.mutable_rl()->set_advantage("reward");
  stage.mutable_rl()->set_std_normalize_advantages(false);
  stage.mutable_rl()->set_overlong_buffer(stage.rl().max_new_tokens() / 4);
  EXPECT_TRUE(ValidateStage(stage).ok()) << ValidateStage(stage);

  Stage eval;
  ASSERT_TRUE(ParseYamlConfig("eval: {greedy: true, samples_per_problem: 4, max_new_tokens: 8}\n"
                              "model: {path: m}\ndata: {format: gsm8k, path: d.jsonl}\n",
                              &eval)
                  .ok());
  EXPECT_EQ(ValidationError(eval),
            "eval.samples_per_problem: greedy decoding gives one answer per problem; got 4 samples");
  eval.mutable_eval()->set_samples_per_problem(1);
  EXPECT_TRUE(ValidateStage(eval).ok()) << ValidateStage(eval);  // eval needs no lr or stop budget

  // Greedy and sampled answers in one stage (issue 17).
  ASSERT_TRUE(ParseYamlConfig("eval: {num_problems: 50, greedy: true, sampled: 8, sampled_problems: 20, "
                              "temperature: 1.0, max_new_tokens: 8}\n"
                              "model: {path: m}\ndata: {format: gsm8k, path: d.jsonl}\n",
                              &eval)
                  .ok());
  EXPECT_TRUE(ValidateStage(eval).ok()) << ValidateStage(eval);
  eval.mutable_eval()->set_sampled_problems(60);
  EXPECT_EQ(ValidationError(eval), "eval.sampled_problems: must be <= eval.num_problems (50), got 60");
  eval.mutable_eval()->set_sampled_problems(0);
  eval.mutable_eval()->set_greedy(false);
  EXPECT_THAT(ValidationError(eval), HasSubstr("eval.sampled: sampled answers beside the greedy one need greedy: true"));
  eval.mutable_eval()->set_sampled(-2);
  EXPECT_THAT(ValidationError(eval), HasSubstr("eval.sampled: must be >= 0, got -2"));
  eval.mutable_eval()->set_sampled(0);
  eval.mutable_eval()->set_sampled_problems(5);
  EXPECT_EQ(ValidationError(eval), "eval.sampled_problems: needs eval.sampled > 0");
}

TEST(ValidatePipelineTest, NamesAndStages) {
  PipelineConfig pipeline;
  EXPECT_THAT(std::string(ValidatePipeline(pipeline).message()),
              HasSubstr("stages: a pipeline needs at least one stage"));
  *pipeline.add_stages() = ValidRlStage();
  *pipeline.add_stages() = ValidRlStage();
  pipeline.add_stages()->CopyFrom(ValidRlStage());
  pipeline.mutable_stages(2)->clear_name();
  pipeline.mutable_stages(2)->mutable_rl()->set_clip_high(-1);
  const std::string message(ValidatePipeline(pipeline).message());
  EXPECT_THAT(message, HasSubstr("stages[1].name: \"rl-1\" already names stages[0]"));
  EXPECT_THAT(message, HasSubstr("stages[2].rl.clip_high: must be >= 0, got -1"));
  EXPECT_THAT(message, HasSubstr("stages[2].name: required in a pipeline"));
  pipeline.mutable_stages(1)->set_name("rl-2");
  pipeline.mutable_stages(2)->set_name("rl-3");
  pipeline.mutable_stages(2)->mutable_rl()->set_clip_high(0.28);
  EXPECT_TRUE(ValidatePipeline(pipeline).ok()) << ValidatePipeline(pipeline);
}

// Every config shipped under configs/ parses and validates: files with a top-level `stages`
// key are pipelines, the others single stages.
TEST(ShippedConfigsTest, EveryYamlUnderConfigsLoadsAndValidates) {
  const std::filesystem::path root = std::filesystem::path(SWARR_SOURCE_DIR) / "configs";
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    const std::string ext = entry.path().extension().string();
    if (entry.is_regular_file() && (ext == ".yaml" || ext == ".yml")) files.push_back(entry.path());
  }
  ASSERT_GE(files.size(), 2u) << "expected at least configs/examples/{sft,rl}_toy.yaml";
  for (const auto& file : files) {
    SCOPED_TRACE(file.string());
    std::ifstream in(file);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const bool is_pipeline = text.find("\nstages:") != std::string::npos || text.rfind("stages:", 0) == 0;
    if (is_pipeline) {
      PipelineConfig pipeline;
      const absl::Status loaded = LoadYamlConfig(file.string(), &pipeline);
      ASSERT_TRUE(loaded.ok()) << loaded;
      EXPECT_TRUE(ValidatePipeline(pipeline).ok()) << ValidatePipeline(pipeline);
    } else {
      Stage stage;
      const absl::Status loaded = LoadYamlConfig(file.string(), &stage);
      ASSERT_TRUE(loaded.ok()) << loaded;
      EXPECT_TRUE(ValidateStage(stage).ok()) << ValidateStage(stage);
      EXPECT_NE(stage.kind_case(), Stage::KIND_NOT_SET);
    }
  }
}

}  // namespace
}  // namespace swarr

namespace swarr {
namespace {

TEST(ValidatePipelineServicesTest, LaterStagesMayOmitModelPathAndServiceSettingsAreChecked) {
  swarr::v1::PipelineConfig p;
  ASSERT_TRUE(ParseYamlConfig(R"(
name: toy
stages:
  - name: sft
    train: {}
    model: {path: configs/models/tiny}
    data: {format: synthetic, synthetic_task: sum_digits}
    optimizer: {lr: 1.0e-3}
    stop: {max_steps: 2}
  - name: rl
    rl: {prompts_per_step: 2, samples_per_prompt: 2, max_new_tokens: 4}
    data: {format: synthetic, synthetic_task: sum_digits}
    optimizer: {lr: 1.0e-4}
    stop: {max_steps: 2}
workers: {max_sequences: 16, heartbeat_seconds: 0.5, lease_seconds: 3}
weight_sync: grpc
rpc: {keepalive_time_seconds: 2, keepalive_timeout_seconds: 1.5}
)", &p).ok());
  EXPECT_EQ(p.rpc().keepalive_time_seconds(), 2);
  EXPECT_EQ(p.rpc().keepalive_timeout_seconds(), 1.5);
  EXPECT_TRUE(ValidatePipeline(p).ok()) << ValidatePipeline(p);

  swarr::v1::PipelineConfig first_without_path = p;
  first_without_path.mutable_stages(0)->mutable_model()->clear_path();
  EXPECT_NE(ValidatePipeline(first_without_path).message().find("stages[0].model.path: required"), std::string::npos);

  swarr::v1::PipelineConfig bad = p;
  bad.mutable_workers()->set_lease_seconds(0.2);
  bad.set_weight_sync("nccl");
  bad.mutable_rpc()->set_max_message_bytes(1 << 20);
  bad.mutable_rpc()->set_weight_chunk_bytes(1 << 20);
  bad.mutable_rpc()->set_keepalive_time_seconds(-1);
  bad.mutable_rpc()->set_keepalive_timeout_seconds(1e9);
  const std::string msg(ValidatePipeline(bad).message());
  EXPECT_NE(msg.find("rpc.keepalive_time_seconds: must be in [0, 86400], got -1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rpc.keepalive_timeout_seconds: must be in [0, 86400], got 1e+09"), std::string::npos) << msg;
  EXPECT_NE(msg.find("workers.lease_seconds: must be longer than heartbeat_seconds"), std::string::npos) << msg;
  EXPECT_NE(msg.find("weight_sync: \"nccl\" is not available"), std::string::npos) << msg;
  EXPECT_NE(msg.find("rpc.weight_chunk_bytes"), std::string::npos) << msg;
  bad.set_weight_sync("carrier-pigeon");
  EXPECT_NE(std::string(ValidatePipeline(bad).message()).find("weight_sync: must be"), std::string::npos);
}

// yaml-cpp 0.7's LoadAll loops allocating until memory runs out on these (found by
// fuzz/fuzz_yaml_config.cc): each must be one syntax error with its position.
TEST(ConfigLoaderTest, InputsThatHangYamlCppAreSyntaxErrors) {
  for (const std::string text : {",", "  , a: 1\n", "# c\n a #c\n   ,x\n"}) {
    v1::PipelineConfig p;
    const absl::Status st = ParseYamlConfig(text, &p);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(std::string(st.message()).find("YAML syntax error"), std::string::npos) << st;
  }
  // Empty documents are still fine.
  v1::PipelineConfig p;
  EXPECT_TRUE(ParseYamlConfig("---\n---\n", &p).ok());
}

}  // namespace
}  // namespace swarr
