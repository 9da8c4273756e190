#include "common/config/config_loader.h"
#include "common/config/placement.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/file.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace swarr {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;

// Upper bound on YAML nodes visited: aliases can make a small document expand a lot.
constexpr int64_t kMaxVisitedNodes = 1'000'000;

// ---------------------------------------------------------------------------------------------
// Paths, locations and descriptions of YAML nodes for error messages.

std::string FieldPath(const std::string& parent, const std::string& name) {
  return parent.empty() ? name : absl::StrCat(parent, ".", name);
}

std::string IndexPath(const std::string& parent, size_t index) {
  return absl::StrCat(parent, "[", index, "]");
}

std::string Location(const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) return "";
  return absl::StrCat(" (line ", mark.line + 1, ", column ", mark.column + 1, ")");
}

std::string Quote(const std::string& text) {
  constexpr size_t kMaxShown = 40;
  std::string shown = text.size() > kMaxShown ? text.substr(0, kMaxShown) + "..." : text;
  return absl::StrCat("\"", absl::CHexEscape(shown), "\"");
}

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return Quote(node.Scalar());
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "null";
  }
  return "?";
}

absl::Status PathError(const std::string& path, const std::string& what, const YAML::Mark& mark) {
  return absl::InvalidArgumentError(
      absl::StrCat(path.empty() ? "(top level)" : path, ": ", what, Location(mark)));
}

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
int EditDistance(const std::string& a, const std::string& b) {
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      const int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string UnknownFieldMessage(const Descriptor* descriptor, const std::string& key) {
  const std::string lower_key = absl::AsciiStrToLower(key);
  std::string best;
  int best_distance = std::numeric_limits<int>::max();
  std::vector<std::string> names;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const std::string& name = descriptor->field(i)->name();
    names.push_back(name);
    const int distance = EditDistance(lower_key, name);
    if (distance < best_distance) {
      best_distance = distance;
      best = name;
    }
  }
  const int allowed = std::min<int>(2, static_cast<int>(key.size()) / 2);
  if (!best.empty() && best_distance <= allowed) {
    return absl::StrCat("unknown field (did you mean '", best, "'?)");
  }
  return absl::StrCat("unknown field (", descriptor->full_name(), " has: ",
                      absl::StrJoin(names, ", "), ")");
}

