// What every SWARR server and client shares at the RPC edge (docs/architecture.md "RPC limits
// and security": size limits on every message, deadlines on every call, TLS/mTLS, per-role
// bearer tokens; docs/deploy.md "Security"):
//
//   - Roles and the access table: every caller has one role (rollout, learner, coordinator,
//     operator); every RPC lists the roles that may call it (AllowedRoles). A server knows
//     the tokens of the roles it accepts and tells the caller's role from its token.
//   - RpcSecurity: the token this side sends (client), the per-role tokens it accepts
//     (server; CheckAuth: UNAUTHENTICATED for a missing or unknown token, PERMISSION_DENIED
//     for a known token of a role the RPC does not allow), optional TLS (server certificate +
//     key; clients verify it against `tls_ca`), and mTLS (a server given `tls_ca` requires
//     and verifies client certificates; clients present `tls_cert` / `tls_key`).
//   - LoadServiceSecurity: a service's flags (--token-dir DIR with DIR/<role>.token files, or
//     --insecure; TLS files) -> RpcSecurity. Without either a service refuses to start.
//     WriteRoleTokens makes a token directory (what `swarr launch` does for its run).
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

#include <array>
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
#include "absl/strings/string_view.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

// Who calls. A process has one role; the token it sends names it to the servers it calls.
//   rollout      a rollout server: registers, heartbeats, watches assignments, reports evals
//                (Coordinator); pushes trajectories and fetches weights (Learner)
//   learner      the learner (it calls no RPC today: no rule lists it)
//   coordinator  the coordinator: starts stages and reads the learner's state (Learner);
//                may drive rollout servers (Rollout)
//   operator     people and tools (`swarr status`, `swarr fetch-weights`, `swarr launch`'s
//                progress line): status and admin RPCs, never the training data path
enum class Role { kRollout = 0, kLearner = 1, kCoordinator = 2, kOperator = 3 };
inline constexpr int kNumRoles = 4;
inline constexpr std::array<Role, kNumRoles> kAllRoles = {Role::kRollout, Role::kLearner, Role::kCoordinator,
                                                         Role::kOperator};

// "rollout", "learner", "coordinator", "operator".
const char* RoleName(Role role);
// The role named `name`; kInvalidArgument naming the four otherwise.
absl::StatusOr<Role> ParseRole(absl::string_view name);

// One rule of the access table: an RPC ("Service.Method" of proto/swarr/v1, e.g.
// "Learner.StartStage") and the roles that may call it.
struct RpcRule {
  const char* rpc;
  std::vector<Role> roles;
};
// The whole table, one rule per RPC of the Coordinator, Learner and Rollout services (a test
// checks it against the proto services). docs/deploy.md "Security" prints it.
const std::vector<RpcRule>& AccessTable();
// The roles that may call `rpc`; nullptr if the table has no rule for it (CheckAuth then
// refuses every call: fail closed).
const std::vector<Role>* AllowedRoles(absl::string_view rpc);

struct RpcSecurity {
  // Client side: the bearer token this process sends on its calls ("" = none).
  std::string token;
  // Server side: the token of each role it accepts, indexed by Role ("" = that role is not
  // accepted). All empty: `token`, if set, is accepted as every role (one shared token; the
  // library's old mode, kept for in-process tests: the services always load per-role tokens
  // or run --insecure); `token` empty too: no token required (--insecure).
  std::array<std::string, kNumRoles> role_tokens;
  std::string tls_cert;   // PEM file: this side's certificate ("" = plaintext)
  std::string tls_key;    // PEM file: its private key (required with tls_cert)
  std::string tls_ca;     // PEM file: CA that signed the peer (server: require client certs)
  // Client side: the name the server certificate must carry ("" = the host of the address).
  std::string tls_server_name;

  bool tls() const { return !tls_cert.empty() || !tls_ca.empty(); }
  bool has_role_tokens() const;
  // Whether a server with these settings lets calls without a token through.
  bool open() const { return token.empty() && !has_role_tokens(); }
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

// A client's security settings from flag values: `token_file` ("" = the SWARR_TOKEN
// environment variable, if set) holds the token it sends (surrounding whitespace trimmed).
// Certificate files are checked to be readable. kInvalidArgument / kNotFound name the file.
absl::StatusOr<RpcSecurity> LoadRpcSecurity(const std::string& token_file, const std::string& tls_cert,
                                            const std::string& tls_key, const std::string& tls_ca);

// A token directory holds one file per role, DIR/<role>.token (e.g. DIR/rollout.token), each
// one token (surrounding whitespace trimmed; other files are ignored, so a Kubernetes Secret
// volume works as it is). The tokens of the roles whose files exist, indexed by Role.
// kInvalidArgument naming the file: unreadable, empty, or the same token as another role's;
// kNotFound if DIR holds none of the four files.
absl::StatusOr<std::array<std::string, kNumRoles>> LoadRoleTokens(const std::string& dir);

// Creates DIR (mode 0700) and a random token (32 bytes from getrandom(2), as 64 hex digits)
// in DIR/<role>.token (mode 0600) for every role whose file does not exist yet (a resumed run
// keeps its tokens).
absl::Status WriteRoleTokens(const std::string& dir);

// A service's flags (tools/security_flags.h parses them).
struct ServiceSecurityFlags {
  std::string token_dir;  // --token-dir ("" = the SWARR_TOKEN_DIR environment variable)
  bool insecure = false;  // --insecure: accept calls without a token, send none
  std::string tls_cert, tls_key, tls_ca;
};

// The security of a service of role `self`: with a token directory, it accepts the roles
// whose tokens the directory holds and sends its own (DIR/<self>.token, required for the
// coordinator and rollout servers, which call other services). kInvalidArgument, naming the
// flags, when there is neither a token directory nor --insecure (a service never runs open by
// accident), or both; and the errors of LoadRoleTokens / LoadRpcSecurity.
absl::StatusOr<RpcSecurity> LoadServiceSecurity(Role self, const ServiceSecurityFlags& flags);

// Whether the call may run `rpc` ("Service.Method"; sync ServerContext and callback
// CallbackServerContext both). OK if `security` is open; else the call's `authorization`
// metadata must be "Bearer <token>" with the token of an accepted role (compared in constant
// time against each), else UNAUTHENTICATED; and that role must be in AllowedRoles(rpc), else
// PERMISSION_DENIED naming the role and the RPC (an RPC without a rule: PERMISSION_DENIED).
grpc::Status CheckAuth(const grpc::ServerContextBase& context, const RpcSecurity& security, absl::string_view rpc);

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
