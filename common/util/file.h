// Small file helpers.
#ifndef SWARR_COMMON_UTIL_FILE_H_
#define SWARR_COMMON_UTIL_FILE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace swarr {

// Whole file as bytes. kNotFound / kPermissionDenied / kInternal name the path.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes the concatenation of `pieces` to `path` atomically: a temporary file in the same
// directory, fsync, rename. Readers see the old file or the new one, never a torn one.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::vector<std::string_view>& pieces);

// Creates `path` and any missing parents (like mkdir -p). OK if it already exists.
absl::Status MakeDirs(const std::string& path);

}  // namespace swarr

#endif  // SWARR_COMMON_UTIL_FILE_H_
