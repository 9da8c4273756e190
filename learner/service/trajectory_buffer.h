// The rl stage's intake (docs/services.md "PushTrajectories"): the trajectories pushed to the
// learner, checked against what it already took or trained (exactly-once), buffered per group
// until every member of the group arrived, and handed to the stage loop a step's worth of
// groups at a time. Also what GetGroupStates answers about a group, and the buffered groups
// an interrupted stage leaves for the next learner (pending.binpb / pending.json).
//
// Groups move partial -> resolved (every member arrived: accepted or dropped stale at
// arrival) -> training (taken by the step in progress; still reported as buffered until
// EndStep, so the coordinator's in-flight bound holds across the step) -> gone. Accepted
// trajectories are kept as the fields the trainer reads (Trimmed).
//
// No torch. Not thread-safe: the engine's lock guards it (a push is decided against the
// learner's versions and state in the same critical section).
#ifndef SWARR_LEARNER_SERVICE_TRAJECTORY_BUFFER_H_
#define SWARR_LEARNER_SERVICE_TRAJECTORY_BUFFER_H_

#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "learner/service/known_ids.h"
#include "learner/service/run_state.h"
#include "proto/swarr/v1/config.pb.h"
#include "proto/swarr/v1/learner.pb.h"

namespace swarr {

class TrajectoryBuffer {
 public:
  struct Group {
    int32_t size = 0;
    int32_t resolved = 0;                 // accepted + dropped at arrival
    std::vector<v1::Trajectory> accepted;  // kept for training (Trimmed)
    std::vector<std::string> dropped;      // ids dropped stale at arrival
  };

  // What the learner is when a push arrives (the engine's state under its lock).
  struct Learner {
    const v1::PipelineConfig* pipeline = nullptr;
    int32_t stage_index = -1;  // the stage it is on
    v1::LearnerStatus::State state = v1::LearnerStatus::IDLE;
    std::string incarnation;
    int64_t latest = -1;           // newest version of this incarnation (-1: none)
    int64_t first_published = -1;  // oldest version of this incarnation
    int64_t min_accepted = 0;      // older policy versions are dropped stale
  };
  struct PushResult {
    v1::PushTrajectoriesResponse response;  // one ack per trajectory, in order
    int64_t accepted = 0, duplicate = 0;
    int64_t stale = 0;      // acknowledged DROPPED_STALE (stale, or of a finished stage)
    int64_t stale_now = 0;  // of them, stale trajectories of the running stage
    // latest - policy_version of each accepted or stale trajectory of the running stage.
    std::vector<int64_t> staleness;
    bool resolved_any = false;  // a group became resolved
  };

  // Learner.PushTrajectories after the structural checks: `stage_of[i]` is the pipeline index
  // of trajectory i (REQUIRES: valid). Decides every trajectory before changing anything:
  //   DUPLICATE  its id was taken here or trained (`trained`), or repeats within the request;
  //   DROPPED_STALE  its stage is a finished rl stage (acknowledged, never trained), or its
  //              policy version is below min_accepted (it still resolves its group);
  //   ACCEPTED   otherwise.
  // kFailedPrecondition (no rl stage running for it, another incarnation, versions not all
  // published by this one) and kInvalidArgument (token versions out of order, a group_size
  // other than its group's) reject the whole request and keep nothing; the error names the
  // trajectory.
  absl::StatusOr<PushResult> Push(const v1::PushTrajectoriesRequest& request, const std::vector<int>& stage_of,
                                  const Learner& learner, const TrainedIdsLog& trained);

  // Stage loop.
  size_t resolved() const { return resolved_.size(); }
  size_t partial() const { return partial_.size(); }
  // Resolved and training groups (LearnerStatus.buffered_groups).
  int64_t buffered() const { return static_cast<int64_t>(resolved_.size()) + training_groups_; }
  // The oldest `n` resolved groups (REQUIRES: n <= resolved()), in the order they resolved;
  // they count as training until EndStep.
  std::vector<Group> Take(size_t n);
  void EndStep();
  // Forgets the partial and resolved groups (a new stage; a stage that is done).
  void Clear();

  // Learner.GetGroupStates for one request (sizes validated): per group, TRAINED / DURABLE
  // when a member id is trained (DURABLE: below `durable_lines`), else DROPPED when it
  // resolved with nothing accepted, else BUFFERED while it is partial, resolved or training,
  // else DROPPED when a member was taken here, else UNKNOWN.
  void GroupStates(const v1::GetGroupStatesRequest& request, int64_t durable_lines, const TrainedIdsLog& trained,
                   v1::GetGroupStatesResponse* out) const;

  // The partial and resolved groups as <stage_dir>/pending.binpb (accepted trajectories, one
  // PushTrajectoriesRequest) and pending.json (the groups and the checkpoint step they belong
  // to), each written atomically.
  absl::Status SavePending(const std::string& stage_dir, const std::string& stage_name, int64_t step) const;
  // Reads them back when pending.json was written for `step` (else nothing, OK). Groups with
  // a trained member (an earlier learner trained them after that checkpoint) are skipped; the
  // others are known (dedup) and buffered again. kDataLoss for malformed files.
  absl::Status RestorePending(const std::string& stage_dir, const std::string& stage_name, int64_t step,
                              const TrainedIdsLog& trained);

  // Entries of the taken-id set (KnownTrajectoryIds::retained).
  int64_t known_retained() const { return known_ids_.retained(); }

  // The fields of `t` the trainer reads (id, group, size, tokens, behaviour log-probs, reward,
  // policy version, stopped).
  static v1::Trajectory Trimmed(const v1::Trajectory& t);

 private:
  absl::flat_hash_map<std::string, Group> partial_;
  std::deque<std::pair<std::string, Group>> resolved_;
  int64_t training_groups_ = 0;
  std::set<std::string> training_ids_;  // group ids of the step in progress
  KnownTrajectoryIds known_ids_;        // taken here: accepted or dropped (bounded)
};

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_TRAJECTORY_BUFFER_H_
