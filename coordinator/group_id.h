// Prompt group ids, "<stage>/<coordinator incarnation>-<n>" (n zero-padded to 6 digits: the
// stage's draw index for rl groups, the group index for eval groups). The incarnation tells a
// restarted coordinator which groups an earlier process of the same pipeline handed out
// (CoordinatorState.incarnations). No torch, no gRPC; thread-compatible.
#ifndef SWARR_COORDINATOR_GROUP_ID_H_
#define SWARR_COORDINATOR_GROUP_ID_H_

#include <cstdint>
#include <string>

namespace swarr {

struct GroupIdParts {
  std::string stage, incarnation;
  int64_t n = -1;
};

// GroupId("rl", "1a2b3c4d", 7) == "rl/1a2b3c4d-000007".
std::string GroupId(const std::string& stage, const std::string& incarnation, int64_t n);

// The parts of `id`; false (and `out` unspecified) unless it has the form above with n >= 0.
bool ParseGroupId(const std::string& id, GroupIdParts* out);

}  // namespace swarr

#endif  // SWARR_COORDINATOR_GROUP_ID_H_
