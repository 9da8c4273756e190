// Placeholder until the tokenize command lands (replaced by its implementation).
#include <iostream>

#include "tools/commands.h"

namespace swarr {

int RunTokenize(const std::vector<std::string>&) {
  std::cerr << "swarr: tokenize is not built yet\n";
  return 1;
}

}  // namespace swarr
