#include "common/math/window_task.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/math/synthetic.h"
#include "common/math/verifier.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace swarr {
namespace window_task {
namespace {

using ::testing::HasSubstr;

// The demo's setting (configs/demo/): lag 5, 6..9 steps, window 12, a 2-layer model.
constexpr int kLag = 5, kWindow = 12, kLayers = 2;

// An independent reading of a solution: every step's arithmetic, against the recurrence
// computed here from the prompt alone.
void ExpectSolutionCorrect(const std::string& prompt, const std::string& solution, Style style) {
  ASSERT_EQ(prompt.substr(0, 2), "Q:");
  const size_t comma = prompt.find(',');
  ASSERT_NE(comma, std::string::npos);
  std::vector<int> x;
  for (size_t i = 2; i < comma; ++i) x.push_back(prompt[i] - '0');
  const int m = static_cast<int>(x.size());
  const int steps = prompt[comma + 1] - '0';
  ASSERT_EQ(prompt.substr(comma + 2), "|");
  std::string expected;
  for (int i = 1; i <= steps; ++i) {
    const int prev = x.back(), back = x[x.size() - static_cast<size_t>(m)];
    const int next = (prev + back) % 10;
    expected += std::to_string(steps - i + 1) + ":";
    if (style == Style::kSa) {
      expected += std::to_string(prev) + "+" + std::to_string(back);
    } else {
      for (size_t j = x.size() - static_cast<size_t>(m); j < x.size(); ++j) expected += std::to_string(x[j]);
    }
    expected += "=" + std::to_string(next) + ",";
    x.push_back(next);
  }
  expected += "A" + std::to_string(x.back());
  EXPECT_EQ(solution, expected);
}

TEST(WindowTaskTest, ParsesSpecs) {
  auto d = ParseLagSumSpec("lagsum");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->lag, 5);
  EXPECT_EQ(d->min_steps, 6);
  EXPECT_EQ(d->max_steps, 9);
  EXPECT_EQ(d->wf_share, 0);
  EXPECT_EQ(d->split, Split::kTrain);
  auto s = ParseLagSumSpec("lagsum:m=4,n=7,wf=0.25,split=eval");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->lag, 4);
  EXPECT_EQ(s->min_steps, 7);
  EXPECT_EQ(s->max_steps, 7);
  EXPECT_DOUBLE_EQ(s->wf_share, 0.25);
  EXPECT_EQ(s->split, Split::kEval);
  EXPECT_EQ(ParseLagSumSpec("lagsum:n=3-8")->max_steps, 8);
  EXPECT_THAT(ParseLagSumSpec("lagsum:m=1").status().message(), HasSubstr("m must be"));
  EXPECT_THAT(ParseLagSumSpec("lagsum:n=5-10").status().message(), HasSubstr("n must be"));
  EXPECT_THAT(ParseLagSumSpec("lagsum:n=8-6").status().message(), HasSubstr("n must be"));
  EXPECT_THAT(ParseLagSumSpec("lagsum:wf=1.5").status().message(), HasSubstr("wf must be"));
  EXPECT_THAT(ParseLagSumSpec("lagsum:split=test").status().message(), HasSubstr("split must be"));
  EXPECT_THAT(ParseLagSumSpec("lagsum:lag=5").status().message(), HasSubstr("unknown key 'lag'"));
  EXPECT_THAT(ParseLagSumSpec("lagsum:m5").status().message(), HasSubstr("not key=value"));
  EXPECT_FALSE(IsLagSumTask("lagsumx"));
  EXPECT_FALSE(IsLagSumTask("sum_digits"));
  // Through the synthetic-task registry.
  EXPECT_TRUE(ValidateSyntheticTask("lagsum:wf=0.1").ok());
  EXPECT_TRUE(ValidateSyntheticTask("sum_digits").ok());
  EXPECT_THAT(ValidateSyntheticTask("lagsum:wf=x").message(), HasSubstr("wf must be"));
  EXPECT_THAT(ValidateSyntheticTask("nope").message(), HasSubstr("lagsum"));
}

