// Secure by default, with real processes (docs/deploy.md "Security"): a service refuses to
// start without tokens unless --insecure is given; per-role tokens are enforced by a running
// `swarr learner` (a rollout's token may not start a stage, the coordinator's may); `swarr
// launch` makes private per-role tokens for its run and the pipeline runs on them.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/config/config_loader.h"
#include "common/rpc/service_options.h"
#include "common/util/file.h"
#include "common/util/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/swarr/v1/learner.grpc.pb.h"
#include "tests/swarr_cli.h"

namespace swarr {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class AuthCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("SWARR_TOKEN_DIR");
    unsetenv("SWARR_TOKEN");
    dir_ = cli_testing::TempDir();
  }
  std::string dir_;
};

// Runs `swarr ARGS`, which must refuse to start: exit status 2 within 30 s and one line on its
// output, starting "swarr: " and naming each of `what`. A service that starts instead is
// killed and fails the test.
void ExpectRefusedToStart(const std::vector<std::string>& args, const std::vector<std::string>& what) {
  const std::string out_file = cli_testing::TempDir() + "/out";
  std::vector<std::string> argv = {cli_testing::SwarrBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Subprocess::Options opts;
  opts.output_file = out_file;
  auto p = Subprocess::Start(argv, opts);
  ASSERT_TRUE(p.ok()) << p.status();
  const int status = (*p)->Wait(30);
  if (status < 0) {
    (*p)->Signal(SIGKILL);
    (*p)->Wait(10);
  }
  const std::string out = cli_testing::Slurp(out_file);
  const std::string cmd = "swarr " + absl::StrJoin(args, " ");
  ASSERT_EQ(status, 2) << cmd << (status < 0 ? ": started instead of refusing\n" : "\n") << out;
  EXPECT_THAT(out, StartsWith("swarr: ")) << cmd;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << cmd << "\n" << out;
  for (const std::string& w : what) EXPECT_THAT(out, HasSubstr(w)) << cmd;
}

TEST_F(AuthCliTest, ServicesRefuseToStartWithoutTokensUnlessInsecure) {
  auto why = [](const char* role) {
    return std::vector<std::string>{std::string(role) + ": will not start without tokens", "--token-dir",
                                    "SWARR_TOKEN_DIR", "--insecure"};
  };
  const std::string run = dir_ + "/run";
  ExpectRefusedToStart({"learner", "--run-dir", run, "--metrics-listen", ""}, why("learner"));
  ExpectRefusedToStart({"rollout", "--coordinator", "127.0.0.1:1", "--metrics-listen", ""}, why("rollout"));
  const std::string config = std::string(SWARR_SOURCE_DIR) + "/configs/examples/pipeline_toy.yaml";
  ExpectRefusedToStart({"coordinator", "--config", config, "--run-dir", run, "--learner", "127.0.0.1:1"},
                       why("coordinator"));
  // One token for every role is no longer taken by a service; --insecure with tokens is a
  // contradiction; a token directory must hold tokens.
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/token", {"t\n"}).ok());
  ExpectRefusedToStart({"learner", "--run-dir", run, "--token-file", dir_ + "/token"},
                       {"--token-file", "--token-dir DIR"});
  ExpectRefusedToStart({"launch", "--config", config, "--run-dir", run, "--token-file", dir_ + "/token"},
                       {"--token-file", "--token-dir DIR"});
  ExpectRefusedToStart({"learner", "--run-dir", run, "--insecure", "--token-dir", dir_},
                       {"--insecure and --token-dir"});
  ExpectRefusedToStart({"learner", "--run-dir", run, "--token-dir", dir_ + "/nothing-here"},
                       {"--token-dir", "rollout.token"});
}

// A learner process with per-role tokens: the caller's role decides what it may call.
TEST_F(AuthCliTest, TheLearnerEnforcesEachRpcsRoles) {
  const std::string tokens = dir_ + "/tokens";
  ASSERT_TRUE(MakeDirs(tokens).ok());
  for (const char* role : {"rollout", "learner", "coordinator", "operator"}) {
    ASSERT_TRUE(WriteFileAtomically(tokens + "/" + role + ".token", {std::string("tok-") + role + "\n"}).ok());
  }
  auto p = Subprocess::Start({cli_testing::SwarrBinary(), "learner", "--run-dir", dir_ + "/run", "--port-file",
                              dir_ + "/learner.port", "--metrics-listen", "", "--token-dir", tokens},
                             {});
  ASSERT_TRUE(p.ok()) << p.status();
  std::unique_ptr<Subprocess> learner = *std::move(p);
  int port = 0;
  for (int i = 0; i < 600 && port == 0 && learner->running(); ++i) {
    auto text = ReadFile(dir_ + "/learner.port");
    if (text.ok()) (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &port);
    if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(port, 0) << "the learner did not start";
  const std::string address = absl::StrCat("127.0.0.1:", port);
  auto channel = MakeChannel(address, RpcSecurity(), RpcLimits());
  ASSERT_TRUE(channel.ok());
  auto stub = v1::Learner::NewStub(*channel);
  auto as = [](const std::string& token) {
    RpcSecurity s;
    s.token = token;
    return s;
  };

  // An eval stage of the demo's model: what the coordinator sends first.
  v1::StartStageRequest start;
  ASSERT_TRUE(ParseYamlConfig(absl::StrCat("name: auth\nstages:\n  - name: ev\n    eval: {greedy: true, "
                                           "max_new_tokens: 4}\n    model: {path: ",
                                           SWARR_SOURCE_DIR, "/configs/demo/sa_model}\n    data: {format: synthetic, "
                                           "synthetic_task: sum_digits, chat_template: none}\n"),
                              start.mutable_pipeline())
                  .ok());
  start.set_stage_index(0);
  auto start_stage = [&](const RpcSecurity& sec) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, sec, RpcLimits(), 60);
    v1::LearnerStatus status;
    return stub->StartStage(&ctx, start, &status);
  };
  auto get_status = [&](const RpcSecurity& sec) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, sec, RpcLimits(), 10);
    v1::LearnerStatus status;
    return stub->GetStatus(&ctx, v1::GetLearnerStatusRequest(), &status);
  };

  // A rollout server's token may not start a stage; neither may an operator's.
  const grpc::Status by_rollout = start_stage(as("tok-rollout"));
  EXPECT_EQ(by_rollout.error_code(), grpc::StatusCode::PERMISSION_DENIED) << by_rollout.error_message();
  EXPECT_THAT(by_rollout.error_message(), HasSubstr("role rollout may not call Learner.StartStage"));
  EXPECT_THAT(by_rollout.error_message(), HasSubstr("allowed: coordinator"));
  EXPECT_EQ(start_stage(as("tok-operator")).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  // No token, or one the learner does not know.
  EXPECT_EQ(start_stage(as("")).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(start_stage(as("tok-intruder")).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // The coordinator's token does.
  const grpc::Status by_coordinator = start_stage(as("tok-coordinator"));
  EXPECT_TRUE(by_coordinator.ok()) << by_coordinator.error_message();
  // Status: operators and the coordinator, not rollout servers.
  EXPECT_TRUE(get_status(as("tok-operator")).ok());
  EXPECT_TRUE(get_status(as("tok-coordinator")).ok());
  EXPECT_EQ(get_status(as("tok-rollout")).error_code(), grpc::StatusCode::PERMISSION_DENIED);

  // `swarr fetch-weights --token-dir` sends the operator's token, which may read weights.
  const cli_testing::Result fetched =
      cli_testing::RunSwarr("fetch-weights --learner " + address + " --path grpc --token-dir " + tokens);
  EXPECT_EQ(fetched.status, 0) << fetched.err;
  const cli_testing::Result anonymous = cli_testing::RunSwarr("fetch-weights --learner " + address + " --path grpc");
  EXPECT_NE(anonymous.status, 0);
  EXPECT_THAT(anonymous.out + anonymous.err, HasSubstr("authorization"));
  learner->Signal(SIGTERM);
  EXPECT_EQ(learner->Wait(60), 0);
}

// `swarr launch` without token flags: private random tokens in RUN_DIR/tokens, given to every
// service (the pipeline can only run if the coordinator's token starts the learner's stages).
TEST_F(AuthCliTest, LaunchMakesPrivatePerRoleTokensAndThePipelineRunsOnThem) {
  const std::string yaml = absl::StrCat("name: tokens\nstages:\n  - name: pre\n    train: {}\n    model: {path: ",
                                        SWARR_SOURCE_DIR,
                                        "/configs/models/tiny}\n    data: {format: synthetic, "
                                        "synthetic_task: sum_digits}\n"
                                        "    optimizer: {lr: 0.001}\n    stop: {max_steps: 3}\n");
  ASSERT_TRUE(WriteFileAtomically(dir_ + "/sft.yaml", {yaml}).ok());
  const std::string run = dir_ + "/run";
  const cli_testing::Result r =
      cli_testing::RunSwarr("launch --config " + dir_ + "/sft.yaml --run-dir " + run + " --rollouts 0");
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_THAT(r.out + r.err, HasSubstr("--token-dir " + run + "/tokens"));
  struct stat st {};
  ASSERT_EQ(stat((run + "/tokens").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto tokens = LoadRoleTokens(run + "/tokens");  // all four, all different
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  for (Role role : kAllRoles) {
    const std::string path = run + "/tokens/" + RoleName(role) + ".token";
    ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
    EXPECT_EQ((*tokens)[static_cast<int>(role)].size(), 64u) << path;
  }
}

}  // namespace
}  // namespace swarr
