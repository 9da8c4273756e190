#include "common/dist/bucket_plan.h"

#include <algorithm>
#include <limits>
#include <unordered_set>

#include <xxhash.h>

#include "absl/strings/str_cat.h"

namespace swarr::dist {
namespace {

bool IsPowerOfTwo(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

int64_t AlignUp(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutStr(std::string* out, const std::string& s) {
  PutU64(out, s.size());
  out->append(s);
}

absl::Status CheckTensor(const TensorSpec& t, size_t i) {
  const std::string where = absl::StrCat("tensor ", i, " (\"", t.name, "\")");
  if (t.name.empty()) return absl::InvalidArgumentError(absl::StrCat("tensor ", i, ": empty name"));
  const int esize = DtypeBytes(t.dtype);
  if (esize == 0) return absl::InvalidArgumentError(absl::StrCat(where, ": unknown dtype \"", t.dtype, "\""));
  if (t.nbytes < 0) return absl::InvalidArgumentError(absl::StrCat(where, ": negative nbytes ", t.nbytes));
  if (t.nbytes % esize != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": nbytes ", t.nbytes, " is not a whole number of ", t.dtype, " elements"));
  }
  if (!t.shape.empty()) {
    int64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || (d > 0 && numel > std::numeric_limits<int64_t>::max() / d / esize)) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": bad shape dimension ", d));
      }
      numel *= d;
    }
    if (numel * esize != t.nbytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": shape has ", numel, " elements (", numel * esize, " bytes) but nbytes is ", t.nbytes));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int DtypeBytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "BF16" || dtype == "F16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "F8_E4M3" || dtype == "F8_E5M2" || dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

absl::Status ValidateBucketTarget(const BucketPlanOptions& options) {
  if (options.target_bucket_bytes < kMinBucketTargetBytes || options.target_bucket_bytes > kMaxBucketTargetBytes) {
    return absl::InvalidArgumentError(absl::StrCat("bucket_bytes: ", options.target_bucket_bytes,
                                                   " is outside [", kMinBucketTargetBytes, ", ",
                                                   kMaxBucketTargetBytes, "] (256 MiB .. 1 GiB)"));
  }
  if (!IsPowerOfTwo(options.alignment_bytes) || options.alignment_bytes > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("bucket_alignment: ", options.alignment_bytes, " is not a power of two in [1, 4096]"));
  }
  if (options.target_bucket_bytes % options.alignment_bytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat("bucket_bytes: ", options.target_bucket_bytes,
                                                   " is not a multiple of bucket_alignment ",
                                                   options.alignment_bytes));
  }
  return absl::OkStatus();
}

int64_t BucketPlan::max_bucket_bytes() const {
  int64_t m = 0;
  for (const Bucket& b : buckets) m = std::max(m, b.bytes);
  return m;
}

absl::StatusOr<BucketPlan> PlanBuckets(const std::vector<TensorSpec>& tensors, const BucketPlanOptions& options) {
  if (!IsPowerOfTwo(options.alignment_bytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("alignment_bytes: ", options.alignment_bytes, " is not a power of two"));
  }
  if (options.target_bucket_bytes < options.alignment_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("target_bucket_bytes: ", options.target_bucket_bytes,
                                                   " is below alignment_bytes ", options.alignment_bytes));
  }
  if (tensors.empty()) return absl::InvalidArgumentError("tensor table is empty: nothing to broadcast");

  BucketPlan plan;
  plan.options = options;
  plan.num_tensors = static_cast<int>(tensors.size());
  std::unordered_set<std::string> seen;
  const int64_t align = options.alignment_bytes;
  const int64_t target = options.target_bucket_bytes;

  Bucket cur;
  int64_t cursor = 0;  // end of the last entry in `cur`
  auto close = [&] {
    if (cur.entries.empty()) return;
    cur.index = static_cast<int>(plan.buckets.size());
    cur.bytes = AlignUp(cursor, align);
    plan.total_bytes += cur.bytes;
    plan.buckets.push_back(std::move(cur));
    cur = Bucket();
    cursor = 0;
  };

  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorSpec& t = tensors[i];
    if (absl::Status s = CheckTensor(t, i); !s.ok()) return s;
    if (!seen.insert(t.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", i, ": duplicate name \"", t.name, "\""));
    }
    BucketEntry e{static_cast<int>(i), t.name, t.dtype, t.shape, 0, t.nbytes};
    if (t.nbytes > target) {
      // Its own bucket, whatever is open.
      close();
      cur.entries.push_back(e);
      cur.payload_bytes = t.nbytes;
      cursor = t.nbytes;
      close();
      plan.payload_bytes += t.nbytes;
      continue;
    }
    int64_t off = AlignUp(cursor, align);
    if (!cur.entries.empty() && off + t.nbytes > target) {
      close();
      off = 0;
    }
    e.offset = off;
    cur.entries.push_back(e);
    cur.payload_bytes += t.nbytes;
    cursor = off + t.nbytes;
    plan.payload_bytes += t.nbytes;
  }
  close();
  plan.fingerprint = PlanFingerprint(plan);
  return plan;
}

