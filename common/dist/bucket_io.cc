#include "common/dist/bucket_io.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace swarr::dist {

uint64_t WordSum(const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t sum = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    sum += static_cast<uint32_t>(p[i]) | (static_cast<uint32_t>(p[i + 1]) << 8) |
           (static_cast<uint32_t>(p[i + 2]) << 16) | (static_cast<uint32_t>(p[i + 3]) << 24);
  }
  uint32_t last = 0;
  for (size_t k = 0; i + k < n; ++k) last |= static_cast<uint32_t>(p[i + k]) << (8 * k);
  return sum + last;
}

absl::Status PackBucket(const BucketPlan& plan, int bucket, const std::vector<std::string>& tensors, void* dst) {
  if (bucket < 0 || bucket >= static_cast<int>(plan.buckets.size())) {
    return absl::InvalidArgumentError(absl::StrCat("bucket ", bucket, " of ", plan.buckets.size()));
  }
  const Bucket& b = plan.buckets[bucket];
  auto* out = static_cast<char*>(dst);
  std::memset(out, 0, b.bytes);
  for (const BucketEntry& e : b.entries) {
    if (e.tensor_index >= static_cast<int>(tensors.size()) ||
        static_cast<int64_t>(tensors[e.tensor_index].size()) != e.nbytes) {
      return absl::InvalidArgumentError(absl::StrCat("tensor \"", e.name, "\": expected ", e.nbytes, " bytes"));
    }
    std::memcpy(out + e.offset, tensors[e.tensor_index].data(), e.nbytes);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> UnpackAll(const BucketPlan& plan, const std::vector<std::string>& buckets) {
  if (buckets.size() != plan.buckets.size()) {
    return absl::InvalidArgumentError(absl::StrCat(buckets.size(), " buckets, plan has ", plan.buckets.size()));
  }
  std::vector<std::string> tensors(plan.num_tensors);
  for (const Bucket& b : plan.buckets) {
    const std::string& buf = buckets[b.index];
    if (static_cast<int64_t>(buf.size()) != b.bytes) {
      return absl::DataLossError(absl::StrCat("bucket ", b.index, " has ", buf.size(), " bytes, expected ", b.bytes));
    }
    for (const BucketEntry& e : b.entries) tensors[e.tensor_index] = buf.substr(e.offset, e.nbytes);
  }
  return tensors;
}

}  // namespace swarr::dist
