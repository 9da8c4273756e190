// Host-side packing of broadcast buckets by a BucketPlan, and the bucket checksum.
// The GPU path does the same copies with cudaMemcpyAsync on the side stream; these are the
// reference (and what the CPU protocol test, broadcast_sim_test.cc, moves).
#ifndef SWARR_COMMON_DIST_BUCKET_IO_H_
#define SWARR_COMMON_DIST_BUCKET_IO_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/dist/bucket_plan.h"

namespace swarr::dist {

// GetWeightsIpc's integrity sum: the sum modulo 2^64 of the buffer's little-endian 32-bit words,
// the buffer zero-padded to a multiple of 4 bytes.
uint64_t WordSum(const void* data, size_t n);

// Copies bucket `bucket`'s tensors (tensors[i] holds tensor i's bytes, table order) into `dst`
// (plan.buckets[bucket].bytes bytes; padding zeroed). kInvalidArgument for a bad bucket index or a
// tensor whose size differs from the plan.
absl::Status PackBucket(const BucketPlan& plan, int bucket, const std::vector<std::string>& tensors, void* dst);

// The reverse: every tensor of the whole version from its buckets' bytes (buckets[b] holds bucket
// b). kInvalidArgument / kDataLoss naming the bucket when a buffer is short.
absl::StatusOr<std::vector<std::string>> UnpackAll(const BucketPlan& plan, const std::vector<std::string>& buckets);

}  // namespace swarr::dist

#endif  // SWARR_COMMON_DIST_BUCKET_IO_H_
