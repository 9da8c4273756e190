#include "common/math/verifier.h"

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <random>
#include <set>
#include <utility>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace swarr {
namespace {

using ::testing::Optional;

// ---------------------------------------------------------------------------------------
// Extraction.

TEST(LastBoxedTest, NestedBracesAndLastOne) {
  EXPECT_THAT(LastBoxed("first \\boxed{1} then \\boxed{\\frac{1}{2}}."), Optional(std::string("\\frac{1}{2}")));
  EXPECT_THAT(LastBoxed("\\boxed{\\{1, 2\\}}"), Optional(std::string("\\{1, 2\\}")));
  EXPECT_THAT(LastBoxed("\\fbox{7}"), Optional(std::string("7")));
  EXPECT_THAT(LastBoxed("$\\boxed 5$."), Optional(std::string("5")));
  EXPECT_THAT(LastBoxed("\\boxed{}"), Optional(std::string("")));
  EXPECT_EQ(LastBoxed("no box here"), std::nullopt);
  EXPECT_EQ(LastBoxed("\\boxed{\\frac{1}{2}"), std::nullopt);  // unbalanced
  EXPECT_EQ(LastBoxed("\\boxedx{3}"), std::nullopt);          // another command
}

TEST(ExtractAnswerTest, Priorities) {
  EXPECT_THAT(ExtractAnswer("so \\boxed{3}. The answer is 4. #### 5"), Optional(std::string("3")));
  EXPECT_THAT(ExtractAnswer("The answer is: $\\frac{1}{2}$. I hope it is correct."),
              Optional(std::string("\\frac{1}{2}")));
  EXPECT_THAT(ExtractAnswer("Final Answer: The final answer is 42.\nmore text 7"), Optional(std::string("42")));
  EXPECT_THAT(ExtractAnswer("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18"), Optional(std::string("18")));
  EXPECT_THAT(ExtractAnswer("#### 1,450,000\n"), Optional(std::string("1,450,000")));
  EXPECT_THAT(ExtractAnswer("we get x = -12 and then 3.5 apples"), Optional(std::string("3.5")));
  EXPECT_THAT(ExtractAnswer("total 1,000 dollars"), Optional(std::string("1,000")));
  EXPECT_THAT(ExtractAnswer("the ratio is 3/4"), Optional(std::string("3/4")));
  EXPECT_THAT(ExtractAnswer("value -7"), Optional(std::string("-7")));
  // A number that is an operand of an expression is not an answer (no digit picking).
  EXPECT_EQ(ExtractAnswer("5-3 equals"), std::nullopt);
  EXPECT_EQ(ExtractAnswer("value 7", ExtractOptions{.fallback_last_number = false}), std::nullopt);
  EXPECT_EQ(ExtractAnswer("no numbers at all"), std::nullopt);
  EXPECT_EQ(ExtractAnswer(""), std::nullopt);
  // An unbalanced (truncated) last box falls through.
  // ... to no answer: the digits are inside the command, not a number of their own.
  EXPECT_EQ(ExtractAnswer("\\boxed{12"), std::nullopt);
  EXPECT_EQ(ExtractAnswer("\\boxed{12", ExtractOptions{.fallback_last_number = false}), std::nullopt);
  // An empty box falls through.
  EXPECT_THAT(ExtractAnswer("\\boxed{ } the answer is 6"), Optional(std::string("6")));
}

TEST(VerifyTest, ExtractsAndCompares) {
  VerifyResult r = Verify("Thus the area is $\\boxed{\\dfrac{3}{4}}$.", "0.75");
  EXPECT_TRUE(r.correct);
  EXPECT_EQ(r.extracted, "\\dfrac{3}{4}");
  r = Verify("I am not sure.", "5");
  EXPECT_FALSE(r.correct);
  EXPECT_EQ(r.extracted, "");
  r = Verify("The answer is 6.", "5");
  EXPECT_FALSE(r.correct);
  EXPECT_EQ(r.extracted, "6");
}

// ---------------------------------------------------------------------------------------
// Equivalence table: {prediction, reference, equivalent}. Every pair is also checked with
// the sides swapped (the relation is symmetric).

struct Pair {
  const char* prediction;
  const char* reference;
  bool equivalent;
};

const Pair kPairs[] = {
    // Integers, signs, thousands separators.
    {"5", "5", true},
    {"05", "5", true},
    {"-3", "-3", true},
    {"-3", "3", false},
    {"10", "100", false},
    {"1,000", "1000", true},
    {"1,000,000", "1000000", true},
    {"58,500", "58500", true},
    {"10,\\!080", "10080", true},
    {"10{,}080", "10080", true},
    {"11,\\! 111,\\! 111,\\! 100", "11111111100", true},
    {"1,000", "1", false},
    {"1,234", "1234", true},
    {"1000000", "1000001", false},
    {"12345678901234567890", "12345678901234567890", true},
    {"12345678901234567890", "12345678901234567891", false},
    {"+7", "7", true},
    {"0", "-0", true},
    {"2", "-2", false},
    // Decimals.
    {"0.5", "0.50", true},
    {"0.5", ".5", true},
    {"1.25", "1.250", true},
    {".0000672", "0.0000672", true},
    {"3.21", "3.2", false},
    {"1.0", "1", true},
    {"2.9999", "3", false},
    {"0.1", "0.01", false},
    {"326.5", "326.50", true},
    // Fractions.
    {"\\frac{1}{2}", "1/2", true},
    {"\\dfrac{1}{2}", "\\frac{1}{2}", true},
    {"\\tfrac{1}{2}", "\\frac12", true},
    {"\\frac 59", "\\frac{5}{9}", true},
    {"\\frac9{19}", "9/19", true},
    {"\\frac43", "\\frac{4}{3}", true},
    {"\\frac{270}7", "\\frac{270}{7}", true},
    {"\\frac{2}{4}", "\\frac{1}{2}", true},
    {"-\\frac{35}{9}", "\\frac{-35}{9}", true},
    {"-\\frac{35}{9}", "\\frac{35}{9}", false},
    {"-\\frac{3}{8}", "-3/8", true},
    {"1/2", "2", false},
    {"1/2", "2/1", false},
    {"\\frac{1}{2}", "\\frac{2}{1}", false},
    {"\\frac{3}{56}", "\\frac{3}{65}", false},
    {"\\frac{14}{3}", "\\frac{28}{6}", true},
    {"\\frac{448}{15625}", "0.028672", true},
    {"\\frac{1}{3}", "\\frac{1}{4}", false},
    // Mixed numbers.
    {"1\\frac{4}{5}", "\\frac{9}{5}", true},
    {"1\\frac{4}{5}", "1.8", true},
    {"137 \\frac{1}{2}", "137.5", true},
    {"2\\frac12", "\\frac52", true},
    {"7 3/4", "\\frac{31}{4}", true},
    {"-1\\frac{1}{2}", "-1.5", true},
    {"1\\frac{4}{5}", "\\frac{4}{5}", false},
    {"2\\frac{\\sqrt{3}}{2}", "\\sqrt{3}", true},  // not a mixed number: a product
    // Decimals vs fractions.
    {"0.5", "\\frac{1}{2}", true},
    {"0.75", "\\frac34", true},
    {"0.34", "\\dfrac{17}{50}", true},
    {"0.33", "\\dfrac{33}{100}", true},
    {"0.125", "\\frac{1}{8}", true},
    {"0.12", "\\frac{1}{8}", false},
    {"0.1251", "\\frac{1}{8}", false},
    {"0.333", "\\frac{1}{3}", false},
    {"0.33", "\\frac{1}{3}", false},
    {"0.3333", "\\frac{1}{3}", true},
    {"0.6667", "\\frac{2}{3}", true},
    {"0.6666", "\\frac{2}{3}", true},
    {"0.6665", "\\frac{2}{3}", false},
    {"0.667", "\\frac{2}{3}", false},
    {"1.4286", "\\frac{10}{7}", true},
    {"-0.3333", "-\\frac{1}{3}", true},
    {"0.3333", "-\\frac{1}{3}", false},
    // Percent.
    {"50\\%", "50", true},
    {"50%", "50", true},
    {"50\\%", "0.5", true},
    {"50", "0.5", false},
    {"50\\%", "5", false},
    {"12.5\\%", "\\frac{1}{8}", true},
    {"12.5\\%", "12.5", true},
    {"25\\%", "25\\%", true},
    {"25\\%", "20\\%", false},
    {"50 percent", "50", true},
    {"50\\text{ percent}", "50\\%", true},
    {"5000", "50\\%", false},
    // Scientific notation.
    {"1.5 \\times 10^3", "1500", true},
    {"1.5\\cdot10^{3}", "1500", true},
    {"1.5e3", "1500", true},
    {"6.72\\times10^{-5}", ".0000672", true},
    {"10^{3}", "1000", true},
    {"10^3", "100", false},
    {"1.5 \\times 10^4", "1500", false},
    {"2^{10}", "1024", true},
    // Text, units, degrees, dollars.
    {"\\text{Evelyn}", "Evelyn", true},
    {"\\text{east}", "East", true},
    {"\\text{east}", "\\text{west}", false},
    {"\\text{even}", "\\text{odd}", false},
    {"5.4 \\text{ cents}", "5.4", true},
    {"864 \\mbox{ inches}^2", "864", true},
    {"15\\mbox{ cm}^2", "15", true},
    {"\\frac{270}7\\text{ degrees}", "\\frac{270}{7}", true},
    {"18 dollars", "18", true},
    {"18 dollars", "19", false},
    {"90^\\circ", "90", true},
    {"90^{\\circ}", "90", true},
    {"30^\\circ", "60^\\circ", false},
    {"\\$32,\\!348", "32348", true},
    {"\\$18.90", "18.9", true},
    {"\\$36", "36", true},
    {"10 \\text{ m}", "10", true},
    {"\\text{(C)}", "C", true},
    // Delimiters, sizing, spacing, trailing period.
    {"$5$", "5", true},
    {"\\(5\\)", "5", true},
    {"5.", "5", true},
    {"\\boxed{5}", "5", true},
    {"\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", true},
    {"3\\!\\sqrt{13}", "3\\sqrt{13}", true},
    {"3\\,\\sqrt{13}", "3 \\sqrt{13}", true},
    {"3\\;\\sqrt{13}", "3\\sqrt{13}", true},
    {"3\\quad\\sqrt{13}", "3\\sqrt{13}", true},
    {"3~\\sqrt{13}", "3\\sqrt{13}", true},
    {"\\displaystyle\\frac{1}{2}", "0.5", true},
    // Variable prefixes.
    {"x = 5", "5", true},
    {"x=5", "x = 5", true},
    {"x = 5", "6", false},
    {"k = 2", "2", true},
    {"\\theta = 2", "2", true},
    {"x \\in [-2,7]", "[-2,7]", true},
    {"x \\in [-2,7]", "(-2,7)", false},
    {"y = 2x + 3", "2x+3", true},
    {"y = 2x + 3", "2x+4", false},
    {"a = 2, b = 3", "b = 2, a = 3", false},
    {"a=2, b=3", "b=3, a=2", true},
    {"x = 1, y = 2", "x=1,y=2", true},
    // Names on one side only: the values in the named order (Math-Verify: "AB=4,CD=5" vs
    // "4, 5").
    {"x = 1, y = 2", "1, 2", true},
    {"x = 1, y = 2", "2, 1", false},
    {"x = 1, y = 2", "1, 3", false},
    // Multiple choice.
    {"(B)", "B", true},
    {"\\text{(B)}", "B", true},
    {"\\textbf{(B)}", "(B)", true},
    {"B", "(C)", false},
    {"\\text{(E)}", "E", true},
    {"(A)", "(B)", false},
    {"B", "b", false},
    // Roots and pi.
    {"\\sqrt{2}", "\\sqrt2", true},
    {"11\\sqrt2", "11\\sqrt{2}", true},
    {"2\\sqrt{3}", "\\sqrt{12}", true},
    {"2\\sqrt{3}", "\\sqrt{3}", false},
    {"\\sqrt{51}", "\\sqrt{15}", false},
    {"\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", true},
    {"\\frac{\\sqrt{3}}{3}", "\\frac{\\sqrt{3}}{2}", false},
    {"\\sqrt[3]{8}", "2", true},
    {"\\sqrt[3]{-8}", "-2", true},
    {"3\\pi", "3 \\pi", true},
    {"3\\pi", "\\pi", false},
    {"288 \\pi", "288\\pi", true},
    {"18+2\\pi", "2\\pi+18", true},
    {"\\pi", "3.14", false},
    {"\\pi", "3.1416", true},
    {"\\pi", "3.1415", true},
    {"\\pi", "3.1417", false},
    {"\\pi", "22/7", false},
    {"\\sqrt{2}", "1.41", false},
    {"\\sqrt{2}", "1.4142", true},
    {"\\frac{20000}{\\pi}", "6366.1977", true},
    {"\\frac{20000}{\\pi}", "6366", false},
    {"70 \\sqrt{2}", "70\\sqrt{2}", true},
    {"\\sqrt{4}", "2", true},
    {"-\\sqrt{3}", "\\sqrt{3}", false},
    {"1+2\\sqrt{3}", "2\\sqrt{3}+1", true},
    {"11 \\sqrt{5} + 11", "11(\\sqrt{5}+1)", true},
    {"5!", "120", true},
    // Tuples, intervals, sets.
    {"(1,2)", "(1, 2)", true},
    {"(1,2)", "(2,1)", false},
    {"[1,2]", "(1,2)", false},
    {"[1,2)", "[1,2)", true},
    {"[1,2)", "(1,2]", false},
    {"(3,4]", "(3, 4]", true},
    {"(6,31,-1)", "(6, 31, -1)", true},
    {"(6,31,-1)", "(6,31,1)", false},
    {"(1,2,3)", "(1,2)", false},
    {"(\\frac{3}{2}, -13)", "(1.5,-13)", true},
    {"(2,\\infty)", "(2, \\infty)", true},
    {"(2,\\infty)", "[2,\\infty)", false},
    {"(-\\infty, 0]", "(-\\infty,0]", true},
    {"(-\\infty, 0]", "(-\\infty, 0)", false},
    {"(0,9) \\cup (9,36)", "(9,36)\\cup(0,9)", true},
    {"(0,9) \\cup (9,36)", "(0,36)", false},
    {"(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty,2)\\cup(3,\\infty)", true},
    {"(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty,2]\\cup[3,\\infty)", false},
    {"\\{1,2\\}", "\\{2,1\\}", true},
    {"\\{1,2\\}", "\\{1,3\\}", false},
    {"\\{1,2,3\\}", "\\{1,2\\}", false},
    {"\\{5\\}", "5", true},
    {"3, 5, 7", "7,5,3", true},
    {"3, 5, 7", "3, 5", false},
    {"1,-2", "-2, 1", true},
    {"1,-2", "(1,-2)", false},
    {"1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", true},
    {"1 \\pm \\sqrt{19}", "1+\\sqrt{19}", false},
    {"3 \\pm 2 \\sqrt{2}", "3+2\\sqrt2,3-2\\sqrt2", true},
    {"\\{1\\pm\\sqrt{5},-2\\}", "-2, 1+\\sqrt5, 1-\\sqrt 5", true},
    {"2 \\text{ and } 3", "3, 2", true},
    {"((1,2),(3,4))", "((1,2),(3,4))", true},
    {"((1,2),(3,4))", "((1,2),(4,3))", false},
    // Matrices and vectors.
    {"\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
     "\\begin{pmatrix} -\\frac13 \\\\ \\frac23 \\\\ \\frac53 \\end{pmatrix}", true},
    {"\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", "\\begin{pmatrix}-1&0\\\\0&-1\\end{pmatrix}", true},
    {"\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", "\\begin{pmatrix}0&-1\\\\-1&0\\end{pmatrix}", false},
    {"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}", false},
    {"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\\\ 3 \\end{pmatrix}", false},
    // Symbolic expressions.
    {"x^5 - x^4 + x^3 - x^2 + x - 1", "x^5-x^4+x^3-x^2+x-1", true},
    {"x^5 - x^4 + x^3 - x^2 + x - 1", "x^5-x^4+x^3-x^2+x+1", false},
    {"2k+2", "2(k+1)", true},
    {"2k+2", "2k+1", false},
    {"(a+5)(b+2)", "ab+2a+5b+10", true},
    {"(a+5)(b+2)", "(a+2)(b+5)", false},
    {"6r^2-4r-24", "2(3r^2-2r-12)", true},
    {"3R^2", "3r^2", false},
    {"p - q", "-q + p", true},
    {"p - q", "q - p", false},
    {"x", "y", false},
    {"x^2", "2x", false},
    {"\\frac{11+9a}{20}", "\\frac{9a+11}{20}", true},
    {"\\frac{11+9a}{20}", "\\frac{11+9a}{21}", false},
    {"\\cot x", "\\frac{\\cos x}{\\sin x}", true},
    {"\\cot x", "\\tan x", false},
    {"\\sin^2 x + \\cos^2 x", "1", false},  // variables differ: not compared numerically
    {"x^23", "3x^2", true},                 // LaTeX: x^2 times 3
    {"6 - 5i", "6-5i", true},
    {"1+2i", "2i+1", true},
    {"1+2i", "1-2i", false},
    {"1 - 12i", "1-12i", true},
    {"52_8", "52_{8}", true},
    {"52_8", "52_9", false},
    {"4210_{5}", "4210_5", true},
    // Equations.
    {"5x - 7y + 11z + 4 = 0", "-10x+14y-22z-8=0", true},
    {"5x - 7y + 11z + 4 = 0", "5x-7y+11z-4=0", false},
    {"y = -2x", "y=-2x", true},
    {"y = -2x", "y = 2x", false},
    // Emptiness and junk.
    {"", "", false},
    {"", "5", false},
    {"  ", "5", false},
    {"$$", "5", false},
    {"\\text{}", "5", false},
    {"abc", "cba", false},
};

TEST(AnswersEquivalentTest, Table) {
  int equivalent = 0, not_equivalent = 0;
  for (const Pair& p : kPairs) {
    EXPECT_EQ(AnswersEquivalent(p.prediction, p.reference), p.equivalent)
        << "prediction: " << p.prediction << "\nreference:  " << p.reference;
    EXPECT_EQ(AnswersEquivalent(p.reference, p.prediction), p.equivalent)
        << "(swapped) prediction: " << p.reference << "\nreference:  " << p.prediction;
    (p.equivalent ? equivalent : not_equivalent) += 1;
  }
  EXPECT_GE(equivalent + not_equivalent, 150);
  EXPECT_GE(not_equivalent, 70);
}

// ---------------------------------------------------------------------------------------
// Issue 18 (Math-Verify agreement): each kind with true and false cases of our own.

struct VerifyCase {
  const char* completion;
  const char* reference;
  bool correct;
};

void ExpectVerify(const VerifyCase* cases, size_t n, const ExtractOptions& options = {},
                  const CompareOptions& compare = {}) {
  for (size_t k = 0; k < n; ++k) {
    const VerifyResult r = Verify(cases[k].completion, cases[k].reference, options, compare);
    EXPECT_EQ(r.correct, cases[k].correct) << "completion: " << cases[k].completion
                                           << "\nreference:  " << cases[k].reference
                                           << "\nextracted:  " << r.extracted;
  }
}

// Unboxed LaTeX: the last math span is the answer, parsed, not its last digit.
TEST(MathVerifyKindsTest, UnboxedLatexAnswers) {
  const VerifyCase cases[] = {
      {"So the probability is $\\frac{2}{5}$", "\\frac{2}{5}", true},
      {"So the probability is $\\frac{2}{5}$", "5", false},
      {"Hence \\(\\dfrac{4}{7}\\)", "4/7", true},
      {"Hence \\(\\dfrac{4}{7}\\)", "7", false},
      {"The side is $\\sqrt5$", "\\sqrt{5}", true},
      {"The side is $\\sqrt5$", "5", false},
      {"We get $m = \\frac{2}{9}$", "\\frac29", true},
      {"We get $m = \\frac{2}{9}$", "9", false},
      {"The rope is $\\frac{3}{4}\\text{ meters}$ long", "0.75", true},
      {"The rope is $\\frac{3}{4}\\textbf{ meters}$ long", "3/4", true},
      {"The rope is $\\frac{3}{4}\\text{ meters}$ long", "4", false},
      {"The domain is $[2,5)$.", "[2,5)", true},
      {"The domain is $[2,5)$.", "5", false},
      {"The domain is $[2,5)$.", "(2,5)", false},
      {"Display: \\[\n  17\n\\] done", "17", true},
      {"Display: $$\n  17\n$$ done", "17", true},
      {"Value \\( (6+11) \\)", "17", true},
      {"Roots: $3$ and $-4$", "-4, 3", true},
      {"Roots: $3$ and $-4$", "3", false},
      {"$12$ and then we stop at $x = 5$", "5", true},
      {"Total: $40$ %", "40\\%", true},
  };
  ExpectVerify(cases, std::size(cases));
}

// The last-number fallback never takes digits out of a word, an expression or a math span.
TEST(MathVerifyKindsTest, NoDigitsPickedOutOfWordsOrExpressions) {
  const VerifyCase cases[] = {
      {"QWERT7Y", "7", false},
      {"code XJ9", "9", false},
      {"so $\\frac{3+\\sqrt{7}}{2}$", "2", false},
      {"so $\\frac{3+\\sqrt{7}}{2}$", "\\frac{3+\\sqrt7}{2}", true},
      {"so $-[2,4)$", "4", false},
      {"so $-[2,4)$", "[2,4)", false},
      {"Answer $ \n 8 \n $", "8", false},
      {"Answer \\( \n 8 \n \\)", "8", false},
      {"it is 4 - 1", "1", false},
      {"it is (2/3) / (4/5)", "4/5", false},
      {"it is 2^5", "5", false},
      {"we get 5 \\times 3", "3", false},
      {"we get 5 \\times 3", "5", false},
      {"so \\sqrt 3", "3", false},
      {"the point (4, 6)", "6", false},
      {"we get 6 apples", "6", true},
      {"the total is $15 and", "15", true},
      {"it is 3 - which is odd", "3", true},
  };
  ExpectVerify(cases, std::size(cases));
  EXPECT_EQ(ExtractAnswer("QWERT7Y"), std::nullopt);
  EXPECT_EQ(ExtractAnswer("Answer $ \n 8 \n $"), std::nullopt);
  EXPECT_THAT(ExtractAnswer("9:2+3=5,A5"), Optional(std::string("5")));  // window task
}

// Number forms of plain text and LaTeX.
TEST(MathVerifyKindsTest, NumberForms) {
  const VerifyCase cases[] = {
      {"it is 2 500 in all", "2500", true},
      {"it is 3,75 euros", "3.75", true},
      {"it is 0,125", "0.125", true},
      {"it is 2500,5", "2500.5", true},
      {"it is 1,250", "1250", true},
      {"it is 1,250", "1.25", false},
      {"the list 1,2,3", "1.2", false},
      {"the list 1,2,3", "3", false},
      {"\\frac{7}{3}", "7/3", true},
      {"-\\frac{7}{3}", "-7/3", true},
      {"\\frac{7}{3}", "3", false},
      {"$\\cfrac{2}{7}$", "2/7", true},
      {"$\\tfrac{2}{7}$", "\\frac{2}{7}", true},
      {"$\\left( \\frac{2}{7} \\right)$", "2/7", true},
      {"It grew 35 pct", "35\\%", true},
      {"It grew 35 percentage points", "35\\%", true},
      {"$\\boxed{35 pct}", "$35\\%$", true},
      {"$\\boxed{35 percentage}", "$35\\%$", true},
      {"It grew 35 pct", "36\\%", false},
      {"It costs $1,000.50", "1000.5", true},
      {"so 2.5m\xc2\xb2 of it", "2.5", true},
      {"$\\frac{1}{2} \\$ = \\frac{7}{6}$", "7/6", true},
      {"so $14 {, }916$", "14916", true},
  };
  ExpectVerify(cases, std::size(cases));
  // Strict: no decimal comma, no space as thousands separator.
  const VerifyCase strict[] = {
      {"it is 3,75 euros", "3.75", false},
      {"it is 2 500 in all", "2500", false},
      {"it is 1,250", "1250", true},
      {"it is 3,75 euros", "75", false},  // not the digits after the comma either
  };
  ExpectVerify(strict, std::size(strict), ExtractOptions{.fallback_last_number = true, .lenient_numbers = false});
}

// Structured answers: several boxes, solution sets, labels, ratios, relations, intervals.
TEST(MathVerifyKindsTest, StructuredAnswers) {
  const VerifyCase cases[] = {
      {"The integers are \\boxed{-3} and \\boxed{4}.", "4,-3", true},
      {"The integers are \\boxed{-3} and \\boxed{4}.", "4", false},
      {"$\\boxed{(1,2)} \\quad \\text{and} \\quad \\boxed{(3,4)}$", "(3,4),(1,2)", true},
      {"$\\boxed{(1,2)} \\quad \\text{and} \\quad \\boxed{(3,4)}$", "(1,2),(4,3)", false},
      {"\\boxed{2} apples and \\boxed{5} pears", "2, 5", true},
      {"\\boxed{2} is wrong so one more try \\boxed{5}", "2, 5", false},
      {"\\boxed{2} is wrong so one more try \\boxed{5}", "5", true},
      {"\\boxed{6}, \\boxed{6}", "6", true},
    {"it is -7", "-7", true},
    {"it is 2 * -7", "-7", false},
  };
  ExpectVerify(cases, std::size(cases));
  const Pair pairs[] = {
      {"(4,1),(6,1)", "a=4,b=1;a=6,b=1", true},
      {"(1,4),(1,6)", "a=4,b=1;a=6,b=1", false},
      {"(4;1;2),(0;0;0)", "(0,0,0),(4,1,2)", true},
      {"-5;-4;-1", "\\{-1,-4,-5\\}", true},
      {"-5;-4;-1", "\\{-1,-4\\}", false},
      {"3:7", "A_1:A_2=3:7", true},
      {"7:3", "A_1:A_2=3:7", false},
      {"5,9", "PQ=5,RS=9", true},
      {"5,8", "PQ=5,RS=9", false},
      {"\\frac{1}{\\sqrt{3}}", "\\frac{AO}{OC}=\\frac{1}{\\sqrt{3}}", true},
      {"(2,5)", "(m,n)=(2,5)", true},
      {"(5,2)", "(m,n)=(2,5)", false},
      {"a=2, b=3", "b=2, a=3", false},
      {"4, 7", "4 and 7", true},
      {"(2,1),(1,2)", "(2,1)or(1,2)", true},
      {"3, 8, 9", "3, 8, and 9", true},
      {"{3, 8, 9}", "\\{8,9,3\\}", true},
      {"{3, 8}", "(3,8)", false},
      {"x = 7 + 2 = 9", "9", true},
      {"x = 7 + 2 = 9", "7", false},
      {"y = 2/3 \\approx 0.67", "\\frac23", true},
      {"y \\approx 0.67", "0.67", true},
      {"7 = 3a+b", "3a+b", false},
      {"x \\geq 4", "x >= 4", true},
      {"x \\lt 4", "x < 4", true},
      {"4 \\ge y", "y \\leq 4", true},
      {"-y > -4", "y < 4", true},
      {"y > 4", "y < 4", false},
      {"y \\ge 4", "y > 4", false},
      {"x \\ne 2", "x != 2", true},
      // An equation read as "y = value" is still the same line as another equation.
      {"y=-\\frac{1}{2}x+\\frac{3}{4}", "2x+4y-3=0", true},
      {"y=-\\frac{1}{2}x+\\frac{3}{4}", "2x+4y-5=0", false},
      // One value written several ways is that value; two values are not one.
      {"15\\frac{39}{40}, \\frac{639}{40}", "\\frac{639}{40}", true},
      {"3, 4", "4", false},
  };
  for (const Pair& p : pairs) {
    EXPECT_EQ(AnswersEquivalent(p.prediction, p.reference), p.equivalent) << p.prediction << " vs " << p.reference;
    EXPECT_EQ(AnswersEquivalent(p.reference, p.prediction), p.equivalent) << p.reference << " vs " << p.prediction;
  }
}

// Inequality vs interval: a predicted interval always matches a reference inequality; a
// predicted inequality matches a reference interval only with allow_set_relation.
TEST(MathVerifyKindsTest, IntervalsAndInequalities) {
  EXPECT_TRUE(AnswersEquivalent("[-3,8]", "-3 \\le x \\le 8"));
  EXPECT_TRUE(AnswersEquivalent("x \\in [-3,8]", "-3 \\le x \\le 8"));
  EXPECT_TRUE(AnswersEquivalent("(-3,8]", "-3 < t \\le 8"));
  EXPECT_TRUE(AnswersEquivalent("[5, \\infty)", "x \\geq 5"));
  EXPECT_TRUE(AnswersEquivalent("(-\\infty, 5)", "5 > x"));
  EXPECT_FALSE(AnswersEquivalent("(-3,8)", "-3 \\le x \\le 8"));
  EXPECT_FALSE(AnswersEquivalent("[-3,9]", "-3 \\le x \\le 8"));
  EXPECT_FALSE(AnswersEquivalent("-3 \\le x \\le 8", "[-3,8]"));
  EXPECT_FALSE(AnswersEquivalent("-3 \\le x \\le 8", "x \\in [-3,8]"));
  const CompareOptions allow{.allow_set_relation = true};
  EXPECT_TRUE(AnswersEquivalent("-3 \\le x \\le 8", "[-3,8]", allow));
  EXPECT_TRUE(AnswersEquivalent("-3 \\le x \\le 8", "x \\in [-3,8]", allow));
  EXPECT_FALSE(AnswersEquivalent("-3 < x \\le 8", "[-3,8]", allow));
  EXPECT_TRUE(AnswersEquivalent("-3 \\le x \\le 8", "-3 \\le x \\le 8"));
  EXPECT_TRUE(AnswersEquivalent("8 \\ge x \\ge -3", "-3 \\le x \\le 8"));
  EXPECT_FALSE(AnswersEquivalent("-3 \\le x \\le 9", "-3 \\le x \\le 8"));
}

// ---------------------------------------------------------------------------------------
// Data sets.

std::vector<nlohmann::json> ReadJsonl(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded()) rows.push_back(std::move(j));
  }
  return rows;
}

