#include "common/util/sequence_id_set.h"

#include <algorithm>
#include <cctype>
#include <iterator>

namespace swarr {
namespace {

// "<key>-<n>": the key and n, or false for an id of another form (n: decimal digits, no sign,
// no leading zeros beyond the zero padding GroupId writes, at most 18 digits).
bool Split(const std::string& id, std::string* key, int64_t* n) {
  const size_t dash = id.rfind('-');
  if (dash == std::string::npos || dash == 0 || dash + 1 == id.size() || id.size() - dash - 1 > 18) return false;
  int64_t v = 0;
  for (size_t i = dash + 1; i < id.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(id[i]))) return false;
    v = v * 10 + (id[i] - '0');
  }
  // One spelling per n: "-000012" (GroupId's padding to 6 digits) or, beyond it, no zeros.
  const size_t digits = id.size() - dash - 1;
  const size_t canonical = std::max<size_t>(6, std::to_string(v).size());
  if (digits != canonical) return false;
  *key = id.substr(0, dash);
  *n = v;
  return true;
}

}  // namespace

bool SequenceIdSet::Insert(const std::string& id) {
  std::string key;
  int64_t n = 0;
  if (!Split(id, &key, &n)) {
    if (!other_.insert(id).second) return false;
    ++size_;
    return true;
  }
  std::map<int64_t, int64_t>& iv = intervals_[key];
  auto next = iv.upper_bound(n);  // first interval starting after n
  if (next != iv.begin()) {
    auto prev = std::prev(next);
    if (prev->second >= n) return false;  // inside [prev.first, prev.second]
    if (prev->second == n - 1) {          // extends prev
      prev->second = n;
      if (next != iv.end() && next->first == n + 1) {  // and closes the hole to next
        prev->second = next->second;
        iv.erase(next);
      }
      ++size_;
      return true;
    }
  }
  if (next != iv.end() && next->first == n + 1) {  // extends next downwards
    const int64_t last = next->second;
    iv.erase(next);
    iv.emplace(n, last);
  } else {
    iv.emplace(n, n);
  }
  ++size_;
  return true;
}

bool SequenceIdSet::Contains(const std::string& id) const {
  std::string key;
  int64_t n = 0;
  if (!Split(id, &key, &n)) return other_.count(id) > 0;
  auto k = intervals_.find(key);
  if (k == intervals_.end()) return false;
  auto next = k->second.upper_bound(n);
  if (next == k->second.begin()) return false;
  return std::prev(next)->second >= n;
}

int64_t SequenceIdSet::retained() const {
  int64_t r = static_cast<int64_t>(other_.size());
  for (const auto& [key, iv] : intervals_) r += static_cast<int64_t>(iv.size());
  return r;
}

}  // namespace swarr
