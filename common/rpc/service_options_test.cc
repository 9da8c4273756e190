// StartServer / MakeChannel / CheckAuth on real servers over loopback: bearer tokens, TLS and
// mTLS (certificates made by the openssl command line), message size limits.
#include "common/rpc/service_options.h"

#include <cstdlib>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/util/file.h"
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

}  // namespace
}  // namespace swarr