// The \boxed{} answer of every MATH-500 reference solution vs its "The answer is:" line.
TEST(DatasetTest, Math500BoxedMatchesFinalLine) {
  const auto rows = ReadJsonl(std::string(SWARR_SHARED_DIR) + "/data/math500/test.jsonl");
  ASSERT_EQ(rows.size(), 500u);
  int agree = 0, agree_decorated = 0, agree_verify = 0;
  for (const auto& row : rows) {
    const std::string solution = row["answer"].get<std::string>();
    const size_t marker = solution.rfind("The answer is: ");
    ASSERT_NE(marker, std::string::npos);
    const std::string final_line = solution.substr(marker + 15);
    const std::optional<std::string> boxed = LastBoxed(solution.substr(0, marker));
    ASSERT_TRUE(boxed.has_value()) << solution;
    if (AnswersEquivalent(*boxed, final_line)) {
      ++agree;
    } else {
      ADD_FAILURE() << "MATH-500 miss: boxed [" << *boxed << "] vs final [" << final_line << "]";
    }
    // The same with the reference decorated ("$...$." plus spaces), so that the comparison
    // goes through normalisation instead of the identical-string shortcut.
    if (AnswersEquivalent("  $" + *boxed + "$. ", final_line)) {
      ++agree_decorated;
    } else {
      ADD_FAILURE() << "MATH-500 miss (decorated): [" << *boxed << "] vs [" << final_line << "]";
    }
    // And the end-to-end reward on the full solution text.
    if (Verify(solution, final_line).correct) ++agree_verify;
  }
  EXPECT_GE(agree, 495) << agree << "/500";
  EXPECT_GE(agree_decorated, 495) << agree_decorated << "/500";
  EXPECT_GE(agree_verify, 495) << agree_verify << "/500";
}

