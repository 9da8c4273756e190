// Membership of the NCCL weight-broadcast group (docs/multi-gpu.md, "Epochs").
//
// The group is the learner's publishing rank and the rollout servers whose GPUs take the NCCL
// path. The coordinator owns this state machine; gRPC carries every transition, NCCL only bytes.
//
//   Join(rollout)        -> kBootstrapping  (loads the current version over GetWeights first)
//   MarkBootstrapped     -> kReady          (still on gRPC; enters the communicator at the next boundary)
//   BeginVersion (boundary) -> kReady members become kActive in a NEW epoch
//   Leave(active)        -> kLeaving        (keeps its rank until the boundary, then removed)
//   Leave(not active)    -> removed at once
//   missed deadline / MarkDead -> kDropped  (removed at the next boundary; Join again to return)
//   Join(dropped id)     -> kBootstrapping  (a restarted server)
//
// Changes take effect only at a version boundary (BeginVersion): if anyone is ready to enter,
// leaving, dropped, or the current epoch's communicator was aborted, the boundary opens a new
// epoch: epoch number + 1, ranks re-assigned (publisher rank 0, surviving members in their old
// order, newcomers in join order) and a fresh communicator slot whose ncclUniqueId the publisher
// supplies (SetUniqueId) before anyone initialises. Otherwise the epoch (and communicator) carries
// on to the new version.
//
// During a version every non-publisher rank answers once: AckVersion (it has every bucket) or
// ReportAborted (its watchdog aborted the communicator; it is alive and loads this version over
// gRPC). Whoever has not answered by the deadline (watchdog timeout + grace after BeginVersion)
// is kDropped and the epoch is marked aborted: the survivors load the version over gRPC and
// rebuild without it at the next boundary. Time is passed in (milliseconds on any monotonic
// clock) so the machine is pure and testable.
#ifndef SWARR_COMMON_DIST_GROUP_MEMBERSHIP_H_
#define SWARR_COMMON_DIST_GROUP_MEMBERSHIP_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarr::dist {

inline constexpr int kNcclUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES

enum class Role { kPublisher, kRollout };

enum class MemberState {
  kBootstrapping,  // joined; loading over GetWeights; in no communicator
  kReady,          // bootstrapped; enters at the next boundary (gRPC until then)
  kActive,         // a rank of the current epoch
  kLeaving,        // asked to leave; keeps its rank until the next boundary
  kDropped,        // missed a deadline or died; removed at the next boundary
};

enum class Transport { kNccl, kGrpc };

const char* MemberStateName(MemberState s);

struct MembershipOptions {
  // The members' NCCL watchdog aborts a broadcast after this long (NcclComm's timeout).
  int64_t watchdog_timeout_ms = 10'000;
  // Time a survivor has after its watchdog fired to report it over gRPC.
  int64_t report_grace_ms = 5'000;
};

struct Epoch {
  int64_t number = 0;                // 0: none formed yet
  int64_t first_version = 0;         // the boundary it took effect at
  std::vector<std::string> ranks;    // ranks[0] is the publisher
  int64_t comm_slot = 0;             // fresh per epoch (== number): which unique id to use
  std::string unique_id;             // the ncclUniqueId bytes; empty until SetUniqueId
  bool aborted = false;              // its communicator was aborted: rebuild at the next boundary

  int size() const { return static_cast<int>(ranks.size()); }
  int RankOf(const std::string& id) const;  // -1 if not a rank
  // One member alone (the publisher) needs no communicator: every version is trivially done.
  bool needs_communicator() const { return ranks.size() >= 2; }
};

// What a version boundary decided.
struct VersionStart {
  int64_t version = 0;
  bool new_epoch = false;
  Epoch epoch;                       // the epoch that carries this version
  std::vector<std::string> entered;  // kReady members that became ranks here
  std::vector<std::string> removed;  // kLeaving / kDropped members removed here
  int64_t deadline_ms = 0;           // answers (ack or abort report) are due by then
};

class GroupMembership {
 public:
  explicit GroupMembership(MembershipOptions options = {});

  // A publisher (one at a time; it holds the weights, so it is kReady at once) or a rollout
  // server (kBootstrapping). kAlreadyExists for a present id unless it was kDropped (a restart).
  absl::Status Join(const std::string& id, Role role);
  // kBootstrapping -> kReady once it loaded `version` over GetWeights.
  absl::Status MarkBootstrapped(const std::string& id, int64_t version);
  absl::Status Leave(const std::string& id);
  // The registry saw the member die (lease expired): kDropped now; if it holds a rank in a version
  // in flight, the epoch is aborted (the others' broadcasts would hang on it).
  absl::Status MarkDead(const std::string& id);

  // The version boundary. `version` must exceed every earlier one, the previous version must be
  // answered by all (or past its deadline: CheckDeadlines runs first), and there must be a
  // publisher. Opens a new epoch when membership changed or the communicator was aborted.
  absl::StatusOr<VersionStart> BeginVersion(int64_t version, int64_t now_ms);

  // The publisher's ncclUniqueId for `epoch` (128 bytes), once per epoch.
  absl::Status SetUniqueId(int64_t epoch, const std::string& unique_id);

  // A rank of the current epoch received every bucket of `version`.
  absl::Status AckVersion(const std::string& id, int64_t version);
  // A rank's watchdog aborted its communicator during `version`: it is alive; the epoch is
  // aborted and it loads `version` over gRPC.
  absl::Status ReportAborted(const std::string& id, int64_t version);

  // Drops every rank that has not answered the version in flight by its deadline (and aborts the
  // epoch if any). Returns the ids dropped now.
  std::vector<std::string> CheckDeadlines(int64_t now_ms);

  // How `id` gets the current version: kNccl for a rank of a live epoch (or one that acked
  // before the abort), kGrpc otherwise (newcomers, dropped members, survivors of an abort).
  absl::StatusOr<Transport> TransportFor(const std::string& id) const;
  absl::StatusOr<MemberState> StateOf(const std::string& id) const;

  // Every rank answered the current version (or there is none in flight).
  bool VersionSettled() const;
  bool in_flight() const { return in_flight_; }
  int64_t current_version() const { return version_; }
  const Epoch& epoch() const { return epoch_; }
  int num_members() const { return static_cast<int>(members_.size()); }

 private:
  struct Member {
    Role role = Role::kRollout;
    MemberState state = MemberState::kBootstrapping;
    int64_t join_seq = 0;
    int64_t bootstrapped_version = 0;
  };
  absl::StatusOr<Member*> Find(const std::string& id);
  bool MembershipChanged() const;
  void AbortEpoch() { epoch_.aborted = true; }

  MembershipOptions options_;
  std::map<std::string, Member> members_;
  int64_t next_join_seq_ = 0;
  Epoch epoch_;
  int64_t version_ = 0;
  bool in_flight_ = false;
  int64_t deadline_ms_ = 0;
  std::set<std::string> acked_;
  std::set<std::string> reported_abort_;
};

}  // namespace swarr::dist

#endif  // SWARR_COMMON_DIST_GROUP_MEMBERSHIP_H_
