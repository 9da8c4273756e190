// The `rl` stage of `swarr train` (placeholder until the RL trainer lands).
#include "absl/status/status.h"
#include "proto/swarr/v1/config.pb.h"

namespace swarr {

absl::Status RunRlStage(const v1::Stage&, const std::string&, const std::string&, const std::string&) {
  return absl::UnimplementedError("rl stages are not wired into swarr train yet");
}

}  // namespace swarr
