// Argument parsing for `swarr` subcommands: `--name value`, `--name=value` and boolean
// `--name`. Unknown flags, missing values and malformed numbers are errors that name the
// flag; the tool prints them on one line and exits with status 2.
#ifndef SWARR_TOOLS_ARGS_H_
#define SWARR_TOOLS_ARGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace swarr {

class Args {
 public:
  // `value_flags` take a value, `bool_flags` do not (names without the leading --).
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& argv, const std::set<std::string>& value_flags,
                                    const std::set<std::string>& bool_flags);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  absl::StatusOr<std::string> Required(const std::string& name) const;
  std::optional<std::string> Optional(const std::string& name) const;
  // Integer / float flags; kInvalidArgument names the flag and the bad text.
  absl::StatusOr<std::optional<int64_t>> Int(const std::string& name) const;
  absl::StatusOr<std::optional<double>> Double(const std::string& name) const;
  // Comma-separated integers ("5,17,42").
  absl::StatusOr<std::vector<int64_t>> IntList(const std::string& name) const;

 private:
  std::map<std::string, std::string> values_;
};

// Prints `swarr: <message>` on stderr and returns the process exit status for `status`:
// 2 for the caller's mistakes (bad arguments, input, config: kInvalidArgument, kNotFound,
// kPermissionDenied, kFailedPrecondition, kOutOfRange), 1 for ours.
int FailWithStatus(const absl::Status& status);

}  // namespace swarr

#endif  // SWARR_TOOLS_ARGS_H_
