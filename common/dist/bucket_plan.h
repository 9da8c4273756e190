// Broadcast buckets for the NCCL weight path (docs/multi-gpu.md, "Data plane").
//
// A published weight version is a tensor table (names, dtypes, byte sizes, in the order of the
// GetWeights stream). For an NCCL broadcast the table is cut into buckets: each bucket is one
// contiguous device buffer that the publisher fills and broadcasts in one ncclBroadcast, and that
// every receiver gets into its staging buffer. Both sides build the plan from the same table and
// options, and compare fingerprints (or whole plans, ComparePlans) before any byte moves: a
// receiver whose plan differs must not interpret the bytes, it falls back to GetWeights.
//
// Rules: tensors keep their order; each starts at an offset inside its bucket aligned to
// `alignment_bytes`; a bucket holds tensors until the next one would end beyond
// `target_bucket_bytes`; a tensor larger than the target gets a bucket of its own. A bucket's
// length (what is broadcast) is its last tensor's end rounded up to the alignment.
//
// Pure logic: no torch, no CUDA.
#ifndef SWARR_COMMON_DIST_BUCKET_PLAN_H_
#define SWARR_COMMON_DIST_BUCKET_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarr::dist {

inline constexpr int64_t kMiB = int64_t{1} << 20;
inline constexpr int64_t kGiB = int64_t{1} << 30;

// The range a configured bucket target must lie in (ValidateBucketTarget). The planner itself
// accepts any target >= the alignment, so tests can use small ones.
inline constexpr int64_t kMinBucketTargetBytes = 256 * kMiB;
inline constexpr int64_t kMaxBucketTargetBytes = 1 * kGiB;
inline constexpr int64_t kDefaultBucketTargetBytes = 512 * kMiB;
inline constexpr int64_t kDefaultBucketAlignment = 256;

// One entry of the tensor table (GetWeights' TensorHeader without the offset).
struct TensorSpec {
  std::string name;
  std::string dtype;           // safetensors name: "BF16", "F16", "F32", ...
  std::vector<int64_t> shape;  // optional; when given, numel * dtype size must equal nbytes
  int64_t nbytes = 0;
};

// Bytes per element of a safetensors dtype name; 0 if unknown.
int DtypeBytes(const std::string& dtype);

struct BucketPlanOptions {
  int64_t target_bucket_bytes = kDefaultBucketTargetBytes;
  int64_t alignment_bytes = kDefaultBucketAlignment;  // a power of two
};

// The config rule: target in [256 MiB, 1 GiB], alignment a power of two in [1, 4096] dividing it.
// kInvalidArgument naming the field.
absl::Status ValidateBucketTarget(const BucketPlanOptions& options);

struct BucketEntry {
  int tensor_index = 0;  // index in the table
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;  // as in the table (may be empty)
  int64_t offset = 0;  // inside the bucket; a multiple of the alignment
  int64_t nbytes = 0;
};

struct Bucket {
  int index = 0;
  int64_t bytes = 0;          // broadcast length: last entry's end, aligned up
  int64_t payload_bytes = 0;  // sum of the entries' nbytes
  std::vector<BucketEntry> entries;
};

struct BucketPlan {
  BucketPlanOptions options;
  std::vector<Bucket> buckets;
  int64_t total_bytes = 0;    // sum of buckets' bytes (padding included)
  int64_t payload_bytes = 0;  // sum of the tensors' nbytes
  int num_tensors = 0;
  uint64_t fingerprint = 0;   // PlanFingerprint(*this)

  // The largest bucket: the size of one staging buffer.
  int64_t max_bucket_bytes() const;
};

// Builds the plan. kInvalidArgument (naming the tensor or option) for: an empty table, an empty
// or duplicate name, negative size, unknown dtype, a size that is not a whole number of
// elements or disagrees with the shape, a non power-of-two alignment, a target below the
// alignment.
absl::StatusOr<BucketPlan> PlanBuckets(const std::vector<TensorSpec>& tensors,
                                       const BucketPlanOptions& options);

// XXH64 of a canonical encoding of the options and every bucket and entry (index, name, dtype,
// shape, offset, nbytes). Any difference that changes where a byte lands changes it.
uint64_t PlanFingerprint(const BucketPlan& plan);

// OK if the two plans place every tensor identically; otherwise kFailedPrecondition naming the
// first difference (option, bucket count, bucket, tensor).
absl::Status ComparePlans(const BucketPlan& local, const BucketPlan& remote);

}  // namespace swarr::dist

#endif  // SWARR_COMMON_DIST_BUCKET_PLAN_H_
