#include "common/dist/nccl_comm.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include <cuda_runtime.h>
#include <nccl.h>

#include "absl/strings/str_cat.h"
#include "common/dist/watchdog.h"

static_assert(NCCL_UNIQUE_ID_BYTES == 128, "the control plane carries 128-byte unique ids");

namespace swarr::dist {
namespace {

using Clock = std::chrono::steady_clock;

absl::Status CudaError(cudaError_t e, const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")"));
}

absl::Status NcclError(ncclResult_t r, const std::string& what) {
  // A remote or system error is a peer that went away or a link that failed: kUnavailable.
  const std::string msg = absl::StrCat(what, ": NCCL error ", static_cast<int>(r), " (", ncclGetErrorString(r), ")");
  if (r == ncclRemoteError || r == ncclSystemError) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

// Keeps NVLink multicast off in this process (shared/device/README.md), whatever the caller's env.
void ForceNvlsOff() { setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/1); }

}  // namespace

struct NcclComm::Impl {
  int rank = 0;
  int nranks = 0;
  NcclCommOptions options;
  std::mutex mu;  // guards `comm` and `abort_*`: NCCL calls on it vs. an abort from the watchdog
  ncclComm_t comm = nullptr;
  std::atomic<bool> aborted{false};
  absl::StatusCode abort_code = absl::StatusCode::kOk;
  std::string abort_reason;
  cudaStream_t stream = nullptr;
  cudaEvent_t done = nullptr;
  bool pending = false;
  uint64_t pending_token = 0;
  std::string pending_what;
  std::unique_ptr<Watchdog> watchdog;

  void Abort(absl::StatusCode code, const std::string& why) {
    std::lock_guard<std::mutex> l(mu);
    if (aborted.load()) return;
    if (comm != nullptr) ncclCommAbort(comm);  // makes pending and future NCCL work return
    comm = nullptr;
    abort_code = code;
    abort_reason = why;
    aborted = true;
  }

  absl::Status AbortedStatus() {
    std::lock_guard<std::mutex> l(mu);
    return absl::Status(abort_code == absl::StatusCode::kOk ? absl::StatusCode::kAborted : abort_code,
                        absl::StrCat("NCCL communicator (rank ", rank, " of ", nranks, ") aborted: ", abort_reason));
  }

  // In non-blocking mode a call may leave the communicator kInProgress; poll until it is not.
  absl::Status PollAsync(const std::string& what, Clock::time_point deadline) {
    while (true) {
      if (aborted.load()) return AbortedStatus();
      ncclResult_t r;
      {
        std::lock_guard<std::mutex> l(mu);
        if (comm == nullptr) continue;  // aborted meanwhile: reported above on the next turn
        const ncclResult_t q = ncclCommGetAsyncError(comm, &r);
        if (q != ncclSuccess) r = q;
      }
      if (r == ncclSuccess) return absl::OkStatus();
      if (r != ncclInProgress) {
        absl::Status s = NcclError(r, what);
        Abort(s.code(), std::string(s.message()));
        return s;
      }
      if (Clock::now() >= deadline) {
        Abort(absl::StatusCode::kDeadlineExceeded, absl::StrCat(what, " timed out"));
        return AbortedStatus();
      }
      std::this_thread::sleep_for(options.poll_interval);
    }
  }

  ~Impl() {
    watchdog.reset();  // no abort from its thread past this point
    if (!aborted.load() && comm != nullptr) {
      // Finalize flushes outstanding work (polled: non-blocking), then destroy; abort if it hangs.
      ncclResult_t r = ncclCommFinalize(comm);
      const auto deadline = Clock::now() + options.timeout;
      while (r == ncclSuccess || r == ncclInProgress) {
        ncclResult_t state = ncclSuccess;
        ncclCommGetAsyncError(comm, &state);
        if (state != ncclInProgress) break;
        if (Clock::now() >= deadline) {
          r = ncclInternalError;
          break;
        }
        std::this_thread::sleep_for(options.poll_interval);
      }
      if (r == ncclSuccess || r == ncclInProgress) {
        ncclCommDestroy(comm);
      } else {
        ncclCommAbort(comm);
      }
    }
    if (done != nullptr) cudaEventDestroy(done);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
};

NcclComm::NcclComm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NcclComm::~NcclComm() = default;

absl::StatusOr<std::string> NcclComm::NewUniqueId() {
  ForceNvlsOff();
  ncclUniqueId id;
  if (ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess) return NcclError(r, "ncclGetUniqueId");
  return std::string(id.internal, NCCL_UNIQUE_ID_BYTES);
}

absl::StatusOr<std::unique_ptr<NcclComm>> NcclComm::Create(const std::string& unique_id, int nranks, int rank,
                                                           const NcclCommOptions& options) {
  if (unique_id.size() != NCCL_UNIQUE_ID_BYTES) {
    return absl::InvalidArgumentError(
        absl::StrCat("unique id has ", unique_id.size(), " bytes, expected ", NCCL_UNIQUE_ID_BYTES));
  }
  if (nranks < 1 || rank < 0 || rank >= nranks) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " of ", nranks, " is out of range"));
  }
  ForceNvlsOff();
  if (cudaError_t e = cudaSetDevice(options.device); e != cudaSuccess) {
    return CudaError(e, absl::StrCat("cudaSetDevice(", options.device, ")"));
  }
  auto impl = std::make_unique<Impl>();
  impl->rank = rank;
  impl->nranks = nranks;
  impl->options = options;
  if (cudaError_t e = cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking); e != cudaSuccess) {
    return CudaError(e, "cudaStreamCreateWithFlags");
  }
  if (cudaError_t e = cudaEventCreateWithFlags(&impl->done, cudaEventDisableTiming); e != cudaSuccess) {
    return CudaError(e, "cudaEventCreateWithFlags");
  }
  Impl* raw = impl.get();
  impl->watchdog = std::make_unique<Watchdog>([raw](const std::string& what) {
    raw->Abort(absl::StatusCode::kDeadlineExceeded,
               absl::StrCat("watchdog: ", what, " exceeded ", raw->options.timeout.count(), " ms"));
  });

  ncclUniqueId id;
  std::memcpy(id.internal, unique_id.data(), NCCL_UNIQUE_ID_BYTES);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // never wedge the caller: poll, and let the watchdog abort
  const std::string what = absl::StrCat("ncclCommInitRankConfig (rank ", rank, " of ", nranks, ")");
  Watchdog::Scope scope(*impl->watchdog, options.timeout, what);
  ncclResult_t r;
  {
    std::lock_guard<std::mutex> l(impl->mu);
    r = ncclCommInitRankConfig(&impl->comm, nranks, id, rank, &config);
  }
  if (r != ncclSuccess && r != ncclInProgress) {
    absl::Status s = NcclError(r, what);
    impl->Abort(s.code(), std::string(s.message()));
    return s;
  }
  absl::Status s = impl->PollAsync(what, Clock::now() + options.timeout);
  if (!scope.Done() && s.ok()) s = impl->AbortedStatus();
  if (!s.ok()) return s;
  return std::unique_ptr<NcclComm>(new NcclComm(std::move(impl)));
}

