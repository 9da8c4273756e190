#include "learner/checkpoint.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <vector>

#include <ATen/ATen.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/model/safetensors.h"
#include "common/model/tensor_io.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace swarr {
namespace {

constexpr char kPrefix[] = "step-";

absl::Status RemoveTree(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d != nullptr) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      const std::string child = path + "/" + name;
      struct stat st;
      if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        SWARR_RETURN_IF_ERROR(RemoveTree(child));
      } else {
        ::unlink(child.c_str());
      }
    }
    ::closedir(d);
  }
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(absl::StrCat("cannot remove ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Complete checkpoints (step-NNN directories with a trainer_state.json), oldest first.
std::vector<std::pair<int64_t, std::string>> ListCheckpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (!absl::StartsWith(name, kPrefix)) continue;
    int64_t step = 0;
    if (!absl::SimpleAtoi(name.substr(sizeof(kPrefix) - 1), &step)) continue;
    struct stat st;
    const std::string path = dir + "/" + name;
    if (::stat((path + "/trainer_state.json").c_str(), &st) == 0) out.push_back({step, path});
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

absl::StatusOr<std::string> SaveCheckpoint(const std::string& checkpoints_dir, const Model& model,
                                           const AdamW& optimizer, const TrainerState& state, int64_t keep_last) {
  SWARR_RETURN_IF_ERROR(MakeDirs(checkpoints_dir));
  char name[64];
  std::snprintf(name, sizeof name, "%s%09lld", kPrefix, static_cast<long long>(state.step));
  const std::string final_dir = checkpoints_dir + "/" + name;
  const std::string tmp_dir = absl::StrCat(checkpoints_dir, "/.tmp-", name, "-", ::getpid());
  SWARR_RETURN_IF_ERROR(RemoveTree(tmp_dir));
  SWARR_RETURN_IF_ERROR(MakeDirs(tmp_dir));
  SWARR_RETURN_IF_ERROR(model.Save(tmp_dir));
  SWARR_RETURN_IF_ERROR(WriteTensors(tmp_dir + "/optimizer.safetensors", optimizer.StateTensors()));
  nlohmann::json extra = nlohmann::json::parse(state.extra_json, nullptr, false);
  if (extra.is_discarded() || !extra.is_object()) {
    return absl::InvalidArgumentError("TrainerState.extra_json is not a JSON object");
  }
  nlohmann::json meta = {{"step", state.step},
                         {"optimizer_step", optimizer.step()},
                         {"policy_version", state.policy_version},
                         {"data_position", state.data_position},
                         {"rng_state", state.rng_state},
                         {"extra", extra}};
  SWARR_RETURN_IF_ERROR(WriteFileAtomically(tmp_dir + "/trainer_state.json", {meta.dump(2)}));
  // Replace a checkpoint of the same step (a re-run after a crash), then publish.
  SWARR_RETURN_IF_ERROR(RemoveTree(final_dir));
  if (::rename(tmp_dir.c_str(), final_dir.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp_dir, " to ", final_dir, ": ", std::strerror(errno)));
  }
  if (keep_last > 0) {
    auto all = ListCheckpoints(checkpoints_dir);
    for (size_t i = 0; i + keep_last < all.size(); ++i) SWARR_RETURN_IF_ERROR(RemoveTree(all[i].second));
  }
  return final_dir;
}

absl::StatusOr<std::string> LatestCheckpoint(const std::string& checkpoints_dir) {
  auto all = ListCheckpoints(checkpoints_dir);
  if (all.empty()) return absl::NotFoundError(absl::StrCat("no checkpoint in ", checkpoints_dir));
  return all.back().second;
}

absl::StatusOr<TrainerState> LoadTrainerState(const std::string& checkpoint_dir, AdamW* optimizer) {
  const std::string path = checkpoint_dir + "/trainer_state.json";
  SWARR_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  TrainerState state;
  int64_t optimizer_step = 0;
  for (auto [field, target] : {std::pair<const char*, int64_t*>{"step", &state.step},
                               {"optimizer_step", &optimizer_step},
                               {"policy_version", &state.policy_version},
                               {"data_position", &state.data_position}}) {
    auto it = j.find(field);
    if (it == j.end() || !it->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": field '", field, "' must be an integer"));
    }
    *target = it->get<int64_t>();
  }
  if (auto it = j.find("rng_state"); it != j.end() && it->is_string()) state.rng_state = it->get<std::string>();
  if (auto it = j.find("extra"); it != j.end() && it->is_object()) state.extra_json = it->dump();
  auto file = SafetensorsFile::Open(checkpoint_dir + "/optimizer.safetensors");
  if (!file.ok()) return file.status();
  std::map<std::string, at::Tensor> moments;
  for (const std::string& name : (*file)->names()) {
    SWARR_ASSIGN_OR_RETURN(TensorView view, (*file)->Get(name));
    SWARR_ASSIGN_OR_RETURN(at::Tensor t, TensorFromView(view));
    moments[name] = t;
  }
  absl::Status st = optimizer->LoadState(moments, optimizer_step);
  if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat(checkpoint_dir, ": ", st.message()));
  return state;
}

}  // namespace swarr
