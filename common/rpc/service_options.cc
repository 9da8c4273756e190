#include "common/rpc/service_options.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <grpcpp/create_channel.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

std::string TokenPath(const std::string& dir, Role role) { return absl::StrCat(dir, "/", RoleName(role), ".token"); }

std::string RoleList(const std::vector<Role>& roles) {
  return absl::StrJoin(roles, ", ", [](std::string* out, Role r) { out->append(RoleName(r)); });
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kRollout:
      return "rollout";
    case Role::kLearner:
      return "learner";
    case Role::kCoordinator:
      return "coordinator";
    case Role::kOperator:
      return "operator";
  }
  return "?";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role r : kAllRoles) {
    if (name == RoleName(r)) return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "' (rollout, learner, coordinator, operator)"));
}

const std::vector<RpcRule>& AccessTable() {
  using R = Role;
  static const auto* table = new std::vector<RpcRule>{
      // Coordinator: the worker session is the rollout servers'; status is for operators.
      {"Coordinator.RegisterWorker", {R::kRollout}},
      {"Coordinator.Heartbeat", {R::kRollout}},
      {"Coordinator.WatchAssignments", {R::kRollout}},
      {"Coordinator.ReportEval", {R::kRollout}},
      {"Coordinator.GetStatus", {R::kOperator}},
      // Learner: trajectories in and weights out for rollout servers; the stage machinery for
      // the coordinator; weights and status readable by operators.
      {"Learner.PushTrajectories", {R::kRollout}},
      {"Learner.GetWeights", {R::kRollout, R::kOperator}},
      {"Learner.GetWeightsIpc", {R::kRollout, R::kOperator}},
      {"Learner.GetStatus", {R::kCoordinator, R::kOperator}},
      {"Learner.StartStage", {R::kCoordinator}},
      {"Learner.GetGroupStates", {R::kCoordinator}},
      {"Learner.Finish", {R::kCoordinator}},
      // Rollout: driven by the coordinator or an operator.
      {"Rollout.Generate", {R::kCoordinator, R::kOperator}},
      {"Rollout.LoadWeights", {R::kCoordinator, R::kOperator}},
      {"Rollout.GetStatus", {R::kCoordinator, R::kOperator}},
  };
  return *table;
}

const std::vector<Role>* AllowedRoles(absl::string_view rpc) {
  for (const RpcRule& rule : AccessTable()) {
    if (rpc == rule.rpc) return &rule.roles;
  }
  return nullptr;
}

bool RpcSecurity::has_role_tokens() const {
  return std::any_of(role_tokens.begin(), role_tokens.end(), [](const std::string& t) { return !t.empty(); });
}

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

absl::StatusOr<std::array<std::string, kNumRoles>> LoadRoleTokens(const std::string& dir) {
  std::array<std::string, kNumRoles> tokens;
  bool any = false;
  for (Role role : kAllRoles) {
    const std::string path = TokenPath(dir, role);
    if (access(path.c_str(), F_OK) != 0) continue;
    auto text = ReadFile(path);
    if (!text.ok()) return absl::InvalidArgumentError(absl::StrCat("--token-dir: ", text.status().message()));
    std::string token(absl::StripAsciiWhitespace(*text));
    if (token.empty()) return absl::InvalidArgumentError(absl::StrCat("--token-dir: ", path, " is empty"));
    for (Role other : kAllRoles) {
      if (tokens[static_cast<int>(other)] == token) {
        return absl::InvalidArgumentError(absl::StrCat("--token-dir: ", path, " holds the same token as ",
                                                       TokenPath(dir, other), " (each role needs its own)"));
      }
    }
    tokens[static_cast<int>(role)] = std::move(token);
    any = true;
  }
  if (!any) {
    return absl::NotFoundError(absl::StrCat("--token-dir: ", dir,
                                            " holds none of rollout.token, learner.token, coordinator.token, "
                                            "operator.token"));
  }
  return tokens;
}

