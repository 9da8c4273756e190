// The two weight paths of a rollout server against a real learner process (docs/weight-sync.md),
// through `swarr fetch-weights`: GetWeights works on any machine; the same-host CUDA IPC path is
// refused with a reason that names it by a learner whose model is not on a GPU, and a CPU build
// says it has no CUDA. (The IPC map itself runs on the GPU machine: bench/gpu/rehearsal.sh.)
#include <signal.h>

#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/config/config_loader.h"
#include "common/rpc/service_options.h"
#include "common/util/file.h"
#include "common/util/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "proto/swarr/v1/learner.grpc.pb.h"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;

class WeightHandoffCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = cli_testing::TempDir();
    auto p = Subprocess::Start({cli_testing::SwarrBinary(), "learner", "--run-dir", dir_ + "/run", "--port-file",
                                dir_ + "/learner.port", "--metrics-listen", "", "--insecure"},
                               {});
    ASSERT_TRUE(p.ok()) << p.status();
    learner_ = *std::move(p);
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      auto text = ReadFile(dir_ + "/learner.port");
      if (text.ok()) (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &port_);
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_GT(port_, 0) << "the learner did not start";
    auto channel = MakeChannel(absl::StrCat("127.0.0.1:", port_), RpcSecurity(), RpcLimits());
    ASSERT_TRUE(channel.ok());
    stub_ = v1::Learner::NewStub(*channel);
    // One eval stage: the learner publishes the demo's SA model (on the CPU) as version 0.
    v1::StartStageRequest req;
    ASSERT_TRUE(ParseYamlConfig(absl::StrCat("name: handoff\nstages:\n  - name: ev\n    eval: {greedy: true, "
                                             "max_new_tokens: 4}\n    model: {path: ",
                                             SWARR_SOURCE_DIR, "/configs/demo/sa_model}\n    data: {format: synthetic, "
                                             "synthetic_task: sum_digits, chat_template: none}\n"),
                                req.mutable_pipeline())
                    .ok());
    req.set_stage_index(0);
    grpc::ClientContext ctx;
    v1::LearnerStatus status;
    const grpc::Status st = stub_->StartStage(&ctx, req, &status);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }
  void TearDown() override {
    if (learner_) {
      learner_->Signal(SIGKILL);
      learner_->Wait(10);
    }
  }
  std::string dir_;
  int port_ = 0;
  std::unique_ptr<Subprocess> learner_;
  std::unique_ptr<v1::Learner::Stub> stub_;
};

TEST_F(WeightHandoffCliTest, GrpcLoadsAndIpcIsRefusedWithTheReason) {
  const std::string learner = absl::StrCat("--learner 127.0.0.1:", port_);
  // The network path, twice: the same version and bytes each time.
  const cli_testing::Result grpc = cli_testing::RunSwarr(absl::StrCat("fetch-weights ", learner, " --path grpc --repeat 2"));
  ASSERT_EQ(grpc.status, 0) << grpc.err;
  std::vector<nlohmann::json> lines;
  for (absl::string_view l : absl::StrSplit(grpc.out, '\n', absl::SkipEmpty())) lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 2u) << grpc.out;
  for (const auto& j : lines) {
    EXPECT_EQ(j["path"], "grpc");
    EXPECT_EQ(j["version"], lines[0]["version"]);
    EXPECT_GT(j["bytes"].get<int64_t>(), 100000);  // the 0.5M-parameter model in float32
    EXPECT_EQ(j["bytes"], lines[0]["bytes"]);
    EXPECT_GT(j["seconds"].get<double>(), 0);
  }
  // The same-host path: this CPU build has no CUDA (a GPU build: the CPU learner has no buffer).
  const cli_testing::Result ipc = cli_testing::RunSwarr(absl::StrCat("fetch-weights ", learner, " --path ipc"));
  EXPECT_EQ(ipc.status, 1) << ipc.out << ipc.err;
  EXPECT_THAT(ipc.out, HasSubstr("\"path\":\"ipc\""));
  EXPECT_THAT(ipc.out, ::testing::AnyOf(HasSubstr("no CUDA in this build or no GPU visible"), HasSubstr("not a GPU")));
  // The learner's own answer over gRPC, whatever the caller's build.
  v1::GetWeightsRequest req;
  req.set_latest(true);
  req.mutable_ipc()->set_host_id("some-host/some-boot");
  grpc::ClientContext ctx;
  v1::CudaIpcWeights w;
  const grpc::Status st = stub_->GetWeightsIpc(&ctx, req, &w);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("not on a GPU"));
  EXPECT_THAT(st.error_message(), HasSubstr("use GetWeights"));
  // Bad flags: a usage error naming the flag.
  cli_testing::ExpectUsageError(absl::StrCat("fetch-weights ", learner, " --path carrier-pigeon"), "--path");
}

}  // namespace
}  // namespace swarr
