#include "common/math/window_task.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace swarr {
namespace window_task {
namespace {

constexpr int kMaxLag = 9, kMaxSteps = 9;

absl::Status Bad(std::string_view task, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("synthetic task '", std::string(task), "': ", why,
                                                 " (form: lagsum[:m=5,n=6-9,wf=0.1,split=train|eval|all])"));
}

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Quantity tags of characters: term x_j -> j (1-based), step counter value c -> 100 + c.
constexpr int kNone = -1;
int CounterTag(int c) { return 100 + c; }

// A text with, per character, the quantity it holds and (for generated characters) the
// quantities it is computed from.
struct Tagged {
  std::string text;
  std::vector<int> tag;
  std::vector<std::vector<int>> inputs;
  std::vector<int> step;
  void Add(char c, int t, std::vector<int> in, int s) {
    text.push_back(c);
    tag.push_back(t);
    inputs.push_back(std::move(in));
    step.push_back(s);
  }
};

char Digit(int d) { return static_cast<char>('0' + d); }

// Prompt + solution, tagged. `solution_start` receives the prompt length.
Tagged Render(const LagSumProblem& p, Style style, int* solution_start) {
  const int m = static_cast<int>(p.seeds.size()), n_steps = p.steps;
  Tagged t;
  t.Add('Q', kNone, {}, 0);
  t.Add(':', kNone, {}, 0);
  for (int j = 1; j <= m; ++j) t.Add(Digit(p.seeds[j - 1]), j, {}, 0);
  t.Add(',', kNone, {}, 0);
  t.Add(Digit(n_steps), CounterTag(n_steps), {}, 0);
  t.Add('|', kNone, {}, 0);
  *solution_start = static_cast<int>(t.text.size());
  auto x = [&](int j) { return p.terms[static_cast<size_t>(j - 1)]; };
  for (int i = 1; i <= n_steps; ++i) {
    const int n = m + i, c = n_steps - i + 1;
    // The counter: N copied from the prompt, then one less than the previous step's.
    t.Add(Digit(c), CounterTag(c), {CounterTag(i == 1 ? n_steps : c + 1)}, i);
    t.Add(':', kNone, {}, i);
    if (style == Style::kSa) {
      t.Add(Digit(x(n - 1)), n - 1, {n - 1}, i);
      t.Add('+', kNone, {}, i);
      t.Add(Digit(x(n - m)), n - m, {n - m}, i);
    } else {
      for (int j = n - m; j <= n - 1; ++j) t.Add(Digit(x(j)), j, {j}, i);
    }
    t.Add('=', kNone, {}, i);
    t.Add(Digit(x(n)), n, {n - 1, n - m}, i);
    t.Add(',', kNone, {}, i);
  }
  // "A" once the counter has reached 1, then the last term.
  t.Add('A', kNone, {CounterTag(1)}, n_steps + 1);
  t.Add(Digit(x(m + n_steps)), m + n_steps, {m + n_steps}, n_steps + 1);
  return t;
}

// Pieces of `s` between commas ("" -> one empty piece).
std::vector<std::string_view> SplitCommas(std::string_view s) {
  std::vector<std::string_view> out;
  size_t from = 0;
  while (true) {
    const size_t comma = s.find(',', from);
    out.push_back(s.substr(from, comma == std::string_view::npos ? std::string_view::npos : comma - from));
    if (comma == std::string_view::npos) return out;
    from = comma + 1;
  }
}

// A whole decimal integer / number.
bool ParseInt(std::string_view s, int* out) {
  if (s.empty() || s.size() > 6) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}
bool ParseDouble(std::string_view s, double* out) {
  const std::string text(s);
  if (text.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

bool IsLagSumTask(std::string_view task) {
  const std::string_view family = kFamily;
  return task == family || (task.size() > family.size() && task.substr(0, family.size()) == family &&
                            task[family.size()] == ':');
}

absl::StatusOr<LagSumSpec> ParseLagSumSpec(std::string_view task) {
  if (!IsLagSumTask(task)) return Bad(task, "not a lagsum task");
  LagSumSpec spec;
  std::string_view rest = task.substr(std::string_view(kFamily).size());
  if (rest.empty()) return spec;
  rest.remove_prefix(1);  // ':'
  if (rest.empty()) return Bad(task, "empty parameter list");
  for (std::string_view kv : SplitCommas(rest)) {
    const size_t eq = kv.find('=');
    if (eq == std::string_view::npos) return Bad(task, absl::StrCat("'", std::string(kv), "' is not key=value"));
    const std::string key(kv.substr(0, eq)), value(kv.substr(eq + 1));
    if (key == "m") {
      if (!ParseInt(value, &spec.lag) || spec.lag < 2 || spec.lag > kMaxLag) {
        return Bad(task, absl::StrCat("m must be an integer in [2, ", kMaxLag, "], got '", value, "'"));
      }
    } else if (key == "n") {
      const size_t dash = value.find('-');
      const std::string_view v = value;
      bool ok = dash == std::string::npos
                    ? ParseInt(v, &spec.min_steps) && ParseInt(v, &spec.max_steps)
                    : ParseInt(v.substr(0, dash), &spec.min_steps) && ParseInt(v.substr(dash + 1), &spec.max_steps);
      if (!ok || spec.min_steps < 1 || spec.max_steps > kMaxSteps || spec.min_steps > spec.max_steps) {
        return Bad(task, absl::StrCat("n must be N or A-B with 1 <= A <= B <= ", kMaxSteps, ", got '", value, "'"));
      }
    } else if (key == "wf") {
      if (!ParseDouble(value, &spec.wf_share) || !(spec.wf_share >= 0 && spec.wf_share <= 1)) {
        return Bad(task, absl::StrCat("wf must be a number in [0, 1], got '", value, "'"));
      }
    } else if (key == "split") {
      if (value == "train") spec.split = Split::kTrain;
      else if (value == "eval") spec.split = Split::kEval;
      else if (value == "all") spec.split = Split::kAll;
      else return Bad(task, absl::StrCat("split must be train, eval or all, got '", value, "'"));
    } else {
      return Bad(task, absl::StrCat("unknown key '", key, "'"));
    }
  }
  return spec;
}

LagSumProblem MakeLagSumProblem(const std::vector<int>& seeds, int steps) {
  LagSumProblem p;
  p.seeds = seeds;
  p.steps = steps;
  const int m = static_cast<int>(seeds.size());
  p.terms = seeds;
  for (int i = 1; i <= steps; ++i) {
    const int n = m + i;  // 1-based index of the new term
    p.terms.push_back((p.terms[static_cast<size_t>(n - 2)] + p.terms[static_cast<size_t>(n - m - 1)]) % 10);
  }
  p.prompt = "Q:";
  for (int d : seeds) p.prompt.push_back(Digit(d));
  p.prompt += absl::StrCat(",", steps, "|");
  p.answer = std::string(1, Digit(p.terms.back()));
  return p;
}

bool IsHeldOut(const LagSumProblem& p) {
  uint64_t key = static_cast<uint64_t>(p.seeds.size());
  for (int d : p.seeds) key = key * 10 + static_cast<uint64_t>(d);
  key = key * 10 + static_cast<uint64_t>(p.steps);
  return SplitMix64(key) % 10 == 0;
}

LagSumProblem DrawLagSumProblem(const LagSumSpec& spec, std::mt19937_64& rng) {
  while (true) {
    std::vector<int> seeds(static_cast<size_t>(spec.lag));
    for (int& d : seeds) d = static_cast<int>(rng() % 10);
    const int steps = spec.min_steps + static_cast<int>(rng() % static_cast<uint64_t>(spec.max_steps - spec.min_steps + 1));
    LagSumProblem p = MakeLagSumProblem(seeds, steps);
    if (spec.split == Split::kAll || IsHeldOut(p) == (spec.split == Split::kEval)) return p;
  }
}

const char* StyleName(Style style) {
  switch (style) {
    case Style::kSa: return "sa";
    case Style::kWindowFriendly: return "window_friendly";
    case Style::kMixed: return "mixed";
    case Style::kOther: return "other";
  }
  return "other";
}

std::string Solution(const LagSumProblem& problem, Style style) {
  int start = 0;
  Tagged t = Render(problem, style == Style::kWindowFriendly ? Style::kWindowFriendly : Style::kSa, &start);
  return t.text.substr(static_cast<size_t>(start));
}

LagSumExample DrawLagSumExample(const LagSumSpec& spec, std::mt19937_64& rng) {
  LagSumExample e;
  e.problem = DrawLagSumProblem(spec, rng);
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  e.style = u < spec.wf_share ? Style::kWindowFriendly : Style::kSa;
  e.response = Solution(e.problem, e.style);
  return e;
}

Style ClassifyStyle(std::string_view completion, int lag) {
  const std::vector<std::string_view> pieces = SplitCommas(completion);
  bool sa = false, wf = false;
  // Every piece but the last is a complete step (a comma follows it).
  for (size_t i = 0; i + 1 < pieces.size(); ++i) {
    const std::string_view s = pieces[i];
    const bool head = s.size() >= 4 && AllDigits(s.substr(0, 1)) && s[1] == ':';
    const bool tail = s.size() >= 4 && s[s.size() - 2] == '=' && AllDigits(s.substr(s.size() - 1));
    if (!head || !tail) return Style::kOther;
    const std::string_view body = s.substr(2, s.size() - 4);
    if (body.size() == 3 && AllDigits(body.substr(0, 1)) && body[1] == '+' && AllDigits(body.substr(2))) {
      sa = true;
    } else if (static_cast<int>(body.size()) == lag && AllDigits(body)) {
      wf = true;
    } else {
      return Style::kOther;
    }
  }
  if (sa && wf) return Style::kMixed;
  if (sa) return Style::kSa;
  if (wf) return Style::kWindowFriendly;
  return Style::kOther;
}

bool CheckAnswer(std::string_view completion, std::string_view answer) {
  while (!completion.empty() && std::isspace(static_cast<unsigned char>(completion.back()))) {
    completion.remove_suffix(1);
  }
  const size_t a = completion.rfind('A');
  return !answer.empty() && a != std::string_view::npos && completion.substr(a + 1) == answer;
}

std::vector<TokenDependency> DependencyDistances(const LagSumProblem& problem, Style style) {
  int start = 0;
  const Tagged t = Render(problem, style == Style::kWindowFriendly ? Style::kWindowFriendly : Style::kSa, &start);
  std::vector<TokenDependency> out;
  for (int pos = start; pos < static_cast<int>(t.text.size()); ++pos) {
    TokenDependency d;
    d.position = pos;
    d.ch = t.text[static_cast<size_t>(pos)];
    d.step = t.step[static_cast<size_t>(pos)];
    for (int q : t.inputs[static_cast<size_t>(pos)]) {
      int s = pos - 1;
      while (s >= 0 && t.tag[static_cast<size_t>(s)] != q) --s;
      // Every input is written somewhere before (Render's invariant).
      d.distance = std::max(d.distance, s >= 0 ? pos - s : pos + 1);
    }
    out.push_back(d);
  }
  return out;
}

std::vector<int> SaCertifiedDistances(const LagSumProblem& problem) {
  const int m = static_cast<int>(problem.seeds.size());
  int start = 0;
  const Tagged base = Render(problem, Style::kSa, &start);
  std::vector<int> out;
  for (int i = 1; i <= problem.steps; ++i) {
    const int n = m + i;
    // x' agrees with x on x_{n-m+1}..x_{n-1}; x'_{n-m} differs. Earlier terms by running the
    // recurrence backwards: x_{j-m} = x_j - x_{j-1}.
    std::vector<int> x(static_cast<size_t>(n), -1);  // 1-based via x[j-1]
    for (int j = n - m; j <= n - 1; ++j) x[static_cast<size_t>(j - 1)] = problem.terms[static_cast<size_t>(j - 1)];
    x[static_cast<size_t>(n - m - 1)] = (x[static_cast<size_t>(n - m - 1)] + 1) % 10;
    for (int j = n - 1; j >= m + 1; --j) {
      x[static_cast<size_t>(j - m - 1)] = (x[static_cast<size_t>(j - 1)] - x[static_cast<size_t>(j - 2)] + 10) % 10;
    }
    const LagSumProblem alt = MakeLagSumProblem(std::vector<int>(x.begin(), x.begin() + m), problem.steps);
    int alt_start = 0;
    const Tagged other = Render(alt, Style::kSa, &alt_start);
    // The b character of step i: "c:a+b=s," -> offset 4.
    const int pos = start + 8 * (i - 1) + 4;
    int s = pos - 1;
    while (s >= 0 && base.text[static_cast<size_t>(s)] == other.text[static_cast<size_t>(s)]) --s;
    out.push_back(base.text[static_cast<size_t>(pos)] != other.text[static_cast<size_t>(pos)] ? pos - s : 0);
  }
  return out;
}

}  // namespace window_task
}  // namespace swarr
