#include "coordinator/group_id.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace swarr {

std::string GroupId(const std::string& stage, const std::string& incarnation, int64_t n) {
  return absl::StrFormat("%s/%s-%06d", stage, incarnation, n);
}

bool ParseGroupId(const std::string& id, GroupIdParts* out) {
  const size_t slash = id.find('/');
  if (slash == std::string::npos || slash == 0) return false;
  const std::string rest = id.substr(slash + 1);
  const size_t dash = rest.rfind('-');
  if (dash == std::string::npos || dash == 0) return false;
  out->stage = id.substr(0, slash);
  out->incarnation = rest.substr(0, dash);
  return absl::SimpleAtoi(rest.substr(dash + 1), &out->n) && out->n >= 0;
}

}  // namespace swarr
