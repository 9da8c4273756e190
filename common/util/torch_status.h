// Converts LibTorch exceptions into absl::Status at module boundaries (docs/architecture.md,
// "Errors").
#ifndef SWARR_COMMON_UTIL_TORCH_STATUS_H_
#define SWARR_COMMON_UTIL_TORCH_STATUS_H_

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "c10/util/Exception.h"

namespace swarr {

// Runs `fn` and turns a c10::Error (or any std::exception) it throws into an
// kInternal status prefixed with `what`. `fn` returns T, absl::Status or absl::StatusOr<T>.
namespace internal {
template <typename R>
struct CatchResult { using type = absl::StatusOr<R>; };
template <>
struct CatchResult<void> { using type = absl::Status; };
template <>
struct CatchResult<absl::Status> { using type = absl::Status; };
template <typename T>
struct CatchResult<absl::StatusOr<T>> { using type = absl::StatusOr<T>; };
}  // namespace internal

template <typename Fn>
auto CatchTorch(const char* what, Fn&& fn) {
  using R = std::invoke_result_t<Fn>;
  using Out = typename internal::CatchResult<R>::type;
  try {
    if constexpr (std::is_void_v<R>) {
      fn();
      return Out(absl::OkStatus());
    } else {
      return Out(fn());
    }
  } catch (const c10::Error& e) {
    return Out(absl::InternalError(absl::StrCat(what, ": ", e.what_without_backtrace())));
  } catch (const std::exception& e) {
    return Out(absl::InternalError(absl::StrCat(what, ": ", e.what())));
  }
}

}  // namespace swarr

#endif  // SWARR_COMMON_UTIL_TORCH_STATUS_H_
