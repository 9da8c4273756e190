#include "coordinator/eval_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace swarr {

double PassAtK(int64_t n, int64_t c, int64_t k) {
  if (c < 0 || c > n || k < 1 || k > n) return std::numeric_limits<double>::quiet_NaN();
  if (n - c < k) return 1.0;
  double fail = 1.0;  // C(n-c, k) / C(n, k)
  for (int64_t i = n - c + 1; i <= n; ++i) fail *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  return 1.0 - fail;
}

std::pair<double, double> Wilson95(double p, int64_t n) {
  if (n <= 0) return {0.0, 1.0};
  const double z = 1.96, nn = static_cast<double>(n);
  const double denom = 1 + z * z / nn;
  const double centre = (p + z * z / (2 * nn)) / denom;
  const double half = z * std::sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / denom;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

std::pair<double, double> BootstrapMean95(const std::vector<double>& values, int64_t resamples, uint64_t seed) {
  if (values.empty() || resamples < 1) return {0.0, 1.0};
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, values.size() - 1);
  std::vector<double> means(static_cast<size_t>(resamples));
  for (double& m : means) {
    double sum = 0;
    for (size_t i = 0; i < values.size(); ++i) sum += values[pick(rng)];
    m = sum / static_cast<double>(values.size());
  }
  std::sort(means.begin(), means.end());
  // Percentiles by the nearest-rank rule on the sorted means.
  auto at = [&](double q) {
    const int64_t r = static_cast<int64_t>(std::ceil(q * static_cast<double>(resamples))) - 1;
    return means[static_cast<size_t>(std::clamp<int64_t>(r, 0, resamples - 1))];
  };
  return {at(0.025), at(0.975)};
}

EvalSummary SummarizeEval(const std::vector<EvalProblemOutcome>& problems, const std::vector<int64_t>& ks) {
  EvalSummary s;
  int64_t greedy_correct = 0;
  std::vector<double> acc;
  int64_t min_n = 0;
  for (const EvalProblemOutcome& p : problems) {
    if (p.has_greedy) {
      ++s.greedy_n;
      greedy_correct += p.greedy_correct ? 1 : 0;
    }
    if (p.n > 0) {
      acc.push_back(static_cast<double>(p.c) / static_cast<double>(p.n));
      min_n = min_n == 0 ? p.n : std::min(min_n, p.n);
    }
  }
  if (s.greedy_n > 0) {
    s.greedy_accuracy = static_cast<double>(greedy_correct) / static_cast<double>(s.greedy_n);
    s.greedy_ci95 = Wilson95(s.greedy_accuracy, s.greedy_n);
  }
  s.sampled_n = static_cast<int64_t>(acc.size());
  s.samples = min_n;
  if (acc.empty()) return s;
  double sum = 0;
  for (double a : acc) sum += a;
  s.sampled_accuracy = sum / static_cast<double>(acc.size());
  s.sampled_ci95 = BootstrapMean95(acc);
  for (int64_t k : ks) {
    if (k < 1 || k > min_n) continue;
    std::vector<double> v;
    for (const EvalProblemOutcome& p : problems) {
      if (p.n > 0) v.push_back(PassAtK(p.n, p.c, k));
    }
    EvalSummary::PassAt pa;
    pa.k = k;
    double total = 0;
    for (double x : v) total += x;
    pa.value = total / static_cast<double>(v.size());
    pa.ci95 = BootstrapMean95(v);
    s.pass_at.push_back(pa);
  }
  return s;
}

EvalLayout MakeEvalLayout(const v1::EvalConfig& eval, int64_t problems) {
  EvalLayout l;
  l.problems = std::max<int64_t>(0, problems);
  l.greedy = eval.greedy();
  l.first_samples = eval.greedy() ? 1 : std::max<int64_t>(1, eval.samples_per_problem());
  if (eval.greedy() && eval.sampled() > 0) {
    l.sampled = eval.sampled();
    l.sampled_problems = eval.sampled_problems() > 0 ? std::min(eval.sampled_problems(), l.problems) : l.problems;
  }
  return l;
}

}  // namespace swarr
