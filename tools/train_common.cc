#include "tools/train_common.h"

#include <unistd.h>

#include <cstdio>

namespace swarr {

Progress::Progress(std::string stage) : stage_(std::move(stage)), tty_(::isatty(STDERR_FILENO) != 0) {}

void Progress::Update(const std::string& text) {
  if (!tty_) return;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "\r\033[K%s [%.0fs] %s", stage_.c_str(), s, text.c_str());
  std::fflush(stderr);
}

void Progress::Done() {
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace swarr
