// The one converter between absl::Status (everywhere inside SWARR) and grpc::Status (only at
// the RPC edge; docs/architecture.md "Errors"). Codes map one to one (both follow
// google.rpc.Code); messages are kept.
#ifndef SWARR_COMMON_RPC_STATUS_H_
#define SWARR_COMMON_RPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace swarr {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace swarr

#endif  // SWARR_COMMON_RPC_STATUS_H_
