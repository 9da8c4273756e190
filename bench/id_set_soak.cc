// Soak of the bounded dedup sets (issue 16, docs/reliability.md "Bounded memory of the id
// sets" and "Bounded memory of the trained-id log"). Three phases, each printing the RSS every
// tenth of the way:
//  - learner: N trajectory ids (default 2,000,000; groups of 8, 32 groups in flight whose members
//    arrive interleaved) through KnownTrajectoryIds (LearnerEngine::PushTrajectories' dedup),
//    each id pushed twice: the second must be found known;
//  - coordinator: N group ids (256 in flight, finishing in any order) through SequenceIdSet
//    (Coordinator's finished group ids), each reported twice: the second must be refused;
//  - trained: N trajectory ids appended to a TrainedIdsLog (a real trained_ids.log in a
//    temporary directory under $TMPDIR or /tmp: steps of 32 groups of 8, one group in 50
//    dropped stale and never trained, a checkpoint every 10 steps settling the lines), each
//    checked trained after its step; then every id of the first groups is checked again, the
//    log is opened again (what a restarted learner reads) and cut back by one step.
// For comparison, a last phase puts the same N trajectory ids in an unbounded container: with
// --baseline an absl::flat_hash_set (the learner's taken-id set before its bound), with
// --baseline-log an absl::flat_hash_map id -> line (the trained-id log's memory before its bound). Exits 1 if a duplicate gets
// through or a check fails. Not run in CI (a few seconds per million ids).
// Usage: id_set_soak [N] [--baseline | --baseline-log]
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/util/sequence_id_set.h"
#include "learner/service/known_ids.h"
#include "learner/service/run_state.h"

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
  const bool baseline_log = argc > 2 && std::string(argv[2]) == "--baseline-log";
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
  {  // The learner's trained ids (trained_ids.log).
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = absl::StrCat(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/id_set_soak_XXXXXX");
    if (::mkdtemp(dir.data()) == nullptr) return std::fprintf(stderr, "cannot create %s\n", dir.c_str()), 1;
    const std::string path = dir + "/trained_ids.log";
    auto name = [](int64_t g, int k) { return absl::StrCat(absl::StrFormat("rl/0123456789abcdef-%06d", g), "/", k); };
    const int kSize = 8, kGroupsPerStep = 32, kCheckpointEvery = 10, kHoleEvery = 50;
    auto trained = [&](int64_t g) { return g % kHoleEvery != kHoleEvery - 1; };
    {
      absl::StatusOr<std::unique_ptr<swarr::TrainedIdsLog>> log = swarr::TrainedIdsLog::Open(path);
      if (!log.ok()) return std::fprintf(stderr, "%s\n", log.status().ToString().c_str()), 1;
      int64_t done = 0, group = 0;
      for (int64_t step = 1; done < n; ++step) {
        std::vector<std::string> ids;
        for (int g = 0; g < kGroupsPerStep; ++g, ++group) {
          for (int k = 0; trained(group) && k < kSize; ++k) ids.push_back(name(group, k));
        }
        for (const std::string& id : ids) {
          if ((*log)->Contains(id)) return std::fprintf(stderr, "%s trained before its step\n", id.c_str()), 1;
        }
        if (absl::Status st = (*log)->Append(ids); !st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
        for (const std::string& id : ids) {
          if (!(*log)->Contains(id)) return std::fprintf(stderr, "duplicate %s not refused\n", id.c_str()), 1;
        }
        if (step % kCheckpointEvery == 0) {
          if (absl::Status st = (*log)->Settle((*log)->lines()); !st.ok()) {
            return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
          }
        }
        const int64_t before = done;
        done += static_cast<int64_t>(ids.size());
        if (done / every != before / every) Row("trained", done, (*log)->retained());
      }
      for (int64_t g = 0; g < 1000; ++g) {
        if ((*log)->Contains(name(g, 3)) != trained(g)) {
          return std::fprintf(stderr, "group %lld: trained is wrong after settling\n", static_cast<long long>(g)), 1;
        }
      }
      if ((*log)->trained_twice() != 0) return std::fprintf(stderr, "ids counted as trained twice\n"), 1;
    }
    // A restarted learner: reads the whole log back, then cuts the last step (not checkpointed).
    absl::StatusOr<std::unique_ptr<swarr::TrainedIdsLog>> log = swarr::TrainedIdsLog::Open(path);
    if (!log.ok()) return std::fprintf(stderr, "%s\n", log.status().ToString().c_str()), 1;
    Row("trained-open", (*log)->lines(), (*log)->retained());
    const int64_t cut = std::max((*log)->settled_lines(), (*log)->lines() - kGroupsPerStep * kSize);
    if (absl::Status st = (*log)->TruncateTo(cut); !st.ok()) return std::fprintf(stderr, "%s\n", st.ToString().c_str()), 1;
    Row("trained-cut", (*log)->lines(), (*log)->retained());
    if (!(*log)->Contains(name(0, 0))) return std::fprintf(stderr, "group 0 lost by the cut\n"), 1;
    log->reset();
    for (const char* f : {"/trained_ids.log", "/trained_ids.log.settled"}) std::remove((dir + f).c_str());
    ::rmdir(dir.c_str());
  }
  if (baseline) {  // The unbounded set the learner kept before: every id, forever.
    absl::flat_hash_set<std::string> all;
    for (int64_t done = 0; done < n;) {
      const std::string id = absl::StrCat(absl::StrFormat("rl/0123456789abcdef-%06d", done / 8), "/", done % 8);
      all.insert(id);
      if (++done % every == 0) Row("unbounded", done, static_cast<int64_t>(all.size()));
    }
  }
  if (baseline_log) {  // The trained-id log's memory before: id -> first line, every id, forever.
    absl::flat_hash_map<std::string, int64_t> lines;
    for (int64_t done = 0; done < n;) {
      const std::string id = absl::StrCat(absl::StrFormat("rl/0123456789abcdef-%06d", done / 8), "/", done % 8);
      lines.emplace(id, done);
      if (++done % every == 0) Row("unbounded-log", done, static_cast<int64_t>(lines.size()));
    }
  }
  return 0;
}
