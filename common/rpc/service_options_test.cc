// StartServer / MakeChannel / CheckAuth on real servers over loopback: bearer tokens (one
// shared, and per role against the access table), TLS and mTLS (certificates made by the
// openssl command line), message size limits, keepalive (a server in a child process of this
// binary, stopped with SIGSTOP). The role table, token directories and the services' security
// flags (LoadServiceSecurity).
#include "common/rpc/service_options.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "common/util/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/swarr/v1/coordinator.grpc.pb.h"
#include "proto/swarr/v1/learner.grpc.pb.h"
#include "proto/swarr/v1/rollout.grpc.pb.h"

namespace swarr {
namespace {

// A Rollout service whose GetStatus checks the token and echoes a fixed id.
class FakeRollout final : public v1::Rollout::Service {
 public:
  explicit FakeRollout(RpcSecurity security) : security_(std::move(security)) {}
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::GetRolloutStatusRequest*,
                         v1::RolloutStatus* out) override {
    if (grpc::Status s = CheckAuth(*ctx, security_, "Rollout.GetStatus"); !s.ok()) return s;
    out->set_worker_id("w-1");
    return grpc::Status::OK;
  }
  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateResponse>*) override {
    if (grpc::Status s = CheckAuth(*ctx, security_, "Rollout.Generate"); !s.ok()) return s;
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("groups: ", req->groups_size()));
  }
  // Checked against an RPC name the access table does not have.
  grpc::Status LoadWeights(grpc::ServerContext* ctx, const v1::LoadWeightsRequest*, v1::LoadWeightsResponse*) override {
    return CheckAuth(*ctx, security_, "Rollout.NoSuchRpc");
  }

 private:
  RpcSecurity security_;
};

grpc::Status CallStatus(const std::string& address, const RpcSecurity& client, const RpcLimits& limits) {
  auto channel = MakeChannel(address, client, limits);
  EXPECT_TRUE(channel.ok()) << channel.status();
  auto stub = v1::Rollout::NewStub(*channel);
  grpc::ClientContext ctx;
  PrepareContext(&ctx, client, limits, 5);
  v1::RolloutStatus out;
  return stub->GetStatus(&ctx, v1::GetRolloutStatusRequest(), &out);
}

