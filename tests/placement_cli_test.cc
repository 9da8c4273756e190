// `swarr launch` placement (issue 13): bad placements are rejected before any process starts,
// with one line naming the field and the device. These run on any machine: the devices named
// (cuda:63) exist on none, and a CPU build sees no GPU at all.
#include <sys/stat.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "gtest/gtest.h"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

const char kToy[] = SWARR_SOURCE_DIR "/configs/examples/pipeline_toy.yaml";

std::string Launch(const std::string& config, const std::string& dir, const std::string& extra = "") {
  return absl::StrCat("launch --config ", config, " --run-dir ", dir, "/run --rollouts 2 ", extra);
}

TEST(PlacementCliTest, RolloutDeviceTheMachineLacksIsNamed) {
  const std::string dir = cli_testing::TempDir();
  cli_testing::ExpectUsageError(Launch(kToy, dir, "--rollout-devices cpu,cuda:63"),
                                {"--rollout-devices[1]: \"cuda:63\", but this machine has"});
  cli_testing::ExpectUsageError(Launch(kToy, dir, "--rollout-devices cuda:2..1"),
                                {"--rollout-devices[0]: \"cuda:2..1\": the range is empty"});
  cli_testing::ExpectUsageError(Launch(kToy, dir, "--rollout-device tpu"), {"--rollout-devices[0]: \"tpu\""});
  // Nothing was started: no run directory.
  EXPECT_FALSE(FileExists(dir + "/run/ports"));
}

TEST(PlacementCliTest, ConfigPlacementIsCheckedBeforeAnyProcess) {
  const std::string dir = cli_testing::TempDir();
  const auto toy = ReadFile(kToy);
  ASSERT_TRUE(toy.ok());
  // A learner device the machine lacks.
  ASSERT_TRUE(WriteFileAtomically(dir + "/far.yaml", {*toy, "placement: {learner: 'cuda:63'}\n"}).ok());
  cli_testing::ExpectUsageError(Launch(dir + "/far.yaml", dir), {"placement.learner: \"cuda:63\", but this machine has"});
  // Malformed entries, each named.
  ASSERT_TRUE(
      WriteFileAtomically(dir + "/bad.yaml", {*toy, "placement: {rollouts: [cpu, gpu1], learner_memory_gib: -2}\n"}).ok());
  cli_testing::ExpectUsageError(Launch(dir + "/bad.yaml", dir),
                                {"placement.rollouts[1]: \"gpu1\"", "placement.learner_memory_gib: must be >= 0"});
  // The coordinator validates the same way (a config that skips swarr launch).
  cli_testing::ExpectUsageError(
      absl::StrCat("coordinator --config ", dir, "/bad.yaml --run-dir ", dir, "/run --learner 127.0.0.1:1"),
      "placement.rollouts[1]: \"gpu1\"");
  EXPECT_FALSE(FileExists(dir + "/run/ports"));
}

}  // namespace
}  // namespace swarr
