#include "common/rpc/service_options.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include <grpcpp/create_channel.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/util/file.h"
#include "common/util/status_macros.h"

namespace swarr {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  auto text = ReadFile(path);
  if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", text.status().message()));
  if (text->find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " is not a PEM file"));
  }
  return *text;
}

// Seconds as whole milliseconds for a channel argument: at least 1, at most INT32_MAX.
int Millis(double seconds) {
  const double ms = std::round(seconds * 1000);
  if (!(ms >= 1)) return 1;
  return ms >= static_cast<double>(INT32_MAX) ? INT32_MAX : static_cast<int>(ms);
}

// Equal strings, compared without an early exit (the token's length is not secret).
bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

RpcLimits RpcLimitsFromSettings(const v1::RpcSettings& settings) {
  RpcLimits limits;
  if (settings.max_message_bytes() > 0) limits.max_message_bytes = settings.max_message_bytes();
  if (settings.deadline_seconds() > 0) limits.deadline_seconds = settings.deadline_seconds();
  if (settings.keepalive_time_seconds() > 0) limits.keepalive_time_seconds = settings.keepalive_time_seconds();
  if (settings.keepalive_timeout_seconds() > 0) limits.keepalive_timeout_seconds = settings.keepalive_timeout_seconds();
  return limits;
}

grpc::ChannelArguments ClientChannelArguments(const RpcLimits& limits) {
  grpc::ChannelArguments args;
  const int max_bytes = static_cast<int>(std::min<int64_t>(limits.max_message_bytes, INT32_MAX));
  args.SetMaxReceiveMessageSize(max_bytes);
  args.SetMaxSendMessageSize(max_bytes);
  // A short reconnect backoff: gRPC's default grows to 120 s, so a service restarted after a
  // minute (a learner resuming from its checkpoint) would stay unreached for two more. One
  // attempt per second at most is cheap.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Keepalive: without it a connection to a peer that vanished without closing it (a host
  // gone, a process stopped) looks healthy until TCP gives up (~15 min). Pings go out on idle
  // connections too (a worker waiting for assignments has no unary call in flight), and
  // without a limit on pings between data frames (the default 2 would stop them).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(limits.keepalive_time_seconds));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(limits.keepalive_timeout_seconds));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return args;
}

std::vector<std::pair<std::string, int>> ServerChannelArguments(const RpcLimits& limits) {
  return {
      // gRPC sets SO_REUSEPORT by default: a second server on a busy port would silently
      // share it. A port in use must be an error instead.
      {GRPC_ARG_ALLOW_REUSEPORT, 0},
      // The server pings its clients too: a stream to a vanished client (a worker's
      // WatchAssignments) ends instead of holding its resources.
      {GRPC_ARG_KEEPALIVE_TIME_MS, Millis(limits.keepalive_time_seconds)},
      {GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(limits.keepalive_timeout_seconds)},
      {GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1},
      {GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0},
      // Clients' pings are welcome at the keepalive time, with or without calls; and since a
      // client may be configured with a shorter time than this server (the learner starts
      // before it knows the pipeline's settings), a ping that comes sooner is never held
      // against it (0 strikes = unlimited; the default 2 answers the third with GOAWAY
      // "too_many_pings", dropping the connection and its calls).
      {GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, Millis(limits.keepalive_time_seconds)},
      {GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0},
  };
}

absl::StatusOr<RpcSecurity> LoadRpcSecurity(const std::string& token_file, const std::string& tls_cert,
                                            const std::string& tls_key, const std::string& tls_ca) {
  RpcSecurity s;
  if (!token_file.empty()) {
    auto text = ReadFile(token_file);
    if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("--token-file: ", text.status().message()));
    s.token = std::string(absl::StripAsciiWhitespace(*text));
    if (s.token.empty()) return absl::InvalidArgumentError(absl::StrCat("--token-file: ", token_file, " is empty"));
  } else if (const char* env = std::getenv("SWARR_TOKEN"); env != nullptr && *env != '\0') {
    s.token = std::string(absl::StripAsciiWhitespace(env));
  }
  if (tls_cert.empty() != tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!tls_cert.empty()) {
    SWARR_RETURN_IF_ERROR(ReadPem("--tls-cert", tls_cert).status());
    SWARR_RETURN_IF_ERROR(ReadPem("--tls-key", tls_key).status());
  }
  if (!tls_ca.empty()) {
    SWARR_RETURN_IF_ERROR(ReadPem("--tls-ca", tls_ca).status());
  }
  s.tls_cert = tls_cert;
  s.tls_key = tls_key;
  s.tls_ca = tls_ca;
  return s;
}

