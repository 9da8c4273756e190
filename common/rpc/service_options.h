// What every SWARR server and client shares at the RPC edge (docs/architecture.md "RPC limits
// and security": size limits on every message, deadlines on every call, TLS/mTLS and a bearer
// token optional):
//
//   - RpcSecurity: an optional bearer token (every call must carry `authorization: Bearer
//     <token>`, else UNAUTHENTICATED), optional TLS (server certificate + key; clients verify
//     it against `tls_ca`), and mTLS (a server given `tls_ca` requires and verifies client
//     certificates; clients present `tls_cert` / `tls_key`).
//   - RpcLimits: the largest message sent or received, the deadline of unary calls, and the
//     keepalive every channel and server uses (HTTP/2 pings, also on idle connections, so
//     that a peer that stopped answering is noticed in about keepalive time + timeout rather
//     than the TCP timeout; docs/reliability.md).
//   - StartServer: binds, registers the services plus the standard grpc.health.v1 service
//     (unauthenticated, for Kubernetes probes), applies the limits.
//   - MakeChannel / PrepareContext: the client side of the same settings.
//
// No torch here.
#ifndef SWARR_COMMON_RPC_SERVICE_OPTIONS_H_
#define SWARR_COMMON_RPC_SERVICE_OPTIONS_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/server.h>
#include <grpcpp/server_context.h>
#include <grpcpp/impl/codegen/service_type.h>
#include <grpcpp/support/channel_arguments.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

struct RpcSecurity {
  std::string token;      // "" = no bearer token required / sent
  std::string tls_cert;   // PEM file: this side's certificate ("" = plaintext)
  std::string tls_key;    // PEM file: its private key (required with tls_cert)
  std::string tls_ca;     // PEM file: CA that signed the peer (server: require client certs)
  // Client side: the name the server certificate must carry ("" = the host of the address).
  std::string tls_server_name;

  bool tls() const { return !tls_cert.empty() || !tls_ca.empty(); }
};

struct RpcLimits {
  int64_t max_message_bytes = int64_t{64} << 20;
  double deadline_seconds = 30;
  // A keepalive ping after this long without one (clients and servers both ping).
  double keepalive_time_seconds = 10;
  // A ping unanswered this long closes the connection: its calls fail UNAVAILABLE and the
  // channel reconnects.
  double keepalive_timeout_seconds = 5;
};

// The pipeline's `rpc:` settings with the documented defaults for zero fields.
RpcLimits RpcLimitsFromSettings(const v1::RpcSettings& settings);

// The channel arguments MakeChannel gives a client channel: message limits, a reconnect
// backoff capped at 1 s, keepalive (time, timeout, pings without calls, no limit on pings
// without data). No TLS settings.
grpc::ChannelArguments ClientChannelArguments(const RpcLimits& limits);

// The integer channel arguments StartServer sets on a server besides the message limits:
// keepalive (the server pings its clients too), pings accepted at any rate with or without
// calls (GRPC_ARG_HTTP2_MAX_PING_STRIKES 0: a client whose keepalive time is shorter than
// the server's is never sent away), and no SO_REUSEPORT.
std::vector<std::pair<std::string, int>> ServerChannelArguments(const RpcLimits& limits);

// Reads the security settings from flag values: `token_file` ("" = the SWARR_TOKEN
// environment variable, if set) holds the token (surrounding whitespace trimmed). Certificate
// files are checked to be readable. kInvalidArgument / kNotFound name the file.
absl::StatusOr<RpcSecurity> LoadRpcSecurity(const std::string& token_file, const std::string& tls_cert,
                                            const std::string& tls_key, const std::string& tls_ca);

// (Sync ServerContext and callback CallbackServerContext both.) OK, or UNAUTHENTICATED if `security.token` is set and the call's `authorization` metadata is
// not "Bearer <token>" (compared in constant time).
grpc::Status CheckAuth(const grpc::ServerContextBase& context, const RpcSecurity& security);

// A running server.
struct RunningServer {
  std::unique_ptr<grpc::Server> server;
  int port = 0;  // the bound port (useful when the address asked for port 0)
};

// Binds `address` ("host:port", port 0 = any free one) and starts `services` (not owned; they
// must outlive the server) with the limits, TLS settings and the health service.
// kUnavailable if the address cannot be bound; kInvalidArgument for unreadable TLS files.
absl::StatusOr<RunningServer> StartServer(const std::string& address, const std::vector<grpc::Service*>& services,
                                          const RpcSecurity& security, const RpcLimits& limits);

// A channel to `address` with the limits and TLS settings (no connection is made yet), and
// a reconnect backoff capped at 1 s (services come back quickly after a restart).
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const std::string& address, const RpcSecurity& security,
                                                           const RpcLimits& limits);

// Adds the bearer token and a deadline `seconds` from now (<= 0: limits.deadline_seconds).
void PrepareContext(grpc::ClientContext* context, const RpcSecurity& security, const RpcLimits& limits,
                    double seconds = 0);

// Writes `port` to `path` atomically (services started with port 0 tell launchers where
// they are).
absl::Status WritePortFile(const std::string& path, int port);

}  // namespace swarr

#endif  // SWARR_COMMON_RPC_SERVICE_OPTIONS_H_
