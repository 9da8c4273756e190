#include "coordinator/request_checks.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/util/status_macros.h"

namespace swarr {

absl::Status CheckLength(const char* field, const std::string& value, size_t max) {
  if (value.size() > max) return absl::InvalidArgumentError(absl::StrCat(field, ": longer than ", max, " bytes"));
  return absl::OkStatus();
}

absl::Status CheckGroupIds(const char* field, const google::protobuf::RepeatedPtrField<std::string>& ids) {
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i].empty()) return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: empty group id"));
    if (ids[i].size() > kMaxGroupId) {
      return absl::InvalidArgumentError(absl::StrCat(field, "[", i, "]: longer than ", kMaxGroupId, " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckRegisterWorkerRequest(const v1::RegisterWorkerRequest& req) {
  if (req.role() != "rollout") {
    return absl::InvalidArgumentError(absl::StrCat("role: must be \"rollout\", got \"", req.role().substr(0, 64), "\""));
  }
  if (req.max_sequences() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_sequences: must be >= 1 (0 = the pipeline's workers.max_sequences), got ", req.max_sequences()));
  }
  if (req.max_tokens() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("max_tokens: must be >= 0 (0 = no limit), got ", req.max_tokens()));
  }
  SWARR_RETURN_IF_ERROR(CheckLength("address", req.address(), kMaxTextField));
  SWARR_RETURN_IF_ERROR(CheckLength("name", req.name(), kMaxTextField));
  SWARR_RETURN_IF_ERROR(CheckLength("device", req.device(), kMaxTextField));
  SWARR_RETURN_IF_ERROR(CheckLength("loaded.learner_incarnation", req.loaded().learner_incarnation(), kMaxTextField));
  if (req.loaded().version() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("loaded.version: must be >= 0, got ", req.loaded().version()));
  }
  SWARR_RETURN_IF_ERROR(CheckGroupIds("held_group_ids", req.held_group_ids()));
  return absl::OkStatus();
}

absl::Status CheckHeartbeatRequest(const v1::HeartbeatRequest& req) {
  if (req.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  SWARR_RETURN_IF_ERROR(CheckLength("worker_id", req.worker_id(), kMaxTextField));
  if (req.active_sequences() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("active_sequences: must be >= 0, got ", req.active_sequences()));
  }
  if (req.queued_sequences() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("queued_sequences: must be >= 0, got ", req.queued_sequences()));
  }
  if (req.tokens_generated() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("tokens_generated: must be >= 0, got ", req.tokens_generated()));
  }
  if (req.loaded().version() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("loaded.version: must be >= 0, got ", req.loaded().version()));
  }
  SWARR_RETURN_IF_ERROR(CheckLength("loaded.learner_incarnation", req.loaded().learner_incarnation(), kMaxTextField));
  SWARR_RETURN_IF_ERROR(CheckGroupIds("finished_group_ids", req.finished_group_ids()));
  SWARR_RETURN_IF_ERROR(CheckGroupIds("returned_group_ids", req.returned_group_ids()));
  SWARR_RETURN_IF_ERROR(CheckGroupIds("held_group_ids", req.held_group_ids()));
  if (req.progress().decode_steps() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("progress.decode_steps: must be >= 0, got ", req.progress().decode_steps()));
  }
  if (req.progress().running_sequences() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("progress.running_sequences: must be >= 0, got ", req.progress().running_sequences()));
  }
  return absl::OkStatus();
}

absl::Status CheckReportEvalRequest(const v1::ReportEvalRequest& req) {
  if (req.worker_id().empty()) return absl::InvalidArgumentError("worker_id: required");
  SWARR_RETURN_IF_ERROR(CheckLength("worker_id", req.worker_id(), kMaxTextField));
  if (req.group_id().empty()) return absl::InvalidArgumentError("group_id: required");
  SWARR_RETURN_IF_ERROR(CheckLength("group_id", req.group_id(), kMaxGroupId));
  if (req.version().version() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("version.version: must be >= 0, got ", req.version().version()));
  }
  for (int i = 0; i < req.samples_size(); ++i) {
    const v1::EvalSample& s = req.samples(i);
    if (!std::isfinite(s.reward())) return absl::InvalidArgumentError(absl::StrCat("samples[", i, "].reward: not finite"));
    for (int j = 0; j < s.completion_ids_size(); ++j) {
      if (s.completion_ids(j) < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("samples[", i, "].completion_ids[", j, "]: negative token id ", s.completion_ids(j)));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace swarr
