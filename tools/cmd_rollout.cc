// PLACEHOLDER while issue 5 is under construction; replaced by the real command.
#include <iostream>

#include "tools/commands.h"

namespace swarr {

int RunRollout(const std::vector<std::string>& args) {
  (void)args;
  std::cerr << "swarr rollout: being built (issue 5)\n";
  return 1;
}

}  // namespace swarr