absl::Status NcclComm::BroadcastAsync(void* buffer, size_t bytes, int root) {
  Impl& s = *impl_;
  if (s.aborted.load()) return s.AbortedStatus();
  if (s.pending) return absl::FailedPreconditionError("a broadcast is already pending: Wait() first");
  if (root < 0 || root >= s.nranks) {
    return absl::InvalidArgumentError(absl::StrCat("root ", root, " of ", s.nranks, " ranks"));
  }
  if (cudaError_t e = cudaSetDevice(s.options.device); e != cudaSuccess) return CudaError(e, "cudaSetDevice");
  s.pending_what = absl::StrCat("broadcast of ", bytes, " bytes from rank ", root);
  s.pending_token = s.watchdog->Arm(s.options.timeout, s.pending_what);
  s.pending = true;
  ncclResult_t r;
  {
    std::lock_guard<std::mutex> l(s.mu);
    if (s.comm == nullptr) {
      r = ncclInvalidUsage;
    } else {
      r = ncclBroadcast(buffer, buffer, bytes, ncclUint8, root, s.comm, s.stream);
    }
  }
  absl::Status st;
  if (r == ncclInProgress) {
    st = s.PollAsync(s.pending_what, Clock::now() + s.options.timeout);  // the enqueue itself
  } else if (r != ncclSuccess) {
    st = s.aborted.load() ? s.AbortedStatus() : NcclError(r, s.pending_what);
    s.Abort(st.code(), std::string(st.message()));
  }
  if (st.ok()) {
    if (cudaError_t e = cudaEventRecord(s.done, s.stream); e != cudaSuccess) {
      st = CudaError(e, "cudaEventRecord");
      s.Abort(st.code(), std::string(st.message()));
    }
  }
  if (!st.ok()) {
    s.watchdog->Disarm(s.pending_token);
    s.pending = false;
  }
  return st;
}

absl::Status NcclComm::Wait() {
  Impl& s = *impl_;
  if (!s.pending) return absl::FailedPreconditionError("no broadcast pending");
  absl::Status st;
  while (true) {
    if (s.aborted.load()) {
      st = s.AbortedStatus();
      break;
    }
    const cudaError_t e = cudaEventQuery(s.done);
    if (e == cudaSuccess) break;
    if (e != cudaErrorNotReady) {
      st = CudaError(e, s.pending_what);
      s.Abort(st.code(), std::string(st.message()));
      break;
    }
    ncclResult_t r = ncclSuccess;
    {
      std::lock_guard<std::mutex> l(s.mu);
      if (s.comm != nullptr) ncclCommGetAsyncError(s.comm, &r);
    }
    if (r != ncclSuccess && r != ncclInProgress) {
      st = NcclError(r, s.pending_what);
      s.Abort(st.code(), std::string(st.message()));
      break;
    }
    std::this_thread::sleep_for(s.options.poll_interval);
  }
  const bool in_time = s.watchdog->Disarm(s.pending_token);
  s.pending = false;
  if (st.ok() && (!in_time || s.aborted.load())) st = s.AbortedStatus();
  return st;
}

absl::Status NcclComm::Broadcast(void* buffer, size_t bytes, int root) {
  if (absl::Status s = BroadcastAsync(buffer, bytes, root); !s.ok()) return s;
  return Wait();
}

void NcclComm::Abort() { impl_->Abort(absl::StatusCode::kAborted, "Abort() called"); }
bool NcclComm::aborted() const { return impl_->aborted.load(); }
int NcclComm::rank() const { return impl_->rank; }
int NcclComm::nranks() const { return impl_->nranks; }
void* NcclComm::stream() const { return impl_->stream; }

}  // namespace swarr::dist
