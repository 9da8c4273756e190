// The weight versions one learner process published (docs/services.md "Versions"): their
// serialized bytes (what Learner.GetWeights streams), their CUDA IPC exports where the model was
// on a GPU (Learner.GetWeightsIpc), and the numbering over the run. No torch: the engine
// serializes a model (weights_blob.h) and exports it (weights_ipc.h), then adds the result here.
//
// Numbers count up over the run directory: Next() is one past the newest this process published
// or the newest any earlier learner of the run published (state.json, SetRunLatest). Only the
// newest keep() versions are kept; a CUDA IPC export is dropped with its version.
//
// Not thread-safe: the engine's lock guards it (PushTrajectories' staleness decisions and a
// step's publication read and change it together with the trajectory buffer).
#ifndef SWARR_LEARNER_SERVICE_WEIGHT_VERSIONS_H_
#define SWARR_LEARNER_SERVICE_WEIGHT_VERSIONS_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/rpc/weights_wire.h"
#include "proto/swarr/v1/learner.pb.h"

namespace swarr {

struct IpcWeights;  // learner/service/weights_ipc.h

class WeightVersions {
 public:
  // The newest version any earlier learner of the run published (-1: none).
  void SetRunLatest(int64_t version) { run_latest_ = version; }
  // The number the next publication gets.
  int64_t Next() const { return std::max(run_latest_, latest_) + 1; }

  // `version` becomes the newest of this process (REQUIRES: version > latest(), or the first).
  // `ipc`: its CUDA IPC export or the error of the export (a model on a GPU); nullopt: none
  // (a model not on a GPU, or a version published without one). Evicts beyond keep().
  void Add(int64_t version, std::shared_ptr<const WeightsBlob> blob,
           std::optional<absl::StatusOr<std::shared_ptr<const IpcWeights>>> ipc);
  // How many versions to keep (>= 1); evicts the oldest beyond it.
  void SetKeep(int64_t keep);

  // Learner.GetWeights: the newest with `request.latest()`, else the numbered version of this
  // process. kNotFound: nothing published yet, another incarnation named, or never published by
  // this process (names the range); kFailedPrecondition: no longer kept (names the oldest kept).
  absl::StatusOr<std::shared_ptr<const WeightsBlob>> Get(const v1::GetWeightsRequest& request,
                                                         const std::string& incarnation) const;
  // The CUDA IPC export of a kept `version`. kFailedPrecondition (the caller uses GetWeights):
  // published from a model not on a GPU, or its export failed (names why).
  absl::StatusOr<std::shared_ptr<const IpcWeights>> Ipc(int64_t version) const;

  int64_t latest() const { return latest_; }                    // -1: none published here
  int64_t first_published() const { return first_published_; }  // -1: none published here
  int64_t run_latest() const { return std::max(run_latest_, latest_); }
  std::vector<int64_t> kept() const;  // ascending

 private:
  void Evict();

  std::map<int64_t, std::shared_ptr<const WeightsBlob>> versions_;
  std::map<int64_t, absl::StatusOr<std::shared_ptr<const IpcWeights>>> ipc_versions_;
  int64_t latest_ = -1;
  int64_t first_published_ = -1;
  int64_t run_latest_ = -1;
  int64_t keep_ = 2;
};

}  // namespace swarr

#endif  // SWARR_LEARNER_SERVICE_WEIGHT_VERSIONS_H_