TEST(ServiceOptionsTest, BearerTokenIsRequiredWhenSet) {
  RpcSecurity server_sec;
  server_sec.token = "s3cret";
  FakeRollout service(server_sec);
  RpcLimits limits;
  auto server = StartServer("127.0.0.1:0", {&service}, server_sec, limits);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string addr = absl::StrCat("127.0.0.1:", server->port);

  RpcSecurity none, wrong, right;
  wrong.token = "guess";
  right.token = "s3cret";
  EXPECT_EQ(CallStatus(addr, none, limits).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallStatus(addr, wrong, limits).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(CallStatus(addr, right, limits).ok());
  server->server->Shutdown();
}

using ::testing::HasSubstr;

// Every RPC of the three services has a rule naming at least one role, and no RPC has two.
TEST(AccessTableTest, EveryRpcOfTheServicesHasOneRule) {
  std::set<std::string> seen;
  for (const RpcRule& rule : AccessTable()) {
    EXPECT_TRUE(seen.insert(rule.rpc).second) << "two rules for " << rule.rpc;
    EXPECT_FALSE(rule.roles.empty()) << rule.rpc;
  }
  int methods = 0;
  for (const google::protobuf::ServiceDescriptor* service :
       {v1::RegisterWorkerRequest::descriptor()->file()->FindServiceByName("Coordinator"),
        v1::LearnerStatus::descriptor()->file()->FindServiceByName("Learner"),
        v1::RolloutStatus::descriptor()->file()->FindServiceByName("Rollout")}) {
    ASSERT_NE(service, nullptr);
    for (int i = 0; i < service->method_count(); ++i, ++methods) {
      const std::string rpc = absl::StrCat(service->name(), ".", service->method(i)->name());
      EXPECT_NE(AllowedRoles(rpc), nullptr) << rpc << " has no rule in AccessTable() (common/rpc/service_options.cc)";
    }
  }
  EXPECT_GE(methods, 14);
  EXPECT_EQ(AllowedRoles("Learner.NoSuchRpc"), nullptr);
}

TEST(AccessTableTest, TheRulesThatMatter) {
  auto allows = [](const char* rpc, Role role) {
    const std::vector<Role>* roles = AllowedRoles(rpc);
    return roles != nullptr && std::find(roles->begin(), roles->end(), role) != roles->end();
  };
  // The stage machinery is the coordinator's alone.
  EXPECT_TRUE(allows("Learner.StartStage", Role::kCoordinator));
  for (Role r : {Role::kRollout, Role::kLearner, Role::kOperator}) {
    EXPECT_FALSE(allows("Learner.StartStage", r)) << RoleName(r);
    EXPECT_FALSE(allows("Learner.GetGroupStates", r)) << RoleName(r);
  }
  // Training data comes from rollout servers only.
  EXPECT_TRUE(allows("Learner.PushTrajectories", Role::kRollout));
  EXPECT_FALSE(allows("Learner.PushTrajectories", Role::kOperator));
  EXPECT_FALSE(allows("Learner.PushTrajectories", Role::kCoordinator));
  EXPECT_FALSE(allows("Coordinator.ReportEval", Role::kOperator));
  // Operators read status everywhere and fetch weights.
  for (const char* rpc : {"Coordinator.GetStatus", "Learner.GetStatus", "Rollout.GetStatus", "Learner.GetWeights"}) {
    EXPECT_TRUE(allows(rpc, Role::kOperator)) << rpc;
  }
  EXPECT_FALSE(allows("Coordinator.RegisterWorker", Role::kOperator));
}

TEST(AccessTableTest, RoleNamesRoundTrip) {
  for (Role r : kAllRoles) {
    auto parsed = ParseRole(RoleName(r));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, r);
  }
  auto bad = ParseRole("admin");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("admin"));
  EXPECT_THAT(bad.status().message(), HasSubstr("operator"));
}

RpcSecurity Sending(const std::string& token) {
  RpcSecurity s;
  s.token = token;
  return s;
}

