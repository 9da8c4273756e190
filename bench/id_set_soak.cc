// Soak of the bounded dedup sets (issue 16, docs/reliability.md "Bounded memory of the id
// sets"). Two phases, each printing the RSS every tenth of the way:
//  - learner: N trajectory ids (default 2,000,000; groups of 8, 32 groups in flight whose members
//    arrive interleaved) through KnownTrajectoryIds (LearnerEngine::PushTrajectories' dedup),
//    each id pushed twice: the second must be found known;
//  - coordinator: N group ids (256 in flight, finishing in any order) through SequenceIdSet
//    (Coordinator's finished group ids), each reported twice: the second must be refused.
// With --baseline, a third phase puts the same N trajectory ids in an absl::flat_hash_set (the
// learner's set before this bound) for comparison. Exits 1 if a duplicate gets through. Not run
// in CI (about a second per million ids). Usage: id_set_soak [N] [--baseline]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/util/sequence_id_set.h"
#include "learner/service/known_ids.h"

namespace {

int64_t RssKiB() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return -1;
}

void Row(const char* what, int64_t done, int64_t retained) {
  std::printf("%-12s %12lld %10lld %10lld\n", what, static_cast<long long>(done), static_cast<long long>(retained),
              static_cast<long long>(RssKiB()));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 2000000;
  const bool baseline = argc > 2 && std::string(argv[2]) == "--baseline";
  const int64_t every = std::max<int64_t>(1, n / 10);
  std::mt19937 rng(1);
  std::printf("%-12s %12s %10s %10s\n", "set", "ids", "retained", "rss_kib");
  Row("start", 0, 0);

  {  // The learner's taken trajectory ids.
    swarr::KnownTrajectoryIds known;
    const int kSize = 8, kWindow = 32;
    int64_t done = 0;
    std::vector<std::pair<int64_t, int>> w;
    for (int64_t base = 0; done < n; base += kWindow) {
      w.clear();
      for (int64_t g = base; g < base + kWindow; ++g) {
        for (int k = 0; k < kSize; ++k) w.emplace_back(g, k);
      }
      std::shuffle(w.begin(), w.end(), rng);
      for (const auto& [g, k] : w) {
        if (done == n) break;
        const std::string group = absl::StrFormat("rl/0123456789abcdef-%06d", g);
        const std::string id = absl::StrCat(group, "/", k);
        if (known.Contains(id)) return std::fprintf(stderr, "%s known before it came\n", id.c_str()), 1;
        known.Insert(id, group, kSize);
        if (!known.Contains(id)) return std::fprintf(stderr, "duplicate %s not refused\n", id.c_str()), 1;
        if (++done % every == 0) Row("learner", done, known.retained());
      }
    }
    // Every id of the first groups, long compacted, is still a duplicate.
    for (int64_t g = 0; g < 1000; ++g) {
      for (int k = 0; k < kSize; ++k) {
        if (!known.Contains(absl::StrCat(absl::StrFormat("rl/0123456789abcdef-%06d", g), "/", k))) {
          return std::fprintf(stderr, "old duplicate of group %lld not refused\n", static_cast<long long>(g)), 1;
        }
      }
    }
  }

  {  // The coordinator's finished group ids.
    swarr::SequenceIdSet finished;
    const int64_t kWindow = 256;
    int64_t done = 0;
    std::vector<int64_t> w;
    for (int64_t base = 0; base < n; base += kWindow) {
      w.clear();
      for (int64_t g = base; g < std::min(n, base + kWindow); ++g) w.push_back(g);
      std::shuffle(w.begin(), w.end(), rng);
      for (int64_t g : w) {
        const std::string id = absl::StrFormat("rl/0123456789abcdef-%06d", g);
        if (!finished.Insert(id)) return std::fprintf(stderr, "%s refused the first time\n", id.c_str()), 1;
        if (finished.Insert(id)) return std::fprintf(stderr, "duplicate %s not refused\n", id.c_str()), 1;
        if (++done % every == 0) Row("coordinator", done, finished.retained());
      }
    }
  }
  if (baseline) {  // The unbounded set the learner kept before: every id, forever.
    absl::flat_hash_set<std::string> all;
    for (int64_t done = 0; done < n;) {
      const std::string id = absl::StrCat(absl::StrFormat("rl/0123456789abcdef-%06d", done / 8), "/", done % 8);
      all.insert(id);
      if (++done % every == 0) Row("unbounded", done, static_cast<int64_t>(all.size()));
    }
  }
  return 0;
}
