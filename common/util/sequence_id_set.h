// A set of string ids whose memory stays bounded over a long run when the ids are numbered in
// order (issue 16, docs/reliability.md "Bounded memory of the id sets"): the coordinator's
// finished group ids, the learner's complete groups (learner/service/known_ids.h). Exact:
// Contains(id) is true if and only if Insert(id) was called before, however long ago; nothing is
// forgotten.
//
// Ids of the form "<key>-<n>", n written as GroupId writes it (coordinator.cc: "%06d", so
// "rl/c1-000012"; group ids are "<stage>/<incarnation>-<n>" with n drawn in order per stage and
// incarnation), are kept per key as disjoint intervals [first, last] of n: a run of ids that all
// arrived is one interval however long, so memory grows with the holes (groups drawn and never
// finished: in flight when their stage ended, or lost with a coordinator restart) and with the
// keys (stages x coordinator incarnations), not with the ids. An id of any other form (another
// spelling of n included) is kept as it is. Not thread-safe: the owner's lock guards it.
#ifndef SWARR_COMMON_UTIL_SEQUENCE_ID_SET_H_
#define SWARR_COMMON_UTIL_SEQUENCE_ID_SET_H_

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>

namespace swarr {

class SequenceIdSet {
 public:
  // false (and no change) if `id` was inserted before.
  bool Insert(const std::string& id);
  bool Contains(const std::string& id) const;
  // Entries held: intervals plus ids of other forms. Stays bounded when the ids come in order.
  int64_t retained() const;
  int64_t size() const { return size_; }  // ids inserted

 private:
  // Per "<stage>/<incarnation>": first n of an interval -> its last n.
  std::unordered_map<std::string, std::map<int64_t, int64_t>> intervals_;
  std::unordered_set<std::string> other_;
  int64_t size_ = 0;
};

}  // namespace swarr

#endif  // SWARR_COMMON_UTIL_SEQUENCE_ID_SET_H_