// Per-role tokens on a real server: the caller's role comes from its token, and the rule of
// the RPC decides.
TEST(ServiceOptionsTest, PerRoleTokensFollowTheAccessTable) {
  RpcSecurity server_sec;
  server_sec.role_tokens[static_cast<int>(Role::kRollout)] = "tok-rollout";
  server_sec.role_tokens[static_cast<int>(Role::kLearner)] = "tok-learner";
  server_sec.role_tokens[static_cast<int>(Role::kOperator)] = "tok-operator";
  // No coordinator token: this server does not accept that role.
  FakeRollout service(server_sec);
  RpcLimits limits;
  auto server = StartServer("127.0.0.1:0", {&service}, server_sec, limits);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string addr = absl::StrCat("127.0.0.1:", server->port);

  // Rollout.GetStatus: coordinator, operator.
  EXPECT_TRUE(CallStatus(addr, Sending("tok-operator"), limits).ok());
  const grpc::Status denied = CallStatus(addr, Sending("tok-rollout"), limits);
  EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(denied.error_message(), HasSubstr("role rollout may not call Rollout.GetStatus"));
  EXPECT_THAT(denied.error_message(), HasSubstr("allowed: coordinator, operator"));
  EXPECT_EQ(CallStatus(addr, Sending("tok-learner"), limits).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  const grpc::Status unknown = CallStatus(addr, Sending("tok-coordinator"), limits);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(unknown.error_message(), HasSubstr("unknown bearer token"));
  EXPECT_EQ(CallStatus(addr, Sending("tok-operatorX"), limits).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallStatus(addr, Sending(""), limits).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // A shared token is no role's token.
  EXPECT_EQ(CallStatus(addr, Sending("s3cret"), limits).error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // An RPC without a rule is refused even to a known token (fail closed).
  auto channel = MakeChannel(addr, Sending("tok-operator"), limits);
  ASSERT_TRUE(channel.ok());
  auto stub = v1::Rollout::NewStub(*channel);
  grpc::ClientContext ctx;
  PrepareContext(&ctx, Sending("tok-operator"), limits, 5);
  v1::LoadWeightsResponse resp;
  const grpc::Status norule = stub->LoadWeights(&ctx, v1::LoadWeightsRequest(), &resp);
  EXPECT_EQ(norule.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(norule.error_message(), HasSubstr("no access rule for Rollout.NoSuchRpc"));
  server->server->Shutdown();
}

class TokenDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/swarr_tokens_XXXXXX";
    dir_ = mkdtemp(tmpl);
    unsetenv("SWARR_TOKEN_DIR");
  }
  void Write(const std::string& name, const std::string& text) {
    ASSERT_TRUE(WriteFileAtomically(dir_ + "/" + name, {text}).ok());
  }
  std::string dir_;
};

TEST_F(TokenDirTest, LoadRoleTokensReadsTheRolesPresent) {
  Write("rollout.token", "  r-tok \n");
  Write("operator.token", "o-tok\n");
  Write("README", "other files are ignored\n");
  auto tokens = LoadRoleTokens(dir_);
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ((*tokens)[static_cast<int>(Role::kRollout)], "r-tok");
  EXPECT_EQ((*tokens)[static_cast<int>(Role::kOperator)], "o-tok");
  EXPECT_EQ((*tokens)[static_cast<int>(Role::kLearner)], "");
  EXPECT_EQ((*tokens)[static_cast<int>(Role::kCoordinator)], "");
}

TEST_F(TokenDirTest, LoadRoleTokensNamesTheBadFile) {
  auto none = LoadRoleTokens(dir_);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("rollout.token"));
  EXPECT_THAT(none.status().message(), HasSubstr(dir_));
  Write("learner.token", " \n");
  auto empty = LoadRoleTokens(dir_);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(empty.status().message(), HasSubstr(dir_ + "/learner.token is empty"));
  Write("learner.token", "same\n");
  Write("coordinator.token", "same\n");
  auto dup = LoadRoleTokens(dir_);
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dup.status().message(), HasSubstr("coordinator.token holds the same token as"));
  EXPECT_THAT(dup.status().message(), HasSubstr("learner.token"));
}

TEST_F(TokenDirTest, WriteRoleTokensMakesPrivateRandomTokensAndKeepsThem) {
  const std::string tokens_dir = dir_ + "/tokens";
  ASSERT_TRUE(WriteRoleTokens(tokens_dir).ok());
  struct stat st {};
  ASSERT_EQ(stat(tokens_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto tokens = LoadRoleTokens(tokens_dir);  // also: all four distinct
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  for (Role r : kAllRoles) {
    const std::string path = tokens_dir + "/" + RoleName(r) + ".token";
    ASSERT_EQ(stat(path.c_str(), &st), 0) << path;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << path;
    const std::string& t = (*tokens)[static_cast<int>(r)];
    EXPECT_EQ(t.size(), 64u) << path;
    EXPECT_EQ(t.find_first_not_of("0123456789abcdef"), std::string::npos) << t;
  }
  // A second call (a resumed run) keeps them; a missing one is made again.
  ASSERT_EQ(unlink((tokens_dir + "/learner.token").c_str()), 0);
  ASSERT_TRUE(WriteRoleTokens(tokens_dir).ok());
  auto again = LoadRoleTokens(tokens_dir);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)[static_cast<int>(Role::kRollout)], (*tokens)[static_cast<int>(Role::kRollout)]);
  EXPECT_EQ((*again)[static_cast<int>(Role::kLearner)].size(), 64u);
  EXPECT_NE((*again)[static_cast<int>(Role::kLearner)], (*tokens)[static_cast<int>(Role::kLearner)]);
}

TEST_F(TokenDirTest, AServiceNeedsTokensOrInsecure) {
  ServiceSecurityFlags flags;
  auto refused = LoadServiceSecurity(Role::kLearner, flags);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* what :
       {"learner", "will not start without tokens", "--token-dir", "SWARR_TOKEN_DIR", "--insecure"}) {
    EXPECT_THAT(refused.status().message(), HasSubstr(what));
  }
  flags.insecure = true;
  auto open = LoadServiceSecurity(Role::kLearner, flags);
  ASSERT_TRUE(open.ok()) << open.status();
  EXPECT_TRUE(open->open());
  flags.token_dir = dir_;
  auto both = LoadServiceSecurity(Role::kLearner, flags);
  EXPECT_EQ(both.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(both.status().message(), HasSubstr("--insecure and --token-dir"));
}

