#include "learner/service/run_state.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/util/file.h"
#include "common/util/sequence_id_set.h"
#include "common/util/status_macros.h"
#include "learner/service/known_ids.h"
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

// The in-memory form of the log (run_state.h): settled groups, recent lines exactly.
struct TrainedIdsLog::Index {
  struct GroupLines {
    int64_t first = 0;  // the group's first recent line
    int64_t count = 0;  // its recent lines
  };
  int64_t lines = 0;
  int64_t settled = 0;
  SequenceIdSet settled_groups;                      // groups of settled "<group>/<k>" lines
  absl::flat_hash_set<std::string> settled_other;    // settled ids of other forms
  std::deque<std::string> recent;                    // lines [settled, lines)
  absl::flat_hash_map<std::string, int64_t> recent_first;  // id -> its first recent line
  absl::flat_hash_map<std::string, GroupLines> recent_groups;
  // The run of consecutive lines of one group that the last line belongs to.
  bool in_run = false;
  std::string run_group;
  absl::flat_hash_set<std::string> run_ids;
  absl::flat_hash_set<std::string> twice;
  // Load only: bytes of complete lines read, and whether a torn last line followed them.
  int64_t bytes = 0;
  bool torn = false;

  bool GroupTrained(const std::string& group) const {
    return settled_groups.Contains(group) || recent_groups.contains(group);
  }
  bool Contains(const std::string& id) const {
    std::string group;
    int64_t k = -1;
    if (SplitTrajectoryId(id, &group, &k)) return GroupTrained(group);
    return settled_other.contains(id) || recent_first.contains(id);
  }
  int64_t FirstLine(const std::string& id) const {
    std::string group;
    int64_t k = -1;
    const bool split = SplitTrajectoryId(id, &group, &k);
    if (split ? settled_groups.Contains(group) : settled_other.contains(id)) return settled - 1;
    if (auto it = recent_first.find(id); it != recent_first.end()) return it->second;
    if (split) {
      if (auto it = recent_groups.find(group); it != recent_groups.end()) return it->second.first;
    }
    return -1;
  }
  // One more line.
  void Add(const std::string& id) {
    std::string group;
    int64_t k = -1;
    bool again;
    if (SplitTrajectoryId(id, &group, &k)) {
      const bool same_run = in_run && group == run_group;
      again = same_run ? run_ids.contains(id) : GroupTrained(group);
      if (!same_run) {
        in_run = true;
        run_group = group;
        run_ids.clear();
      }
      run_ids.insert(id);
      ++recent_groups.try_emplace(group, GroupLines{lines, 0}).first->second.count;
    } else {
      again = Contains(id);
      in_run = false;
      run_ids.clear();
    }
    if (again) twice.insert(id);
    recent_first.try_emplace(id, lines);
    recent.push_back(id);
    ++lines;
  }
  // Moves the recent lines below `n` to the settled part.
  void SettleTo(int64_t n) {
    while (settled < n && !recent.empty()) {
      std::string id = std::move(recent.front());
      recent.pop_front();
      if (auto it = recent_first.find(id); it != recent_first.end() && it->second == settled) recent_first.erase(it);
      std::string group;
      int64_t k = -1;
      if (SplitTrajectoryId(id, &group, &k)) {
        auto it = recent_groups.find(group);
        if (--it->second.count == 0) recent_groups.erase(it);
        settled_groups.Insert(group);
      } else {
        settled_other.insert(std::move(id));
      }
      ++settled;
    }
  }
  int64_t retained() const {
    return settled_groups.retained() + static_cast<int64_t>(settled_other.size() + recent.size() + twice.size());
  }
};

TrainedIdsLog::TrainedIdsLog() = default;

absl::StatusOr<std::unique_ptr<TrainedIdsLog::Index>> TrainedIdsLog::Load(int64_t settled, int64_t keep,
                                                                         const std::string& copy_to) const {
  auto index = std::make_unique<Index>();
  FILE* in = std::fopen(path_.c_str(), "r");
  if (in == nullptr) {
    if (errno == ENOENT && keep < 0) return index;
    return absl::InternalError(absl::StrCat("cannot read ", path_, ": ", std::strerror(errno)));
  }
  FILE* out = nullptr;
  if (!copy_to.empty()) {
    out = std::fopen(copy_to.c_str(), "w");
    if (out == nullptr) {
      std::fclose(in);
      return absl::InternalError(absl::StrCat("cannot create ", copy_to, ": ", std::strerror(errno)));
    }
  }
  char* buf = nullptr;
  size_t cap = 0;
  ssize_t n;
  bool write_ok = true;
  while ((n = ::getline(&buf, &cap, in)) > 0) {
    if (keep >= 0 && index->lines >= keep) break;
    if (buf[n - 1] != '\n') {  // a crash mid-append: its step was never published
      index->torn = true;
      break;
    }
    index->bytes += n;
    if (out != nullptr) write_ok = write_ok && std::fwrite(buf, 1, static_cast<size_t>(n), out) == static_cast<size_t>(n);
    if (n == 1) continue;  // an empty line: not an id
    index->Add(std::string(buf, static_cast<size_t>(n - 1)));
    if (index->lines <= settled) index->SettleTo(index->lines);
  }
  const bool read_ok = !std::ferror(in);
  std::free(buf);
  std::fclose(in);
  if (!read_ok) {
    if (out != nullptr) std::fclose(out), ::unlink(copy_to.c_str());
    return absl::InternalError(absl::StrCat("cannot read ", path_));
  }
  if (out != nullptr) {
    write_ok = write_ok && std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
    write_ok = std::fclose(out) == 0 && write_ok;
    if (!write_ok) {
      ::unlink(copy_to.c_str());
      return absl::InternalError(absl::StrCat("cannot write ", copy_to, ": ", std::strerror(errno)));
    }
  }
  return index;
}

