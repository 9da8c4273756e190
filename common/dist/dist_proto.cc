#include "common/dist/dist_proto.h"

#include <set>

#include "absl/strings/str_cat.h"

namespace swarr::dist {

v1::BroadcastPlan BroadcastPlanToProto(const BucketPlan& plan, const v1::WeightVersion& version, int64_t epoch) {
  v1::BroadcastPlan m;
  *m.mutable_version() = version;
  m.set_epoch(epoch);
  m.set_target_bucket_bytes(plan.options.target_bucket_bytes);
  m.set_alignment_bytes(plan.options.alignment_bytes);
  for (const Bucket& b : plan.buckets) {
    v1::BroadcastBucket* mb = m.add_buckets();
    mb->set_index(b.index);
    mb->set_bytes(b.bytes);
    for (const BucketEntry& e : b.entries) {
      v1::BucketTensor* t = mb->add_tensors();
      t->set_tensor_index(e.tensor_index);
      t->set_name(e.name);
      t->set_dtype(e.dtype);
      for (int64_t d : e.shape) t->add_shape(d);
      t->set_offset(e.offset);
      t->set_nbytes(e.nbytes);
    }
  }
  m.set_fingerprint(plan.fingerprint);
  m.set_total_bytes(plan.total_bytes);
  m.set_payload_bytes(plan.payload_bytes);
  return m;
}

absl::StatusOr<BucketPlan> BroadcastPlanFromProto(const v1::BroadcastPlan& m) {
  BucketPlan plan;
  plan.options.target_bucket_bytes = m.target_bucket_bytes();
  plan.options.alignment_bytes = m.alignment_bytes();
  const int64_t align = plan.options.alignment_bytes;
  if (align <= 0 || (align & (align - 1)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("alignment_bytes ", align, " is not a power of two"));
  }
  if (m.buckets_size() == 0) return absl::InvalidArgumentError("broadcast plan has no buckets");
  int next_tensor = 0;
  for (int b = 0; b < m.buckets_size(); ++b) {
    const v1::BroadcastBucket& mb = m.buckets(b);
    const std::string where = absl::StrCat("bucket ", b);
    if (mb.index() != b) return absl::InvalidArgumentError(absl::StrCat(where, ": index ", mb.index()));
    if (mb.bytes() <= 0 || mb.bytes() % align != 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": bytes ", mb.bytes(), " not a positive multiple of ", align));
    }
    if (mb.tensors_size() == 0) return absl::InvalidArgumentError(absl::StrCat(where, ": no tensors"));
    Bucket bucket;
    bucket.index = b;
    bucket.bytes = mb.bytes();
    int64_t end = 0;
    for (const v1::BucketTensor& t : mb.tensors()) {
      const std::string tw = absl::StrCat(where, " tensor \"", t.name(), "\"");
      if (t.tensor_index() != next_tensor) {
        return absl::InvalidArgumentError(absl::StrCat(tw, ": tensor_index ", t.tensor_index(), ", expected ", next_tensor));
      }
      if (DtypeBytes(t.dtype()) == 0) return absl::InvalidArgumentError(absl::StrCat(tw, ": unknown dtype \"", t.dtype(), "\""));
      if (t.offset() < end || t.offset() % align != 0 || t.nbytes() < 0 || t.offset() + t.nbytes() > mb.bytes()) {
        return absl::InvalidArgumentError(absl::StrCat(tw, ": range ", t.offset(), "+", t.nbytes(),
                                                       " overlaps, is unaligned or leaves the bucket of ", mb.bytes()));
      }
      end = t.offset() + t.nbytes();
      BucketEntry e{t.tensor_index(), t.name(), t.dtype(), {t.shape().begin(), t.shape().end()}, t.offset(), t.nbytes()};
      bucket.payload_bytes += e.nbytes;
      bucket.entries.push_back(std::move(e));
      ++next_tensor;
    }
    plan.total_bytes += bucket.bytes;
    plan.payload_bytes += bucket.payload_bytes;
    plan.buckets.push_back(std::move(bucket));
  }
  plan.num_tensors = next_tensor;
  if (plan.total_bytes != m.total_bytes() || plan.payload_bytes != m.payload_bytes()) {
    return absl::InvalidArgumentError(absl::StrCat("totals ", m.total_bytes(), "/", m.payload_bytes(),
                                                   " do not match the buckets' ", plan.total_bytes, "/",
                                                   plan.payload_bytes));
  }
  plan.fingerprint = PlanFingerprint(plan);
  if (plan.fingerprint != m.fingerprint()) {
    return absl::DataLossError(absl::StrCat("broadcast plan fingerprint ", m.fingerprint(),
                                            " does not match its layout (", plan.fingerprint, ")"));
  }
  return plan;
}

absl::Status CheckReceivedPlan(const v1::BroadcastPlan& message, const std::vector<TensorSpec>& local_table) {
  auto remote = BroadcastPlanFromProto(message);
  if (!remote.ok()) return remote.status();
  auto local = PlanBuckets(local_table, remote->options);
  if (!local.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("local tensor table: ", local.status().message()));
  }
  return ComparePlans(*local, *remote);
}

v1::NcclGroup NcclGroupToProto(const Epoch& epoch, const MembershipOptions& options) {
  v1::NcclGroup g;
  g.set_epoch(epoch.number);
  g.set_first_version(epoch.first_version);
  g.set_unique_id(epoch.unique_id);
  for (int r = 0; r < epoch.size(); ++r) {
    v1::NcclRank* rank = g.add_ranks();
    rank->set_rank(r);
    rank->set_worker_id(epoch.ranks[r]);
  }
  g.set_watchdog_timeout_ms(options.watchdog_timeout_ms);
  g.set_report_grace_ms(options.report_grace_ms);
  return g;
}

absl::Status ValidateNcclGroup(const v1::NcclGroup& g) {
  if (g.epoch() <= 0) return absl::InvalidArgumentError(absl::StrCat("epoch ", g.epoch(), " is not positive"));
  if (g.ranks_size() == 0) return absl::InvalidArgumentError("ranks: empty");
  if (!g.unique_id().empty() && static_cast<int>(g.unique_id().size()) != kNcclUniqueIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("unique_id: ", g.unique_id().size(), " bytes, expected ", kNcclUniqueIdBytes));
  }
  if (g.watchdog_timeout_ms() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("watchdog_timeout_ms: ", g.watchdog_timeout_ms()));
  }
  std::set<std::string> ids;
  for (int i = 0; i < g.ranks_size(); ++i) {
    const v1::NcclRank& r = g.ranks(i);
    if (r.rank() != i) return absl::InvalidArgumentError(absl::StrCat("ranks[", i, "]: rank ", r.rank()));
    if (r.worker_id().empty()) return absl::InvalidArgumentError(absl::StrCat("ranks[", i, "]: empty worker_id"));
    if (!ids.insert(r.worker_id()).second) {
      return absl::InvalidArgumentError(absl::StrCat("ranks[", i, "]: worker \"", r.worker_id(), "\" twice"));
    }
  }
  return absl::OkStatus();
}

}  // namespace swarr::dist
