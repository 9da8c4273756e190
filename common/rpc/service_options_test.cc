// StartServer / MakeChannel / CheckAuth on real servers over loopback: bearer tokens, TLS and
// mTLS (certificates made by the openssl command line), message size limits, keepalive (a
// server in a child process of this binary, stopped with SIGSTOP).
#include "common/rpc/service_options.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "common/util/subprocess.h"
#include "gtest/gtest.h"
#include "proto/swarr/v1/rollout.grpc.pb.h"

namespace swarr {
namespace {

// A Rollout service whose GetStatus checks the token and echoes a fixed id.
class FakeRollout final : public v1::Rollout::Service {
 public:
  explicit FakeRollout(RpcSecurity security) : security_(std::move(security)) {}
  grpc::Status GetStatus(grpc::ServerContext* ctx, const v1::GetRolloutStatusRequest*,
                         v1::RolloutStatus* out) override {
    if (grpc::Status s = CheckAuth(*ctx, security_); !s.ok()) return s;
    out->set_worker_id("w-1");
    return grpc::Status::OK;
  }
  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* req,
                        grpc::ServerWriter<v1::GenerateResponse>*) override {
    if (grpc::Status s = CheckAuth(*ctx, security_); !s.ok()) return s;
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, absl::StrCat("groups: ", req->groups_size()));
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
