// common/dist's plans <-> proto/swarr/v1/dist.proto (the control-plane messages).
#ifndef SWARR_COMMON_DIST_DIST_PROTO_H_
#define SWARR_COMMON_DIST_DIST_PROTO_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dist/bucket_plan.h"
#include "common/dist/group_membership.h"
#include "proto/swarr/v1/dist.pb.h"

namespace swarr::dist {

v1::BroadcastPlan BroadcastPlanToProto(const BucketPlan& plan, const v1::WeightVersion& version, int64_t epoch);

// Rebuilds a plan from the message and checks it on its own: aligned offsets, tensors inside their
// bucket and in order without overlap, totals, and the fingerprint recomputed from the layout
// (kDataLoss if it differs: the message was damaged or built by an incompatible encoder);
// kInvalidArgument naming the bucket / tensor otherwise.
absl::StatusOr<BucketPlan> BroadcastPlanFromProto(const v1::BroadcastPlan& message);

// The receiver's check before any byte is interpreted: its own plan of its own tensor table (with
// the message's options) must equal the message's. kFailedPrecondition naming the first
// difference (then: load the version over GetWeights).
absl::Status CheckReceivedPlan(const v1::BroadcastPlan& message, const std::vector<TensorSpec>& local_table);

v1::NcclGroup NcclGroupToProto(const Epoch& epoch, const MembershipOptions& options);

// Ranks numbered 0..n-1 in order, distinct non-empty worker ids, a unique id of 128 bytes (or
// empty: not created yet), a positive watchdog timeout. kInvalidArgument naming the field.
absl::Status ValidateNcclGroup(const v1::NcclGroup& group);

}  // namespace swarr::dist

#endif  // SWARR_COMMON_DIST_DIST_PROTO_H_