TEST(WindowTaskTest, WorkedExample) {
  const LagSumProblem p = MakeLagSumProblem({3, 8, 1, 5, 2}, 9);
  EXPECT_EQ(p.prompt, "Q:38152,9|");
  // x: 3 8 1 5 2 | 5 3 4 9 1 6 9 3 2
  EXPECT_EQ(Solution(p, Style::kSa), "9:2+3=5,8:5+8=3,7:3+1=4,6:4+5=9,5:9+2=1,4:1+5=6,3:6+3=9,2:9+4=3,1:3+9=2,A2");
  EXPECT_EQ(Solution(p, Style::kWindowFriendly),
            "9:38152=5,8:81525=3,7:15253=4,6:52534=9,5:25349=1,4:53491=6,3:34916=9,2:49169=3,1:91693=2,A2");
  EXPECT_EQ(p.answer, "2");
}

TEST(WindowTaskTest, DeterministicPerSeedAndCorrect) {
  for (const char* task : {"lagsum:wf=0.3", "lagsum:m=3,n=2-9,wf=0.5", "lagsum:m=9,n=9,wf=0.5,split=eval"}) {
    SCOPED_TRACE(task);
    const LagSumSpec spec = *ParseLagSumSpec(task);
    std::mt19937_64 a(11), b(11), c(12);
    int differ = 0;
    for (int i = 0; i < 300; ++i) {
      const LagSumExample ea = DrawLagSumExample(spec, a), eb = DrawLagSumExample(spec, b), ec = DrawLagSumExample(spec, c);
      EXPECT_EQ(ea.problem.prompt, eb.problem.prompt);
      EXPECT_EQ(ea.response, eb.response);
      differ += ea.problem.prompt != ec.problem.prompt;
      EXPECT_EQ(static_cast<int>(ea.problem.seeds.size()), spec.lag);
      EXPECT_GE(ea.problem.steps, spec.min_steps);
      EXPECT_LE(ea.problem.steps, spec.max_steps);
      ExpectSolutionCorrect(ea.problem.prompt, ea.response, ea.style);
      // The other style reaches the same answer.
      const Style other = ea.style == Style::kSa ? Style::kWindowFriendly : Style::kSa;
      ExpectSolutionCorrect(ea.problem.prompt, Solution(ea.problem, other), other);
      EXPECT_TRUE(CheckAnswer(ea.response, ea.problem.answer));
      EXPECT_EQ(ClassifyStyle(ea.response, spec.lag), ea.style);
    }
    EXPECT_GT(differ, 250);
  }
}

TEST(WindowTaskTest, StyleShareFollowsTheSpec) {
  for (double wf : {0.0, 0.05, 0.2}) {
    LagSumSpec spec;
    spec.wf_share = wf;
    std::mt19937_64 rng(5);
    int n_wf = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) n_wf += DrawLagSumExample(spec, rng).style == Style::kWindowFriendly;
    // Sampling noise: standard deviation sqrt(wf (1 - wf) / n) <= 0.0029 (wf = 0.2); seeded.
    EXPECT_NEAR(static_cast<double>(n_wf) / n, wf, 0.01) << wf;
  }
}

TEST(WindowTaskTest, HeldOutSplitIsDisjointFromTraining) {
  LagSumSpec train, eval, all;
  eval.split = Split::kEval;
  all.split = Split::kAll;
  std::mt19937_64 r1(1), r2(2), r3(3);
  std::set<std::string> eval_prompts;
  int held_in_all = 0;
  for (int i = 0; i < 5000; ++i) {
    EXPECT_FALSE(IsHeldOut(DrawLagSumProblem(train, r1)));
    const LagSumProblem e = DrawLagSumProblem(eval, r2);
    EXPECT_TRUE(IsHeldOut(e));
    eval_prompts.insert(e.prompt);
    held_in_all += IsHeldOut(DrawLagSumProblem(all, r3));
  }
  // Sampling noise: standard deviation sqrt(0.1 * 0.9 / 5000) = 0.0042; 0.02 is about 5 of those.
  EXPECT_NEAR(held_in_all / 5000.0, 0.1, 0.02);
  EXPECT_GT(eval_prompts.size(), 4500u);  // 40,000 held-out problems: few repeats
}

