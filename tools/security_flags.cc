#include "tools/security_flags.h"

#include "absl/status/status.h"

namespace swarr {

const char kServiceSecurityUsage[] =
    "  --token-dir DIR          per-role tokens DIR/<role>.token (rollout, learner, coordinator,\n"
    "                           operator; or env SWARR_TOKEN_DIR): accepts those roles, sends its own\n"
    "  --insecure               accept calls without a token (required when there is no --token-dir)\n"
    "  --tls-cert/--tls-key/--tls-ca FILE  TLS / mTLS (a server given --tls-ca requires client certs)\n";

std::set<std::string> WithServiceSecurityFlags(std::set<std::string> flags) {
  flags.insert({"token-dir", "token-file", "tls-cert", "tls-key", "tls-ca"});
  return flags;
}

absl::StatusOr<RpcSecurity> ServiceSecurityFromArgs(const Args& args, Role self) {
  if (args.Has("token-file")) {
    return absl::InvalidArgumentError(
        "--token-file: a service takes per-role tokens now: --token-dir DIR with DIR/<role>.token files "
        "(rollout, learner, coordinator, operator), or --insecure (docs/deploy.md \"Security\")");
  }
  ServiceSecurityFlags flags;
  flags.token_dir = args.Optional("token-dir").value_or("");
  flags.insecure = args.Has(kInsecureFlag);
  flags.tls_cert = args.Optional("tls-cert").value_or("");
  flags.tls_key = args.Optional("tls-key").value_or("");
  flags.tls_ca = args.Optional("tls-ca").value_or("");
  return LoadServiceSecurity(self, flags);
}

std::set<std::string> WithClientSecurityFlags(std::set<std::string> flags) {
  flags.insert({"token-file", "token-dir", "tls-cert", "tls-key", "tls-ca"});
  return flags;
}

absl::StatusOr<RpcSecurity> ClientSecurityFromArgs(const Args& args) {
  std::string token_file = args.Optional("token-file").value_or("");
  if (auto dir = args.Optional("token-dir")) {
    if (!token_file.empty()) {
      return absl::InvalidArgumentError("--token-file and --token-dir: give one of them");
    }
    token_file = *dir + "/" + RoleName(Role::kOperator) + ".token";
  }
  return LoadRpcSecurity(token_file, args.Optional("tls-cert").value_or(""), args.Optional("tls-key").value_or(""),
                         args.Optional("tls-ca").value_or(""));
}

}  // namespace swarr
