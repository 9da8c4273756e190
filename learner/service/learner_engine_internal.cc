#include "learner/service/learner_engine_internal.h"

#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"

namespace swarr {
namespace engine_internal {

std::map<std::string, double> NumericFields(const std::string& json_line) {
  std::map<std::string, double> out;
  nlohmann::json j = nlohmann::json::parse(json_line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it->is_number()) out[it.key()] = it->get<double>();
  }
  return out;
}

absl::Status CopyTokenizerFiles(const std::string& from, const std::string& to) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json"}) {
    absl::StatusOr<std::string> text = ReadFile(absl::StrCat(from, "/", name));
    if (!text.ok()) continue;
    SWARR_RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(to, "/", name), {*text}));
  }
  return absl::OkStatus();
}

int64_t JsonInt(const nlohmann::json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

}  // namespace engine_internal
}  // namespace swarr