TEST_F(TokenDirTest, AServiceAcceptsTheRolesOfItsDirectoryAndSendsItsOwn) {
  Write("rollout.token", "r\n");
  Write("operator.token", "o\n");
  ServiceSecurityFlags flags;
  flags.token_dir = dir_;
  auto rollout = LoadServiceSecurity(Role::kRollout, flags);
  ASSERT_TRUE(rollout.ok()) << rollout.status();
  EXPECT_EQ(rollout->token, "r");
  EXPECT_FALSE(rollout->open());
  EXPECT_EQ(rollout->role_tokens[static_cast<int>(Role::kOperator)], "o");
  EXPECT_EQ(rollout->role_tokens[static_cast<int>(Role::kCoordinator)], "");
  // The learner calls nothing: its own token is optional.
  auto learner = LoadServiceSecurity(Role::kLearner, flags);
  ASSERT_TRUE(learner.ok()) << learner.status();
  EXPECT_EQ(learner->token, "");
  // The coordinator calls the learner: its token is required.
  auto coordinator = LoadServiceSecurity(Role::kCoordinator, flags);
  EXPECT_EQ(coordinator.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(coordinator.status().message(), HasSubstr(dir_ + "/coordinator.token is missing"));
  // The environment variable stands for the flag.
  setenv("SWARR_TOKEN_DIR", dir_.c_str(), 1);
  auto from_env = LoadServiceSecurity(Role::kRollout, ServiceSecurityFlags());
  unsetenv("SWARR_TOKEN_DIR");
  ASSERT_TRUE(from_env.ok()) << from_env.status();
  EXPECT_EQ(from_env->token, "r");
}

TEST(ServiceOptionsTest, OversizedMessageIsRejectedAndTheServerKeepsServing) {
  RpcSecurity sec;
  FakeRollout service(sec);
  RpcLimits server_limits;
  server_limits.max_message_bytes = 4096;
  auto server = StartServer("127.0.0.1:0", {&service}, sec, server_limits);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string addr = absl::StrCat("127.0.0.1:", server->port);
  RpcLimits client_limits;  // the client would send it: the server must refuse
  auto channel = MakeChannel(addr, sec, client_limits);
  ASSERT_TRUE(channel.ok());
  auto stub = v1::Rollout::NewStub(*channel);
  v1::GenerateRequest big;
  big.add_groups()->mutable_prompt_ids()->Resize(10000, 5);
  grpc::ClientContext ctx;
  PrepareContext(&ctx, sec, client_limits, 5);
  auto reader = stub->Generate(&ctx, big);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(CallStatus(addr, sec, client_limits).ok());
  server->server->Shutdown();
}

TEST(ServiceOptionsTest, PortInUseIsUnavailable) {
  RpcSecurity sec;
  FakeRollout service(sec);
  auto first = StartServer("127.0.0.1:0", {&service}, sec, RpcLimits());
  ASSERT_TRUE(first.ok());
  FakeRollout service2(sec);
  auto second = StartServer(absl::StrCat("127.0.0.1:", first->port), {&service2}, sec, RpcLimits());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  first->server->Shutdown();
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/tls_" + std::to_string(getpid());
    ASSERT_TRUE(MakeDirs(dir_).ok());
    const std::string cmd = absl::StrCat(
        "cd ", dir_, " && ",
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=swarr-ca -keyout ca.key -out ca.pem && ",
        "for n in server client; do ",
        "openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout $n.key -out $n.csr && ",
        "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > $n.ext && ",
        "openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile $n.ext -out $n.pem; "
        "done) >/dev/null 2>&1");
    ASSERT_EQ(std::system(("(" + cmd).c_str()), 0) << "openssl failed";
  }
  std::string dir_;
};