grpc::Status CheckAuth(const grpc::ServerContextBase& context, const RpcSecurity& security) {
  if (security.token.empty()) return grpc::Status::OK;
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing 'authorization: Bearer <token>' metadata");
  }
  const std::string got(it->second.data(), it->second.size());
  if (!ConstantTimeEquals(got, "Bearer " + security.token)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "wrong bearer token");
  }
  return grpc::Status::OK;
}

absl::StatusOr<RunningServer> StartServer(const std::string& address, const std::vector<grpc::Service*>& services,
                                          const RpcSecurity& security, const RpcLimits& limits) {
  grpc::EnableDefaultHealthCheckService(true);
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!security.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions opts(security.tls_ca.empty()
                                               ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                               : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    SWARR_ASSIGN_OR_RETURN(pair.private_key, ReadPem("--tls-key", security.tls_key));
    SWARR_ASSIGN_OR_RETURN(pair.cert_chain, ReadPem("--tls-cert", security.tls_cert));
    opts.pem_key_cert_pairs.push_back(pair);
    if (!security.tls_ca.empty()) {
      SWARR_ASSIGN_OR_RETURN(opts.pem_root_certs, ReadPem("--tls-ca", security.tls_ca));
    }
    creds = grpc::SslServerCredentials(opts);
  } else if (!security.tls_ca.empty()) {
    return absl::InvalidArgumentError("--tls-ca on a server needs --tls-cert and --tls-key (mTLS)");
  }
  grpc::ServerBuilder builder;
  const int max_bytes = static_cast<int>(std::min<int64_t>(limits.max_message_bytes, INT32_MAX));
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  for (const auto& [name, value] : ServerChannelArguments(limits)) builder.AddChannelArgument(name, value);
  RunningServer out;
  builder.AddListeningPort(address, creds, &out.port);
  for (grpc::Service* s : services) builder.RegisterService(s);
  out.server = builder.BuildAndStart();
  if (out.server == nullptr || out.port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", address, " (address in use or invalid)"));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address, const RpcSecurity& security,
                                                           const RpcLimits& limits) {
  if (address.empty()) return absl::InvalidArgumentError("empty server address");
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
  grpc::ChannelArguments args = ClientChannelArguments(limits);
  if (security.tls()) {
    grpc::SslCredentialsOptions opts;
    if (!security.tls_ca.empty()) {
      SWARR_ASSIGN_OR_RETURN(opts.pem_root_certs, ReadPem("--tls-ca", security.tls_ca));
    }
    if (!security.tls_cert.empty()) {
      SWARR_ASSIGN_OR_RETURN(opts.pem_private_key, ReadPem("--tls-key", security.tls_key));
      SWARR_ASSIGN_OR_RETURN(opts.pem_cert_chain, ReadPem("--tls-cert", security.tls_cert));
    }
    creds = grpc::SslCredentials(opts);
    if (!security.tls_server_name.empty()) args.SetSslTargetNameOverride(security.tls_server_name);
  }
  return grpc::CreateCustomChannel(address, creds, args);
}

void PrepareContext(grpc::ClientContext* context, const RpcSecurity& security, const RpcLimits& limits,
                    double seconds) {
  if (!security.token.empty()) context->AddMetadata("authorization", "Bearer " + security.token);
  const double s = seconds > 0 ? seconds : limits.deadline_seconds;
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(s * 1000)));
}

absl::Status WritePortFile(const std::string& path, int port) {
  const std::string text = absl::StrCat(port, "\n");
  return WriteFileAtomically(path, {text});
}

}  // namespace swarr
