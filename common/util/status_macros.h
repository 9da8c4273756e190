// Status helpers shared by every SWARR library.
#ifndef SWARR_COMMON_UTIL_STATUS_MACROS_H_
#define SWARR_COMMON_UTIL_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define SWARR_RETURN_IF_ERROR(expr)                    \
  do {                                                 \
    const ::absl::Status swarr_status_ = (expr);       \
    if (!swarr_status_.ok()) return swarr_status_;     \
  } while (0)

#define SWARR_CONCAT_INNER_(a, b) a##b
#define SWARR_CONCAT_(a, b) SWARR_CONCAT_INNER_(a, b)

// `SWARR_ASSIGN_OR_RETURN(auto x, MakeX());` binds the value of an absl::StatusOr or
// returns its error from the enclosing function.
#define SWARR_ASSIGN_OR_RETURN(lhs, expr) \
  SWARR_ASSIGN_OR_RETURN_IMPL_(SWARR_CONCAT_(swarr_statusor_, __LINE__), lhs, expr)
#define SWARR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#endif  // SWARR_COMMON_UTIL_STATUS_MACROS_H_
