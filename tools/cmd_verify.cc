// Placeholder until the verify command lands (replaced by its implementation).
#include <iostream>

#include "tools/commands.h"

namespace swarr {

int RunVerify(const std::vector<std::string>&) {
  std::cerr << "swarr: verify is not built yet\n";
  return 1;
}

}  // namespace swarr
