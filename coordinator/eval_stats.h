// What an eval stage reports (issue 17): greedy accuracy, sampled accuracy (the mean over k
// samples per problem at a temperature) and the unbiased pass@k, each with a 95 % interval;
// and how one eval stage lays out its groups when it asks for both greedy and sampled answers.
// Pure functions, no locks, no torch: the coordinator aggregates with them, the demo's report
// reads what they wrote.
#ifndef SWARR_COORDINATOR_EVAL_STATS_H_
#define SWARR_COORDINATOR_EVAL_STATS_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "proto/swarr/v1/config.pb.h"

namespace swarr {

// Unbiased pass@k from n samples of which c are correct (Chen et al. 2021):
//   pass@k = 1 - C(n - c, k) / C(n, k)   (1 when n - c < k)
// computed as 1 - prod_{i = n-c+1..n} (1 - k / i), exact for any n. Requires 0 <= c <= n and
// 1 <= k <= n (otherwise returns NaN).
double PassAtK(int64_t n, int64_t c, int64_t k);

// The Wilson score 95 % interval (z = 1.96) of a proportion p observed over n trials.
// n <= 0: [0, 1].
std::pair<double, double> Wilson95(double p, int64_t n);

// Percentile-bootstrap 95 % interval of the mean of `values` (one per problem): `resamples`
// resamples of the problems with replacement (mt19937_64 seeded with `seed`, so a run is
// reproducible), the 2.5th and 97.5th percentiles of their means. Empty: [0, 1].
std::pair<double, double> BootstrapMean95(const std::vector<double>& values, int64_t resamples = 2000,
                                          uint64_t seed = 17);

// One eval problem's results: its greedy answer (if the stage asked for one) and its sampled
// answers (n of them, c correct).
struct EvalProblemOutcome {
  bool has_greedy = false;
  bool greedy_correct = false;
  int64_t n = 0;  // sampled answers
  int64_t c = 0;  // of which correct
};

// The stage's figures over its problems. Intervals: Wilson for greedy accuracy (one Bernoulli
// per problem); percentile bootstrap over problems for the sampled accuracy and pass@k (their
// samples are clustered by problem, so a Wilson interval over all samples would be too narrow).
struct EvalSummary {
  int64_t greedy_n = 0;  // problems with a greedy answer
  double greedy_accuracy = 0;
  std::pair<double, double> greedy_ci95 = {0, 1};
  int64_t sampled_n = 0;   // problems with sampled answers
  int64_t samples = 0;     // sampled answers per problem (the smallest n over those problems)
  double sampled_accuracy = 0;  // mean over problems of c / n (== pass@1)
  std::pair<double, double> sampled_ci95 = {0, 1};
  // pass@k for each k of the request with k <= samples: (k, value, interval).
  struct PassAt {
    int64_t k = 0;
    double value = 0;
    std::pair<double, double> ci95 = {0, 1};
  };
  std::vector<PassAt> pass_at;
};
EvalSummary SummarizeEval(const std::vector<EvalProblemOutcome>& problems, const std::vector<int64_t>& ks = {1, 8});

// Which groups an eval stage generates. Groups 0 .. problems-1 answer problem g: greedily
// (1 sample) when the stage is greedy, else with samples_per_problem samples. With greedy and
// `sampled` > 0, groups problems .. problems+sampled_problems-1 draw `sampled` samples at the
// stage's temperature for problem g - problems.
struct EvalLayout {
  int64_t problems = 0;
  bool greedy = false;
  int64_t first_samples = 1;  // samples per group of the first block (1 when greedy)
  int64_t sampled = 0;          // samples per group of the second block (0: no second block)
  int64_t sampled_problems = 0; // groups of the second block

  int64_t groups() const { return problems + sampled_problems; }
  bool IsSampledBlock(int64_t group) const { return group >= problems; }
  int64_t Problem(int64_t group) const { return group < problems ? group : group - problems; }
  int64_t Samples(int64_t group) const { return IsSampledBlock(group) ? sampled : first_samples; }
  bool Greedy(int64_t group) const { return greedy && !IsSampledBlock(group); }
};
// `problems`: the stage's problem count (num_problems capped by the data).
EvalLayout MakeEvalLayout(const v1::EvalConfig& eval, int64_t problems);

}  // namespace swarr

#endif  // SWARR_COORDINATOR_EVAL_STATS_H_
