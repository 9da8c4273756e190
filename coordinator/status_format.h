// `swarr status` output: a PipelineStatus as a few human-readable lines.
#ifndef SWARR_COORDINATOR_STATUS_FORMAT_H_
#define SWARR_COORDINATOR_STATUS_FORMAT_H_

#include <string>

#include "proto/swarr/v1/coordinator.pb.h"

namespace swarr {

// Pipeline, stage (index, name, kind), step, learner version, group counters, the stages'
// progress and one row per worker (id, name, state, version, active sequences, tokens per
// second, assigned groups, seconds since its heartbeat).
std::string FormatPipelineStatus(const v1::PipelineStatus& status);

}  // namespace swarr

#endif  // SWARR_COORDINATOR_STATUS_FORMAT_H_