TEST_F(TlsTest, TlsAndMutualTls) {
  RpcLimits limits;
  // TLS: the client verifies the server against the CA.
  auto server_sec = LoadRpcSecurity("", dir_ + "/server.pem", dir_ + "/server.key", "");
  ASSERT_TRUE(server_sec.ok()) << server_sec.status();
  FakeRollout service(*server_sec);
  auto server = StartServer("127.0.0.1:0", {&service}, *server_sec, limits);
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string addr = absl::StrCat("127.0.0.1:", server->port);
  RpcSecurity client;
  client.tls_ca = dir_ + "/ca.pem";
  client.tls_server_name = "localhost";
  EXPECT_TRUE(CallStatus(addr, client, limits).ok());
  RpcSecurity plaintext;
  EXPECT_EQ(CallStatus(addr, plaintext, limits).error_code(), grpc::StatusCode::UNAVAILABLE);
  server->server->Shutdown();

  // mTLS: the server requires a client certificate signed by the CA.
  auto mtls_sec = LoadRpcSecurity("", dir_ + "/server.pem", dir_ + "/server.key", dir_ + "/ca.pem");
  ASSERT_TRUE(mtls_sec.ok());
  FakeRollout service2(*mtls_sec);
  auto mserver = StartServer("127.0.0.1:0", {&service2}, *mtls_sec, limits);
  ASSERT_TRUE(mserver.ok()) << mserver.status();
  const std::string maddr = absl::StrCat("127.0.0.1:", mserver->port);
  EXPECT_NE(CallStatus(maddr, client, limits).error_code(), grpc::StatusCode::OK);  // no client cert
  RpcSecurity with_cert = client;
  with_cert.tls_cert = dir_ + "/client.pem";
  with_cert.tls_key = dir_ + "/client.key";
  EXPECT_TRUE(CallStatus(maddr, with_cert, limits).ok());
  mserver->server->Shutdown();
}

TEST(ServiceOptionsTest, LoadRpcSecurityNamesTheBadFile) {
  const std::string dir = ::testing::TempDir();
  ASSERT_TRUE(WriteFileAtomically(dir + "/tok", {"  abc \n"}).ok());
  auto s = LoadRpcSecurity(dir + "/tok", "", "", "");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->token, "abc");
  ASSERT_TRUE(WriteFileAtomically(dir + "/empty_tok", {"\n"}).ok());
  EXPECT_EQ(LoadRpcSecurity(dir + "/empty_tok", "", "", "").status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = LoadRpcSecurity(dir + "/nope", "", "", "");
  EXPECT_NE(missing.status().message().find("--token-file"), std::string::npos) << missing.status();
  ASSERT_TRUE(WriteFileAtomically(dir + "/not.pem", {"hello"}).ok());
  auto bad = LoadRpcSecurity("", dir + "/not.pem", dir + "/not.pem", "");
  EXPECT_NE(bad.status().message().find("not a PEM file"), std::string::npos) << bad.status();
  EXPECT_FALSE(LoadRpcSecurity("", dir + "/not.pem", "", "").ok());
}


std::map<std::string, int> IntArgs(const grpc::ChannelArguments& args) {
  std::map<std::string, int> out;
  const grpc_channel_args c = args.c_channel_args();
  for (size_t i = 0; i < c.num_args; ++i) {
    if (c.args[i].type == GRPC_ARG_INTEGER) out[c.args[i].key] = c.args[i].value.integer;
  }
  return out;
}