absl::Status WriteRoleTokens(const std::string& dir) {
  SWARR_RETURN_IF_ERROR(MakeDirs(dir));
  if (chmod(dir.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("chmod 0700 ", dir, ": ", std::strerror(errno)));
  }
  for (Role role : kAllRoles) {
    const std::string path = TokenPath(dir, role);
    if (access(path.c_str(), F_OK) == 0) continue;
    unsigned char bytes[32];
    size_t got = 0;
    while (got < sizeof(bytes)) {
      const ssize_t n = getrandom(bytes + got, sizeof(bytes) - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
      got += static_cast<size_t>(n);
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string text;
    for (unsigned char b : bytes) {
      text.push_back(kHex[b >> 4]);
      text.push_back(kHex[b & 15]);
    }
    text.push_back('\n');
    // Written to a private temporary file, then renamed: the token is never readable by others.
    const std::string tmp = path + ".tmp";
    const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
    const bool written =
        fchmod(fd, 0600) == 0 && write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const bool closed = close(fd) == 0;
    if (!written || !closed || rename(tmp.c_str(), path.c_str()) != 0) {
      unlink(tmp.c_str());
      return absl::InternalError(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RpcSecurity> LoadServiceSecurity(Role self, const ServiceSecurityFlags& flags) {
  SWARR_ASSIGN_OR_RETURN(RpcSecurity s, LoadRpcSecurity("", flags.tls_cert, flags.tls_key, flags.tls_ca));
  s.token.clear();  // never SWARR_TOKEN: a service's token is its role's, from the directory
  if (flags.insecure) {
    if (!flags.token_dir.empty()) {
      return absl::InvalidArgumentError("--insecure and --token-dir contradict each other: give one of them");
    }
    return s;
  }
  std::string dir = flags.token_dir;
  if (dir.empty()) {
    if (const char* env = std::getenv("SWARR_TOKEN_DIR"); env != nullptr) dir = env;
  }
  if (dir.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        RoleName(self),
        ": will not start without tokens: give --token-dir DIR (or the environment variable SWARR_TOKEN_DIR) "
        "holding DIR/<role>.token files (rollout, learner, coordinator, operator), or --insecure to accept "
        "calls from anyone (docs/deploy.md \"Security\")"));
  }
  SWARR_ASSIGN_OR_RETURN(s.role_tokens, LoadRoleTokens(dir));
  s.token = s.role_tokens[static_cast<int>(self)];
  if (s.token.empty() && (self == Role::kRollout || self == Role::kCoordinator)) {
    return absl::InvalidArgumentError(absl::StrCat("--token-dir: ", TokenPath(dir, self), " is missing (a ",
                                                   RoleName(self), " sends it on its calls to other services)"));
  }
  return s;
}

grpc::Status CheckAuth(const grpc::ServerContextBase& context, const RpcSecurity& security, absl::string_view rpc) {
  if (security.open()) return grpc::Status::OK;
  const auto& md = context.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing 'authorization: Bearer <token>' metadata");
  }
  const std::string got(it->second.data(), it->second.size());
  const std::vector<Role>* allowed = AllowedRoles(rpc);
  if (!security.has_role_tokens()) {
    // One shared token, accepted as every role.
    if (!ConstantTimeEquals(got, "Bearer " + security.token)) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown bearer token");
    }
    if (allowed == nullptr) {
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, absl::StrCat("no access rule for ", rpc));
    }
    return grpc::Status::OK;
  }
  // Every accepted token is compared (no early exit: the time does not tell which matched).
  int matched = -1;
  for (int i = 0; i < kNumRoles; ++i) {
    const std::string& t = security.role_tokens[static_cast<size_t>(i)];
    if (!t.empty() && ConstantTimeEquals(got, "Bearer " + t)) matched = i;
  }
  if (matched < 0) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown bearer token");
  const Role role = static_cast<Role>(matched);
  if (allowed == nullptr) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, absl::StrCat("no access rule for ", rpc));
  }
  if (std::find(allowed->begin(), allowed->end(), role) == allowed->end()) {
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                        absl::StrCat("role ", RoleName(role), " may not call ", rpc, " (allowed: ", RoleList(*allowed),
                                     ")"));
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
