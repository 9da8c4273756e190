// The security flags of the `swarr` commands (docs/deploy.md "Security"), parsed in one place.
//
// Services (`swarr coordinator|learner|rollout`):
//   --token-dir DIR   per-role tokens, DIR/<role>.token (or the environment variable
//                     SWARR_TOKEN_DIR): the service accepts the roles whose tokens DIR holds
//                     and sends its own role's token
//   --insecure        accept calls without a token (and send none); without --insecure or a
//                     token directory a service refuses to start
//   --tls-cert F --tls-key F   serve TLS; also the client certificate for mTLS
//   --tls-ca F        verify peers against this CA (a server given it requires client certs)
// --token-file (one token for every role) is refused on services, naming --token-dir.
//
// Clients (`swarr status`, `swarr fetch-weights`): --token-file F (or SWARR_TOKEN) holds the
// token sent, or --token-dir DIR sends DIR/operator.token; --tls-ca / --tls-cert / --tls-key.
#ifndef SWARR_TOOLS_SECURITY_FLAGS_H_
#define SWARR_TOOLS_SECURITY_FLAGS_H_

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "common/rpc/service_options.h"
#include "tools/args.h"

namespace swarr {

// `flags` plus the services' security value flags (token-dir, token-file, tls-cert, tls-key,
// tls-ca); the boolean flag is kInsecureFlag.
std::set<std::string> WithServiceSecurityFlags(std::set<std::string> flags);
inline constexpr char kInsecureFlag[] = "insecure";
// The usage lines of those flags.
extern const char kServiceSecurityUsage[];

// The security of a service of role `self` from its parsed flags (LoadServiceSecurity).
absl::StatusOr<RpcSecurity> ServiceSecurityFromArgs(const Args& args, Role self);

// `flags` plus the clients' security flags (token-file, token-dir, tls-cert, tls-key, tls-ca).
std::set<std::string> WithClientSecurityFlags(std::set<std::string> flags);
// A client's security from its parsed flags; kInvalidArgument for --token-file with --token-dir.
absl::StatusOr<RpcSecurity> ClientSecurityFromArgs(const Args& args);

}  // namespace swarr

#endif  // SWARR_TOOLS_SECURITY_FLAGS_H_
