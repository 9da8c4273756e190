#include "learner/service/weight_versions.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace swarr {

void WeightVersions::Add(int64_t version, std::shared_ptr<const WeightsBlob> blob,
                         std::optional<absl::StatusOr<std::shared_ptr<const IpcWeights>>> ipc) {
  versions_[version] = std::move(blob);
  if (ipc.has_value()) {
    ipc_versions_.insert_or_assign(version, *std::move(ipc));
  } else {
    ipc_versions_.erase(version);
  }
  latest_ = version;
  if (first_published_ < 0 || version < first_published_) first_published_ = version;
  run_latest_ = std::max(run_latest_, version);
  Evict();
}

void WeightVersions::SetKeep(int64_t keep) {
  keep_ = keep;
  Evict();
}

void WeightVersions::Evict() {
  while (static_cast<int64_t>(versions_.size()) > keep_) versions_.erase(versions_.begin());
  while (!ipc_versions_.empty() && (versions_.empty() || ipc_versions_.begin()->first < versions_.begin()->first)) {
    ipc_versions_.erase(ipc_versions_.begin());
  }
}

absl::StatusOr<std::shared_ptr<const WeightsBlob>> WeightVersions::Get(const v1::GetWeightsRequest& request,
                                                                      const std::string& incarnation) const {
  if (latest_ < 0) return absl::NotFoundError("this learner has not published a version yet");
  if (request.latest()) return versions_.at(latest_);
  if (!request.learner_incarnation().empty() && request.learner_incarnation() != incarnation) {
    return absl::NotFoundError(absl::StrCat("version ", request.version(), " of learner incarnation ",
                                            request.learner_incarnation(), " is not this learner's (incarnation ",
                                            incarnation, ")"));
  }
  const int64_t v = request.version();
  if (v > latest_ || v < first_published_) {
    return absl::NotFoundError(absl::StrCat("version ", v, " was never published by this learner (published: ",
                                            first_published_, "..", latest_, ")"));
  }
  auto it = versions_.find(v);
  if (it == versions_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("version ", v, " is no longer kept; the oldest kept is ",
                                                      versions_.begin()->first, " (newest ", latest_, ")"));
  }
  return it->second;
}

absl::StatusOr<std::shared_ptr<const IpcWeights>> WeightVersions::Ipc(int64_t version) const {
  auto it = ipc_versions_.find(version);
  if (it == ipc_versions_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "version ", version, " was published from a model not on a GPU: no CUDA IPC buffer; use GetWeights"));
  }
  if (!it->second.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("version ", version, " has no CUDA IPC buffer (",
                                                      it->second.status().message(), "); use GetWeights"));
  }
  return *it->second;
}

std::vector<int64_t> WeightVersions::kept() const {
  std::vector<int64_t> out;
  for (const auto& [v, blob] : versions_) out.push_back(v);
  return out;
}

}  // namespace swarr
