// YAML config files onto the typed proto schema (proto/swarr/v1/config.proto).
//
// A config file is YAML whose structure mirrors a proto message: a mapping per message, a
// sequence per repeated field, a scalar per scalar field. The loader walks the YAML tree against
// the message descriptor and fills the message through reflection, so every mistake is reported
// with its path in the document:
//
//   stages[1].rl.clip_high: expected number, got "abc" (line 12, column 18)
//   stages[0].trian: unknown field (did you mean 'train'?) (line 3, column 5)
//   model.attention.layer_windows[2]: expected integer, got "1.5" (line 7, column 30)
//   model.attention.layer_windows: expected a list, got "4096" (line 6, column 20)
//   stages[0]: both 'train' and 'rl' set; a stage has one kind (line 9, column 5)
//   line 4, column 7: YAML syntax error: illegal map value
//
// Typing rules (YAML scalars are untyped text; the descriptor decides):
//   - string fields accept any scalar, as its text (`name: 1.0` is "1.0"); bytes likewise (raw).
//   - integer fields accept decimal integers (optional sign, `0x` hex); `1.5`, `1e3`, `abc`
//     are rejected, and values outside the field's range (int32/int64/uint32/uint64) are
//     "out of range" errors. Unsigned fields reject negative values.
//   - double/float fields accept integers and decimals (`3`, `3.0`, `1e-4`, `.5`); non-finite
//     values (`.inf`, `.nan`) and overflow are rejected.
//   - bool fields accept true/false (also True/TRUE/False/FALSE); not yes/no/on/off or 0/1.
//   - enum fields accept the value's name.
//   - quoted scalars are read the same way as plain ones (`lr: "3e-4"` is a number).
//   - null (`key:`, `key: ~`, `key: null`) means "default": an empty message for a message
//     field (which still selects a oneof kind, so `train:` alone means train with defaults), ""
//     for a string, an empty list for a repeated field. For numbers and bools null is an error.
//   - keys are the proto field names (snake_case) or their JSON (lowerCamelCase) names; a key
//     given twice (also as both spellings) is an error; two members of one oneof is an error.
//   - map<K, V> fields are YAML mappings.
//   - only the first document is allowed (a second `---` document is an error); anchors and
//     aliases work; nesting deeper than kMaxConfigDepth is an error, not a crash.
//
// Thread safety: the functions are pure and may be called concurrently on different messages.
#ifndef SWARR_COMMON_CONFIG_CONFIG_LOADER_H_
#define SWARR_COMMON_CONFIG_CONFIG_LOADER_H_

#include <string>

#include "absl/status/status.h"
#include "google/protobuf/message.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

// Deepest nesting of YAML mappings / sequences the loader walks (the schema needs < 10).
inline constexpr int kMaxConfigDepth = 64;

// Parses YAML text onto `message` (any message type: Stage, PipelineConfig, ...).
// Empty text (or a document that is only comments / null) yields the default message.
// Every error is kInvalidArgument naming the path in the document (see the file comment) and,
// where known, the line and column (1-based). On success `message` holds exactly what the text
// says (it is cleared first); on error `message` is left unchanged.
// REQUIRES: message != nullptr.
absl::Status ParseYamlConfig(const std::string& yaml_text, google::protobuf::Message* message);

// Reads the file at `path` and parses it with ParseYamlConfig. Errors are prefixed with the
// path ("configs/x.yaml: stages[0].rl.lr: ..."); a missing file is kNotFound.
// REQUIRES: message != nullptr.
absl::Status LoadYamlConfig(const std::string& path, google::protobuf::Message* message);

// Semantic checks the schema cannot express, each naming its path below `path_prefix`
// ("stages[1]" -> "stages[1].rl.clip_low: must be in [0, 1), got 1.5"; "" -> "rl.clip_low: ..."):
// exactly one kind; model.path set; device / dtype / data format / chat_template / schedule /
// loss_aggregation / reward among the allowed strings; data.path set unless synthetic and
// synthetic_task set when synthetic; non-negative windows, sinks, counts and limits; lr > 0 for
// train and rl; betas in [0, 1); clip_low in [0, 1), clip_high >= 0; samples_per_prompt,
// prompts_per_step, max_new_tokens >= 1 for rl; a stop budget (max_steps, max_tokens or
// max_minutes) for train and rl; greedy eval with one sample; a valid stage name.
// Every problem found is reported: one kInvalidArgument whose message joins them with "; ".
absl::Status ValidateStage(const swarr::v1::Stage& stage, const std::string& path_prefix = "");

// ValidateStage for every stage (prefixed "stages[i]"), plus: at least one stage, and each
// stage named, with names unique in the pipeline.
absl::Status ValidatePipeline(const swarr::v1::PipelineConfig& pipeline);

}  // namespace swarr

#endif  // SWARR_COMMON_CONFIG_CONFIG_LOADER_H_