// Distinct MATH-500 final answers (301 strings, 45,150 pairs) must not collide, except for
// the genuine equivalences listed here (docs/verifier.md). A new false positive or a lost
// equivalence both fail.
TEST(DatasetTest, Math500DistinctAnswersCollideOnlyWhenEquivalent) {
  const auto rows = ReadJsonl(std::string(SWARR_SHARED_DIR) + "/data/math500/test.jsonl");
  std::vector<std::string> finals;
  for (const auto& row : rows) {
    const std::string solution = row["answer"].get<std::string>();
    finals.push_back(solution.substr(solution.rfind("The answer is: ") + 15));
  }
  std::sort(finals.begin(), finals.end());
  finals.erase(std::unique(finals.begin(), finals.end()), finals.end());
  std::set<std::pair<std::string, std::string>> collisions;
  for (size_t a = 0; a < finals.size(); ++a) {
    for (size_t b = a + 1; b < finals.size(); ++b) {
      if (AnswersEquivalent(finals[a], finals[b])) collisions.emplace(finals[a], finals[b]);
    }
  }
  const std::set<std::pair<std::string, std::string>> kGenuine = {
      {"-2,1", "1,-2"},                  // unordered list of solutions
      {"10,\\!080", "10080"},           // thousands separator
      {"120", "120^\\circ"},             // degrees
      {"15", "15\\mbox{ cm}^2"},         // unit
      {"2 \\sqrt{5}", "2\\sqrt{5}"},    // spacing
      {"30", "30^\\circ"},
      {"36", "36^\\circ"},
      {"36", "\\$36"},                   // dollars
      {"36^\\circ", "\\$36"},           // both strip to 36: units are not compared
      {"5", "x=5"},                      // variable prefix
      {"90", "90^\\circ"},
      {"\\frac14", "\\frac{1}{4}"},
  };
  for (const auto& c : collisions) {
    EXPECT_TRUE(kGenuine.count(c)) << "unexpected collision: [" << c.first << "] vs [" << c.second << "]";
  }
  for (const auto& c : kGenuine) {
    EXPECT_TRUE(collisions.count(c)) << "lost equivalence: [" << c.first << "] vs [" << c.second << "]";
  }
}

