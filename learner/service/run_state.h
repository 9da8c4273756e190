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

// RUN_DIR/learner/trained_ids.log: one trained trajectory id per line, in the order the steps
// trained them (a step appends the ids of its groups group by group, so the members of a group
// are on consecutive lines). Thread-safe.
//
// Memory stays bounded over a long run (issue 16, docs/reliability.md "Bounded memory of the
// trained-id log"). The lines are in two parts:
//  - settled: the first settled_lines() lines, which a checkpoint holds and which are never cut
//    again (Settle). Only their groups are kept: the group ids of "<group>/<k>" lines in a
//    SequenceIdSet (intervals of the coordinator's group numbers: memory grows with the groups
//    that were never trained, not with the ids), other ids as they are. Their line numbers are
//    forgotten.
//  - recent: the lines after them (the steps since the newest checkpoint), kept exactly.
// The settled count is persisted next to the log (RUN_DIR/learner/trained_ids.log.settled,
// written atomically), so Open reads the settled part straight into its compact form.
//
// A step takes a group whole, so an id "<group>/<k>" counts as trained when any member of its
// group is (a member the step dropped as stale included: another copy of it is a duplicate).
class TrainedIdsLog {
 public:
  // Reads the ids already there, line by line (memory as above, not the file's size). A torn
  // last line left by a crash is cut off. kDataLoss if the .settled file is not a line count.
  static absl::StatusOr<std::unique_ptr<TrainedIdsLog>> Open(const std::string& path);
  ~TrainedIdsLog();

  // Appends one line per id and flushes it to the disk (fflush + fdatasync) before returning.
  absl::Status Append(const std::vector<std::string>& ids);
  // Whether `id`, or (for "<group>/<k>") any member of its group, is on a line.
  bool Contains(const std::string& id) const;
  // -1 unless Contains(id). A recent id: the 0-based line of its first occurrence (else, of its
  // group's first line). A settled one: settled_lines() - 1, standing for "some line below
  // settled_lines()": below every line count a checkpoint recorded since it was settled, which
  // is what the caller compares it with (GetGroupStates: DURABLE vs TRAINED).
  int64_t FirstLine(const std::string& id) const;
  // Compaction: the first `lines` lines (clamped to lines()) are held by a checkpoint and will
  // not be cut again; they move to the settled part and the count is persisted. REQUIRES: no
  // later TruncateTo below `lines` is expected (one is still handled: it re-reads the file).
  // No-op when `lines` <= settled_lines().
  absl::Status Settle(int64_t lines);
  // Crash consistency (docs/reliability.md): keeps the first `lines` lines and forgets the rest
  // (ids of steps after the checkpoint a restarted learner resumes from: those steps are lost,
  // so their ids are not trained). The file is rewritten atomically (streamed, not read whole)
  // and re-read; the settled count is lowered to `lines` first if it is above.
  // No-op if `lines` >= lines(); kInvalidArgument if `lines` < 0.
  absl::Status TruncateTo(int64_t lines);
  int64_t lines() const;          // ids written, repeats included (= trajectories trained)
  int64_t settled_lines() const;
  // Distinct ids trained again: an id that is on an earlier line of the same run of its group,
  // or whose group was trained in an earlier run (a group trained in two steps). 0 in a sound run.
  int64_t trained_twice() const;
  // Entries held in memory: settled intervals and other ids, recent lines, ids trained twice.
  int64_t retained() const;

 private:
  struct Index;  // the in-memory form (run_state.cc)
  TrainedIdsLog();
  // Reads the log at path_ into a fresh index whose first `settled` lines are settled; when
  // `keep` >= 0, also copies its first `keep` lines to `copy_to` (TruncateTo) and stops there.
  absl::StatusOr<std::unique_ptr<Index>> Load(int64_t settled, int64_t keep, const std::string& copy_to) const;
  absl::Status WriteSettled(int64_t lines) const;

  std::string path_;
  std::mutex file_mu_;  // serializes appends, Settle and TruncateTo
  FILE* file_ ABSL_GUARDED_BY(file_mu_) = nullptr;
  mutable std::mutex mu_;
  std::unique_ptr<Index> index_ ABSL_GUARDED_BY(mu_);
};

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_RUN_STATE_H_
