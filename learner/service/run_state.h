// What the learner keeps in its run directory across restarts (docs/services.md "Run
// directory"): RUN_DIR/learner/state.json (counters and versions, written atomically) and
// RUN_DIR/learner/trained_ids.log (one trained trajectory id per line, appended and flushed
// before the version of that step is published). No torch.
#ifndef SWARR_LEARNER_SERVICE_RUN_STATE_H_
#define SWARR_LEARNER_SERVICE_RUN_STATE_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarr {

// RUN_DIR/learner/state.json.
struct LearnerRunState {
  // Over the whole run directory (every learner process that used it).
  int64_t trajectories_received = 0;  // accepted
  int64_t trajectories_duplicate = 0;
  int64_t trajectories_dropped_stale = 0;
  // The newest version number any learner of this run published (-1: none yet), and who.
  int64_t latest_version = -1;
  std::string latest_incarnation;
  std::vector<int64_t> kept_versions;  // versions the writer was still serving
  // Where the writer stood.
  int32_t stage_index = -1;
  std::string stage_name;
  std::string state;  // LearnerStatus.State name
};

// kNotFound when the file does not exist; kInvalidArgument naming the field if it is malformed.
absl::StatusOr<LearnerRunState> ReadLearnerRunState(const std::string& path);
absl::Status WriteLearnerRunState(const std::string& path, const LearnerRunState& state);

// RUN_DIR/learner/trained_ids.log. Open reads the ids already there (a torn last line left by a
// crash is cut off). Thread-safe.
class TrainedIdsLog {
 public:
  static absl::StatusOr<std::unique_ptr<TrainedIdsLog>> Open(const std::string& path);
  ~TrainedIdsLog();

  // Appends one line per id and flushes it to the disk (fflush + fdatasync) before returning.
  absl::Status Append(const std::vector<std::string>& ids);
  bool Contains(const std::string& id) const;
  // The 0-based line of the first occurrence of `id`, -1 if absent. An id on a line below the
  // line count a checkpoint recorded was trained in a step that checkpoint holds.
  int64_t FirstLine(const std::string& id) const;
  // Crash consistency (docs/reliability.md): keeps the first `lines` lines and forgets the rest
  // (ids of steps after the checkpoint a restarted learner resumes from: those steps are lost,
  // so their ids are not trained). The file is rewritten atomically. No-op if `lines` >= lines().
  absl::Status TruncateTo(int64_t lines);
  int64_t lines() const;          // ids written, repeats included (= trajectories trained)
  int64_t trained_twice() const;  // distinct ids that appear more than once

 private:
  TrainedIdsLog() = default;
  std::mutex file_mu_;  // serializes appends
  // Reads `text` (whole lines) into the sets below.
  void LoadLocked(const std::string& text) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string path_;
  FILE* file_ ABSL_GUARDED_BY(file_mu_) = nullptr;
  mutable std::mutex mu_;
  absl::flat_hash_map<std::string, int64_t> ids_ ABSL_GUARDED_BY(mu_);  // id -> first line
  absl::flat_hash_set<std::string> twice_ ABSL_GUARDED_BY(mu_);
  int64_t lines_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_RUN_STATE_H_
