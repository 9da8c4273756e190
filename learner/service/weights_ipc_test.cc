// The learner's half of the same-host weight handoff on the CPU: who is refused, and why.
// (Exporting from a GPU model runs on the GPU machine: bench/gpu/rehearsal.sh.)
#include "learner/service/weights_ipc.h"

#include "common/testing/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "learner/service/weights_blob.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

TEST(LearnerWeightsIpcTest, ACpuModelIsNotExportedAndSaysUseGetWeights) {
  auto model = Model::RandomInit(TinyConfig({4}, 0, 32), 1);
  ASSERT_TRUE(model.ok());
  v1::WeightVersion v;
  v.set_version(1);
  auto blob = SerializeModelWeights(**model, v);
  ASSERT_TRUE(blob.ok());
  auto ipc = ExportWeightsIpc(**model, *blob);
  EXPECT_EQ(ipc.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(ipc.status().message()), HasSubstr("is on cpu, not a GPU: use GetWeights"));
}

TEST(LearnerWeightsIpcTest, OnlyCallersOnTheSameHostGetTheHandle) {
  v1::CudaIpcWeights w;
  w.set_host_id("gpu-node-1/boot-a");
  v1::GetWeightsRequest req;
  EXPECT_THAT(std::string(CheckIpcCaller(req, w).message()), HasSubstr("needs ipc.host_id"));
  req.mutable_ipc()->set_host_id("gpu-node-2/boot-b");
  const absl::Status other = CheckIpcCaller(req, w);
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.message()), HasSubstr("gpu-node-2/boot-b is not the learner's (gpu-node-1/boot-a)"));
  // The same host name after a reboot is another host for IPC.
  req.mutable_ipc()->set_host_id("gpu-node-1/boot-z");
  EXPECT_FALSE(CheckIpcCaller(req, w).ok());
  req.mutable_ipc()->set_host_id("gpu-node-1/boot-a");
  EXPECT_TRUE(CheckIpcCaller(req, w).ok());
}

}  // namespace
}  // namespace swarr
