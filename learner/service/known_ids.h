// The trajectory ids a learner process has taken (accepted, or dropped as stale or late), in
// memory that stays bounded over a long run (issue 16, docs/reliability.md "Bounded memory of
// the id sets"). No torch, not thread-safe (the engine's lock guards it).
//
// Rollout servers name a trajectory "<group_id>/<k>", k in [0, group_size) (rollout_server/
// engine.cc). Such ids are kept per group until every k of the group was inserted; the group id
// then moves to a SequenceIdSet (intervals of the coordinator's group numbers) and its bits are
// freed. Contains(id) is true for every id inserted, however long ago, and also for any
// "<group_id>/<k>" of a group all of whose group_size members were inserted: the learner has
// taken the whole group, so another trajectory of it is a duplicate. Any other id (another
// spelling, a k outside [0, group_size), a group_size that differs from the first one seen for
// that group) is kept as it is.
#ifndef SWARR_LEARNER_SERVICE_KNOWN_IDS_H_
#define SWARR_LEARNER_SERVICE_KNOWN_IDS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/util/sequence_id_set.h"

namespace swarr {

// Splits a rollout's trajectory id "<group>/<k>" (k in decimal without leading zeros, at most
// 9 digits) into the group and k; false for an id of any other form.
bool SplitTrajectoryId(const std::string& id, std::string* group, int64_t* k);

class KnownTrajectoryIds {
 public:
  void Insert(const std::string& id, const std::string& group_id, int32_t group_size);
  bool Contains(const std::string& id) const;
  // Entries held: groups in progress, intervals of complete groups, ids of other forms.
  int64_t retained() const;

 private:
  struct Partial {
    std::vector<bool> have;
    int32_t count = 0;
  };
  absl::flat_hash_map<std::string, Partial> partial_;  // group id -> members seen
  SequenceIdSet complete_;                              // group ids of complete groups
  absl::flat_hash_set<std::string> other_;
};

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_KNOWN_IDS_H_
