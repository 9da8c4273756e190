#include "learner/service/run_state.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"
#include "nlohmann/json.hpp"

namespace swarr {

absl::StatusOr<LearnerRunState> ReadLearnerRunState(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  LearnerRunState s;
  auto get_int = [&](const nlohmann::json& obj, const char* key, int64_t* out) -> absl::Status {
    auto it = obj.find(key);
    if (it == obj.end()) return absl::OkStatus();
    if (!it->is_number_integer())
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", key, " must be an integer"));
    *out = it->get<int64_t>();
    return absl::OkStatus();
  };
  if (auto it = j.find("counters"); it != j.end() && it->is_object()) {
    for (auto [key, out] : {std::pair<const char*, int64_t*>{"received", &s.trajectories_received},
                            {"duplicate", &s.trajectories_duplicate},
                            {"dropped_stale", &s.trajectories_dropped_stale}}) {
      if (absl::Status st = get_int(*it, key, out); !st.ok()) return st;
    }
  }
  if (absl::Status st = get_int(j, "latest_version", &s.latest_version); !st.ok()) return st;
  int64_t stage_index = -1;
  if (absl::Status st = get_int(j, "stage_index", &stage_index); !st.ok()) return st;
  s.stage_index = static_cast<int32_t>(stage_index);
  if (auto it = j.find("latest_incarnation"); it != j.end() && it->is_string()) s.latest_incarnation = *it;
  if (auto it = j.find("stage_name"); it != j.end() && it->is_string()) s.stage_name = *it;
  if (auto it = j.find("state"); it != j.end() && it->is_string()) s.state = *it;
  if (auto it = j.find("kept_versions"); it != j.end() && it->is_array()) {
    for (const auto& v : *it) {
      if (v.is_number_integer()) s.kept_versions.push_back(v.get<int64_t>());
    }
  }
  return s;
}

absl::Status WriteLearnerRunState(const std::string& path, const LearnerRunState& s) {
  nlohmann::json j = {{"counters",
                       {{"received", s.trajectories_received},
                        {"duplicate", s.trajectories_duplicate},
                        {"dropped_stale", s.trajectories_dropped_stale}}},
                      {"latest_version", s.latest_version},
                      {"latest_incarnation", s.latest_incarnation},
                      {"kept_versions", s.kept_versions},
                      {"stage_index", s.stage_index},
                      {"stage_name", s.stage_name},
                      {"state", s.state}};
  const std::string text = j.dump(2) + "\n";
  return WriteFileAtomically(path, {text});
}

absl::StatusOr<std::unique_ptr<TrainedIdsLog>> TrainedIdsLog::Open(const std::string& path) {
  std::unique_ptr<TrainedIdsLog> log(new TrainedIdsLog());
  std::string text;
  if (absl::StatusOr<std::string> t = ReadFile(path); t.ok()) {
    text = std::move(*t);
  } else if (t.status().code() != absl::StatusCode::kNotFound) {
    return t.status();
  }
  // A crash mid-append can leave a torn last line: cut it off (its step was never published).
  const size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (complete != text.size()) {
    if (::truncate(path.c_str(), static_cast<off_t>(complete)) != 0) {
      return absl::InternalError(absl::StrCat("cannot truncate ", path, ": ", std::strerror(errno)));
    }
    text.resize(complete);
  }
  log->path_ = path;
  {
    std::lock_guard<std::mutex> lock(log->mu_);
    log->LoadLocked(text);
  }
  std::lock_guard<std::mutex> lock(log->file_mu_);
  log->file_ = std::fopen(path.c_str(), "a");
  if (log->file_ == nullptr) {
    return absl::InternalError(absl::StrCat("cannot append to ", path, ": ", std::strerror(errno)));
  }
  return log;
}

void TrainedIdsLog::LoadLocked(const std::string& text) {
  ids_.clear();
  twice_.clear();
  lines_ = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    std::string id = text.substr(pos, end - pos);
    pos = end + 1;
    if (id.empty()) continue;
    if (!ids_.emplace(id, lines_).second) twice_.insert(std::move(id));
    ++lines_;
  }
}

absl::Status TrainedIdsLog::TruncateTo(int64_t lines) {
  std::lock_guard<std::mutex> file_lock(file_mu_);
  if (lines < 0) return absl::InvalidArgumentError(absl::StrCat("trained_ids.log: cannot keep ", lines, " lines"));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (lines >= lines_) return absl::OkStatus();
  }
  SWARR_ASSIGN_OR_RETURN(std::string text, ReadFile(path_));
  size_t pos = 0;
  int64_t kept = 0;
  while (kept < lines && pos < text.size()) {
    const size_t end = text.find('\n', pos);
    if (end == std::string::npos) break;
    if (end > pos) ++kept;
    pos = end + 1;
  }
  text.resize(pos);
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  SWARR_RETURN_IF_ERROR(WriteFileAtomically(path_, {text}));
  file_ = std::fopen(path_.c_str(), "a");
  if (file_ == nullptr) {
    return absl::InternalError(absl::StrCat("cannot append to ", path_, ": ", std::strerror(errno)));
  }
  std::lock_guard<std::mutex> lock(mu_);
  LoadLocked(text);
  return absl::OkStatus();
}

int64_t TrainedIdsLog::FirstLine(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = ids_.find(id);
  return it == ids_.end() ? -1 : it->second;
}

TrainedIdsLog::~TrainedIdsLog() {
  std::lock_guard<std::mutex> lock(file_mu_);
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status TrainedIdsLog::Append(const std::vector<std::string>& ids) {
  if (ids.empty()) return absl::OkStatus();
  std::string text;
  for (const std::string& id : ids) absl::StrAppend(&text, id, "\n");
  {
    std::lock_guard<std::mutex> lock(file_mu_);
    if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0 ||
        ::fdatasync(::fileno(file_)) != 0) {
      return absl::InternalError(absl::StrCat("cannot append to trained_ids.log: ", std::strerror(errno)));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& id : ids) {
    if (!ids_.emplace(id, lines_).second) twice_.insert(id);
    ++lines_;
  }
  return absl::OkStatus();
}

bool TrainedIdsLog::Contains(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return ids_.contains(id);
}

int64_t TrainedIdsLog::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

int64_t TrainedIdsLog::trained_twice() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(twice_.size());
}

}  // namespace swarr