TEST(WindowTaskTest, ClassifiesStyles) {
  const LagSumProblem p = MakeLagSumProblem({3, 8, 1, 5, 2}, 9);
  const std::string sa = Solution(p, Style::kSa), wf = Solution(p, Style::kWindowFriendly);
  EXPECT_EQ(ClassifyStyle(sa, 5), Style::kSa);
  EXPECT_EQ(ClassifyStyle(wf, 5), Style::kWindowFriendly);
  EXPECT_TRUE(IsWindowFriendly(wf, 5));
  EXPECT_FALSE(IsWindowFriendly(sa, 5));
  EXPECT_FALSE(IsWindowFriendly(wf, 4));  // a register of another length
  // Truncated: the complete steps decide.
  EXPECT_EQ(ClassifyStyle(wf.substr(0, 25), 5), Style::kWindowFriendly);
  EXPECT_EQ(ClassifyStyle(sa.substr(0, 20), 5), Style::kSa);
  EXPECT_EQ(ClassifyStyle("9:2+3=5,8:81525=3,A3", 5), Style::kMixed);
  EXPECT_EQ(ClassifyStyle("9:2+3=5,8:5+8=3x,A3", 5), Style::kOther);
  EXPECT_EQ(ClassifyStyle("9:2+3", 5), Style::kOther);
  EXPECT_EQ(ClassifyStyle("", 5), Style::kOther);
  EXPECT_EQ(ClassifyStyle("A2", 5), Style::kOther);
}

TEST(WindowTaskTest, ChecksAnswers) {
  EXPECT_TRUE(CheckAnswer("9:2+3=5,A5", "5"));
  EXPECT_TRUE(CheckAnswer("9:2+3=5,A5\n", "5"));
  EXPECT_FALSE(CheckAnswer("9:2+3=5,A5", "4"));
  EXPECT_FALSE(CheckAnswer("9:2+3=5,A55", "5"));
  EXPECT_FALSE(CheckAnswer("9:2+3=5,", "5"));
  EXPECT_FALSE(CheckAnswer("A5", ""));
  EXPECT_FALSE(CheckAnswer("A5,A", "5"));
}

// The RL stage rewards with the math verifier (the last number): on solutions of either
// style, and on wrong or unfinished ones, it agrees with CheckAnswer.
TEST(WindowTaskTest, VerifierAgreesWithTheChecker) {
  LagSumSpec spec;
  spec.wf_share = 0.5;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 300; ++i) {
    const LagSumExample e = DrawLagSumExample(spec, rng);
    const std::string wrong = std::to_string((e.problem.terms.back() + 1 + i % 9) % 10);
    for (const std::string& c : {e.response, e.response.substr(0, e.response.size() - 1) + wrong}) {
      EXPECT_EQ(Verify(c, e.problem.answer).correct, CheckAnswer(c, e.problem.answer)) << c;
    }
  }
}

// Every string of the task is in the synthetic character vocabulary (24 ids).
TEST(WindowTaskTest, TextsAreInTheCharVocabulary) {
  std::mt19937_64 rng(9);
  for (int i = 0; i < 200; ++i) {
    const SyntheticProblem p = MakeSyntheticProblem("lagsum:m=9,n=1-9,wf=0.5", rng);
    auto ids = CharVocab::Encode(p.prompt + p.response);
    ASSERT_TRUE(ids.ok()) << ids.status();
    EXPECT_EQ(CharVocab::Decode(*ids), p.prompt + p.response);
  }
}

// --- Token distances ----------------------------------------------------------------------

