// Shared pieces of `swarr train`: the progress line. The stage's model, data, options and
// metrics log are the learner's (learner/stage_common.h, re-exported here), shared with the
// learner service.
#ifndef SWARR_TOOLS_TRAIN_COMMON_H_
#define SWARR_TOOLS_TRAIN_COMMON_H_

#include <chrono>
#include <string>

#include "learner/stage_common.h"

namespace swarr {

// A one-line progress display on a terminal (stderr), silent otherwise.
class Progress {
 public:
  explicit Progress(std::string stage);
  void Update(const std::string& text);
  void Done();

 private:
  std::string stage_;
  bool tty_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

}  // namespace swarr

#endif  // SWARR_TOOLS_TRAIN_COMMON_H_
