// Child processes for `swarr launch` and the multi-process tests: start with argv (no shell),
// stdout+stderr either to a file or line by line to a callback, signal, wait with a timeout.
#ifndef SWARR_COMMON_UTIL_SUBPROCESS_H_
#define SWARR_COMMON_UTIL_SUBPROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace swarr {

class Subprocess {
 public:
  struct Options {
    // Where the child's stdout and stderr go (both): a file appended to ...
    std::string output_file;
    // ... or each line (without its '\n') handed to this callback, on a reader thread.
    std::function<void(const std::string& line)> on_line;
    // Neither: inherited from this process.
  };

  // kInvalidArgument for an empty argv; kInternal if fork/exec fails (an exec failure is
  // reported by the child as exit status 127 and a line on its output).
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                           const Options& options);
  ~Subprocess();  // kills (SIGKILL) a child still running, then reaps it

  pid_t pid() const { return pid_; }
  bool running();
  // Sends `sig` (no-op once exited).
  void Signal(int sig);
  // Waits up to `seconds` (< 0: forever). Returns the exit status (128 + signal number if
  // killed by a signal), or nullopt-like -1 on timeout.
  int Wait(double seconds = -1);
  // Exit status once Wait returned it, else -1.
  int exit_status() const { return status_; }

 private:
  Subprocess() = default;
  bool Reap(bool block);
  pid_t pid_ = -1;
  int status_ = -1;
  int out_fd_ = -1;
  std::thread reader_;
};

}  // namespace swarr

#endif  // SWARR_COMMON_UTIL_SUBPROCESS_H_
