#include "learner/service/known_ids.h"

#include <cctype>

namespace swarr {

bool SplitTrajectoryId(const std::string& id, std::string* group, int64_t* k) {
  const size_t slash = id.rfind('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == id.size() || id.size() - slash - 1 > 9) return false;
  if (id[slash + 1] == '0' && id.size() - slash - 1 > 1) return false;
  int64_t v = 0;
  for (size_t i = slash + 1; i < id.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(id[i]))) return false;
    v = v * 10 + (id[i] - '0');
  }
  *group = id.substr(0, slash);
  *k = v;
  return true;
}

void KnownTrajectoryIds::Insert(const std::string& id, const std::string& group_id, int32_t group_size) {
  if (Contains(id)) return;
  std::string group;
  int64_t k = -1;
  if (group_size <= 0 || !SplitTrajectoryId(id, &group, &k) || group != group_id || k >= group_size) {
    other_.insert(id);
    return;
  }
  auto [it, fresh] = partial_.try_emplace(group);
  Partial& p = it->second;
  if (fresh) p.have.assign(static_cast<size_t>(group_size), false);
  if (static_cast<int32_t>(p.have.size()) != group_size) {  // another size than the first member's
    other_.insert(id);
    return;
  }
  p.have[static_cast<size_t>(k)] = true;
  if (++p.count == group_size) {
    partial_.erase(it);
    complete_.Insert(group);
  }
}

bool KnownTrajectoryIds::Contains(const std::string& id) const {
  if (other_.contains(id)) return true;
  std::string group;
  int64_t k = -1;
  if (!SplitTrajectoryId(id, &group, &k)) return false;
  if (auto it = partial_.find(group); it != partial_.end()) {
    return k < static_cast<int64_t>(it->second.have.size()) && it->second.have[static_cast<size_t>(k)];
  }
  return complete_.Contains(group);
}

int64_t KnownTrajectoryIds::retained() const {
  return static_cast<int64_t>(partial_.size() + other_.size()) + complete_.retained();
}

}  // namespace swarr