absl::Status TrainedIdsLog::WriteSettled(int64_t lines) const {
  return WriteFileAtomically(path_ + ".settled", {absl::StrCat(lines, "\n")});
}

absl::StatusOr<std::unique_ptr<TrainedIdsLog>> TrainedIdsLog::Open(const std::string& path) {
  std::unique_ptr<TrainedIdsLog> log(new TrainedIdsLog());
  log->path_ = path;
  int64_t settled = 0;
  const std::string settled_path = path + ".settled";
  if (absl::StatusOr<std::string> t = ReadFile(settled_path); t.ok()) {
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*t), &settled) || settled < 0) {
      return absl::DataLossError(absl::StrCat(settled_path, ": not a line count"));
    }
  } else if (t.status().code() != absl::StatusCode::kNotFound) {
    return t.status();
  }
  SWARR_ASSIGN_OR_RETURN(std::unique_ptr<Index> index, log->Load(settled, -1, ""));
  if (index->torn && ::truncate(path.c_str(), static_cast<off_t>(index->bytes)) != 0) {
    return absl::InternalError(absl::StrCat("cannot truncate ", path, ": ", std::strerror(errno)));
  }
  {
    std::lock_guard<std::mutex> lock(log->mu_);
    log->index_ = std::move(index);
  }
  std::lock_guard<std::mutex> lock(log->file_mu_);
  log->file_ = std::fopen(path.c_str(), "a");
  if (log->file_ == nullptr) {
    return absl::InternalError(absl::StrCat("cannot append to ", path, ": ", std::strerror(errno)));
  }
  return log;
}

absl::Status TrainedIdsLog::Settle(int64_t lines) {
  std::lock_guard<std::mutex> file_lock(file_mu_);
  int64_t target;
  {
    std::lock_guard<std::mutex> lock(mu_);
    target = std::min(lines, index_->lines);
    if (target <= index_->settled) return absl::OkStatus();
    index_->SettleTo(target);
  }
  return WriteSettled(target);
}

absl::Status TrainedIdsLog::TruncateTo(int64_t lines) {
  if (lines < 0) return absl::InvalidArgumentError(absl::StrCat("trained_ids.log: cannot keep ", lines, " lines"));
  std::lock_guard<std::mutex> file_lock(file_mu_);
  int64_t settled;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (lines >= index_->lines) return absl::OkStatus();
    settled = index_->settled;
  }
  // The settled count first: a crash between the two leaves it below the log, never above.
  if (settled > lines) {
    settled = lines;
    SWARR_RETURN_IF_ERROR(WriteSettled(settled));
  }
  const std::string tmp = absl::StrCat(path_, ".tmp.", ::getpid());
  SWARR_ASSIGN_OR_RETURN(std::unique_ptr<Index> index, Load(settled, lines, tmp));
  if (file_ != nullptr) std::fclose(file_);
  file_ = nullptr;
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot rename onto ", path_, ": ", std::strerror(err)));
  }
  file_ = std::fopen(path_.c_str(), "a");
  if (file_ == nullptr) {
    return absl::InternalError(absl::StrCat("cannot append to ", path_, ": ", std::strerror(errno)));
  }
  std::lock_guard<std::mutex> lock(mu_);
  index_ = std::move(index);
  return absl::OkStatus();
}

int64_t TrainedIdsLog::FirstLine(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_->FirstLine(id);
}

TrainedIdsLog::~TrainedIdsLog() {
  std::lock_guard<std::mutex> lock(file_mu_);
  if (file_ != nullptr) std::fclose(file_);
}

absl::Status TrainedIdsLog::Append(const std::vector<std::string>& ids) {
  if (ids.empty()) return absl::OkStatus();
  std::string text;
  for (const std::string& id : ids) absl::StrAppend(&text, id, "\n");
  std::lock_guard<std::mutex> file_lock(file_mu_);
  if (file_ == nullptr || std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0 ||
      ::fdatasync(::fileno(file_)) != 0) {
    return absl::InternalError(absl::StrCat("cannot append to ", path_, ": ", std::strerror(errno)));
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& id : ids) index_->Add(id);
  return absl::OkStatus();
}

bool TrainedIdsLog::Contains(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_->Contains(id);
}

int64_t TrainedIdsLog::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_->lines;
}

int64_t TrainedIdsLog::settled_lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_->settled;
}

int64_t TrainedIdsLog::trained_twice() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(index_->twice.size());
}

int64_t TrainedIdsLog::retained() const {
  std::lock_guard<std::mutex> lock(mu_);
  return index_->retained();
}

}  // namespace swarr
