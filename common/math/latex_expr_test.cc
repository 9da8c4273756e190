#include "common/math/latex_expr.h"

#include <cmath>
#include <string>

#include "gtest/gtest.h"

namespace swarr {
namespace {

double Eval(const std::string& text) {
  auto e = LatexExpression::Parse(text);
  EXPECT_TRUE(e.ok()) << text << ": " << e.status();
  if (!e.ok()) return NAN;
  EXPECT_TRUE(e->variables().empty()) << text;
  return e->Evaluate().value_or(NAN);
}

TEST(LatexExpressionTest, Arithmetic) {
  EXPECT_DOUBLE_EQ(Eval("1+2*3"), 7);
  EXPECT_DOUBLE_EQ(Eval("(1+2)*3"), 9);
  EXPECT_DOUBLE_EQ(Eval("2^{3^2}"), 512);
  EXPECT_DOUBLE_EQ(Eval("-2^2"), -4);
  EXPECT_DOUBLE_EQ(Eval("2^{-1}"), 0.5);
  EXPECT_DOUBLE_EQ(Eval("2^-1"), 0.5);
  EXPECT_DOUBLE_EQ(Eval("10/4"), 2.5);
  EXPECT_DOUBLE_EQ(Eval("3 \\cdot 4"), 12);
  EXPECT_DOUBLE_EQ(Eval("3 \\times 4"), 12);
  EXPECT_DOUBLE_EQ(Eval("12 \\div 4"), 3);
  EXPECT_DOUBLE_EQ(Eval("--3"), 3);
  EXPECT_DOUBLE_EQ(Eval(".5"), 0.5);
  EXPECT_DOUBLE_EQ(Eval("1.5e3"), 1500);
  EXPECT_DOUBLE_EQ(Eval("5!"), 120);
  EXPECT_DOUBLE_EQ(Eval("2^23"), 12);  // LaTeX: 2^2 * 3
}

TEST(LatexExpressionTest, LatexForms) {
  EXPECT_DOUBLE_EQ(Eval("\\frac{1}{2}"), 0.5);
  EXPECT_DOUBLE_EQ(Eval("\\frac12"), 0.5);
  EXPECT_DOUBLE_EQ(Eval("\\frac 59"), 5.0 / 9);
  EXPECT_DOUBLE_EQ(Eval("\\frac{270}7"), 270.0 / 7);
  EXPECT_DOUBLE_EQ(Eval("\\dfrac{3}{4}"), 0.75);
  EXPECT_DOUBLE_EQ(Eval("\\sqrt{16}"), 4);
  EXPECT_DOUBLE_EQ(Eval("\\sqrt2"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(Eval("\\sqrt[3]{27}"), 3);
  EXPECT_DOUBLE_EQ(Eval("\\sqrt[3]{-27}"), -3);
  EXPECT_DOUBLE_EQ(Eval("2\\sqrt{3}"), 2 * std::sqrt(3.0));
  EXPECT_DOUBLE_EQ(Eval("3\\pi"), 3 * M_PI);
  EXPECT_DOUBLE_EQ(Eval("\\frac{\\pi}{2}"), M_PI / 2);
  EXPECT_DOUBLE_EQ(Eval("\\frac\\pi2"), M_PI / 2);
  EXPECT_DOUBLE_EQ(Eval("(1+2)(3+4)"), 21);
  EXPECT_DOUBLE_EQ(Eval("\\left(1+2\\right)"), 3);
  EXPECT_DOUBLE_EQ(Eval("\\sin(\\pi/2)"), 1);
  EXPECT_NEAR(Eval("\\cos \\pi"), -1, 1e-15);
  EXPECT_NEAR(Eval("\\sin^2 \\pi + \\cos^2\\pi"), 1, 1e-15);
  EXPECT_DOUBLE_EQ(Eval("\\ln 1"), 0);
}

TEST(LatexExpressionTest, Variables) {
  auto e = LatexExpression::Parse("x^2 + 2xy + \\theta");
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->variables(), (std::vector<std::string>{"\\theta", "x", "y"}));
  EXPECT_DOUBLE_EQ(*e->Evaluate({10, 3, 2}), 9 + 12 + 10);
  EXPECT_EQ(e->Evaluate({1}), std::nullopt);  // wrong arity
}

TEST(LatexExpressionTest, Rejects) {
  for (const char* bad : {"", "2 3", "abc", "1+", "(1", "1)", "\\foo", "\\frac{1}", "x_1", "1,2", "=", "\\infty",
                          "1 = 2", "\\text{cm}", "^2"}) {
    EXPECT_FALSE(LatexExpression::Parse(bad).ok()) << bad;
  }
}

TEST(LatexExpressionTest, NonFiniteIsNullopt) {
  for (const char* text : {"1/0", "\\sqrt{-1}", "1e999999", "10^{10^{10}}", "\\ln 0", "171!", "(-8)^{1/3}"}) {
    auto e = LatexExpression::Parse(text);
    ASSERT_TRUE(e.ok()) << text << ": " << e.status();
    EXPECT_EQ(e->Evaluate(), std::nullopt) << text;
  }
}

TEST(LatexExpressionTest, LimitsAreErrorsNotCrashes) {
  EXPECT_FALSE(LatexExpression::Parse(std::string(1000, '(') + "1" + std::string(1000, ')')).ok());
  EXPECT_FALSE(LatexExpression::Parse(std::string(LatexExpression::kMaxInputBytes + 1, '1')).ok());
  std::string sum = "1";
  for (int k = 0; k < 600; ++k) sum += "+1";
  auto e = LatexExpression::Parse(sum);  // long but flat: fine
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_DOUBLE_EQ(*e->Evaluate(), 601);
}

}  // namespace
}  // namespace swarr