const FieldDescriptor* FindField(const Descriptor* descriptor, const std::string& key) {
  if (const FieldDescriptor* field = descriptor->FindFieldByName(key)) return field;
  for (int i = 0; i < descriptor->field_count(); ++i) {
    if (descriptor->field(i)->json_name() == key) return descriptor->field(i);
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Scalars.

bool IsDecimalInteger(const std::string& s, size_t begin) {
  if (begin >= s.size()) return false;
  for (size_t i = begin; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

bool IsHexInteger(const std::string& s, size_t begin) {
  if (s.size() < begin + 3 || s[begin] != '0' || (s[begin + 1] != 'x' && s[begin + 1] != 'X')) {
    return false;
  }
  for (size_t i = begin + 2; i < s.size(); ++i) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

enum class IntParse { kOk, kNotInteger, kOutOfRange };

// Parses [+-]digits or [+-]0xhex into a sign and a magnitude.
IntParse ParseIntegerText(const std::string& s, bool* negative, uint64_t* magnitude) {
  size_t begin = 0;
  *negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    *negative = s[0] == '-';
    begin = 1;
  }
  int base = 10;
  if (IsHexInteger(s, begin)) {
    base = 16;
    begin += 2;
  } else if (!IsDecimalInteger(s, begin)) {
    return IntParse::kNotInteger;
  }
  uint64_t value = 0;
  for (size_t i = begin; i < s.size(); ++i) {
    const char c = s[i];
    const uint64_t digit = c <= '9' ? c - '0' : (absl::ascii_tolower(c) - 'a' + 10);
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / base) return IntParse::kOutOfRange;
    value = value * base + digit;
  }
  *magnitude = value;
  return IntParse::kOk;
}

// `[+-](digits[.digits] | .digits)[(e|E)[+-]digits]`.
bool IsDecimalNumber(const std::string& s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = 0;
  while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exponent_digits = 0;
    while (i < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) {
      ++i, ++exponent_digits;
    }
    if (exponent_digits == 0) return false;
  }
  return i == s.size();
}

const char* ExpectedScalar(const FieldDescriptor* field) {
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
      return "expected integer";
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64:
      return "expected non-negative integer";
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT:
      return "expected number";
    case FieldDescriptor::CPPTYPE_BOOL:
      return "expected true or false";
    case FieldDescriptor::CPPTYPE_ENUM:
      return "expected an enum value name";
    case FieldDescriptor::CPPTYPE_STRING:
      return "expected string";
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "expected a mapping";
  }
  return "unexpected value";
}

// Sets (or, for repeated fields, appends) one scalar value of `field` in `message`.
absl::Status SetScalar(const YAML::Node& node, const YAML::Mark& fallback_mark,
                       const FieldDescriptor* field, const std::string& path, Message* message) {
  const Reflection* reflection = message->GetReflection();
  const bool repeated = field->is_repeated();
  const YAML::Mark mark = node.IsNull() || node.Mark().is_null() ? fallback_mark : node.Mark();

  if (node.IsNull() && field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
    if (repeated) {
      reflection->AddString(message, field, "");
    } else {
      reflection->SetString(message, field, "");
    }
    return absl::OkStatus();
  }
  if (!node.IsScalar()) {
    return PathError(path, absl::StrCat(ExpectedScalar(field), ", got ", Describe(node)), mark);
  }
  const std::string& text = node.Scalar();
  auto mismatch = [&]() {
    return PathError(path, absl::StrCat(ExpectedScalar(field), ", got ", Quote(text)), mark);
  };

  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
    case FieldDescriptor::CPPTYPE_INT64:
    case FieldDescriptor::CPPTYPE_UINT32:
    case FieldDescriptor::CPPTYPE_UINT64: {
      bool negative = false;
      uint64_t magnitude = 0;
      const IntParse parsed = ParseIntegerText(text, &negative, &magnitude);
      if (parsed == IntParse::kNotInteger) return mismatch();
      const bool is_signed = field->cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                             field->cpp_type() == FieldDescriptor::CPPTYPE_INT64;
      const bool is_32 = field->cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                         field->cpp_type() == FieldDescriptor::CPPTYPE_UINT32;
      const char* type_name = is_signed ? (is_32 ? "int32" : "int64") : (is_32 ? "uint32" : "uint64");
      auto out_of_range = [&]() {
        return PathError(path, absl::StrCat("integer out of range for ", type_name, ", got ", Quote(text)),
                         mark);
      };
      if (parsed == IntParse::kOutOfRange) return out_of_range();
      if (is_signed) {
        const uint64_t max_positive = is_32 ? std::numeric_limits<int32_t>::max()
                                            : std::numeric_limits<int64_t>::max();
        if (magnitude > max_positive + (negative ? 1 : 0)) return out_of_range();
        const int64_t value =
            negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
        if (is_32) {
          repeated ? reflection->AddInt32(message, field, static_cast<int32_t>(value))
                   : reflection->SetInt32(message, field, static_cast<int32_t>(value));
        } else {
          repeated ? reflection->AddInt64(message, field, value)
                   : reflection->SetInt64(message, field, value);
        }
      } else {
        if (negative && magnitude != 0) return mismatch();
        const uint64_t max = is_32 ? std::numeric_limits<uint32_t>::max()
                                   : std::numeric_limits<uint64_t>::max();
        if (magnitude > max) return out_of_range();
        if (is_32) {
          repeated ? reflection->AddUInt32(message, field, static_cast<uint32_t>(magnitude))
                   : reflection->SetUInt32(message, field, static_cast<uint32_t>(magnitude));
        } else {
          repeated ? reflection->AddUInt64(message, field, magnitude)
                   : reflection->SetUInt64(message, field, magnitude);
        }
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_DOUBLE:
    case FieldDescriptor::CPPTYPE_FLOAT: {
      double value = 0;
      if (!IsDecimalNumber(text) || !absl::SimpleAtod(text, &value)) return mismatch();
      const bool is_float = field->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT;
      const double max = is_float ? std::numeric_limits<float>::max()
                                  : std::numeric_limits<double>::max();
      if (!std::isfinite(value) || std::fabs(value) > max) {
        return PathError(path, absl::StrCat("number out of range for ", is_float ? "float" : "double",
                                            ", got ", Quote(text)),
                         mark);
      }
      if (is_float) {
        repeated ? reflection->AddFloat(message, field, static_cast<float>(value))
                 : reflection->SetFloat(message, field, static_cast<float>(value));
      } else {
        repeated ? reflection->AddDouble(message, field, value)
                 : reflection->SetDouble(message, field, value);
      }
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool value = false;
      if (text == "true" || text == "True" || text == "TRUE") {
        value = true;
      } else if (!(text == "false" || text == "False" || text == "FALSE")) {
        return mismatch();
      }
      repeated ? reflection->AddBool(message, field, value)
               : reflection->SetBool(message, field, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const EnumValueDescriptor* value = field->enum_type()->FindValueByName(text);
      if (value == nullptr) {
        std::vector<std::string> names;
        for (int i = 0; i < field->enum_type()->value_count(); ++i) {
          names.push_back(field->enum_type()->value(i)->name());
        }
        return PathError(path, absl::StrCat("expected one of ", absl::StrJoin(names, ", "),
                                            ", got ", Quote(text)),
                         mark);
      }
      repeated ? reflection->AddEnum(message, field, value)
               : reflection->SetEnum(message, field, value);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_STRING:
      repeated ? reflection->AddString(message, field, text)
               : reflection->SetString(message, field, text);
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_MESSAGE:
      break;
  }
  return PathError(path, "internal: not a scalar field", mark);
}

// ---------------------------------------------------------------------------------------------
// The tree walk.

class YamlToMessage {
 public:
  absl::Status FillMessage(const YAML::Node& node, const std::string& path, int depth,
                           Message* message);

 private:
  absl::Status FillField(const YAML::Node& value, const YAML::Mark& key_mark,
                         const FieldDescriptor* field, const std::string& path, int depth,
                         Message* message);
  absl::Status FillMap(const YAML::Node& value, const FieldDescriptor* field,
                       const std::string& path, int depth, Message* message);
  absl::Status Visit(const YAML::Node& node, const std::string& path, int depth);

  int64_t visited_ = 0;
};

absl::Status YamlToMessage::Visit(const YAML::Node& node, const std::string& path, int depth) {
  if (depth > kMaxConfigDepth) {
    return PathError(path, absl::StrCat("nested deeper than ", kMaxConfigDepth, " levels"),
                     node.Mark());
  }
  if (++visited_ > kMaxVisitedNodes) {
    return PathError(path, absl::StrCat("document has more than ", kMaxVisitedNodes,
                                        " nodes after expanding aliases"),
                     node.Mark());
  }
  return absl::OkStatus();
}

absl::Status YamlToMessage::FillMessage(const YAML::Node& node, const std::string& path,
                                        int depth, Message* message) {
  const absl::Status visit = Visit(node, path, depth);
  if (!visit.ok()) return visit;
  const Descriptor* descriptor = message->GetDescriptor();
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) {
    return PathError(path, absl::StrCat("expected a mapping (", descriptor->full_name(),
                                        "), got ", Describe(node)),
                     node.Mark());
  }
  std::map<const FieldDescriptor*, YAML::Mark> seen;
  std::map<const OneofDescriptor*, const FieldDescriptor*> oneof_set;
  for (auto it = node.begin(); it != node.end(); ++it) {
    // Copies: the iterator's pair is a temporary (a reference would dangle).
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    if (!key.IsScalar()) {
      return PathError(path, absl::StrCat("mapping keys must be field names, got ", Describe(key)),
                       key.Mark());
    }
    const std::string& name = key.Scalar();
    const std::string field_path = FieldPath(path, name);
    const FieldDescriptor* field = FindField(descriptor, name);
    if (field == nullptr) {
      return PathError(field_path, UnknownFieldMessage(descriptor, name), key.Mark());
    }
    auto [previous, inserted] = seen.emplace(field, key.Mark());
    if (!inserted) {
      return PathError(FieldPath(path, field->name()),
                       absl::StrCat("set twice (first", Location(previous->second), ")"),
                       key.Mark());
    }
    if (const OneofDescriptor* oneof = field->real_containing_oneof()) {
      auto [other, first] = oneof_set.emplace(oneof, field);
      if (!first) {
        return PathError(path,
                         absl::StrCat("both '", other->second->name(), "' and '", field->name(),
                                      "' set; '", oneof->name(), "' takes one of them"),
                         key.Mark());
      }
    }
    const absl::Status status = FillField(value, key.Mark(), field, FieldPath(path, field->name()),
                                          depth + 1, message);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status YamlToMessage::FillMap(const YAML::Node& value, const FieldDescriptor* field,
                                    const std::string& path, int depth, Message* message) {
  if (value.IsNull()) return absl::OkStatus();
  if (!value.IsMap()) {
    return PathError(path, absl::StrCat("expected a mapping, got ", Describe(value)), value.Mark());
  }
  const Reflection* reflection = message->GetReflection();
  const FieldDescriptor* key_field = field->message_type()->map_key();
  const FieldDescriptor* value_field = field->message_type()->map_value();
  std::map<std::string, YAML::Mark> seen;
  for (auto it = value.begin(); it != value.end(); ++it) {
    // By value: yaml-cpp's iterator hands out a temporary pair, so a reference to its `first`
    // dangles at the end of the statement (found by scripts/sanitize.sh asan).
    const YAML::Node key = it->first;
    const YAML::Node entry_value = it->second;
    if (!key.IsScalar()) {
      return PathError(path, absl::StrCat("map keys must be scalars, got ", Describe(key)),
                       key.Mark());
    }
    const std::string entry_path = absl::StrCat(path, "[", Quote(key.Scalar()), "]");
    if (!seen.emplace(key.Scalar(), key.Mark()).second) {
      return PathError(entry_path, "key set twice", key.Mark());
    }
    const absl::Status visit = Visit(entry_value, entry_path, depth + 1);
    if (!visit.ok()) return visit;
    Message* entry = reflection->AddMessage(message, field);
    absl::Status status = SetScalar(key, key.Mark(), key_field, entry_path, entry);
    if (!status.ok()) return status;
    status = FillField(entry_value, key.Mark(), value_field, entry_path, depth + 1, entry);
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status YamlToMessage::FillField(const YAML::Node& value, const YAML::Mark& key_mark,
                                      const FieldDescriptor* field, const std::string& path,
                                      int depth, Message* message) {
  const Reflection* reflection = message->GetReflection();
  const YAML::Mark mark = value.Mark().is_null() || value.IsNull() ? key_mark : value.Mark();
  if (field->is_map()) return FillMap(value, field, path, depth, message);
  if (field->is_repeated()) {
    const absl::Status visit = Visit(value, path, depth);
    if (!visit.ok()) return visit;
    if (value.IsNull()) return absl::OkStatus();
    if (!value.IsSequence()) {
      return PathError(path, absl::StrCat("expected a list, got ", Describe(value)), mark);
    }
    for (size_t i = 0; i < value.size(); ++i) {
      const YAML::Node element = value[i];
      const std::string element_path = IndexPath(path, i);
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        const absl::Status status = FillMessage(element, element_path, depth + 1,
                                                reflection->AddMessage(message, field));
        if (!status.ok()) return status;
      } else {
        const absl::Status visit_element = Visit(element, element_path, depth + 1);
        if (!visit_element.ok()) return visit_element;
        const absl::Status status = SetScalar(element, mark, field, element_path, message);
        if (!status.ok()) return status;
      }
    }
    return absl::OkStatus();
  }
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    if (!value.IsNull() && !value.IsMap()) {
      return PathError(path, absl::StrCat("expected a mapping (", field->message_type()->full_name(),
                                          "), got ", Describe(value)),
                       mark);
    }
    return FillMessage(value, path, depth, reflection->MutableMessage(message, field));
  }
  const absl::Status visit = Visit(value, path, depth);
  if (!visit.ok()) return visit;
  return SetScalar(value, key_mark, field, path, message);
}

// ---------------------------------------------------------------------------------------------
// Semantic validation helpers.

class Problems {
 public:
  explicit Problems(std::string prefix) : prefix_(std::move(prefix)) {}

  void Add(const std::string& field, const std::string& what) {
    const std::string path = field.empty() ? prefix_ : FieldPath(prefix_, field);
    problems_.push_back(path.empty() ? what : absl::StrCat(path, ": ", what));
  }
  void NonNegative(const std::string& field, double value) {
    if (value < 0) Add(field, absl::StrCat("must be >= 0, got ", value));
  }
  void AtLeast(const std::string& field, double value, double min) {
    if (value < min) Add(field, absl::StrCat("must be >= ", min, ", got ", value));
  }
  void OneOf(const std::string& field, const std::string& value,
             const std::vector<std::string>& allowed, bool empty_ok = true) {
    if (value.empty() && empty_ok) return;
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
    Add(field, absl::StrCat(value.empty() ? "required" : "unknown value " + Quote(value),
                            "; expected one of ", absl::StrJoin(allowed, ", ")));
  }
  void Append(const absl::Status& status) {
    if (!status.ok()) problems_.push_back(std::string(status.message()));
  }
  absl::Status ToStatus() const {
    if (problems_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(problems_, "; "));
  }

 private:
  std::string prefix_;
  std::vector<std::string> problems_;
};

bool IsValidName(const std::string& name) {
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

bool IsValidDevice(const std::string& device) {
  if (device.empty() || device == "cpu" || device == "cuda") return true;
  return device.rfind("cuda:", 0) == 0 && IsDecimalInteger(device, 5);
}

void CheckModel(const swarr::v1::ModelSpec& model, Problems* p) {
  if (model.path().empty()) p->Add("model.path", "required (an HF model directory or a checkpoint)");
  if (!IsValidDevice(model.device())) {
    p->Add("model.device", absl::StrCat("unknown device ", Quote(model.device()),
                                        "; expected cpu, cuda or cuda:N"));
  }
  p->OneOf("model.dtype", model.dtype(), {"float32", "bfloat16", "float16"});
  const swarr::v1::AttentionSettings& attention = model.attention();
  p->NonNegative("model.attention.window", attention.window());
  p->NonNegative("model.attention.sinks", attention.sinks());
  for (int i = 0; i < attention.layer_windows_size(); ++i) {
    p->NonNegative(IndexPath("model.attention.layer_windows", i), attention.layer_windows(i));
  }
  if (attention.window() != 0 && attention.layer_windows_size() > 0) {
    p->Add("model.attention", "set window or layer_windows, not both");
  }
}

void CheckData(const swarr::v1::DataSpec& data, swarr::v1::Stage::KindCase kind, Problems* p) {
  const std::vector<std::string> formats = {"gsm8k", "math500",         "aime",     "amc",
                                            "jsonl", "prompt_response", "synthetic"};
  p->OneOf("data.format", data.format(), formats, /*empty_ok=*/false);
  const std::string& format = data.format();
  const bool synthetic = format == "synthetic";
  if (!synthetic && data.path().empty() && !format.empty()) {
    p->Add("data.path", absl::StrCat("required for format '", format, "'"));
  }
  if (synthetic && data.synthetic_task().empty()) {
    p->Add("data.synthetic_task", "required for format 'synthetic' (e.g. sum_digits)");
  }
  if (!synthetic && !format.empty() && (!data.synthetic_task().empty() || data.synthetic_size() != 0)) {
    p->Add(data.synthetic_task().empty() ? "data.synthetic_size" : "data.synthetic_task",
           "only for format 'synthetic'");
  }
  p->NonNegative("data.synthetic_size", data.synthetic_size());
  if (format != "jsonl" && !format.empty()) {
    if (!data.question_field().empty()) p->Add("data.question_field", "only for format 'jsonl'");
    if (!data.answer_field().empty()) p->Add("data.answer_field", "only for format 'jsonl'");
  }
  if (format != "prompt_response" && !format.empty()) {
    if (!data.prompt_field().empty()) p->Add("data.prompt_field", "only for format 'prompt_response'");
    if (!data.response_field().empty()) {
      p->Add("data.response_field", "only for format 'prompt_response'");
    }
  }
  if (format == "prompt_response" &&
      (kind == swarr::v1::Stage::kRl || kind == swarr::v1::Stage::kEval)) {
    p->Add("data.format", absl::StrCat("'prompt_response' has no answers to score; ",
                                       kind == swarr::v1::Stage::kRl ? "rl" : "eval",
                                       " needs gsm8k, math500, aime, amc, jsonl or synthetic"));
  }
  p->OneOf("data.chat_template", data.chat_template(), {"chatml", "plain", "none"});
}

void CheckOptimizer(const swarr::v1::OptimizerConfig& opt, const swarr::v1::StopRule& stop,
                    bool trains, Problems* p) {
  if (trains && opt.lr() <= 0) {
    p->Add("optimizer.lr", absl::StrCat("must be > 0 for train and rl stages, got ", opt.lr()));
  } else {
    p->NonNegative("optimizer.lr", opt.lr());
  }
  p->NonNegative("optimizer.weight_decay", opt.weight_decay());
  if (opt.has_beta1() && (opt.beta1() < 0 || opt.beta1() >= 1)) {
    p->Add("optimizer.beta1", absl::StrCat("must be in [0, 1), got ", opt.beta1()));
  }
  if (opt.has_beta2() && (opt.beta2() < 0 || opt.beta2() >= 1)) {
    p->Add("optimizer.beta2", absl::StrCat("must be in [0, 1), got ", opt.beta2()));
  }
  if (opt.has_eps() && opt.eps() <= 0) {
    p->Add("optimizer.eps", absl::StrCat("must be > 0, got ", opt.eps()));
  }
  if (opt.has_grad_clip()) p->NonNegative("optimizer.grad_clip", opt.grad_clip());
  p->NonNegative("optimizer.warmup_steps", opt.warmup_steps());
  p->OneOf("optimizer.schedule", opt.schedule(), {"cosine", "constant", "linear"});
  if (opt.min_lr_ratio() < 0 || opt.min_lr_ratio() > 1) {
    p->Add("optimizer.min_lr_ratio", absl::StrCat("must be in [0, 1], got ", opt.min_lr_ratio()));
  }
  if (trains && (opt.schedule() == "cosine" || opt.schedule() == "linear") && stop.max_steps() <= 0) {
    p->Add("optimizer.schedule", absl::StrCat("'", opt.schedule(),
                                              "' decays over stop.max_steps, which is not set"));
  }
  if (trains && stop.max_steps() > 0 && opt.warmup_steps() >= stop.max_steps()) {
    p->Add("optimizer.warmup_steps", absl::StrCat("must be < stop.max_steps (", stop.max_steps(),
                                                  "), got ", opt.warmup_steps()));
  }
}

void CheckSft(const swarr::v1::SftConfig& sft, Problems* p) {
  p->NonNegative("train.micro_batch_tokens", sft.micro_batch_tokens());
  p->NonNegative("train.grad_accum_steps", sft.grad_accum_steps());
  p->NonNegative("train.max_seq_len", sft.max_seq_len());
  if (sft.micro_batch_tokens() > 0 && sft.max_seq_len() > 0 &&
      sft.micro_batch_tokens() < sft.max_seq_len()) {
    p->Add("train.micro_batch_tokens",
           absl::StrCat("must be >= train.max_seq_len (", sft.max_seq_len(), ") so a sequence fits, got ",
                        sft.micro_batch_tokens()));
  }
}

void CheckRl(const swarr::v1::RlConfig& rl, Problems* p) {
  p->AtLeast("rl.prompts_per_step", rl.prompts_per_step(), 1);
  p->AtLeast("rl.samples_per_prompt", rl.samples_per_prompt(), 1);
  p->AtLeast("rl.max_new_tokens", rl.max_new_tokens(), 1);
  if (rl.has_temperature() && rl.temperature() <= 0) {
    p->Add("rl.temperature", absl::StrCat("must be > 0, got ", rl.temperature()));
  }
  if (rl.top_p() < 0 || rl.top_p() > 1) {
    p->Add("rl.top_p", absl::StrCat("must be in [0, 1], got ", rl.top_p()));
  }
  p->NonNegative("rl.top_k", rl.top_k());
  if (rl.clip_low() < 0 || rl.clip_low() >= 1) {
    p->Add("rl.clip_low", absl::StrCat("must be in [0, 1), got ", rl.clip_low()));
  }
  p->NonNegative("rl.clip_high", rl.clip_high());
  p->OneOf("rl.loss_aggregation", rl.loss_aggregation(), {"token_mean", "sequence_mean"});
  p->NonNegative("rl.epochs", rl.epochs());
  p->NonNegative("rl.minibatches", rl.minibatches());
  const int64_t batch = rl.prompts_per_step() * rl.samples_per_prompt();
  if (rl.prompts_per_step() > 0 && rl.samples_per_prompt() > 0 && rl.minibatches() > batch) {
    p->Add("rl.minibatches", absl::StrCat("must be <= prompts_per_step * samples_per_prompt (",
                                          batch, "), got ", rl.minibatches()));
  }
  p->NonNegative("rl.kl_coef", rl.kl_coef());
  if (rl.max_importance_weight() != 0 && rl.max_importance_weight() < 1) {
    p->Add("rl.max_importance_weight",
           absl::StrCat("must be 0 (off) or >= 1, got ", rl.max_importance_weight()));
  }
  p->OneOf("rl.reward", rl.reward(), {"verifier", "exact", "lagsum"});
  p->NonNegative("rl.max_staleness", rl.max_staleness());
  p->NonNegative("rl.max_uniform_batches", rl.max_uniform_batches());
  p->NonNegative("rl.max_idle_minutes", rl.max_idle_minutes());
  p->NonNegative("rl.entropy_coef", rl.entropy_coef());
  p->NonNegative("rl.kl_reward_coef", rl.kl_reward_coef());
  p->NonNegative("rl.overlong_buffer", rl.overlong_buffer());
  if (rl.max_new_tokens() > 0 && rl.overlong_buffer() > rl.max_new_tokens()) {
    p->Add("rl.overlong_buffer", absl::StrCat("must be <= rl.max_new_tokens (", rl.max_new_tokens(), "), got ",
                                              rl.overlong_buffer()));
  }
  if (rl.has_overlong_penalty()) p->NonNegative("rl.overlong_penalty", rl.overlong_penalty());
  p->OneOf("rl.advantage", rl.advantage(), {"group_mean", "reward"});
  if (rl.advantage() == "reward" && rl.std_normalize_advantages()) {
    p->Add("rl.advantage", "\"reward\" (no baseline) excludes std_normalize_advantages");
  }
}

void CheckEval(const swarr::v1::EvalConfig& eval, Problems* p) {
  p->NonNegative("eval.num_problems", eval.num_problems());
  p->NonNegative("eval.samples_per_problem", eval.samples_per_problem());
  if (eval.greedy() && eval.samples_per_problem() > 1) {
    p->Add("eval.samples_per_problem",
           absl::StrCat("greedy decoding gives one answer per problem; got ",
                        eval.samples_per_problem(), " samples"));
  }
  p->AtLeast("eval.max_new_tokens", eval.max_new_tokens(), 1);
  if (eval.has_temperature() && eval.temperature() <= 0) {
    p->Add("eval.temperature", absl::StrCat("must be > 0, got ", eval.temperature()));
  }
  p->NonNegative("eval.sampled", eval.sampled());
  if (eval.sampled() > 0 && !eval.greedy()) {
    p->Add("eval.sampled", "sampled answers beside the greedy one need greedy: true (without greedy, set "
                           "samples_per_problem)");
  }
  p->NonNegative("eval.sampled_problems", eval.sampled_problems());
  if (eval.sampled_problems() > 0 && eval.sampled() <= 0) {
    p->Add("eval.sampled_problems", "needs eval.sampled > 0");
  }
  if (eval.sampled_problems() > 0 && eval.num_problems() > 0 && eval.sampled_problems() > eval.num_problems()) {
    p->Add("eval.sampled_problems", absl::StrCat("must be <= eval.num_problems (", eval.num_problems(), "), got ",
                                                 eval.sampled_problems()));
  }
}

void CheckStop(const swarr::v1::StopRule& stop, bool trains, Problems* p) {
  p->NonNegative("stop.max_steps", stop.max_steps());
  p->NonNegative("stop.max_tokens", stop.max_tokens());
  p->NonNegative("stop.max_minutes", stop.max_minutes());
  p->NonNegative("stop.target_loss", stop.target_loss());
  if (trains && stop.max_steps() <= 0 && stop.max_tokens() <= 0 && stop.max_minutes() <= 0) {
    p->Add("stop", "train and rl stages need a budget: set max_steps, max_tokens or max_minutes");
  }
}

}  // namespace

// The documents of `text` as YAML::LoadAll gives them, without its endless loop: yaml-cpp 0.7's
// LoadAll never returns on some malformed input (a ',' where a node should start, e.g. the text
// ",": the parser then yields empty documents without consuming anything, and LoadAll collects
// them until memory runs out; yaml-cpp issue 1040, fixed upstream after 0.8). Found by
// fuzz/fuzz_yaml_config.cc; inputs in fuzz/regressions/yaml_config/. Here the documents are
// counted first with a parser that stops at the first document that neither has content nor
// moved the parser on, which is then a syntax error at its position.
namespace {

class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    content = false;
    start = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { null_mark = mark; }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { content = true; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override { content = true; }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    content = true;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    content = true;
  }
  void OnMapEnd() override {}
  bool content = false;
  YAML::Mark start, null_mark;
};

std::vector<YAML::Node> LoadDocuments(const std::string& text) {
  {
    std::stringstream stream(text);
    YAML::Parser parser(stream);
    DocumentCounter counter;
    int empty_in_a_row = 0;
    int last_pos = -1;
    while (parser.HandleNextDocument(counter)) {
      const int pos = counter.null_mark.pos;
      if (counter.content) {
        empty_in_a_row = 0;
      } else if (pos == last_pos && ++empty_in_a_row >= 2) {
        throw YAML::ParserException(counter.null_mark, "unexpected character where a node should start");
      }
      last_pos = counter.content ? -1 : pos;
    }
  }
  return YAML::LoadAll(text);
}

}  // namespace

absl::Status ParseYamlConfig(const std::string& yaml_text, google::protobuf::Message* message) {
  std::vector<YAML::Node> documents;
  try {
    documents = LoadDocuments(yaml_text);
  } catch (const YAML::DeepRecursion& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "line ", e.mark.line + 1, ", column ", e.mark.column + 1,
        ": YAML syntax error: nested too deeply (more than ", e.depth() - 1, " levels)"));
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return absl::InvalidArgumentError(absl::StrCat("YAML syntax error: ", e.msg));
    return absl::InvalidArgumentError(absl::StrCat("line ", e.mark.line + 1, ", column ",
                                                   e.mark.column + 1, ": YAML syntax error: ", e.msg));
  }
  for (size_t i = 1; i < documents.size(); ++i) {
    if (!documents[i].IsNull()) {
      return absl::InvalidArgumentError(
          absl::StrCat("a config file holds one YAML document; found another",
                       Location(documents[i].Mark())));
    }
  }
  std::unique_ptr<Message> parsed(message->New());
  if (!documents.empty()) {
    try {
      YamlToMessage walker;
      const absl::Status status = walker.FillMessage(documents[0], "", 0, parsed.get());
      if (!status.ok()) return status;
    } catch (const YAML::Exception& e) {  // yaml-cpp's accessors may throw; keep it contained.
      return absl::InvalidArgumentError(absl::StrCat("YAML error: ", e.what()));
    }
  }
  message->CopyFrom(*parsed);
  return absl::OkStatus();
}

absl::Status LoadYamlConfig(const std::string& path, google::protobuf::Message* message) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  const absl::Status status = ParseYamlConfig(*text, message);
  if (!status.ok()) return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
  return absl::OkStatus();
}

absl::Status ValidateStage(const swarr::v1::Stage& stage, const std::string& path_prefix) {
  Problems p(path_prefix);
  if (!IsValidName(stage.name())) {
    p.Add("name", absl::StrCat("use letters, digits, '_', '-', '.'; got ", Quote(stage.name())));
  }
  const bool trains = stage.kind_case() == swarr::v1::Stage::kTrain ||
                      stage.kind_case() == swarr::v1::Stage::kRl;
  switch (stage.kind_case()) {
    case swarr::v1::Stage::kTrain:
      CheckSft(stage.train(), &p);
      break;
    case swarr::v1::Stage::kRl:
      CheckRl(stage.rl(), &p);
      break;
    case swarr::v1::Stage::kEval:
      CheckEval(stage.eval(), &p);
      break;
    case swarr::v1::Stage::KIND_NOT_SET:
      p.Add("", "stage has no kind; set one of train, rl, eval");
      break;
  }
  CheckModel(stage.model(), &p);
  CheckData(stage.data(), stage.kind_case(), &p);
  CheckOptimizer(stage.optimizer(), stage.stop(), trains, &p);
  CheckStop(stage.stop(), trains, &p);
  p.NonNegative("checkpoint.every_steps", stage.checkpoint().every_steps());
  p.NonNegative("checkpoint.keep_last", stage.checkpoint().keep_last());
  const swarr::v1::LearnerMemory& mem = stage.memory();
  p.OneOf("memory.packing", mem.packing(), {"auto", "on", "off"});
  p.NonNegative("memory.logprob_chunk_tokens", mem.logprob_chunk_tokens());
  p.NonNegative("memory.micro_batch_tokens", mem.micro_batch_tokens());
  p.NonNegative("memory.checkpoint_layers", mem.checkpoint_layers());
  if (!(mem.max_gib() >= 0)) p.Add("memory.max_gib", absl::StrCat("must be >= 0, got ", mem.max_gib()));
  return p.ToStatus();
}

absl::Status ValidatePipeline(const swarr::v1::PipelineConfig& pipeline) {
  Problems p("");
  if (!IsValidName(pipeline.name())) {
    p.Add("name", absl::StrCat("use letters, digits, '_', '-', '.'; got ", Quote(pipeline.name())));
  }
  if (pipeline.stages_size() == 0) p.Add("stages", "a pipeline needs at least one stage");
  std::map<std::string, int> names;
  for (int i = 0; i < pipeline.stages_size(); ++i) {
    const swarr::v1::Stage& stage = pipeline.stages(i);
    const std::string prefix = IndexPath("stages", i);
    if (i > 0 && stage.model().path().empty()) {
      // A later stage without model.path starts from the previous stage's model.
      swarr::v1::Stage with_path = stage;
      with_path.mutable_model()->set_path("<previous stage>");
      p.Append(ValidateStage(with_path, prefix));
    } else {
      p.Append(ValidateStage(stage, prefix));
    }
    if (stage.name().empty()) {
      p.Add(FieldPath(prefix, "name"), "required in a pipeline (progress is recorded by name)");
      continue;
    }
    auto [it, inserted] = names.emplace(stage.name(), i);
    if (!inserted) {
      p.Add(FieldPath(prefix, "name"),
            absl::StrCat(Quote(stage.name()), " already names stages[", it->second, "]"));
    }
  }
  const swarr::v1::WorkerSettings& w = pipeline.workers();
  p.NonNegative("workers.max_sequences", w.max_sequences());
  p.NonNegative("workers.max_tokens", w.max_tokens());
  if (w.heartbeat_seconds() < 0) p.Add("workers.heartbeat_seconds", "must be >= 0");
  if (w.lease_seconds() < 0) p.Add("workers.lease_seconds", "must be >= 0");
  const double heartbeat = w.heartbeat_seconds() > 0 ? w.heartbeat_seconds() : 1.0;
  if (w.lease_seconds() > 0 && w.lease_seconds() <= heartbeat) {
    p.Add("workers.lease_seconds", absl::StrCat("must be longer than heartbeat_seconds (", heartbeat, ")"));
  }
  if (!(w.progress_timeout_seconds() >= 0)) p.Add("workers.progress_timeout_seconds", "must be >= 0");
  if (w.progress_timeout_seconds() > 0 && w.progress_timeout_seconds() <= heartbeat) {
    p.Add("workers.progress_timeout_seconds",
          absl::StrCat("must be longer than heartbeat_seconds (", heartbeat, ")"));
  }
  if (!(w.group_timeout_seconds() >= 0)) p.Add("workers.group_timeout_seconds", "must be >= 0");
  if (!pipeline.weight_sync().empty() && pipeline.weight_sync() != "grpc") {
    p.Add("weight_sync", pipeline.weight_sync() == "nccl"
                             ? "\"nccl\" is not available in this build (use \"grpc\")"
                             : absl::StrCat("must be \"grpc\" or \"nccl\", got ", Quote(pipeline.weight_sync())));
  }
  const swarr::v1::RpcSettings& r = pipeline.rpc();
  p.NonNegative("rpc.max_message_bytes", r.max_message_bytes());
  if (r.deadline_seconds() < 0) p.Add("rpc.deadline_seconds", "must be >= 0");
  p.NonNegative("rpc.weight_chunk_bytes", r.weight_chunk_bytes());
  auto keepalive = [&p](const char* field, double seconds) {
    if (!(seconds >= 0 && seconds <= 86400)) p.Add(field, absl::StrCat("must be in [0, 86400], got ", seconds));
  };
  keepalive("rpc.keepalive_time_seconds", r.keepalive_time_seconds());
  keepalive("rpc.keepalive_timeout_seconds", r.keepalive_timeout_seconds());
  const int64_t max_msg = r.max_message_bytes() > 0 ? r.max_message_bytes() : int64_t{64} << 20;
  if (r.weight_chunk_bytes() > 0 && r.weight_chunk_bytes() + 4096 > max_msg) {
    p.Add("rpc.weight_chunk_bytes", absl::StrCat("must leave room under rpc.max_message_bytes (", max_msg, ")"));
  }
  p.Append(ValidatePlacement(pipeline));
  return p.ToStatus();
}

}  // namespace swarr