TEST(WindowTaskTest, DistancesOfTheWorkedExample) {
  const LagSumProblem p = MakeLagSumProblem({3, 8, 1, 5, 2}, 9);
  // SA: the far operand b of step i (prompt of 10 characters, steps of 8).
  std::map<int, int> b_distance;
  for (const TokenDependency& d : DependencyDistances(p, Style::kSa)) {
    if ((d.position - 10) % 8 == 4 && d.step <= 9) b_distance[d.step] = d.distance;
  }
  // Step 1 reads seed 1 in the prompt (12 back), step 5 seed 5 via its restatement in step 1,
  // then x_{n-5} restated as the first operand 4 steps earlier: 8*5-6 = 34.
  EXPECT_EQ(b_distance, (std::map<int, int>{{1, 12}, {2, 19}, {3, 26}, {4, 33}, {5, 34}, {6, 34}, {7, 34}, {8, 34},
                                            {9, 34}}));
  int wf_max = 0;
  for (const TokenDependency& d : DependencyDistances(p, Style::kWindowFriendly)) wf_max = std::max(wf_max, d.distance);
  EXPECT_EQ(wf_max, 10);  // m + 5: the step counter, one step back
}

// The property the experiment rests on, for the demo's setting and around it: SA-style
// solutions need tokens further back than an L-layer model with window W can see, window-
// friendly ones need nothing further back than W.
TEST(WindowTaskTest, SaReachesBeyondTheWindowAndWindowFriendlyDoesNot) {
  const int receptive = ReceptiveDistance(kWindow, kLayers);
  ASSERT_EQ(receptive, 23);
  LagSumSpec spec;
  spec.lag = kLag;
  spec.split = Split::kAll;
  std::mt19937_64 rng(4);
  for (int i = 0; i < 500; ++i) {
    const LagSumProblem p = DrawLagSumProblem(spec, rng);
    // Window-friendly: every generated token's inputs are within the window (one layer).
    for (const TokenDependency& d : DependencyDistances(p, Style::kWindowFriendly)) {
      ASSERT_LE(d.distance, kWindow) << p.prompt << " position " << d.position << " '" << d.ch << "'";
    }
    // SA-style: from step 3 on, the far operand is beyond even the L-layer receptive field,
    // by nearest copy and by the certificate (which also covers values derivable from
    // nearby tokens).
    const std::vector<TokenDependency> sa = DependencyDistances(p, Style::kSa);
    const std::vector<int> cert = SaCertifiedDistances(p);
    ASSERT_EQ(static_cast<int>(cert.size()), p.steps);
    int beyond = 0;
    for (int step = 1; step <= p.steps; ++step) {
      int step_max = 0;
      for (const TokenDependency& d : sa) {
        if (d.step == step) step_max = std::max(step_max, d.distance);
      }
      EXPECT_GT(cert[static_cast<size_t>(step - 1)], 0);
      EXPECT_LE(cert[static_cast<size_t>(step - 1)], step_max);  // a certificate never beats a copy
      if (step >= 3) {
        EXPECT_GT(step_max, receptive) << p.prompt << " step " << step;
        EXPECT_GT(cert[static_cast<size_t>(step - 1)], receptive) << p.prompt << " step " << step;
      }
      beyond += cert[static_cast<size_t>(step - 1)] > receptive;
    }
    EXPECT_GE(beyond, p.steps - 2);
  }
}

// The distances scale with the lag as documented (SA 8m-6, window-friendly m+5), so a window
// chosen for another lag is checked, and a too-small window is caught.
TEST(WindowTaskTest, DistancesScaleWithTheLag) {
  for (int m = 2; m <= 9; ++m) {
    const LagSumProblem p = MakeLagSumProblem(std::vector<int>(static_cast<size_t>(m), 7), 9);
    int sa_max = 0, wf_max = 0;
    for (const TokenDependency& d : DependencyDistances(p, Style::kSa)) sa_max = std::max(sa_max, d.distance);
    for (const TokenDependency& d : DependencyDistances(p, Style::kWindowFriendly)) wf_max = std::max(wf_max, d.distance);
    EXPECT_EQ(wf_max, m + 5) << m;
    EXPECT_EQ(sa_max, 8 * m - 6) << m;
  }
}

}  // namespace
}  // namespace window_task
}  // namespace swarr
