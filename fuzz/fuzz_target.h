// One fuzz target = LLVMFuzzerTestOneInput (libFuzzer's entry point) + FuzzSeeds (valid inputs
// built in code, the start of every corpus). Built two ways (fuzz/CMakeLists.txt):
// - with clang and -DSWARR_FUZZ=ON as a libFuzzer binary under ASan + UBSan (scripts/fuzz.sh);
// - always, with the project's compiler, against fuzz/replay_main.cc: a test that replays the
//   seeds, the committed corpus and regressions, and a few seconds of seeded mutations (CI).
// A target must never crash, hang or leak on any input: every error is a Status it drops.
#ifndef SWARR_FUZZ_FUZZ_TARGET_H_
#define SWARR_FUZZ_FUZZ_TARGET_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace swarr_fuzz {
// Valid (or nearly valid) inputs that reach deep into the parser.
std::vector<std::string> FuzzSeeds();
}  // namespace swarr_fuzz

#endif  // SWARR_FUZZ_FUZZ_TARGET_H_