TEST(ServiceOptionsTest, KeepaliveSettingsReachChannelAndServerArguments) {
  // Zero settings: the documented defaults.
  v1::RpcSettings settings;
  const RpcLimits d = RpcLimitsFromSettings(settings);
  EXPECT_EQ(d.max_message_bytes, int64_t{64} << 20);
  EXPECT_EQ(d.deadline_seconds, 30);
  EXPECT_EQ(d.keepalive_time_seconds, 10);
  EXPECT_EQ(d.keepalive_timeout_seconds, 5);
  std::map<std::string, int> client = IntArgs(ClientChannelArguments(d));
  EXPECT_EQ(client[GRPC_ARG_KEEPALIVE_TIME_MS], 10000);
  EXPECT_EQ(client[GRPC_ARG_KEEPALIVE_TIMEOUT_MS], 5000);
  EXPECT_EQ(client[GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS], 1);
  ASSERT_EQ(client.count(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA), 1u);
  EXPECT_EQ(client[GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA], 0);
  EXPECT_EQ(client[GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH], 64 << 20);
  EXPECT_EQ(client[GRPC_ARG_MAX_RECONNECT_BACKOFF_MS], 1000);

  settings.set_keepalive_time_seconds(2.5);
  settings.set_keepalive_timeout_seconds(0.75);
  settings.set_deadline_seconds(7);
  const RpcLimits l = RpcLimitsFromSettings(settings);
  EXPECT_EQ(l.keepalive_time_seconds, 2.5);
  EXPECT_EQ(l.keepalive_timeout_seconds, 0.75);
  EXPECT_EQ(l.deadline_seconds, 7);
  client = IntArgs(ClientChannelArguments(l));
  EXPECT_EQ(client[GRPC_ARG_KEEPALIVE_TIME_MS], 2500);
  EXPECT_EQ(client[GRPC_ARG_KEEPALIVE_TIMEOUT_MS], 750);

  std::map<std::string, int> server;
  for (const auto& [name, value] : ServerChannelArguments(l)) server[name] = value;
  EXPECT_EQ(server[GRPC_ARG_KEEPALIVE_TIME_MS], 2500);
  EXPECT_EQ(server[GRPC_ARG_KEEPALIVE_TIMEOUT_MS], 750);
  EXPECT_EQ(server[GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS], 1);
  EXPECT_EQ(server[GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS], 2500);
  ASSERT_EQ(server.count(GRPC_ARG_HTTP2_MAX_PING_STRIKES), 1u);
  EXPECT_EQ(server[GRPC_ARG_HTTP2_MAX_PING_STRIKES], 0);  // never sends a pinging client away
  ASSERT_EQ(server.count(GRPC_ARG_ALLOW_REUSEPORT), 1u);
  EXPECT_EQ(server[GRPC_ARG_ALLOW_REUSEPORT], 0);

  // Sub-millisecond and huge values stay valid integer arguments.
  RpcLimits odd;
  odd.keepalive_time_seconds = 1e-6;
  odd.keepalive_timeout_seconds = 1e9;
  client = IntArgs(ClientChannelArguments(odd));
  EXPECT_EQ(client[GRPC_ARG_KEEPALIVE_TIME_MS], 1);
  EXPECT_EQ(client[GRPC_ARG_KEEPALIVE_TIMEOUT_MS], INT32_MAX);
}

// A client whose keepalive time (1 s) is much shorter than the server's (the default 10 s,
// as for the learner, which starts before it knows the pipeline's settings) pings an idle
// connection every second; the server must not answer with GOAWAY "too_many_pings" (by
// default it would at the third ping sooner than its own interval, about 4 s in).
TEST(ServiceOptionsTest, AServerNeverSendsAwayAClientThatPingsMoreOftenThanItself) {
  RpcSecurity sec;
  FakeRollout service(sec);
  auto server = StartServer("127.0.0.1:0", {&service}, sec, RpcLimits());
  ASSERT_TRUE(server.ok()) << server.status();
  RpcLimits client_limits;
  client_limits.keepalive_time_seconds = 1;
  client_limits.keepalive_timeout_seconds = 5;
  auto channel = MakeChannel(absl::StrCat("127.0.0.1:", server->port), sec, client_limits);
  ASSERT_TRUE(channel.ok());
  auto stub = v1::Rollout::NewStub(*channel);
  {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, sec, client_limits, 5);
    v1::RolloutStatus out;
    ASSERT_TRUE(stub->GetStatus(&ctx, v1::GetRolloutStatusRequest(), &out).ok());
  }
  ASSERT_EQ((*channel)->GetState(false), GRPC_CHANNEL_READY);
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(4500);
  while (std::chrono::steady_clock::now() < until) {
    const grpc_connectivity_state state = (*channel)->GetState(false);
    ASSERT_EQ(state, GRPC_CHANNEL_READY) << "the connection was dropped while idle (state " << state << ")";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  server->server->Shutdown();
}