uint64_t PlanFingerprint(const BucketPlan& plan) {
  std::string enc = "swarr.dist.bucket_plan.v1";
  PutU64(&enc, plan.options.target_bucket_bytes);
  PutU64(&enc, plan.options.alignment_bytes);
  PutU64(&enc, plan.buckets.size());
  for (const Bucket& b : plan.buckets) {
    PutU64(&enc, b.index);
    PutU64(&enc, b.bytes);
    PutU64(&enc, b.entries.size());
    for (const BucketEntry& e : b.entries) {
      PutU64(&enc, e.tensor_index);
      PutStr(&enc, e.name);
      PutStr(&enc, e.dtype);
      PutU64(&enc, e.shape.size());
      for (int64_t d : e.shape) PutU64(&enc, d);
      PutU64(&enc, e.offset);
      PutU64(&enc, e.nbytes);
    }
  }
  return XXH64(enc.data(), enc.size(), 0);
}

absl::Status ComparePlans(const BucketPlan& local, const BucketPlan& remote) {
  auto differ = [](const std::string& what) {
    return absl::FailedPreconditionError(absl::StrCat("broadcast plans differ: ", what));
  };
  if (local.options.target_bucket_bytes != remote.options.target_bucket_bytes) {
    return differ(absl::StrCat("target_bucket_bytes ", local.options.target_bucket_bytes, " vs ",
                               remote.options.target_bucket_bytes));
  }
  if (local.options.alignment_bytes != remote.options.alignment_bytes) {
    return differ(absl::StrCat("alignment_bytes ", local.options.alignment_bytes, " vs ",
                               remote.options.alignment_bytes));
  }
  if (local.buckets.size() != remote.buckets.size()) {
    return differ(absl::StrCat(local.buckets.size(), " buckets vs ", remote.buckets.size()));
  }
  for (size_t b = 0; b < local.buckets.size(); ++b) {
    const Bucket& x = local.buckets[b];
    const Bucket& y = remote.buckets[b];
    if (x.bytes != y.bytes) return differ(absl::StrCat("bucket ", b, " has ", x.bytes, " bytes vs ", y.bytes));
    if (x.entries.size() != y.entries.size()) {
      return differ(absl::StrCat("bucket ", b, " has ", x.entries.size(), " tensors vs ", y.entries.size()));
    }
    for (size_t i = 0; i < x.entries.size(); ++i) {
      const BucketEntry& p = x.entries[i];
      const BucketEntry& q = y.entries[i];
      if (p.name != q.name || p.dtype != q.dtype || p.offset != q.offset || p.nbytes != q.nbytes ||
          p.tensor_index != q.tensor_index || p.shape != q.shape) {
        return differ(absl::StrCat("bucket ", b, " entry ", i, ": \"", p.name, "\" ", p.dtype, " @", p.offset, "+",
                                   p.nbytes, " vs \"", q.name, "\" ", q.dtype, " @", q.offset, "+", q.nbytes));
      }
    }
  }
  if (local.fingerprint != remote.fingerprint) {
    return differ(absl::StrCat("fingerprint ", local.fingerprint, " vs ", remote.fingerprint));
  }
  return absl::OkStatus();
}

}  // namespace swarr::dist