// GSM8K test: every reference solution extracts and verifies against its "#### N".
TEST(DatasetTest, Gsm8kReferenceAnswersVerify) {
  const auto rows = ReadJsonl(std::string(SWARR_SHARED_DIR) + "/data/gsm8k/test.jsonl");
  ASSERT_EQ(rows.size(), 1319u);
  int extracted = 0, verified = 0, verified_plain = 0;
  for (const auto& row : rows) {
    const std::string solution = row["answer"].get<std::string>();
    const std::string number = solution.substr(solution.rfind("#### ") + 5);
    std::string plain;  // without thousands separators
    for (char c : number) {
      if (c != ',') plain += c;
    }
    std::optional<std::string> got = ExtractAnswer(solution);
    if (got && *got == number) ++extracted;
    if (Verify(solution, number).correct) ++verified;
    if (Verify(solution, plain).correct) {
      ++verified_plain;
    } else {
      ADD_FAILURE() << "GSM8K miss: " << number << " vs " << plain;
    }
  }
  EXPECT_EQ(extracted, 1319);
  EXPECT_EQ(verified, 1319);
  EXPECT_EQ(verified_plain, 1319);
}

// ---------------------------------------------------------------------------------------
// Robustness: arbitrary input never crashes, throws or takes long.

std::string RandomGarbage(std::mt19937_64& rng) {
  static const std::vector<std::string> kPieces = {
      "\\frac", "\\sqrt", "{", "}", "(", ")", "[", "]", "\\{", "\\}", "^", "_", "\\boxed{", "\\fbox", "\\text{",
      "\\left", "\\right", "\\pi", "\\cdot", "\\times", "\\pm", "\\cup", ",", "=", "-", "+", "*", "/", "!", "%",
      "\\%", "$", "\\", "\\\\", "&", "x", "e", "1e999999", "-1e999999", "0", "9", ".", "1.5", "12345678901234567890",
      "\\begin{pmatrix}", "\\end{pmatrix}", "\\in", " ", "\n", "The answer is", "####", "\\sin", "\\ln", "\\!",
      "\\,", "\\infty", "\\theta", "\\dfrac12", "1,000", "\\mbox{ cm}", "^\\circ", "\\sqrt[", "0.", "1/0",
      "\\(", "\\)", "\\[", "\\]", "$$", "<", ">", "\\le", "\\ge", "\\ne", ";", " and ", " or ", "pct", "\\approx",
      "1 000", "2,5", ":", "|", "AB=", "(p,q)=", "\\boxed{1} and ", "final answer is ", "\\\\frac", "{, }",
  };
  std::string s;
  const int n = std::uniform_int_distribution<int>(0, 60)(rng);
  for (int k = 0; k < n; ++k) s += kPieces[rng() % kPieces.size()];
  return s;
}