// The server process of KeepaliveTest, started by it as a child of this binary: it serves the
// FakeRollout with the default limits until killed. Skipped unless the environment names its
// port file.
constexpr char kChildPortFileEnv[] = "SWARR_KEEPALIVE_CHILD_PORT_FILE";

TEST(ServiceOptionsKeepaliveChild, ServesUntilKilled) {
  const char* port_file = std::getenv(kChildPortFileEnv);
  if (port_file == nullptr) GTEST_SKIP() << "the server half of KeepaliveTest (run by it)";
  RpcSecurity sec;
  FakeRollout service(sec);
  auto server = StartServer("127.0.0.1:0", {&service}, sec, RpcLimits());
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE(WritePortFile(port_file, server->port).ok());
  while (true) ::pause();
}

// True once every thread of `pid` is stopped (state T in /proc/<pid>/task/*/stat), within `seconds`.
bool WaitUntilStopped(int pid, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    bool all = true;
    int threads = 0;
    const std::string dir = absl::StrCat("/proc/", pid, "/task");
    if (DIR* d = ::opendir(dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        const std::string stat = ReadFile(absl::StrCat(dir, "/", e->d_name, "/stat")).value_or("");
        const size_t paren = stat.rfind(')');
        if (paren == std::string::npos || paren + 2 >= stat.size()) continue;
        ++threads;
        const char state = stat[paren + 2];
        if (state != 'T' && state != 't') all = false;
      }
      ::closedir(d);
    }
    if (threads > 0 && all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// A peer that stops answering without closing its connections (SIGSTOP here; a host that
// vanished, in production): a call on the established connection fails UNAVAILABLE after
// about keepalive time + timeout instead of waiting out its deadline (or, for a stream without
// one, TCP's ~15 min).
TEST(KeepaliveTest, AStoppedServerIsNoticedWithinTheKeepaliveTime) {
  const std::string port_file = absl::StrCat(::testing::TempDir(), "/keepalive_child_", ::getpid(), ".port");
  ::unlink(port_file.c_str());
  ::setenv(kChildPortFileEnv, port_file.c_str(), 1);
  Subprocess::Options opts;
  opts.output_file = port_file + ".log";
  auto child = Subprocess::Start({"/proc/self/exe", "--gtest_filter=ServiceOptionsKeepaliveChild.ServesUntilKilled"},
                                 opts);
  ::unsetenv(kChildPortFileEnv);
  ASSERT_TRUE(child.ok()) << child.status();
  std::string port;
  for (int i = 0; i < 400 && port.empty(); ++i) {
    port = std::string(absl::StripAsciiWhitespace(ReadFile(port_file).value_or("")));
    if (port.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(port.empty()) << "the child server did not start: " << ReadFile(port_file + ".log").value_or("");

  RpcSecurity sec;
  RpcLimits limits;
  limits.keepalive_time_seconds = 1;
  limits.keepalive_timeout_seconds = 1.5;
  auto channel = MakeChannel(absl::StrCat("127.0.0.1:", port), sec, limits);
  ASSERT_TRUE(channel.ok());
  auto stub = v1::Rollout::NewStub(*channel);
  auto call = [&](double deadline) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, sec, limits, deadline);
    v1::RolloutStatus out;
    return stub->GetStatus(&ctx, v1::GetRolloutStatusRequest(), &out);
  };
  ASSERT_TRUE(call(10).ok());

  (*child)->Signal(SIGSTOP);
  // kill() returns before every thread of the child has stopped: until they have, a call may
  // still be answered (seen once in CI, answered after 0.4 ms). Wait until /proc shows each
  // thread stopped.
  ASSERT_TRUE(WaitUntilStopped((*child)->pid(), 10)) << "the child did not stop";
  const auto t0 = std::chrono::steady_clock::now();
  const grpc::Status st = call(/*deadline=*/15);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  (*child)->Signal(SIGKILL);
  (*child)->Wait(10);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message() << " after " << waited << " s";
  EXPECT_LT(waited, 8.0) << "keepalive time 1 s + timeout 1.5 s";
}

}  // namespace
}  // namespace swarr
