// The math verifier (common/math/verifier.h): extraction and equivalence of any completion
// against any reference (split at the first NUL byte).
#include "common/math/verifier.h"
#include "fuzz/fuzz_target.h"

namespace swarr_fuzz {
std::vector<std::string> FuzzSeeds() {
  auto pair = [](const std::string& a, const std::string& b) { return a + std::string(1, '\0') + b; };
  return {pair("The answer is \\boxed{\\frac{3}{4}}.", "0.75"),
          pair("so x = \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "(3,\\pi/2)"), pair("#### 1,234", "1234"),
          pair("\\boxed{\\sqrt{2}+1}", "1+\\sqrt2"), pair("The answer is: 10\\%", "0.1"),
          pair("\\boxed{x^{2}-\\dfrac{1}{3}}", "x^2 - 1/3")};
}
}  // namespace swarr_fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  const size_t cut = s.find('\0');
  const std::string completion = s.substr(0, cut);
  const std::string reference = cut == std::string::npos ? "" : s.substr(cut + 1);
  (void)swarr::Verify(completion, reference);
  (void)swarr::LastBoxed(s);
  (void)swarr::AnswersEquivalent(completion, reference);
  return 0;
}