TEST(RobustnessTest, RandomBytesAndLatexGarbage) {
  std::mt19937_64 rng(12345);
  std::vector<std::string> inputs;
  for (int k = 0; k < 3000; ++k) {
    std::string bytes(rng() % 80, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
    inputs.push_back(bytes);
    inputs.push_back(RandomGarbage(rng));
  }
  // Pathological shapes.
  inputs.push_back(std::string(100000, '{'));
  inputs.push_back(std::string(100000, '('));
  inputs.push_back(std::string(50000, '(') + "1" + std::string(50000, ')'));
  inputs.push_back(std::string(2000, '(') + "1" + std::string(2000, ')'));
  inputs.push_back("\\boxed{" + std::string(100000, '{') + "}");
  std::string nested_frac;
  for (int k = 0; k < 5000; ++k) nested_frac += "\\frac{1}{";
  inputs.push_back(nested_frac + "2" + std::string(5000, '}'));
  std::string sqrt_chain;
  for (int k = 0; k < 5000; ++k) sqrt_chain += "\\sqrt";
  inputs.push_back(sqrt_chain + "2");
  inputs.push_back(std::string(200000, '9'));
  inputs.push_back("0." + std::string(200000, '3'));
  inputs.push_back("1e999999");
  inputs.push_back("-1e999999");
  inputs.push_back("10^{10^{10^{10}}}");
  inputs.push_back(std::string(3000, '-') + "1");
  inputs.push_back("2^" + std::string(3000, '-') + "1");
  std::string long_sum = "1";
  for (int k = 0; k < 3000; ++k) long_sum += "+1";
  inputs.push_back(long_sum);
  std::string long_list;
  for (int k = 0; k < 20000; ++k) long_list += "1,";
  inputs.push_back(long_list);
  std::string many_text;
  for (int k = 0; k < 5000; ++k) many_text += "\\text{a}1";
  inputs.push_back(many_text);
  std::string set_of_sets = "\\{";
  for (int k = 0; k < 20; ++k) {
    set_of_sets += "\\{";
    for (int m = 0; m < 20; ++m) set_of_sets += "\\{1,2,3\\},";
    set_of_sets += "\\{1\\}\\},";
  }
  inputs.push_back(set_of_sets + "1\\}");
  inputs.push_back(std::string(100000, '\\'));
  std::string many_spans, many_boxes, many_closers, many_relations;
  for (int k = 0; k < 20000; ++k) {
    many_spans += "$1$ and ";
    many_boxes += "\\boxed{1} and ";
    many_closers += "1)";
    many_relations += "x<";
  }
  inputs.push_back(many_spans);
  inputs.push_back(many_boxes);
  inputs.push_back(many_closers);
  inputs.push_back(many_relations + "1");
  inputs.push_back(std::string(50000, '$'));
  inputs.push_back("\\(" + std::string(50000, '1'));
  inputs.push_back("\\boxed " + std::string(100000, 'x'));

  for (size_t k = 0; k < inputs.size(); ++k) {
    const std::string& a = inputs[k];
    const std::string& b = inputs[(k * 7919 + 1) % inputs.size()];
    (void)ExtractAnswer(a);
    (void)ExtractAnswer(a, ExtractOptions{.fallback_last_number = false});
    (void)ExtractAnswer(a, ExtractOptions{.fallback_last_number = true, .lenient_numbers = false});
    (void)AnswersEquivalent(a, b, CompareOptions{.allow_set_relation = true});
    (void)LastBoxed(a);
    EXPECT_FALSE(AnswersEquivalent(a, "") || AnswersEquivalent("", a));
    (void)AnswersEquivalent(a, b);
    (void)AnswersEquivalent(a, "1");
    (void)AnswersEquivalent("1", a);
    EXPECT_EQ(AnswersEquivalent(a, a), !a.empty() && a.find_first_not_of(" \t\n\r\f\v") != std::string::npos);
    (void)Verify(a, b);
    (void)Verify(b, "42");
  }
}

TEST(RobustnessTest, NestedSetsAreBounded) {
  std::string a = "\\{", b = "\\{";
  for (int k = 0; k < 12; ++k) {
    std::string inner = "\\{";
    for (int m = 0; m < 12; ++m) inner += "\\{" + std::to_string(m) + "," + std::to_string(m + 1) + "\\},";
    a += inner + "\\{0\\}\\},";
    b += inner + "\\{0\\}\\},";
  }
  a += "1\\}";
  b += "2\\}";
  EXPECT_FALSE(AnswersEquivalent(a, b));
  EXPECT_TRUE(AnswersEquivalent(a, a + " "));
}

TEST(RobustnessTest, HugeNumbersAreNotEqualToEachOther) {
  EXPECT_FALSE(AnswersEquivalent("1e999999", "2e999999"));
  EXPECT_FALSE(AnswersEquivalent("10^{10^{10}}", "10^{10^{10}}+1"));
  EXPECT_TRUE(AnswersEquivalent(std::string(500, '9'), std::string(500, '9') + ".0"));
  EXPECT_FALSE(AnswersEquivalent(std::string(500, '9'), std::string(499, '9') + "8"));
}

}  // namespace
}  // namespace swarr
